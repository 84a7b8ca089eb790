//! Schema statements: CREATE/DROP DATABASE, CREATE/DROP TABLE, SHOW DATABASES, SHOW TABLES.
//!
//! Invariants: every table has a primary key (a table without one is rejected with 42P16; no
//! hidden rowid); PK columns are NOT NULL; column ids are assigned 1..n and `next_column_id` is
//! n+1; DEFAULT expressions are validated (compiled, evaluated, coerced to the column type) at
//! CREATE time and stored as SQL text.
//! Not handled: ALTER TABLE, UNIQUE/CHECK/FOREIGN KEY constraints, CREATE TABLE AS, schemas.

use crate::catalog::{ColumnDesc, SqlType, TableDesc};
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
/// the column's type.
fn check_default(ctx: &Ctx<'_>, e: &Expr, ty: SqlType, column: &str) -> Result<(), SqlError> {
    let s = Compiler::new(&[], &[], ctx.now).compile(e)?;
    eval(&s, &[], &[])?.coerce_to(ty, column)?;
    Ok(())
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
    for (i, def) in ct.columns.iter().enumerate() {
        let col_name = ident_name(&def.name);
        if columns.iter().any(|c| c.name == col_name) {
            return Err(SqlError::user(codes::DUPLICATE_COLUMN, format!("column \"{col_name}\" specified more than once")));
        }
        let ty = SqlType::from_sql_name(&def.data_type.to_string())?;
        let mut col = ColumnDesc { id: i as u32 + 1, name: col_name.clone(), ty, nullable: true, default: None };
        for opt in &def.options {
            match &opt.option {
                ColumnOption::Null => col.nullable = true,
                ColumnOption::NotNull => col.nullable = false,
                ColumnOption::Default(e) => {
                    check_default(ctx, e, ty, &col_name)?;
                    col.default = Some(e.to_string());
                }
                ColumnOption::PrimaryKey(_) => {
                    if pk_names.is_some() {
                        return Err(dup_pk());
                    }
                    pk_names = Some(vec![col_name.clone()]);
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
        columns[idx].nullable = false;
        primary_key.push(idx);
    }
    let next_column_id = columns.len() as u32 + 1;
    let desc = TableDesc { id: 0, db, name, columns, primary_key, next_column_id };
    txn.create_table(desc).await?;
    Ok(QueryResult::tag("CREATE TABLE", 0))
}
