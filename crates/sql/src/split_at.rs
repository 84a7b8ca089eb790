//! `ALTER TABLE t SPLIT AT <query>` and `ALTER INDEX t@i SPLIT AT <query>` (CockroachDB
//! syntax): split the table's ranges so that one starts at each key the query's rows name, e.g.
//! `ALTER TABLE t SPLIT AT VALUES (100), (200)`, `... SPLIT AT SELECT g FROM
//! generate_series(1, 1000, 10) AS g`, or `ALTER INDEX t@by_name SPLIT AT VALUES ('m')`.
//!
//! sqlparser does not know the statement: [`split_syntax`] takes it apart at parse time into the
//! target and the query, which is parsed as usual. Each row must hold at most as many values as
//! the primary key (or the index) has columns; each value is cast to its column's type. The
//! split key is the row-key (or index-entry) prefix of those values, encoded as the rows or
//! entries are (DESC columns inverted, NULL markers of non-unique indexes), so a boundary never
//! falls inside a row or an entry. Splitting at an existing boundary does nothing. The result has
//! one row per split point: the key (as EXPLAIN prints keys) and the pretty form of the values.
//!
//! `ALTER TABLE t UNSPLIT AT <query>` (and `ALTER INDEX t@i UNSPLIT AT`) takes the same points
//! and makes each range boundary there an ordinary one again: a `SPLIT AT` boundary is sticky
//! (never merged away), an unsplit one merges once its ranges are small and cold (the merge
//! queue). A point that is not a range boundary is an error (22023).
//!
//! Not handled: `WITH EXPIRATION`; `UNSPLIT ALL`; `ALTER INDEX i SPLIT AT` without its table
//! (`t@i` is needed).

use crate::datum::Datum;
use crate::encoding::{encode_key_datum, rows_prefix};
use crate::error::{SqlError, codes};
use crate::exec::{Column, Ctx, QueryResult, load_table};
use crate::query::plan_query;
use crate::txn::TxnClient;
use meridian_types::keys;
use serde_json::json;
use sqlparser::ast::{ObjectName, Query};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

/// Most split points one statement may ask for.
pub const MAX_SPLIT_POINTS: usize = 10_000;

/// What a `SPLIT AT` splits: a table's rows, or one of its indexes.
#[derive(Debug)]
pub(crate) struct SplitTarget {
    pub table: ObjectName,
    pub index: Option<String>,
    /// `UNSPLIT AT`.
    pub unsplit: bool,
}

/// For `ALTER TABLE <name> SPLIT AT <rest>` or `ALTER INDEX <table>@<index> SPLIT AT <rest>`: the
/// target and the text of the query `<rest>`. None for any other statement.
pub(crate) fn split_syntax(text: &str) -> Option<(SplitTarget, String)> {
    // Cheap test first: every statement passes through here.
    let head = text.trim_start().get(..5)?;
    if !head.eq_ignore_ascii_case("alter") {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text).tokenize().ok()?;
    let word = |t: &Token, w: &str| matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    let significant: Vec<(usize, &Token)> = tokens.iter().enumerate().filter(|(_, t)| !matches!(t, Token::Whitespace(_))).collect();
    if significant.len() < 5 || !word(significant[0].1, "alter") {
        return None;
    }
    let on_index = word(significant[1].1, "index");
    if !on_index && !word(significant[1].1, "table") {
        return None;
    }
    let at = significant.windows(2).position(|w| (word(w[0].1, "split") || word(w[0].1, "unsplit")) && word(w[1].1, "at"))?;
    let unsplit = word(significant[at].1, "unsplit");
    let name_tokens = &significant[2..at];
    let (table_tokens, index) = if on_index {
        let sign = name_tokens.iter().position(|(_, t)| matches!(t, Token::AtSign))?;
        let [(_, Token::Word(w))] = &name_tokens[sign + 1..] else {
            return None;
        };
        (&name_tokens[..sign], Some(w.value.clone()))
    } else {
        (name_tokens, None)
    };
    let (first, last) = (table_tokens.first()?.0, table_tokens.last()?.0);
    let name_text: String = tokens[first..=last].iter().map(|t| t.to_string()).collect();
    let rest_text: String = tokens[significant[at + 1].0 + 1..].iter().map(|t| t.to_string()).collect();
    let table = Parser::new(&PostgreSqlDialect {}).try_with_sql(&name_text).ok()?.parse_object_name(false).ok()?;
    Some((SplitTarget { table, index, unsplit }, rest_text))
}

pub(crate) async fn split_at<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, target: &SplitTarget, q: &Query) -> Result<QueryResult, SqlError> {
    let t = load_table(txn, ctx, &target.table).await?;
    let index =
        match &target.index {
            None => None,
            Some(name) => Some(t.indexes.iter().find(|i| i.name == *name).ok_or_else(|| {
                SqlError::user(codes::UNDEFINED_OBJECT, format!("index \"{name}\" does not exist on table \"{}\"", t.name))
            })?),
        };
    // The columns a split point's values are for, in order, and how each is encoded.
    let columns: Vec<usize> = match index {
        None => t.primary_key.clone(),
        Some(i) => crate::index::column_positions(&t, i)?,
    };
    let (mut rel, out) = plan_query(txn, ctx, q, &[]).await?;
    if out.len() > columns.len() {
        let what = if index.is_some() { "index" } else { "primary key" };
        return Err(SqlError::user(
            codes::SYNTAX,
            format!("too many columns in SPLIT AT data: {} for a {what} of {}", out.len(), columns.len()),
        ));
    }
    let points = rel.collect(txn, &ctx.budget, "SPLIT AT").await?;
    if points.len() > MAX_SPLIT_POINTS {
        return Err(SqlError::user(codes::LIMIT, format!("at most {MAX_SPLIT_POINTS} split points per statement")));
    }
    let mut rows = Vec::with_capacity(points.len());
    for row in points {
        let mut key = match index {
            None => rows_prefix(&t),
            Some(i) => keys::index_prefix(t.id, i.id),
        };
        let mut shown = Vec::with_capacity(row.len());
        for (n, (v, &col)) in row.into_iter().zip(&columns).enumerate() {
            let c = &t.columns[col];
            // A NULL has a key only in a non-unique index (its NULL marker).
            if v.is_null() && index.is_none_or(|i| i.unique) {
                return Err(SqlError::user("22004", format!("SPLIT AT value of column \"{}\" is NULL", c.name)));
            }
            let v: Datum = if v.is_null() { v } else { v.coerce_to(c.ty.base(), &c.name)? };
            match index {
                None => encode_key_datum(&mut key, &v)?,
                Some(i) => crate::index::encode_column(&mut key, &v, i.unique, i.desc(n))?,
            }
            shown.push(v.to_text());
        }
        if target.unsplit {
            txn.unsplit_at(&key).await?;
        } else {
            txn.split_at(&key).await?;
        }
        rows.push(vec![json!(crate::explain::pretty_key(&t, &key)), json!(format!("[{}]", shown.join(", ")))]);
    }
    Ok(QueryResult {
        columns: vec![Column { name: "key".into(), ty: "STRING".into() }, Column { name: "pretty".into(), ty: "STRING".into() }],
        rows,
        rows_affected: 0,
        tag: if target.unsplit { "UNSPLIT" } else { "SPLIT" }.into(),
    })
}
