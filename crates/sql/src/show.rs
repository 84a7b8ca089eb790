//! SHOW COLUMNS FROM t and SHOW CREATE TABLE t, rendered from the table descriptor, and
//! SHOW RANGES FROM TABLE t, from the ranges the store reports.
//!
//! Invariants: SHOW CREATE TABLE output re-parses to an equivalent table (columns with types,
//! NULL/NOT NULL, defaults, primary key, unique and check constraints), followed by one
//! `;\nCREATE [UNIQUE] INDEX ...` statement per index made by CREATE INDEX.
//! SHOW INDEXES lives with the other index statements in `index_ddl`.
//! Not handled: SHOW CONSTRAINTS, comments.

use crate::catalog::TableDesc;
use crate::error::SqlError;
use crate::exec::{Column, Ctx, QueryResult, load_table};
use crate::txn::TxnClient;
use meridian_types::keys;
use serde_json::{Value, json};
use sqlparser::ast::ObjectName;

fn col(name: &str, ty: &str) -> Column {
    Column { name: name.into(), ty: ty.into() }
}

pub(crate) async fn show_columns<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, name: &ObjectName) -> Result<QueryResult, SqlError> {
    let t = load_table(txn, ctx, name).await?;
    let rows = t
        .columns
        .iter()
        .map(|c| {
            let default = c.default.clone().map(Value::String).unwrap_or(Value::Null);
            vec![json!(c.name), json!(c.spec().sql()), json!(c.nullable), default]
        })
        .collect();
    Ok(QueryResult {
        columns: vec![
            col("column_name", "STRING"),
            col("data_type", "STRING"),
            col("is_nullable", "BOOL"),
            col("column_default", "STRING"),
        ],
        rows,
        rows_affected: 0,
        tag: "SHOW COLUMNS".into(),
    })
}

/// The CREATE TABLE statement for a descriptor.
pub fn create_statement(t: &TableDesc) -> String {
    let mut lines = Vec::new();
    for c in &t.columns {
        let mut l = format!("\t{} {}", sqlparser::ast::Ident::new(&c.name), c.spec().sql());
        l.push_str(if c.nullable { " NULL" } else { " NOT NULL" });
        if let Some(d) = &c.default {
            l.push_str(&format!(" DEFAULT {d}"));
        }
        lines.push(l);
    }
    let names = |ids: &mut dyn Iterator<Item = Option<&str>>| ids.map(|n| n.unwrap_or("?").to_string()).collect::<Vec<_>>().join(", ");
    let pk = names(&mut t.primary_key.iter().map(|&i| t.columns.get(i).map(|c| c.name.as_str())));
    lines.push(format!("\tCONSTRAINT {} PRIMARY KEY ({pk})", t.pkey_name()));
    let col_name = |id: &u32| t.column_by_id(*id).and_then(|p| t.columns.get(p)).map(|c| c.name.as_str());
    for ix in t.indexes.iter().filter(|i| i.unique && !i.standalone && i.is_public()) {
        let cols = names(&mut ix.columns.iter().map(col_name));
        lines.push(format!("\tCONSTRAINT {} UNIQUE ({cols})", ix.name));
    }
    for ch in &t.checks {
        lines.push(format!("\tCONSTRAINT {} CHECK ({})", ch.name, ch.expr));
    }
    let mut out = format!("CREATE TABLE {} (\n{}\n)", t.name, lines.join(",\n"));
    for ix in t.indexes.iter().filter(|i| i.standalone && i.is_public()) {
        let cols: Vec<String> = ix
            .columns
            .iter()
            .enumerate()
            .map(|(i, id)| format!("{}{}", col_name(id).unwrap_or("?"), if ix.desc(i) { " DESC" } else { "" }))
            .collect();
        let unique = if ix.unique { "UNIQUE " } else { "" };
        out.push_str(&format!(";\nCREATE {unique}INDEX {} ON {} ({})", ix.name, t.name, cols.join(", ")));
    }
    out
}

pub(crate) async fn show_create<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, name: &ObjectName) -> Result<QueryResult, SqlError> {
    let t = load_table(txn, ctx, name).await?;
    Ok(QueryResult {
        columns: vec![col("table_name", "STRING"), col("create_statement", "STRING")],
        rows: vec![vec![json!(t.name), json!(create_statement(&t))]],
        rows_affected: 0,
        tag: "SHOW CREATE".into(),
    })
}

/// `SHOW RANGES FROM TABLE t`: one row per range holding the table (rows and index entries), in
/// key order: its span (relative to the table: `/Min` and `/Max` are the table's ends, other
/// bounds are primary keys, `/Table/<id>/1/...`), id, size in bytes (every MVCC version, counted
/// by the leaseholder), leaseholder and replicas with their localities. Like CockroachDB's,
/// which also shows `range_size_mb`; here bytes, since test ranges are small.
pub(crate) async fn show_ranges<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, name: &ObjectName) -> Result<QueryResult, SqlError> {
    let t = load_table(txn, ctx, name).await?;
    let (start, end) = keys::table_span(t.id);
    let ranges = txn.ranges(&start, &end).await?;
    let bound = |k: &[u8]| {
        if k <= start.as_slice() {
            "/Min".to_string()
        } else if k >= end.as_slice() {
            "/Max".to_string()
        } else {
            crate::explain::pretty_key(&t, k)
        }
    };
    let rows = ranges
        .iter()
        .map(|r| {
            let locality = |n: &u64| json!(r.localities.get(n).cloned().unwrap_or_default());
            vec![
                json!(bound(&r.start_key)),
                json!(bound(&r.end_key)),
                json!(r.range_id),
                json!(r.size_bytes),
                json!(r.leaseholder),
                locality(&r.leaseholder),
                json!(r.replicas),
                Value::Array(r.replicas.iter().map(locality).collect()),
            ]
        })
        .collect();
    Ok(QueryResult {
        columns: vec![
            col("start_key", "STRING"),
            col("end_key", "STRING"),
            col("range_id", "INT8"),
            col("range_size", "INT8"),
            col("lease_holder", "INT8"),
            col("lease_holder_locality", "STRING"),
            col("replicas", "INT8[]"),
            col("replica_localities", "STRING[]"),
        ],
        rows,
        rows_affected: 0,
        tag: "SHOW RANGES".into(),
    })
}
