//! Catalog descriptors (databases, tables, columns, indexes, checks) and the SQL type system.
//!
//! Invariants: column ids are unique within a table and never reused (`next_column_id` only
//! grows); `primary_key` holds indexes into `columns`, and primary-key columns are NOT NULL.
//! Index ids are unique per table: 1 is the primary index, secondary ones start at 2 and come
//! from `next_index_id`, which only grows. `version` starts at 1 and every ALTER bumps it by one.
//! Indexes carry a life-cycle [`IndexState`]: only `Public` ones are read; index names are
//! unique within a table.
//! Descriptors are serialized by the node (serde, JSON); fields added later carry
//! `#[serde(default)]` so older descriptors still load. This crate never stores them itself.
//! Not handled: foreign keys, schemas, expression or partial indexes.

use crate::error::{SqlError, codes};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SqlType {
    /// INT8 (BIGINT).
    Int,
    Int2,
    Int4,
    /// FLOAT8 (DOUBLE PRECISION).
    Float,
    Float4,
    Decimal,
    String,
    Bool,
    Bytes,
    Date,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Jsonb,
}

impl SqlType {
    /// The type's name as shown to clients.
    pub fn name(self) -> &'static str {
        match self {
            SqlType::Int => "INT8",
            SqlType::Int2 => "INT2",
            SqlType::Int4 => "INT4",
            SqlType::Float => "FLOAT8",
            SqlType::Float4 => "FLOAT4",
            SqlType::Decimal => "DECIMAL",
            SqlType::String => "STRING",
            SqlType::Bool => "BOOL",
            SqlType::Bytes => "BYTES",
            SqlType::Date => "DATE",
            SqlType::Timestamp => "TIMESTAMP",
            SqlType::TimestampTz => "TIMESTAMPTZ",
            SqlType::Interval => "INTERVAL",
            SqlType::Uuid => "UUID",
            SqlType::Jsonb => "JSONB",
        }
    }

    /// The type of the datums that represent values of this type (INT2/INT4 values are Int
    /// datums, FLOAT4 values Float datums).
    pub fn base(self) -> SqlType {
        match self {
            SqlType::Int2 | SqlType::Int4 => SqlType::Int,
            SqlType::Float4 => SqlType::Float,
            t => t,
        }
    }

    /// PostgreSQL's name, used in error messages ("integer", "smallint", ...).
    pub fn pg_name(self) -> &'static str {
        match self {
            SqlType::Int => "bigint",
            SqlType::Int2 => "smallint",
            SqlType::Int4 => "integer",
            SqlType::Float => "double precision",
            SqlType::Float4 => "real",
            SqlType::Decimal => "numeric",
            SqlType::String => "text",
            SqlType::Bool => "boolean",
            SqlType::Bytes => "bytea",
            SqlType::Date => "date",
            SqlType::Timestamp => "timestamp without time zone",
            SqlType::TimestampTz => "timestamp with time zone",
            SqlType::Interval => "interval",
            SqlType::Uuid => "uuid",
            SqlType::Jsonb => "jsonb",
        }
    }

    /// Whether values of the type can be part of a primary key or unique index.
    pub fn keyable(self) -> bool {
        !matches!(self, SqlType::Interval | SqlType::Jsonb)
    }

    /// Maps a SQL type name (as printed by sqlparser, any case, with or without a `(n)`
    /// modifier) to a supported type, or 0A000.
    pub fn from_sql_name(name: &str) -> Result<SqlType, SqlError> {
        Ok(parse_type(name)?.ty)
    }
}

/// A column type with its modifiers: `VARCHAR(n)`/`CHAR(n)` length, `DECIMAL(p, s)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeSpec {
    pub ty: SqlType,
    /// Maximum length (STRING) or precision (DECIMAL).
    pub width: Option<u32>,
    /// DECIMAL scale.
    pub scale: Option<u32>,
    /// CHAR(n): values are blank-padded to n.
    pub fixed: bool,
    /// SERIAL / BIGSERIAL: INT8 NOT NULL DEFAULT unique_rowid().
    pub serial: bool,
}

impl TypeSpec {
    pub fn of(ty: SqlType) -> TypeSpec {
        TypeSpec { ty, width: None, scale: None, fixed: false, serial: false }
    }

    /// The type as written in SHOW CREATE TABLE.
    pub fn sql(&self) -> String {
        match (self.ty, self.width, self.scale) {
            (SqlType::String, Some(n), _) => format!("{}({n})", if self.fixed { "CHAR" } else { "VARCHAR" }),
            (SqlType::Decimal, Some(p), Some(s)) => format!("DECIMAL({p},{s})"),
            (SqlType::Decimal, Some(p), None) => format!("DECIMAL({p})"),
            (t, _, _) => t.name().into(),
        }
    }
}

/// Parses a type name with optional modifiers, e.g. `VARCHAR(20)`, `NUMERIC(10, 2)`, `SERIAL`.
pub fn parse_type(name: &str) -> Result<TypeSpec, SqlError> {
    let upper = name.to_ascii_uppercase();
    let (base, mods) = match upper.split_once('(') {
        Some((b, rest)) => (b.trim().to_string(), rest.trim_end_matches(')').to_string()),
        None => (upper.trim().to_string(), String::new()),
    };
    let nums: Vec<u32> = if mods.trim().is_empty() {
        Vec::new()
    } else {
        mods.split(',')
            .map(|m| m.trim().parse::<u32>().map_err(|_| SqlError::user(codes::SYNTAX, format!("invalid type modifier in {name}"))))
            .collect::<Result<_, _>>()?
    };
    let mut spec = TypeSpec::of(SqlType::Int);
    spec.ty = match base.as_str() {
        "INT" | "INT8" | "BIGINT" | "INT64" => SqlType::Int,
        "INTEGER" | "INT4" => SqlType::Int4,
        "SMALLINT" | "INT2" => SqlType::Int2,
        "SERIAL" | "BIGSERIAL" | "SERIAL8" | "SERIAL4" | "SMALLSERIAL" | "SERIAL2" => {
            spec.serial = true;
            SqlType::Int
        }
        "FLOAT8" | "DOUBLE PRECISION" | "DOUBLE" | "FLOAT" | "FLOAT64" => SqlType::Float,
        "FLOAT4" | "REAL" => SqlType::Float4,
        "DECIMAL" | "NUMERIC" | "DEC" => SqlType::Decimal,
        "STRING" | "TEXT" | "VARCHAR" | "CHARACTER VARYING" => SqlType::String,
        "CHAR" | "CHARACTER" | "BPCHAR" => {
            spec.fixed = true;
            SqlType::String
        }
        "BOOL" | "BOOLEAN" => SqlType::Bool,
        "BYTES" | "BYTEA" => SqlType::Bytes,
        "DATE" => SqlType::Date,
        "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" => SqlType::Timestamp,
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => SqlType::TimestampTz,
        "INTERVAL" => SqlType::Interval,
        "UUID" => SqlType::Uuid,
        "JSONB" | "JSON" => SqlType::Jsonb,
        _ => return Err(SqlError::user(codes::UNDEFINED_OBJECT, format!("type \"{}\" does not exist", name.to_lowercase()))),
    };
    match (spec.ty, nums.as_slice()) {
        (_, []) => {
            if spec.fixed {
                spec.width = Some(1);
            }
        }
        (SqlType::String, [n]) if *n >= 1 => spec.width = Some(*n),
        (SqlType::Decimal, [p]) if (1..=28).contains(p) => spec.width = Some(*p),
        (SqlType::Decimal, [p, s]) if (1..=28).contains(p) && s <= p => {
            spec.width = Some(*p);
            spec.scale = Some(*s);
        }
        (SqlType::Float, [p]) if (1..=24).contains(p) => spec.ty = SqlType::Float4,
        (SqlType::Float, [p]) if (25..=53).contains(p) => {}
        (SqlType::Timestamp | SqlType::TimestampTz, [p]) if *p <= 6 => {}
        _ => return Err(SqlError::user(codes::SYNTAX, format!("invalid type modifier for {name}"))),
    }
    Ok(spec)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnDesc {
    pub id: u32,
    pub name: String,
    pub ty: SqlType,
    pub nullable: bool,
    /// SQL expression text, evaluated at insert.
    pub default: Option<String>,
    /// VARCHAR/CHAR length or DECIMAL precision.
    #[serde(default)]
    pub width: Option<u32>,
    /// DECIMAL scale.
    #[serde(default)]
    pub scale: Option<u32>,
    /// CHAR(n) (blank-padded).
    #[serde(default)]
    pub fixed: bool,
    /// Text of the value that rows written before this column was added read as (ALTER TABLE
    /// ADD COLUMN ... DEFAULT); parsed as the column's type.
    #[serde(default)]
    pub missing: Option<String>,
}

impl ColumnDesc {
    pub fn new(id: u32, name: &str, ty: SqlType) -> ColumnDesc {
        ColumnDesc { id, name: name.into(), ty, nullable: true, default: None, width: None, scale: None, fixed: false, missing: None }
    }

    pub fn spec(&self) -> TypeSpec {
        TypeSpec { ty: self.ty, width: self.width, scale: self.scale, fixed: self.fixed, serial: false }
    }
}

/// Where an index is in its life cycle (see `index_ddl`). Writers maintain every index that is
/// not `Public` as its state says; readers use `Public` indexes only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexState {
    /// Writers delete the entries of rows they delete or change, but add none (first step of
    /// CREATE INDEX: no gateway may still write without knowing the index once entries appear).
    DeleteOnly,
    /// Writers maintain entries fully (and check uniqueness); readers ignore the index. The
    /// backfill runs in this state, and DROP INDEX passes through it.
    WriteOnly,
    #[default]
    Public,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDesc {
    pub id: u32,
    pub name: String,
    /// Column ids.
    pub columns: Vec<u32>,
    pub unique: bool,
    /// Per column, whether it is stored descending. Shorter than `columns` (older descriptors:
    /// empty) means ascending for the rest.
    #[serde(default)]
    pub descending: Vec<bool>,
    #[serde(default)]
    pub state: IndexState,
    /// Made by CREATE [UNIQUE] INDEX (dropped by DROP INDEX); false for the index behind a UNIQUE
    /// constraint.
    #[serde(default)]
    pub standalone: bool,
}

impl IndexDesc {
    /// A public, ascending index.
    pub fn new(id: u32, name: &str, columns: Vec<u32>, unique: bool) -> IndexDesc {
        IndexDesc { id, name: name.into(), columns, unique, descending: Vec::new(), state: IndexState::Public, standalone: false }
    }

    /// Whether column `i` of the index is descending.
    pub fn desc(&self, i: usize) -> bool {
        self.descending.get(i).copied().unwrap_or(false)
    }

    /// Whether readers may use the index.
    pub fn is_public(&self) -> bool {
        self.state == IndexState::Public
    }

    /// Whether writers add entries to it (and check its uniqueness).
    pub fn writable(&self) -> bool {
        self.state != IndexState::DeleteOnly
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckDesc {
    pub name: String,
    /// SQL text of the boolean condition.
    pub expr: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableDesc {
    pub id: u64,
    pub db: String,
    pub name: String,
    pub columns: Vec<ColumnDesc>,
    /// Indexes into `columns`.
    pub primary_key: Vec<usize>,
    pub next_column_id: u32,
    #[serde(default = "one")]
    pub version: u64,
    #[serde(default)]
    pub indexes: Vec<IndexDesc>,
    #[serde(default)]
    pub checks: Vec<CheckDesc>,
    #[serde(default = "two")]
    pub next_index_id: u32,
}

fn one() -> u64 {
    1
}

fn two() -> u32 {
    2
}

impl TableDesc {
    /// A version-1 descriptor without indexes or checks.
    pub fn new(db: &str, name: &str, columns: Vec<ColumnDesc>, primary_key: Vec<usize>) -> TableDesc {
        let next_column_id = columns.iter().map(|c| c.id).max().unwrap_or(0) + 1;
        TableDesc {
            id: 0,
            db: db.into(),
            name: name.into(),
            columns,
            primary_key,
            next_column_id,
            version: 1,
            indexes: Vec::new(),
            checks: Vec::new(),
            next_index_id: 2,
        }
    }

    /// Position of the column named `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Position of the column with id `id`.
    pub fn column_by_id(&self, id: u32) -> Option<usize> {
        self.columns.iter().position(|c| c.id == id)
    }

    /// Name of the primary-key constraint, as in PostgreSQL.
    pub fn pkey_name(&self) -> String {
        format!("{}_pkey", self.name)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatabaseDesc {
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_map() {
        assert_eq!(SqlType::from_sql_name("bigint").unwrap(), SqlType::Int);
        assert_eq!(SqlType::from_sql_name("integer").unwrap(), SqlType::Int4);
        assert_eq!(SqlType::from_sql_name("VARCHAR(20)").unwrap(), SqlType::String);
        assert_eq!(SqlType::from_sql_name("DOUBLE PRECISION").unwrap(), SqlType::Float);
        assert_eq!(SqlType::from_sql_name("TIMESTAMP WITH TIME ZONE").unwrap(), SqlType::TimestampTz);
        assert_eq!(SqlType::from_sql_name("JSONB").unwrap(), SqlType::Jsonb);
        assert_eq!(SqlType::from_sql_name("NOTATYPE").unwrap_err().code(), "42704");
        let d = parse_type("NUMERIC(10,2)").unwrap();
        assert_eq!((d.ty, d.width, d.scale), (SqlType::Decimal, Some(10), Some(2)));
        assert!(parse_type("SERIAL").unwrap().serial);
        assert_eq!(parse_type("VARCHAR(0)").unwrap_err().code(), "42601");
        assert_eq!(SqlType::Bytes.name(), "BYTES");
    }

    #[test]
    fn old_descriptors_deserialize_with_defaults() {
        let json = r#"{"id":5,"db":"d","name":"t","columns":[{"id":1,"name":"a","ty":"Int","nullable":false,"default":null}],
            "primary_key":[0],"next_column_id":2}"#;
        let t: TableDesc = serde_json::from_str(json).unwrap();
        assert_eq!((t.version, t.next_index_id, t.indexes.len()), (1, 2, 0));
    }
}
