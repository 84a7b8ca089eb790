//! Statement execution entry point: [`execute`] parses each entry (exactly one statement per
//! entry), binds its `$n` arguments, and dispatches to DDL (`ddl`), writes (`dml`) or queries
//! (`query`). Also holds the helpers they share: table-name resolution, row reading per plan.
//!
//! Supported: CREATE/DROP DATABASE, SHOW DATABASES/TABLES/COLUMNS/CREATE TABLE, CREATE/DROP
//! TABLE (UNIQUE, CHECK, SERIAL), ALTER TABLE (ADD/DROP/RENAME COLUMN, RENAME TO), INSERT
//! (VALUES, SELECT, DEFAULT VALUES, ON CONFLICT, RETURNING), UPSERT, UPDATE (FROM, RETURNING),
//! DELETE (RETURNING), SELECT (joins, subqueries, set operations, CTEs), EXPLAIN, and
//! BEGIN/START TRANSACTION first and COMMIT/END last in a request (no-ops: `txn_control`).
//! Argument count mismatches are 08P01.
//! Indexes: CREATE [UNIQUE] INDEX, DROP INDEX (also CockroachDB's `t@idx`), SHOW INDEXES (`index_ddl`).
//! Every entry is parsed (and transaction control statements checked, `txn_control`) before
//! any statement runs, so a syntax error or a misplaced BEGIN/COMMIT runs nothing.
//! Invariants: execution stops at the first error; every result and buffered operator state is
//! bounded by [`ExecOptions`] (54000 beyond it); reads go through the span plan of `plan`.
//! Not handled: ROLLBACK and savepoints (the node commits a request's transaction), views.

use crate::catalog::TableDesc;
use crate::datum::Datum;
use crate::error::{SqlError, codes};
use crate::expr::ident_name;
use crate::parse_cache::Ext;
use crate::rel::Budget;
use crate::txn::TxnClient;
use crate::{alter, ddl, dml, explain, index_ddl, query, show, txn_control};
use sqlparser::ast::{ObjectName, ObjectType, ShowCreateObject, Statement};

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

/// Limits on what one statement may return or buffer.
#[derive(Clone, Debug)]
pub struct ExecOptions {
    /// Maximum rows in a result, and in any buffered intermediate state (sort, hash table, groups).
    pub max_result_rows: usize,
    /// Maximum (approximate) bytes of the same.
    pub max_result_bytes: usize,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions { max_result_rows: 100_000, max_result_bytes: 64 << 20 }
    }
}

/// Per-statement context.
pub(crate) struct Ctx<'a> {
    pub db: &'a str,
    pub args: &'a [Datum],
    /// Statement time in microseconds since the epoch.
    pub now: i64,
    pub budget: Budget,
    /// While planning a subquery: the enclosing queries' scopes (outer references).
    pub outer: Option<&'a crate::subquery::Env<'a>>,
}

/// Parses and runs each statement in order against `txn` in database `database` (may be empty:
/// then table statements fail with 3D000, but CREATE/DROP DATABASE and SHOW DATABASES work).
/// `args` are the $1.. parameters of each statement as JSON values. Stops at the first error.
pub async fn execute<T: TxnClient>(
    txn: &mut T,
    database: &str,
    statements: &[(String, Vec<serde_json::Value>)],
    opts: &ExecOptions,
) -> Result<Vec<QueryResult>, SqlError> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0);
    let budget = Budget { max_rows: opts.max_result_rows, max_bytes: opts.max_result_bytes };
    // Every entry is parsed, and transaction control checked, before anything runs.
    let prepared = statements.iter().map(|(sql, args)| prepare(sql, args)).collect::<Result<Vec<_>, _>>()?;
    txn_control::check(&prepared.iter().map(|p| &p.parsed.stmt).collect::<Vec<_>>())?;
    if prepared.iter().any(|p| p.parsed.ext.is_some()) && prepared.iter().filter(|p| txn_control::tag(&p.parsed.stmt).is_none()).count() > 1
    {
        return Err(SqlError::user(
            codes::UNSUPPORTED,
            "ALTER TABLE|INDEX ... SPLIT AT and CONFIGURE ZONE must be the only statement of their request: they take effect on their own, outside the request's transaction",
        ));
    }
    let mut out = Vec::with_capacity(statements.len());
    for p in &prepared {
        out.push(match txn_control::tag(&p.parsed.stmt) {
            Some(tag) => QueryResult::tag(tag, 0),
            None => {
                let ctx = Ctx { db: database, args: &p.args, now, budget: budget.clone(), outer: None };
                match (&p.parsed.ext, &p.parsed.stmt) {
                    (Some(Ext::SplitAt(table)), Statement::Query(q)) => crate::split_at::split_at(txn, &ctx, table, q).await?,
                    (Some(Ext::Zone(change)), _) => crate::zone::configure_zone(txn, &ctx, change).await?,
                    _ => execute_one(txn, &ctx, &p.parsed.stmt, p.parsed.upsert).await?,
                }
            }
        });
    }
    Ok(out)
}

/// One parsed entry of a request.
struct Prepared {
    parsed: std::sync::Arc<crate::parse_cache::Parsed>,
    args: Vec<Datum>,
}

/// Parses one entry (exactly one statement; from the parse cache when seen before) and binds
/// its arguments.
fn prepare(sql: &str, json_args: &[serde_json::Value]) -> Result<Prepared, SqlError> {
    let parsed = crate::parse_cache::parse(sql)?;
    let expected = parsed.placeholders;
    if expected != json_args.len() {
        return Err(SqlError::user(
            codes::PROTOCOL,
            format!("wrong number of arguments: statement expects {expected}, got {}", json_args.len()),
        ));
    }
    let args = json_args.iter().map(Datum::from_json).collect::<Result<Vec<_>, _>>()?;
    Ok(Prepared { parsed, args })
}

async fn execute_one<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, stmt: &Statement, upsert: bool) -> Result<QueryResult, SqlError> {
    match stmt {
        Statement::Query(q) => query::select(txn, ctx, q).await,
        Statement::Insert(ins) => dml::insert(txn, ctx, ins, upsert).await,
        Statement::Update(up) => dml::update(txn, ctx, up).await,
        Statement::Delete(del) => dml::delete(txn, ctx, del).await,
        Statement::CreateTable(ct) => ddl::create_table(txn, ctx, ct).await,
        Statement::CreateDatabase { db_name, if_not_exists, .. } => ddl::create_database(txn, db_name, *if_not_exists).await,
        Statement::Drop { object_type: ObjectType::Table, if_exists, names, .. } => ddl::drop_tables(txn, ctx, names, *if_exists).await,
        Statement::Drop { object_type: ObjectType::Database, if_exists, names, .. } => ddl::drop_databases(txn, names, *if_exists).await,
        Statement::CreateIndex(ci) => index_ddl::create_index(txn, ctx, ci).await,
        Statement::Drop { object_type: ObjectType::Index, if_exists, names, cascade, table, .. } => {
            index_ddl::drop_index(txn, ctx, names, *if_exists, *cascade, table.as_ref()).await
        }
        Statement::ShowVariable { variable } => index_ddl::show_variable(txn, ctx, variable).await,
        Statement::ShowDatabases { .. } => ddl::show_databases(txn).await,
        Statement::ShowTables { .. } => ddl::show_tables(txn, ctx).await,
        Statement::ShowColumns { show_options, .. } => match show_options.show_in.as_ref().and_then(|s| s.parent_name.as_ref()) {
            Some(name) => show::show_columns(txn, ctx, name).await,
            None => Err(SqlError::user(codes::SYNTAX, "SHOW COLUMNS requires FROM <table>")),
        },
        Statement::ShowCreate { obj_type: ShowCreateObject::Table, obj_name } => show::show_create(txn, ctx, obj_name).await,
        Statement::AlterTable(at) => alter::alter_table(txn, ctx, at).await,
        Statement::Explain { statement, analyze: false, .. } => match &**statement {
            Statement::Query(q) => explain::explain(txn, ctx, q).await,
            _ => Err(SqlError::user(codes::UNSUPPORTED, "EXPLAIN supports queries only")),
        },
        other => {
            let text = other.to_string();
            let head: String = text.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            Err(SqlError::user(codes::UNSUPPORTED, format!("unsupported statement: {head}")))
        }
    }
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
