//! Schema statements: CREATE/DROP DATABASE, CREATE/DROP TABLE, SHOW DATABASES, SHOW TABLES.
//!
//! Invariants: every table has a primary key (a table without one is rejected with 42P16; no
//! hidden rowid); PK columns are NOT NULL; column ids are assigned 1..n and `next_column_id` is
//! n+1; DEFAULT expressions are validated (compiled, evaluated, coerced to the column type) at
//! CREATE time and stored as SQL text.
//! SERIAL columns are INT8 NOT NULL DEFAULT unique_rowid(). UNIQUE constraints become unique
//! indexes (ids from 2, PostgreSQL names `t_col_key`); CHECK constraints are validated (compiled
//! against the table) and stored as SQL text (names `t_col_check` / `t_check`).
//! Not handled: FOREIGN KEY, EXCLUDE, CREATE TABLE AS, schemas, non-unique indexes.

use crate::catalog::{CheckDesc, ColumnDesc, IndexDesc, SqlType, TableDesc, parse_type};
use crate::error::{SqlError, codes};
use crate::exec::{Column, Ctx, QueryResult, table_ref};
use crate::expr::{Compiler, eval, ident_name};
use crate::txn::TxnClient;
use sqlparser::ast::{ColumnOption, CreateTable, Expr, ObjectName, TableConstraint};

fn single_name(name: &ObjectName) -> Result<String, SqlError> {
    match name.0.as_slice() {
        [p] => p.as_ident().map(ident_name).ok_or_else(|| SqlError::user(codes::UNSUPPORTED, format!("unsupported name {name}"))),
        _ => Err(SqlError::user(codes::SYNTAX, format!("invalid database name {name}"))),
    }
}

pub(crate) async fn create_database<T: TxnClient>(txn: &mut T, name: &ObjectName, if_not_exists: bool) -> Result<QueryResult, SqlError> {
    let name = single_name(name)?;
    if !(if_not_exists && txn.get_database(&name).await?.is_some()) {
        txn.create_database(&name).await?;
    }
    Ok(QueryResult::tag("CREATE DATABASE", 0))
}

pub(crate) async fn drop_databases<T: TxnClient>(txn: &mut T, names: &[ObjectName], if_exists: bool) -> Result<QueryResult, SqlError> {
    for n in names {
        let name = single_name(n)?;
        if txn.get_database(&name).await?.is_none() {
            if if_exists {
                continue;
            }
            return Err(SqlError::user(codes::UNDEFINED_DATABASE, format!("database \"{name}\" does not exist")));
        }
        txn.drop_database(&name).await?;
    }
    Ok(QueryResult::tag("DROP DATABASE", 0))
}

pub(crate) async fn drop_tables<T: TxnClient>(
    txn: &mut T,
    ctx: &Ctx<'_>,
    names: &[ObjectName],
    if_exists: bool,
) -> Result<QueryResult, SqlError> {
    for n in names {
        let (db, t) = table_ref(ctx, n)?;
        if txn.get_table(&db, &t).await?.is_none() {
            if if_exists {
                continue;
            }
            if txn.get_database(&db).await?.is_none() {
                return Err(SqlError::user(codes::UNDEFINED_DATABASE, format!("database \"{db}\" does not exist")));
            }
            return Err(SqlError::user(codes::UNDEFINED_TABLE, format!("relation \"{t}\" does not exist")));
        }
        txn.drop_table(&db, &t).await?;
    }
    Ok(QueryResult::tag("DROP TABLE", 0))
}

pub(crate) async fn show_databases<T: TxnClient>(txn: &mut T) -> Result<QueryResult, SqlError> {
    let dbs = txn.list_databases().await?;
    Ok(QueryResult {
        columns: vec![Column { name: "database_name".into(), ty: "STRING".into() }],
        rows: dbs.into_iter().map(|d| vec![serde_json::Value::String(d.name)]).collect(),
        rows_affected: 0,
        tag: "SHOW DATABASES".into(),
    })
}

pub(crate) async fn show_tables<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>) -> Result<QueryResult, SqlError> {
    if ctx.db.is_empty() {
        return Err(SqlError::user(codes::UNDEFINED_DATABASE, "no database selected"));
    }
    if txn.get_database(ctx.db).await?.is_none() {
        return Err(SqlError::user(codes::UNDEFINED_DATABASE, format!("database \"{}\" does not exist", ctx.db)));
    }
    let mut names: Vec<String> = txn.list_tables(ctx.db).await?.into_iter().map(|t| t.name).collect();
    names.sort();
    Ok(QueryResult {
        columns: vec![Column { name: "table_name".into(), ty: "STRING".into() }],
        rows: names.into_iter().map(|n| vec![serde_json::Value::String(n)]).collect(),
        rows_affected: 0,
        tag: "SHOW TABLES".into(),
    })
}

/// Checks that a DEFAULT expression compiles without column references and yields a value of
/// the column's type; returns that value (as evaluated now).
pub(crate) fn check_default(ctx: &Ctx<'_>, e: &Expr, col: &ColumnDesc) -> Result<crate::datum::Datum, SqlError> {
    let s = Compiler::new(Vec::new(), &[], ctx.now).compile(e)?;
    if crate::rel::has_rowid(&s) {
        return Ok(crate::datum::Datum::Null);
    }
    eval(&s, &[], &[])?.coerce(&col.spec(), &col.name)
}

/// Builds a column from its definition's name and type (options are the caller's).
pub(crate) fn column_from_def(id: u32, name: &str, data_type: &str) -> Result<(ColumnDesc, bool), SqlError> {
    let spec = parse_type(data_type)?;
    let mut col = ColumnDesc::new(id, name, spec.ty);
    col.width = spec.width;
    col.scale = spec.scale;
    col.fixed = spec.fixed;
    if spec.serial {
        col.nullable = false;
        col.default = Some("unique_rowid()".into());
    }
    Ok((col, spec.serial))
}

/// Validates a CHECK expression against the table's columns.
pub(crate) fn check_check(table: &TableDesc, e: &Expr, ctx: &Ctx<'_>) -> Result<(), SqlError> {
    let mut c = Compiler::for_table(table, None, &[], ctx.now);
    let s = c.compile(e)?;
    if !c.subqueries.is_empty() {
        return Err(SqlError::user(codes::UNSUPPORTED, "cannot use subquery in check constraint"));
    }
    if let Some(t) = c.ty(&s)
        && t != SqlType::Bool
    {
        return Err(SqlError::user(codes::DATATYPE_MISMATCH, format!("argument of CHECK must be type boolean, not type {}", t.pg_name())));
    }
    Ok(())
}

/// PostgreSQL's default constraint names.
pub(crate) fn unique_name(table: &str, cols: &[String]) -> String {
    format!("{table}_{}_key", cols.join("_"))
}

fn pk_column_name(e: &Expr) -> Result<String, SqlError> {
    match e {
        Expr::Identifier(id) => Ok(ident_name(id)),
        other => Err(SqlError::user(codes::UNSUPPORTED, format!("unsupported primary key element {other}"))),
    }
}

pub(crate) async fn create_table<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, ct: &CreateTable) -> Result<QueryResult, SqlError> {
    if ct.query.is_some() || ct.or_replace || ct.temporary || ct.external {
        return Err(SqlError::user(codes::UNSUPPORTED, "unsupported CREATE TABLE variant"));
    }
    let (db, name) = table_ref(ctx, &ct.name)?;
    if txn.get_database(&db).await?.is_none() {
        return Err(SqlError::user(codes::UNDEFINED_DATABASE, format!("database \"{db}\" does not exist")));
    }
    if ct.if_not_exists && txn.get_table(&db, &name).await?.is_some() {
        return Ok(QueryResult::tag("CREATE TABLE", 0));
    }
    let dup_pk = || SqlError::user(codes::INVALID_TABLE_DEF, format!("multiple primary keys for table \"{name}\" are not allowed"));
    let mut columns: Vec<ColumnDesc> = Vec::with_capacity(ct.columns.len());
    let mut pk_names: Option<Vec<String>> = None;
    // (constraint name, columns) / (name, expr)
    let mut uniques: Vec<(Option<String>, Vec<String>)> = Vec::new();
    let mut checks: Vec<(Option<String>, String, Expr)> = Vec::new();
    for (i, def) in ct.columns.iter().enumerate() {
        let col_name = ident_name(&def.name);
        if columns.iter().any(|c| c.name == col_name) {
            return Err(SqlError::user(codes::DUPLICATE_COLUMN, format!("column \"{col_name}\" specified more than once")));
        }
        let (mut col, _) = column_from_def(i as u32 + 1, &col_name, &def.data_type.to_string())?;
        for opt in &def.options {
            let cname = opt.name.as_ref().map(ident_name);
            match &opt.option {
                ColumnOption::Null => col.nullable = true,
                ColumnOption::NotNull => col.nullable = false,
                ColumnOption::Default(e) => {
                    check_default(ctx, e, &col)?;
                    col.default = Some(e.to_string());
                }
                ColumnOption::PrimaryKey(_) => {
                    if pk_names.is_some() {
                        return Err(dup_pk());
                    }
                    pk_names = Some(vec![col_name.clone()]);
                }
                ColumnOption::Unique(_) => uniques.push((cname, vec![col_name.clone()])),
                ColumnOption::Check(ch) => {
                    let n = cname.unwrap_or_else(|| format!("{name}_{col_name}_check"));
                    checks.push((Some(n), col_name.clone(), ch.expr.as_ref().clone()));
                }
                other => {
                    return Err(SqlError::user(codes::UNSUPPORTED, format!("unsupported column option {other}")));
                }
            }
        }
        columns.push(col);
    }
    for c in &ct.constraints {
        match c {
            TableConstraint::PrimaryKey(pk) => {
                if pk_names.is_some() {
                    return Err(dup_pk());
                }
                pk_names = Some(pk.columns.iter().map(|ic| pk_column_name(&ic.column.expr)).collect::<Result<_, _>>()?);
            }
            TableConstraint::Unique(u) => {
                let cols = u.columns.iter().map(|ic| pk_column_name(&ic.column.expr)).collect::<Result<Vec<_>, _>>()?;
                uniques.push((u.name.as_ref().map(ident_name), cols));
            }
            TableConstraint::Check(ch) => {
                checks.push((ch.name.as_ref().map(ident_name), String::new(), ch.expr.as_ref().clone()));
            }
            other => {
                return Err(SqlError::user(codes::UNSUPPORTED, format!("unsupported constraint {other}")));
            }
        }
    }
    let Some(pk_names) = pk_names else {
        return Err(SqlError::user(codes::INVALID_TABLE_DEF, format!("table \"{name}\" must have a primary key")));
    };
    let mut primary_key = Vec::with_capacity(pk_names.len());
    for n in &pk_names {
        let idx = columns
            .iter()
            .position(|c| &c.name == n)
            .ok_or_else(|| SqlError::user(codes::UNDEFINED_COLUMN, format!("column \"{n}\" named in key does not exist")))?;
        if primary_key.contains(&idx) {
            return Err(SqlError::user(codes::DUPLICATE_COLUMN, format!("column \"{n}\" appears twice in primary key constraint")));
        }
        if !columns[idx].ty.keyable() {
            return Err(SqlError::user(
                codes::UNSUPPORTED,
                format!("column \"{n}\" is of type {} and thus is not indexable", columns[idx].ty.pg_name()),
            ));
        }
        columns[idx].nullable = false;
        primary_key.push(idx);
    }
    let mut desc = TableDesc::new(&db, &name, columns, primary_key);
    for (cname, cols) in uniques {
        let mut ids = Vec::with_capacity(cols.len());
        for n in &cols {
            let col = desc
                .columns
                .iter()
                .find(|c| &c.name == n)
                .ok_or_else(|| SqlError::user(codes::UNDEFINED_COLUMN, format!("column \"{n}\" named in key does not exist")))?;
            if !col.ty.keyable() {
                return Err(SqlError::user(
                    codes::UNSUPPORTED,
                    format!("column \"{n}\" is of type {} and thus is not indexable", col.ty.pg_name()),
                ));
            }
            ids.push(col.id);
        }
        let iname = cname.unwrap_or_else(|| unique_name(&name, &cols));
        if desc.indexes.iter().any(|i| i.name == iname) {
            return Err(SqlError::user(codes::DUPLICATE_TABLE, format!("relation \"{iname}\" already exists")));
        }
        let id = desc.next_index_id;
        desc.next_index_id += 1;
        desc.indexes.push(IndexDesc::new(id, &iname, ids, true));
    }
    let mut unnamed = 0;
    for (cname, _, e) in checks {
        check_check(&desc, &e, ctx)?;
        let n = cname.unwrap_or_else(|| {
            unnamed += 1;
            if unnamed == 1 { format!("{name}_check") } else { format!("{name}_check{}", unnamed - 1) }
        });
        desc.checks.push(CheckDesc { name: n, expr: e.to_string() });
    }
    txn.create_table(desc).await?;
    Ok(QueryResult::tag("CREATE TABLE", 0))
}
