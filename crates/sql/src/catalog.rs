//! Catalog descriptors (databases, tables, columns) and the SQL type system.
//!
//! Invariants: column ids are unique within a table and never reused (`next_column_id` only
//! grows); `primary_key` holds indexes into `columns`, and primary-key columns are NOT NULL.
//! Descriptors are serialized by the node (serde); this crate never stores them itself.

use crate::error::{SqlError, codes};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SqlType {
    Int,
    Float,
    String,
    Bool,
    Bytes,
    TimestampTz,
}

impl SqlType {
    /// The type's name as shown to clients.
    pub fn name(self) -> &'static str {
        match self {
            SqlType::Int => "INT8",
            SqlType::Float => "FLOAT8",
            SqlType::String => "STRING",
            SqlType::Bool => "BOOL",
            SqlType::Bytes => "BYTES",
            SqlType::TimestampTz => "TIMESTAMPTZ",
        }
    }

    /// Maps a SQL type name (as printed by sqlparser, any case, with or without a `(n)`
    /// modifier) to a supported type, or 0A000.
    pub fn from_sql_name(name: &str) -> Result<SqlType, SqlError> {
        let upper = name.to_ascii_uppercase();
        let base = upper.split('(').next().unwrap_or("").trim();
        let ty = match base {
            "INT" | "INT8" | "BIGINT" | "INTEGER" | "SMALLINT" | "INT2" | "INT4" | "INT64" => SqlType::Int,
            "FLOAT8" | "DOUBLE PRECISION" | "DOUBLE" | "FLOAT" | "FLOAT4" | "REAL" | "FLOAT64" => SqlType::Float,
            "STRING" | "TEXT" | "VARCHAR" | "CHARACTER VARYING" | "CHAR" | "CHARACTER" => SqlType::String,
            "BOOL" | "BOOLEAN" => SqlType::Bool,
            "BYTES" | "BYTEA" => SqlType::Bytes,
            "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" | "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" => SqlType::TimestampTz,
            _ => {
                return Err(SqlError::user(codes::UNSUPPORTED, format!("type {name} is not supported")));
            }
        };
        Ok(ty)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnDesc {
    pub id: u32,
    pub name: String,
    pub ty: SqlType,
    pub nullable: bool,
    /// SQL expression text, evaluated at insert.
    pub default: Option<String>,
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
}

impl TableDesc {
    /// Position of the column named `name`.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
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
        assert_eq!(SqlType::from_sql_name("VARCHAR(20)").unwrap(), SqlType::String);
        assert_eq!(SqlType::from_sql_name("DOUBLE PRECISION").unwrap(), SqlType::Float);
        assert_eq!(SqlType::from_sql_name("TIMESTAMP WITH TIME ZONE").unwrap(), SqlType::TimestampTz);
        assert_eq!(SqlType::from_sql_name("JSONB").unwrap_err().code(), "0A000");
        assert_eq!(SqlType::Bytes.name(), "BYTES");
    }
}
