//! Write statements: INSERT ... VALUES, UPDATE, DELETE.
//!
//! Invariants: values are coerced to their column's type (42804 / 22P02 on failure); NOT NULL is
//! enforced (23502); a primary key may exist once (23505, checked with `txn.get` against storage
//! and against the statement's own earlier rows). UPDATE evaluates every assignment against the
//! old row; rows whose key changes are deleted first and re-inserted after, so `SET k = k + 1`
//! over consecutive keys succeeds. Reads use the span plan of the WHERE clause.
//! Not handled: INSERT ... SELECT, ON CONFLICT, RETURNING, UPDATE ... FROM, DELETE ... USING.

use crate::catalog::TableDesc;
use crate::datum::Datum;
use crate::encoding::{encode_row, row_key};
use crate::error::{SqlError, codes};
use crate::exec::{Ctx, QueryResult, load_table, passes, read_rows};
use crate::expr::{Compiler, Scalar, eval, ident_name};
use crate::plan::plan_scan;
use crate::txn::TxnClient;
use sqlparser::ast::{
    AssignmentTarget, Delete, Expr, FromTable, Insert, ObjectName, SetExpr, TableFactor, TableObject, TableWithJoins, Update,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use std::collections::HashSet;

fn unsupported(what: &str) -> SqlError {
    SqlError::user(codes::UNSUPPORTED, format!("unsupported: {what}"))
}

fn column_of(table: &TableDesc, name: &ObjectName) -> Result<usize, SqlError> {
    let n = name.0.last().and_then(|p| p.as_ident()).map(ident_name).unwrap_or_default();
    table
        .column_index(&n)
        .ok_or_else(|| SqlError::user(codes::UNDEFINED_COLUMN, format!("column \"{n}\" of relation \"{}\" does not exist", table.name)))
}

/// Checks NOT NULL constraints of a complete row.
fn check_not_null(table: &TableDesc, row: &[Datum]) -> Result<(), SqlError> {
    for (c, d) in table.columns.iter().zip(row) {
        if !c.nullable && d.is_null() {
            return Err(SqlError::user(
                codes::NOT_NULL,
                format!("null value in column \"{}\" of relation \"{}\" violates not-null constraint", c.name, table.name),
            ));
        }
    }
    Ok(())
}

fn duplicate(table: &TableDesc) -> SqlError {
    SqlError::user(codes::UNIQUE, format!("duplicate key value violates unique constraint \"{}\"", table.pkey_name()))
}

/// The single-table target of UPDATE / DELETE.
fn single_table(t: &TableWithJoins) -> Result<&ObjectName, SqlError> {
    if !t.joins.is_empty() {
        return Err(unsupported("joins"));
    }
    match &t.relation {
        TableFactor::Table { name, args: None, .. } => Ok(name),
        _ => Err(unsupported("table expression")),
    }
}

pub(crate) async fn insert<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, ins: &Insert) -> Result<QueryResult, SqlError> {
    if ins.on.is_some() || ins.returning.is_some() || !ins.assignments.is_empty() {
        return Err(unsupported("INSERT with ON CONFLICT, RETURNING or SET"));
    }
    let TableObject::TableName(name) = &ins.table else {
        return Err(unsupported("INSERT target"));
    };
    let table = load_table(txn, ctx, name).await?;
    let targets: Vec<usize> = if ins.columns.is_empty() {
        (0..table.columns.len()).collect()
    } else {
        let mut t = Vec::with_capacity(ins.columns.len());
        for c in &ins.columns {
            let i = column_of(&table, c)?;
            if t.contains(&i) {
                return Err(SqlError::user(
                    codes::DUPLICATE_COLUMN,
                    format!("column \"{}\" specified more than once", table.columns[i].name),
                ));
            }
            t.push(i);
        }
        t
    };
    let Some(source) = &ins.source else {
        return Err(unsupported("INSERT without VALUES"));
    };
    let SetExpr::Values(values) = &*source.body else {
        return Err(unsupported("INSERT ... SELECT"));
    };
    if source.order_by.is_some() || source.limit_clause.is_some() || source.with.is_some() {
        return Err(unsupported("INSERT ... VALUES with ORDER BY/LIMIT/WITH"));
    }
    // Defaults of the columns, compiled once.
    let mut defaults: Vec<Option<Scalar>> = Vec::with_capacity(table.columns.len());
    for c in &table.columns {
        defaults.push(match &c.default {
            None => None,
            Some(text) => {
                let e = Parser::new(&PostgreSqlDialect {})
                    .try_with_sql(text)
                    .and_then(|mut p| p.parse_expr())
                    .map_err(|e| SqlError::user(codes::SYNTAX, format!("bad DEFAULT of \"{}\": {e}", c.name)))?;
                Some(Compiler::new(&[], &[], ctx.now).compile(&e)?)
            }
        });
    }
    let mut compiler = Compiler::new(&[], ctx.args, ctx.now);
    let mut seen = HashSet::new();
    let mut rows = 0u64;
    for values_row in &values.rows {
        let exprs = &values_row.content;
        // Without a column list, PostgreSQL fills the leading columns and defaults the rest.
        let implicit_prefix = ins.columns.is_empty() && exprs.len() < targets.len();
        if exprs.len() != targets.len() && !implicit_prefix {
            let msg = if exprs.len() > targets.len() {
                "INSERT has more expressions than target columns"
            } else {
                "INSERT has more target columns than expressions"
            };
            return Err(SqlError::user(codes::SYNTAX, msg));
        }
        let mut row: Vec<Option<Datum>> = vec![None; table.columns.len()];
        for (&col, e) in targets.iter().zip(exprs) {
            let is_default = matches!(e, Expr::Identifier(id) if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"));
            if !is_default {
                let v = eval(&compiler.compile(e)?, &[], &[])?;
                row[col] = Some(v.coerce_to(table.columns[col].ty, &table.columns[col].name)?);
            }
        }
        let mut full = Vec::with_capacity(row.len());
        for (i, v) in row.into_iter().enumerate() {
            full.push(match (v, &defaults[i]) {
                (Some(v), _) => v,
                (None, Some(d)) => eval(d, &[], &[])?.coerce_to(table.columns[i].ty, &table.columns[i].name)?,
                (None, None) => Datum::Null,
            });
        }
        check_not_null(&table, &full)?;
        let key = row_key(&table, &full)?;
        if !seen.insert(key.clone()) || txn.get(&key).await?.is_some() {
            return Err(duplicate(&table));
        }
        txn.put(key, encode_row(&table, &full));
        rows += 1;
    }
    Ok(QueryResult::tag("INSERT", rows))
}

pub(crate) async fn update<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, up: &Update) -> Result<QueryResult, SqlError> {
    if up.from.is_some() || up.returning.is_some() || !up.order_by.is_empty() || up.limit.is_some() {
        return Err(unsupported("UPDATE with FROM, RETURNING, ORDER BY or LIMIT"));
    }
    let table = load_table(txn, ctx, single_table(&up.table)?).await?;
    let mut compiler = Compiler::new(&table.columns, ctx.args, ctx.now);
    compiler.table_names.push(table.name.clone());
    if let TableFactor::Table { alias: Some(a), .. } = &up.table.relation {
        compiler.table_names.push(ident_name(&a.name));
    }
    let mut sets: Vec<(usize, Scalar)> = Vec::with_capacity(up.assignments.len());
    for a in &up.assignments {
        let AssignmentTarget::ColumnName(name) = &a.target else {
            return Err(unsupported("tuple assignment"));
        };
        let col = column_of(&table, name)?;
        if sets.iter().any(|(c, _)| *c == col) {
            return Err(SqlError::user(codes::SYNTAX, format!("multiple assignments to same column \"{}\"", table.columns[col].name)));
        }
        sets.push((col, compiler.compile(&a.value)?));
    }
    let filter = up.selection.as_ref().map(|e| compiler.compile(e)).transpose()?;
    let plan = plan_scan(&table, filter.as_ref())?;
    let mut moved = Vec::new();
    let mut count = 0u64;
    for (key, old) in read_rows(txn, &table, &plan, 0).await? {
        if !passes(filter.as_ref(), &old)? {
            continue;
        }
        let mut new = old.clone();
        for (col, s) in &sets {
            let c = &table.columns[*col];
            new[*col] = eval(s, &old, &[])?.coerce_to(c.ty, &c.name)?;
        }
        check_not_null(&table, &new)?;
        let new_key = row_key(&table, &new)?;
        count += 1;
        if new_key == key {
            txn.put(key, encode_row(&table, &new));
        } else {
            txn.delete(key);
            moved.push((new_key, new));
        }
    }
    let mut seen = HashSet::new();
    for (key, row) in moved {
        if !seen.insert(key.clone()) || txn.get(&key).await?.is_some() {
            return Err(duplicate(&table));
        }
        txn.put(key, encode_row(&table, &row));
    }
    Ok(QueryResult::tag("UPDATE", count))
}

pub(crate) async fn delete<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, del: &Delete) -> Result<QueryResult, SqlError> {
    if del.using.is_some() || del.returning.is_some() || !del.order_by.is_empty() || del.limit.is_some() {
        return Err(unsupported("DELETE with USING, RETURNING, ORDER BY or LIMIT"));
    }
    let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &del.from;
    let [target] = from.as_slice() else {
        return Err(unsupported("DELETE from several tables"));
    };
    let table = load_table(txn, ctx, single_table(target)?).await?;
    let mut compiler = Compiler::new(&table.columns, ctx.args, ctx.now);
    compiler.table_names.push(table.name.clone());
    if let TableFactor::Table { alias: Some(a), .. } = &target.relation {
        compiler.table_names.push(ident_name(&a.name));
    }
    let filter = del.selection.as_ref().map(|e| compiler.compile(e)).transpose()?;
    let plan = plan_scan(&table, filter.as_ref())?;
    let mut count = 0u64;
    for (key, row) in read_rows(txn, &table, &plan, 0).await? {
        if passes(filter.as_ref(), &row)? {
            txn.delete(key);
            count += 1;
        }
    }
    Ok(QueryResult::tag("DELETE", count))
}
