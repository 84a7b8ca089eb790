//! Statement execution entry point: [`execute`] parses each entry (exactly one statement per
//! entry), binds its `$n` arguments, and dispatches to DDL (`ddl`), writes (`dml`) or queries
//! (`query`). Also holds the helpers they share: table-name resolution, row reading per plan.
//!
//! Supported: CREATE/DROP DATABASE, SHOW DATABASES, SHOW TABLES, CREATE/DROP TABLE, INSERT ...
//! VALUES, SELECT (one table, WHERE, aggregates, GROUP BY, HAVING, ORDER BY, LIMIT/OFFSET,
//! DISTINCT), UPDATE, DELETE. Argument count mismatches are 08P01.
//! Invariants: execution stops at the first error; reads go through the span plan of `plan`.
//! Not handled: transactions control statements (the node owns them), joins, subqueries.

use crate::catalog::TableDesc;
use crate::datum::Datum;
use crate::encoding::decode_row;
use crate::error::{SqlError, codes};
use crate::expr::{Scalar, eval, ident_name, truth};
use crate::plan::ScanPlan;
use crate::txn::TxnClient;
use crate::{ddl, dml, query};
use sqlparser::ast::{ObjectName, ObjectType, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    /// e.g. "INT8"
    pub ty: String,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct QueryResult {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub rows_affected: u64,
    pub tag: String,
}

impl QueryResult {
    pub(crate) fn tag(tag: &str, rows_affected: u64) -> Self {
        QueryResult { tag: tag.into(), rows_affected, ..Default::default() }
    }
}

/// Per-statement context.
pub(crate) struct Ctx<'a> {
    pub db: &'a str,
    pub args: &'a [Datum],
    /// Statement time in microseconds since the epoch.
    pub now: i64,
}

/// Parses and runs each statement in order against `txn` in database `database` (may be empty:
/// then table statements fail with 3D000, but CREATE/DROP DATABASE and SHOW DATABASES work).
/// `args` are the $1.. parameters of each statement as JSON values. Stops at the first error.
pub async fn execute<T: TxnClient>(
    txn: &mut T,
    database: &str,
    statements: &[(String, Vec<serde_json::Value>)],
) -> Result<Vec<QueryResult>, SqlError> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0);
    let mut out = Vec::with_capacity(statements.len());
    for (sql, args) in statements {
        out.push(execute_one(txn, database, sql, args, now).await?);
    }
    Ok(out)
}

async fn execute_one<T: TxnClient>(
    txn: &mut T,
    database: &str,
    sql: &str,
    json_args: &[serde_json::Value],
    now: i64,
) -> Result<QueryResult, SqlError> {
    let dialect = PostgreSqlDialect {};
    let mut stmts = Parser::parse_sql(&dialect, sql).map_err(|e| SqlError::user(codes::SYNTAX, e.to_string()))?;
    if stmts.len() != 1 {
        let msg = if stmts.is_empty() { "empty statement" } else { "one statement per entry" };
        return Err(SqlError::user(codes::SYNTAX, msg));
    }
    let expected = placeholder_count(sql)?;
    if expected != json_args.len() {
        return Err(SqlError::user(
            codes::PROTOCOL,
            format!("wrong number of arguments: statement expects {expected}, got {}", json_args.len()),
        ));
    }
    let args = json_args.iter().map(Datum::from_json).collect::<Result<Vec<_>, _>>()?;
    let ctx = Ctx { db: database, args: &args, now };
    let Some(stmt) = stmts.pop() else {
        return Err(SqlError::user(codes::SYNTAX, "empty statement"));
    };
    match &stmt {
        Statement::Query(q) => query::select(txn, &ctx, q).await,
        Statement::Insert(ins) => dml::insert(txn, &ctx, ins).await,
        Statement::Update(up) => dml::update(txn, &ctx, up).await,
        Statement::Delete(del) => dml::delete(txn, &ctx, del).await,
        Statement::CreateTable(ct) => ddl::create_table(txn, &ctx, ct).await,
        Statement::CreateDatabase { db_name, if_not_exists, .. } => ddl::create_database(txn, db_name, *if_not_exists).await,
        Statement::Drop { object_type: ObjectType::Table, if_exists, names, .. } => ddl::drop_tables(txn, &ctx, names, *if_exists).await,
        Statement::Drop { object_type: ObjectType::Database, if_exists, names, .. } => ddl::drop_databases(txn, names, *if_exists).await,
        Statement::ShowDatabases { .. } => ddl::show_databases(txn).await,
        Statement::ShowTables { .. } => ddl::show_tables(txn, &ctx).await,
        other => {
            let text = other.to_string();
            let head: String = text.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            Err(SqlError::user(codes::UNSUPPORTED, format!("unsupported statement: {head}")))
        }
    }
}

/// The highest `$n` placeholder in the statement text (0 if none).
fn placeholder_count(sql: &str) -> Result<usize, SqlError> {
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().map_err(|e| SqlError::user(codes::SYNTAX, e.to_string()))?;
    let mut max = 0;
    for t in tokens {
        if let Token::Placeholder(p) = t
            && let Some(n) = p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok())
        {
            max = max.max(n);
        }
    }
    Ok(max)
}

/// Resolves `t` or `db.t` to (database, table), normalizing case.
pub(crate) fn table_ref(ctx: &Ctx<'_>, name: &ObjectName) -> Result<(String, String), SqlError> {
    let parts = name
        .0
        .iter()
        .map(|p| p.as_ident().map(ident_name))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| SqlError::user(codes::UNSUPPORTED, format!("unsupported name {name}")))?;
    match parts.as_slice() {
        [t] if ctx.db.is_empty() => Err(SqlError::user(codes::UNDEFINED_DATABASE, format!("no database selected (table \"{t}\")"))),
        [t] => Ok((ctx.db.to_string(), t.clone())),
        [db, t] => Ok((db.clone(), t.clone())),
        _ => Err(SqlError::user(codes::UNSUPPORTED, format!("unsupported name {name}"))),
    }
}

/// Loads a table descriptor: 42P01 if it does not exist, 3D000 if its database doesn't.
pub(crate) async fn load_table<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, name: &ObjectName) -> Result<TableDesc, SqlError> {
    let (db, t) = table_ref(ctx, name)?;
    if let Some(desc) = txn.get_table(&db, &t).await? {
        return Ok(desc);
    }
    if txn.get_database(&db).await?.is_none() {
        return Err(SqlError::user(codes::UNDEFINED_DATABASE, format!("database \"{db}\" does not exist")));
    }
    Err(SqlError::user(codes::UNDEFINED_TABLE, format!("relation \"{t}\" does not exist")))
}

/// Reads the rows of `plan` (at most `limit`, 0 = all) as (key, row) pairs in key order.
pub(crate) async fn read_rows<T: TxnClient>(
    txn: &mut T,
    table: &TableDesc,
    plan: &ScanPlan,
    limit: usize,
) -> Result<Vec<(Vec<u8>, Vec<Datum>)>, SqlError> {
    let kvs = match plan {
        ScanPlan::Empty => Vec::new(),
        ScanPlan::Point(k) => match txn.get(k).await? {
            Some(v) => vec![(k.clone(), v)],
            None => Vec::new(),
        },
        ScanPlan::Span { start, end } | ScanPlan::Full { start, end } => txn.scan(start, end, limit).await?,
    };
    kvs.into_iter().map(|(k, v)| Ok((k, decode_row(table, &v)?))).collect()
}

/// Whether a row passes an optional WHERE filter (NULL counts as false).
pub(crate) fn passes(filter: Option<&Scalar>, row: &[Datum]) -> Result<bool, SqlError> {
    match filter {
        None => Ok(true),
        Some(f) => Ok(truth(&eval(f, row, &[])?, "WHERE")? == Some(true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_counted_from_tokens() {
        assert_eq!(placeholder_count("SELECT $1 + $3, '$9'").unwrap(), 3);
        assert_eq!(placeholder_count("SELECT 1").unwrap(), 0);
    }
}
