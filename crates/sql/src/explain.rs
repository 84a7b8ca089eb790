//! EXPLAIN <query>: the planned operator tree as indented text rows (column "info", STRING).
//!
//! Each table read shows its access method and span: `point get /Table/104/1/5`, `span scan
//! [/Table/104/1/3, /Table/104/1/7)`, `full scan /Table/104`, `empty` (nothing to read), or for
//! a secondary index `scan t@idx: index scan spans=[/Table/104/2/5, /Table/104/2/6) (index-only)`
//! (or `then row lookups`; `first n` when a LIMIT bounds the first read); joins
//! show `hash join`, `lookup join`, `nested loop` or `cross join`; then sort, limit,
//! aggregation, distinct, filter, set operations, values and series. Keys are printed by
//! decoding the primary-key columns after the rows prefix (bytes that do not decode as hex).
//! A correlated subquery is shown under the operator evaluating it, with its plan; its scans say
//! how they read once the outer values are known (`point get per outer row`).
//! Invariant: planning for EXPLAIN is the same as for execution (uncorrelated subqueries are run
//! while planning, as they are for execution). Not handled: EXPLAIN ANALYZE, costs.

use crate::catalog::{IndexDesc, SqlType, TableDesc};
use crate::datum::Datum;
use crate::encoding::rows_prefix;
use crate::error::SqlError;
use crate::exec::{Column, Ctx, QueryResult};
use crate::index::{column_positions, decode_column};
use crate::join::{JoinKind, Method};
use crate::plan::ScanPlan;
use crate::query::plan_query;
use crate::rel::{Rel, SetKind};
use crate::txn::TxnClient;
use meridian_types::keys::{self, KeyReader};
use sqlparser::ast::Query;

/// Renders a primary-index key as `/Table/<id>/1/<values...>`.
pub fn pretty_key(t: &TableDesc, key: &[u8]) -> String {
    let prefix = rows_prefix(t);
    let mut out = format!("/Table/{}/1", t.id);
    let Some(rest) = key.strip_prefix(prefix.as_slice()) else {
        // An index's key (a range boundary made by ALTER INDEX ... SPLIT AT).
        if let Some(i) = t.indexes.iter().find(|i| key.starts_with(&keys::index_prefix(t.id, i.id))) {
            return pretty_index_key(t, i, key);
        }
        return format!("{out}/<{}>", hex(key));
    };
    let mut r = KeyReader::new(rest);
    for &pk in &t.primary_key {
        if r.remaining().is_empty() {
            break;
        }
        let before = r.remaining();
        let ty = t.columns.get(pk).map(|c| c.ty.base());
        let v = match ty {
            Some(SqlType::Int | SqlType::Timestamp | SqlType::TimestampTz) => r.decode_i64().ok().map(|i| i.to_string()),
            Some(SqlType::Date) => r.decode_i64().ok().map(|d| Datum::Date(d as i32).to_text()),
            Some(SqlType::Float) => r.decode_f64().ok().map(|f| f.to_string()),
            Some(SqlType::Bool) => r.decode_bool().ok().map(|b| b.to_string()),
            Some(SqlType::String) => r.decode_bytes().ok().map(|b| format!("{:?}", String::from_utf8_lossy(&b))),
            Some(SqlType::Bytes) => r.decode_bytes().ok().map(|b| format!("\\x{}", hex(&b))),
            _ => None,
        };
        match v {
            Some(v) => out.push_str(&format!("/{v}")),
            None => {
                out.push_str(&format!("/<{}>", hex(before)));
                return out;
            }
        }
    }
    if !r.remaining().is_empty() {
        out.push_str(&format!("/<{}>", hex(r.remaining())));
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Renders a secondary-index key as `/Table/<id>/<index id>/<values...>` (NULL for NULLs; bytes
/// that do not decode, such as the end of a span, as hex).
pub fn pretty_index_key(t: &TableDesc, index: &IndexDesc, key: &[u8]) -> String {
    let prefix = keys::index_prefix(t.id, index.id);
    let mut out = format!("/Table/{}/{}", t.id, index.id);
    if key == keys::prefix_end(&prefix) {
        return format!("{out}/PrefixEnd");
    }
    let Some(mut rest) = key.strip_prefix(prefix.as_slice()) else {
        return format!("{out}/<{}>", hex(key));
    };
    let show = |d: Datum| match d {
        Datum::Null => "/NULL".to_string(),
        Datum::String(s) => format!("/{s:?}"),
        d => format!("/{}", d.to_text()),
    };
    for (i, pos) in column_positions(t, index).unwrap_or_default().into_iter().enumerate() {
        let Some(ty) = t.columns.get(pos).map(|c| c.ty) else { break };
        if rest.is_empty() {
            break;
        }
        match decode_column(rest, ty, index.unique, index.desc(i)) {
            Ok((d, used)) => {
                out.push_str(&show(d));
                rest = &rest[used.min(rest.len())..];
            }
            Err(_) => {
                // The end of a span is often the key after every key with a value's prefix.
                let mut before = rest.to_vec();
                if let Some(last) = before.last_mut().filter(|b| **b > 0) {
                    *last -= 1;
                    if let Ok((d, used)) = decode_column(&before, ty, index.unique, index.desc(i))
                        && used == before.len()
                    {
                        return format!("{out}{}/PrefixEnd", show(d));
                    }
                }
                break;
            }
        }
    }
    if !rest.is_empty() {
        out.push_str(&format!("/<{}>", hex(rest)));
    }
    out
}

fn scan_text(t: &TableDesc, plan: &ScanPlan) -> String {
    match plan {
        ScanPlan::Index(p) => {
            let spans: Vec<String> = p
                .spans
                .iter()
                .map(|(s, e)| format!("[{}, {})", pretty_index_key(t, &p.index, s), pretty_index_key(t, &p.index, e)))
                .collect();
            let how = if p.covering { "index-only" } else { "then row lookups" };
            let limit = p.limit_hint.map(|l| format!(", first {l}")).unwrap_or_default();
            format!("index scan spans={} ({how}{limit})", spans.join(" "))
        }
        ScanPlan::Empty => "empty".into(),
        ScanPlan::Point(k) => format!("point get {}", pretty_key(t, k)),
        ScanPlan::Points(keys) => {
            let shown: Vec<String> = keys.iter().take(8).map(|k| pretty_key(t, k)).collect();
            let more = if keys.len() > 8 { format!(" ... ({} keys)", keys.len()) } else { String::new() };
            format!("point gets {}{more}", shown.join(" "))
        }
        ScanPlan::Span { start, end } => format!("span scan [{}, {})", pretty_key(t, start), pretty_key(t, end)),
        ScanPlan::Full { .. } => format!("full scan /Table/{}", t.id),
    }
}

pub(crate) fn describe(rel: &Rel, depth: usize, out: &mut Vec<String>) {
    describe_node(rel, depth, out);
    crate::subquery::describe_subplans(rel, depth + 1, out);
}

fn describe_node(rel: &Rel, depth: usize, out: &mut Vec<String>) {
    let pad = "  ".repeat(depth);
    let mut line = |s: String| out.push(format!("{pad}{s}"));
    match rel {
        Rel::Unit { .. } => line("unit (one row)".into()),
        Rel::Values { rows, .. } => line(format!("values ({} rows)", rows.len())),
        Rel::Series { .. } | Rel::LazySeries { .. } => line("generate_series".into()),
        Rel::Rows { rows, .. } => line(format!("rows ({})", rows.len())),
        Rel::Scan(s) => {
            let f = if s.filter.is_some() { " (filtered)" } else { "" };
            let via = if let ScanPlan::Index(p) = &s.plan { format!("@{}", p.index.name) } else { String::new() };
            let access = match &s.filter {
                Some(filter) if filter.has_outer() => crate::subquery::per_row_access(s),
                _ => scan_text(&s.table, &s.plan),
            };
            line(format!("scan {}{via}: {access}{f}", s.table.name));
        }
        Rel::Filter { input, .. } => {
            line("filter".into());
            describe(input, depth + 1, out);
        }
        Rel::Project { input, exprs } => {
            line(format!("project ({} columns)", exprs.len()));
            describe(input, depth + 1, out);
        }
        Rel::Join(j) => {
            let kind = match j.kind {
                JoinKind::Inner => "inner",
                JoinKind::Left => "left",
                JoinKind::Right => "right",
                JoinKind::Full => "full",
                JoinKind::Cross => "cross",
            };
            match &j.method {
                Method::Lookup { .. } => {
                    let Rel::Scan(s) = &j.right else {
                        line(format!("lookup join ({kind})"));
                        return;
                    };
                    line(format!("lookup join ({kind}) on {}: point get /Table/{}/1/<key> per row", s.table.name, s.table.id));
                    describe(&j.left, depth + 1, out);
                }
                Method::Hash { lkeys, .. } => {
                    line(format!("hash join ({kind}, {} key{})", lkeys.len(), if lkeys.len() == 1 { "" } else { "s" }));
                    describe(&j.left, depth + 1, out);
                    describe(&j.right, depth + 1, out);
                }
                Method::Nested => {
                    line(if j.kind == JoinKind::Cross && j.on.is_none() {
                        "cross join (nested loop)".into()
                    } else {
                        format!("nested loop ({kind})")
                    });
                    describe(&j.left, depth + 1, out);
                    describe(&j.right, depth + 1, out);
                }
            }
        }
        Rel::Agg(a) => {
            line(if a.group.is_empty() {
                format!("aggregation ({} aggregates)", a.aggs.len())
            } else {
                format!("group by ({} keys, {} aggregates)", a.group.len(), a.aggs.len())
            });
            describe(&a.input, depth + 1, out);
        }
        Rel::Sort { input, keys, .. } => {
            line(format!("sort ({} keys)", keys.len()));
            describe(input, depth + 1, out);
        }
        Rel::Distinct { input, .. } => {
            line("distinct".into());
            describe(input, depth + 1, out);
        }
        Rel::Limit { input, limit, offset, .. } => {
            line(match limit {
                Some(l) => format!("limit {l} offset {offset}"),
                None => format!("offset {offset}"),
            });
            describe(input, depth + 1, out);
        }
        Rel::SetOp(s) => {
            let k = match s.kind {
                SetKind::Union => "union",
                SetKind::Intersect => "intersect",
                SetKind::Except => "except",
            };
            line(format!("{k}{}", if s.all { " all" } else { "" }));
            describe(&s.left, depth + 1, out);
            describe(&s.right, depth + 1, out);
        }
    }
}

pub(crate) async fn explain<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, q: &Query) -> Result<QueryResult, SqlError> {
    let (mut rel, _) = plan_query(txn, ctx, q, &[]).await?;
    crate::index_plan::mark_covering(&mut rel, None);
    let mut lines = Vec::new();
    describe(&rel, 0, &mut lines);
    Ok(QueryResult {
        columns: vec![Column { name: "info".into(), ty: "STRING".into() }],
        rows: lines.into_iter().map(|l| vec![serde_json::Value::String(l)]).collect(),
        rows_affected: 0,
        tag: "EXPLAIN".into(),
    })
}
