//! CREATE [UNIQUE] INDEX, DROP INDEX and SHOW INDEXES, and the online schema change behind them.
//!
//! CREATE INDEX on a table that may hold rows and take writes from every gateway:
//! 1. commit what the request wrote so far (the index is built by transactions of its own);
//! 2. add the index in `DeleteOnly` state, wait for propagation ([`TxnClient::wait_for_schema_propagation`]);
//! 3. `WriteOnly`, wait: from now on every writer maintains the index (and checks its
//!    uniqueness), so no row written later can miss its entry;
//! 4. backfill: scan the rows in chunks, each chunk one transaction that reads a batch of rows
//!    and puts their entries; the commit validates the rows read, so a chunk that raced a
//!    writer retries (with a smaller chunk). A unique index checks each entry against what is
//!    stored; a duplicate fails the statement with 23505 and the index is removed again;
//! 5. `Public`: readers may use it.
//!
//! Step 2 exists because writers that do not know the index may run alongside writers that
//! maintain it: had those already been adding entries, an unaware writer deleting or changing a
//! row would leave a dangling entry behind, and the backfill only adds. Each wait lets at most
//! two adjacent descriptor versions be in use at any moment; after it the table's schema fence
//! is raised ([`TxnClient::fence_table`]), so a write prepared with an older version that is
//! applied late (its commit delayed past the wait) fails and retries instead.
//!
//! DROP INDEX: a public index first goes back to `WriteOnly` (readers stop using it while every
//! writer still maintains it), wait, then it leaves the descriptor and its entries are deleted
//! in chunks (entries a straggling writer adds afterwards are never read: index ids are never
//! reused). A UNIQUE constraint's index needs CASCADE (2BP01 otherwise).
//!
//! Names: index names are unique within the database, as in PostgreSQL (42P07 when taken by an
//! index or a table); an unnamed index is called `<table>_<cols>_idx` (numbered on conflict).
//! `DROP INDEX [IF EXISTS] name`, `db.name`, `t@name` (CockroachDB) and `name ON t` are accepted.
//! SHOW INDEXES FROM t lists public indexes in CockroachDB's shape.
//!
//! Invariants: an index leaves `Public` only through `WriteOnly`; a CREATE INDEX that fails or
//! is interrupted leaves a non-public index that writers maintain and readers ignore (it is
//! removed on failure when possible; DROP INDEX removes it otherwise).
//! Not handled: INCLUDE/STORING, partial and expression indexes, NULLS NOT DISTINCT, inline
//! `INDEX` in CREATE TABLE (the PostgreSQL parser rejects it), non-btree access methods.

use crate::catalog::{IndexDesc, IndexState, TableDesc};
use crate::datum::Datum;
use crate::encoding::{decode_row, rows_prefix};
use crate::error::{SqlError, codes};
use crate::exec::{Column, Ctx, QueryResult, load_table, table_ref};
use crate::expr::{ident_name, unsupported};
use crate::index::{self, column_positions};
use crate::txn::TxnClient;
use meridian_types::keys;
use serde_json::{Value, json};
use sqlparser::ast::{CreateIndex, Expr, Ident, ObjectName, OrderBySort};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

/// Rows per backfill chunk to begin with (halved on each conflict, down to [`MIN_CHUNK`]).
const CHUNK: usize = 256;
const MIN_CHUNK: usize = 8;
/// Conflicting attempts of one chunk before the statement gives up.
const CHUNK_ATTEMPTS: usize = 60;
/// Entries deleted per transaction when an index is dropped.
const DELETE_CHUNK: usize = 1000;

fn retryable(e: &SqlError) -> bool {
    matches!(e, SqlError::Kv(k) if k.is_txn_retryable()) || e.code() == "40001"
}

fn no_index(name: &str) -> SqlError {
    SqlError::user(codes::UNDEFINED_OBJECT, format!("index \"{name}\" does not exist"))
}

/// `DROP INDEX [IF EXISTS] t@idx [CASCADE]` (CockroachDB) as `DROP INDEX ... idx [CASCADE] ON t`,
/// which the parser knows. None when `sql` is not such a statement.
pub(crate) fn rewrite_at_syntax(sql: &str) -> Option<String> {
    if !sql.contains('@') || !sql.trim_start().get(..4).is_some_and(|w| w.eq_ignore_ascii_case("drop")) {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let toks: Vec<Token> = tokens.into_iter().filter(|t| !matches!(t, Token::Whitespace(_))).collect();
    let word = |t: &Token, w: &str| matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    let at = toks.iter().position(|t| *t == Token::AtSign)?;
    if toks.len() < 4 || !word(&toks[0], "drop") || !word(&toks[1], "index") {
        return None;
    }
    let mut i = 2;
    let if_exists = toks.len() > 3 && word(&toks[2], "if") && word(&toks[3], "exists");
    if if_exists {
        i = 4;
    }
    let table: String = toks.get(i..at)?.iter().map(|t| t.to_string()).collect();
    let idx = toks.get(at + 1)?.to_string();
    let rest: Vec<String> = toks.get(at + 2..)?.iter().filter(|t| **t != Token::SemiColon).map(|t| t.to_string()).collect();
    Some(format!("DROP INDEX {}{idx} {} ON {table}", if if_exists { "IF EXISTS " } else { "" }, rest.join(" ")))
}

/// Every index and table name in `db` (lower-case as stored), with the tables.
async fn names_in_db<T: TxnClient>(txn: &mut T, db: &str) -> Result<Vec<TableDesc>, SqlError> {
    txn.list_tables(db).await
}

fn name_taken(tables: &[TableDesc], name: &str) -> bool {
    tables.iter().any(|t| t.name == name || t.pkey_name() == name || t.indexes.iter().any(|i| i.name == name))
}

/// Loads the table and the index with id `id` from it (fresh enough to update).
async fn reload<T: TxnClient>(txn: &mut T, db: &str, table: &str, id: u32) -> Result<(TableDesc, IndexDesc), SqlError> {
    let desc = txn
        .get_table(db, table)
        .await?
        .ok_or_else(|| SqlError::user(codes::UNDEFINED_TABLE, format!("relation \"{table}\" does not exist")))?;
    let idx = desc
        .indexes
        .iter()
        .find(|i| i.id == id)
        .cloned()
        .ok_or_else(|| SqlError::user(codes::UNDEFINED_OBJECT, format!("index {id} of \"{table}\" was dropped while being changed")))?;
    Ok((desc, idx))
}

/// Moves index `id` to `state` (None: removes it) in a new descriptor version, retrying when the
/// descriptor changed concurrently.
async fn step<T: TxnClient>(txn: &mut T, db: &str, table: &str, id: u32, state: Option<IndexState>) -> Result<(), SqlError> {
    let mut attempt = 0;
    loop {
        let (mut desc, _) = reload(txn, db, table, id).await?;
        match state {
            Some(s) => desc.indexes.iter_mut().filter(|i| i.id == id).for_each(|i| i.state = s),
            None => desc.indexes.retain(|i| i.id != id),
        }
        let version = desc.version;
        desc.version += 1;
        match txn.update_table(version, desc).await {
            Err(e) if retryable(&e) && attempt < 10 => attempt += 1,
            other => return other,
        }
    }
}

/// The PostgreSQL-style default name `<table>_<cols>_idx`, numbered past names in use.
fn default_name(table: &str, cols: &[String], tables: &[TableDesc]) -> String {
    let base = format!("{table}_{}_idx", cols.join("_"));
    let mut name = base.clone();
    let mut n = 0;
    while name_taken(tables, &name) {
        n += 1;
        name = format!("{base}{n}");
    }
    name
}

pub(crate) async fn create_index<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, ci: &CreateIndex) -> Result<QueryResult, SqlError> {
    if let Some(u) = &ci.using
        && !u.to_string().eq_ignore_ascii_case("btree")
    {
        return Err(unsupported(format!("index access method {u}")));
    }
    if !ci.include.is_empty() {
        return Err(unsupported("INCLUDE (STORING) columns"));
    }
    if ci.predicate.is_some() {
        return Err(unsupported("partial indexes"));
    }
    if ci.nulls_distinct == Some(false) {
        return Err(unsupported("NULLS NOT DISTINCT"));
    }
    if !ci.with.is_empty() || !ci.index_options.is_empty() || !ci.alter_options.is_empty() || ci.r#async {
        return Err(unsupported("index options"));
    }
    let (db, _) = table_ref(ctx, &ci.table_name)?;
    let table = load_table(txn, ctx, &ci.table_name).await?;
    let mut ids = Vec::with_capacity(ci.columns.len());
    let mut names = Vec::with_capacity(ci.columns.len());
    let mut descending = Vec::with_capacity(ci.columns.len());
    for ic in &ci.columns {
        let name = match &ic.column.expr {
            Expr::Identifier(id) => ident_name(id),
            other => return Err(unsupported(format!("index on expression {other}"))),
        };
        if ic.operator_class.is_some() {
            return Err(unsupported("operator classes"));
        }
        let desc = match ic.column.options.sort {
            None | Some(OrderBySort::Asc) => false,
            Some(OrderBySort::Desc) => true,
            Some(OrderBySort::Using(_)) => return Err(unsupported("USING in an index column")),
        };
        if ic.column.options.nulls_first.is_some_and(|nf| nf != desc) {
            return Err(unsupported("NULLS FIRST/LAST other than the default of the direction"));
        }
        let pos = table
            .column_index(&name)
            .ok_or_else(|| SqlError::user(codes::UNDEFINED_COLUMN, format!("column \"{name}\" does not exist")))?;
        let col = &table.columns[pos];
        if !col.ty.keyable() {
            return Err(unsupported(format!("column \"{name}\" is of type {} and thus is not indexable", col.ty.pg_name())));
        }
        ids.push(col.id);
        names.push(name);
        descending.push(desc);
    }
    let tables = names_in_db(txn, &db).await?;
    let name = match &ci.name {
        None => default_name(&table.name, &names, &tables),
        Some(n) => match n.0.as_slice() {
            [p] => p.as_ident().map(ident_name).ok_or_else(|| unsupported(format!("index name {n}")))?,
            _ => return Err(SqlError::user(codes::SYNTAX, "index name cannot be qualified")),
        },
    };
    if name_taken(&tables, &name) {
        if ci.if_not_exists {
            return Ok(QueryResult::tag("CREATE INDEX", 0));
        }
        return Err(SqlError::user(codes::DUPLICATE_TABLE, format!("relation \"{name}\" already exists")));
    }
    // 1-2. Writes of earlier statements commit first; then the index appears, DeleteOnly (on a
    // fresh descriptor if the cached one turns out stale).
    txn.commit_and_begin().await?;
    let mut idx = IndexDesc::new(0, &name, ids, ci.unique);
    idx.descending = descending;
    idx.state = IndexState::DeleteOnly;
    idx.standalone = true;
    let mut desc = table;
    let mut attempt = 0;
    let id = loop {
        let id = desc.next_index_id;
        let mut next = desc.clone();
        next.next_index_id += 1;
        next.indexes.push(IndexDesc { id, ..idx.clone() });
        next.version += 1;
        match txn.update_table(desc.version, next).await {
            Ok(()) => break id,
            Err(e) if retryable(&e) && attempt < 10 => attempt += 1,
            Err(e) => return Err(e),
        }
        desc = txn
            .get_table(&db, &desc.name)
            .await?
            .ok_or_else(|| SqlError::user(codes::UNDEFINED_TABLE, format!("relation \"{}\" does not exist", desc.name)))?;
        if desc.indexes.iter().any(|i| i.name == name) {
            return Err(SqlError::user(codes::DUPLICATE_TABLE, format!("relation \"{name}\" already exists")));
        }
    };
    let res = build(txn, &db, &desc.name, id).await;
    if let Err(e) = res {
        // Best effort: take the half-built index away again (DROP INDEX can finish the job).
        if step(txn, &db, &desc.name, id, None).await.is_ok() {
            let _ = delete_entries(txn, &desc, id).await;
        }
        return Err(e);
    }
    Ok(QueryResult::tag("CREATE INDEX", 0))
}

/// Waits for the new descriptor version to propagate, then raises the table's schema fence
/// ([`TxnClient::fence_table`]) so writes prepared with an older version cannot commit later.
async fn propagate<T: TxnClient>(txn: &mut T, db: &str, table: &str, id: u32) -> Result<(), SqlError> {
    txn.wait_for_schema_propagation().await?;
    let mut attempt = 0;
    loop {
        let (desc, _) = reload(txn, db, table, id).await?;
        match txn.fence_table(desc.id).await {
            Err(e) if retryable(&e) && attempt < CHUNK_ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

/// Steps 2-5 of CREATE INDEX for the DeleteOnly index `id`.
async fn build<T: TxnClient>(txn: &mut T, db: &str, table: &str, id: u32) -> Result<(), SqlError> {
    propagate(txn, db, table, id).await?;
    step(txn, db, table, id, Some(IndexState::WriteOnly)).await?;
    propagate(txn, db, table, id).await?;
    backfill(txn, db, table, id).await?;
    step(txn, db, table, id, Some(IndexState::Public)).await
}

/// Writes the entry of every row, a chunk per transaction.
async fn backfill<T: TxnClient>(txn: &mut T, db: &str, table: &str, id: u32) -> Result<(), SqlError> {
    let (mut desc, mut idx) = reload(txn, db, table, id).await?;
    let end = keys::prefix_end(&rows_prefix(&desc));
    let mut cursor = rows_prefix(&desc);
    let mut chunk = CHUNK;
    let mut attempts = 0;
    loop {
        match backfill_chunk(txn, &desc, &idx, &cursor, &end, chunk).await {
            Ok(Some(next)) => {
                cursor = next;
                attempts = 0;
                chunk = (chunk * 2).min(CHUNK);
            }
            Ok(None) => return Ok(()),
            Err(e) if retryable(&e) && attempts < CHUNK_ATTEMPTS => {
                attempts += 1;
                chunk = (chunk / 2).max(MIN_CHUNK);
                (desc, idx) = reload(txn, db, table, id).await?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// One backfill transaction over up to `n` rows from `cursor`; returns where the next starts.
async fn backfill_chunk<T: TxnClient>(
    txn: &mut T,
    table: &TableDesc,
    idx: &IndexDesc,
    cursor: &[u8],
    end: &[u8],
    n: usize,
) -> Result<Option<Vec<u8>>, SqlError> {
    let rows = match txn.scan(cursor, end, n).await {
        Ok(r) => r,
        Err(e) => {
            let _ = txn.commit_and_begin().await;
            return Err(e);
        }
    };
    let next = match rows.last() {
        Some((k, _)) if rows.len() == n => Some(keys::key_next(k)),
        _ => None,
    };
    let mut entries: Vec<(Vec<u8>, Vec<u8>, Vec<Datum>)> = Vec::with_capacity(rows.len());
    for (_, v) in &rows {
        let row = decode_row(table, v)?;
        if let Some((k, v)) = index::entry(table, idx, &row)? {
            entries.push((k, v, row));
        }
    }
    if idx.unique {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
            let _ = txn.commit_and_begin().await;
            return Err(duplicate(table, idx, &w[1].2));
        }
        let keys: Vec<Vec<u8>> = entries.iter().map(|e| e.0.clone()).collect();
        let stored = match txn.get_many(&keys).await {
            Ok(s) => s,
            Err(e) => {
                let _ = txn.commit_and_begin().await;
                return Err(e);
            }
        };
        let mut fresh = Vec::with_capacity(entries.len());
        for (e, s) in entries.into_iter().zip(stored) {
            match s {
                Some(s) if s == e.1 => {}
                Some(_) => {
                    let _ = txn.commit_and_begin().await;
                    return Err(duplicate(table, idx, &e.2));
                }
                None => fresh.push(e),
            }
        }
        entries = fresh;
    }
    for (k, v, _) in entries {
        txn.put(k, v);
    }
    txn.commit_and_begin().await?;
    Ok(next)
}

fn duplicate(table: &TableDesc, idx: &IndexDesc, row: &[Datum]) -> SqlError {
    let pos = column_positions(table, idx).unwrap_or_default();
    let cols: Vec<&str> = pos.iter().filter_map(|p| table.columns.get(*p)).map(|c| c.name.as_str()).collect();
    let vals: Vec<String> = pos.iter().filter_map(|p| row.get(*p)).map(Datum::to_text).collect();
    SqlError::user(
        codes::UNIQUE,
        format!("could not create unique index \"{}\": key ({})=({}) is duplicated", idx.name, cols.join(", "), vals.join(", ")),
    )
}

/// Deletes every entry of index `id` of `table`, a chunk per transaction.
async fn delete_entries<T: TxnClient>(txn: &mut T, table: &TableDesc, id: u32) -> Result<(), SqlError> {
    let prefix = keys::index_prefix(table.id, id);
    let end = keys::prefix_end(&prefix);
    let mut attempts = 0;
    loop {
        let res = match txn.scan(&prefix, &end, DELETE_CHUNK).await {
            Ok(kvs) => {
                let n = kvs.len();
                kvs.into_iter().for_each(|(k, _)| txn.delete(k));
                txn.commit_and_begin().await.map(|_| n)
            }
            Err(e) => {
                let _ = txn.commit_and_begin().await;
                Err(e)
            }
        };
        match res {
            Ok(n) if n < DELETE_CHUNK => return Ok(()),
            Ok(_) => attempts = 0,
            Err(e) if retryable(&e) && attempts < CHUNK_ATTEMPTS => attempts += 1,
            Err(e) => return Err(e),
        }
    }
}

/// ALTER TABLE ... DROP COLUMN takes the indexes on the column with it; public ones first go
/// back to `WriteOnly` and propagate, as in DROP INDEX, so no gateway reads them once writers
/// stop maintaining them. Returns their ids (the caller reloads the descriptor).
pub(crate) async fn retire_indexes_on<T: TxnClient>(
    txn: &mut T,
    db: &str,
    table: &TableDesc,
    columns: &[u32],
) -> Result<Vec<u32>, SqlError> {
    let ids: Vec<u32> =
        table.indexes.iter().filter(|i| i.is_public() && i.columns.iter().any(|c| columns.contains(c))).map(|i| i.id).collect();
    let Some(&first) = ids.first() else { return Ok(ids) };
    txn.commit_and_begin().await?;
    for id in &ids {
        step(txn, db, &table.name, *id, Some(IndexState::WriteOnly)).await?;
    }
    propagate(txn, db, &table.name, first).await?;
    Ok(ids)
}

/// Makes retired indexes public again (they were maintained all along).
pub(crate) async fn restore_public<T: TxnClient>(txn: &mut T, db: &str, table: &str, ids: &[u32]) -> Result<(), SqlError> {
    for id in ids {
        step(txn, db, table, *id, Some(IndexState::Public)).await?;
    }
    Ok(())
}

/// Deletes the entries of indexes `before` had and `after` does not (after ALTER TABLE).
pub(crate) async fn delete_removed_entries<T: TxnClient>(txn: &mut T, before: &TableDesc, after: &TableDesc) -> Result<(), SqlError> {
    let gone: Vec<u32> = before.indexes.iter().filter(|i| !after.indexes.iter().any(|a| a.id == i.id)).map(|i| i.id).collect();
    if gone.is_empty() {
        return Ok(());
    }
    txn.commit_and_begin().await?;
    for id in gone {
        delete_entries(txn, before, id).await?;
    }
    Ok(())
}

pub(crate) async fn drop_index<T: TxnClient>(
    txn: &mut T,
    ctx: &Ctx<'_>,
    names: &[ObjectName],
    if_exists: bool,
    cascade: bool,
    on: Option<&ObjectName>,
) -> Result<QueryResult, SqlError> {
    for n in names {
        let parts: Vec<String> = n.0.iter().map(|p| p.as_ident().map(ident_name)).collect::<Option<_>>().unwrap_or_default();
        let (db, name) = match (parts.as_slice(), on) {
            ([i], Some(t)) => (table_ref(ctx, t)?.0, i.clone()),
            ([i], None) if !ctx.db.is_empty() => (ctx.db.to_string(), i.clone()),
            ([d, i], None) => (d.clone(), i.clone()),
            ([_], None) => return Err(SqlError::user(codes::UNDEFINED_DATABASE, "no database selected")),
            _ => return Err(unsupported(format!("index name {n}"))),
        };
        let candidates: Vec<TableDesc> = match on {
            Some(t) => vec![load_table(txn, ctx, t).await?],
            None => {
                if txn.get_database(&db).await?.is_none() {
                    return Err(SqlError::user(codes::UNDEFINED_DATABASE, format!("database \"{db}\" does not exist")));
                }
                names_in_db(txn, &db).await?
            }
        };
        let found: Vec<(&TableDesc, &IndexDesc)> =
            candidates.iter().flat_map(|t| t.indexes.iter().filter(|i| i.name == name).map(move |i| (t, i))).collect();
        let (table, idx) = match found.as_slice() {
            [] => {
                if let Some(t) = candidates.iter().find(|t| t.pkey_name() == name) {
                    return Err(SqlError::user(
                        codes::DEPENDENT,
                        format!("cannot drop index {name} because constraint {name} on table {} requires it", t.name),
                    ));
                }
                if if_exists {
                    continue;
                }
                return Err(no_index(&name));
            }
            [one] => *one,
            _ => return Err(SqlError::user("42P09", format!("index name \"{name}\" is ambiguous (found in several tables)"))),
        };
        if !idx.standalone && !cascade {
            return Err(SqlError::user(
                codes::DEPENDENT,
                format!("cannot drop index {name} because constraint {name} on table {} requires it", table.name),
            ));
        }
        let (table, id, public) = (table.clone(), idx.id, idx.is_public());
        txn.commit_and_begin().await?;
        if public {
            step(txn, &db, &table.name, id, Some(IndexState::WriteOnly)).await?;
            propagate(txn, &db, &table.name, id).await?;
        }
        step(txn, &db, &table.name, id, None).await?;
        delete_entries(txn, &table, id).await?;
    }
    Ok(QueryResult::tag("DROP INDEX", 0))
}

/// `SHOW INDEXES|INDEX|KEYS FROM t` (parsed as a SHOW of a variable); other SHOWs are 0A000.
pub(crate) async fn show_variable<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, variable: &[Ident]) -> Result<QueryResult, SqlError> {
    let word =
        |i: Option<&Ident>, ws: &[&str]| i.is_some_and(|i| i.quote_style.is_none() && ws.iter().any(|w| i.value.eq_ignore_ascii_case(w)));
    if word(variable.first(), &["ranges"]) && word(variable.get(1), &["from"]) && word(variable.get(2), &["table"]) && variable.len() > 3 {
        return crate::show::show_ranges(txn, ctx, &ObjectName::from(variable[3..].to_vec())).await;
    }
    if !(word(variable.first(), &["indexes", "index", "keys"]) && word(variable.get(1), &["from", "in"]) && variable.len() > 2) {
        let head: Vec<String> = variable.iter().take(1).map(|i| i.value.clone()).collect();
        return Err(unsupported(format!("unsupported statement: SHOW {}", head.join(" "))));
    }
    let name = ObjectName::from(variable[2..].to_vec());
    let t = load_table(txn, ctx, &name).await?;
    let mut rows: Vec<Vec<Value>> = Vec::new();
    let col_name = |p: usize| t.columns.get(p).map(|c| c.name.clone()).unwrap_or_default();
    // One row per (index, column): table_name, index_name, non_unique, seq_in_index, column_name,
    // direction, storing, implicit.
    let row = |index: &str, non_unique: bool, seq: usize, col: usize, dir: &str, implicit: bool| {
        vec![json!(t.name), json!(index), json!(non_unique), json!(seq), json!(col_name(col)), json!(dir), json!(false), json!(implicit)]
    };
    for (i, p) in t.primary_key.iter().enumerate() {
        rows.push(row(&t.pkey_name(), false, i + 1, *p, "ASC", false));
    }
    for idx in t.indexes.iter().filter(|i| i.is_public()) {
        let cols = column_positions(&t, idx)?;
        let mut seq = 0;
        for (i, p) in cols.iter().enumerate() {
            seq += 1;
            rows.push(row(&idx.name, !idx.unique, seq, *p, if idx.desc(i) { "DESC" } else { "ASC" }, false));
        }
        for p in t.primary_key.iter().filter(|p| !cols.contains(p)) {
            seq += 1;
            rows.push(row(&idx.name, !idx.unique, seq, *p, "ASC", true));
        }
    }
    let c = |n: &str, ty: &str| Column { name: n.into(), ty: ty.into() };
    Ok(QueryResult {
        columns: vec![
            c("table_name", "STRING"),
            c("index_name", "STRING"),
            c("non_unique", "BOOL"),
            c("seq_in_index", "INT8"),
            c("column_name", "STRING"),
            c("direction", "STRING"),
            c("storing", "BOOL"),
            c("implicit", "BOOL"),
        ],
        rows,
        rows_affected: 0,
        tag: "SHOW INDEXES".into(),
    })
}
