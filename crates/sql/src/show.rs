//! SHOW COLUMNS FROM t and SHOW CREATE TABLE t, rendered from the table descriptor.
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
