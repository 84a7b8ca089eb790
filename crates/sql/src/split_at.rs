//! `ALTER TABLE t SPLIT AT <query>` (CockroachDB syntax): splits the table's ranges so that one
//! starts at each primary-key value (or prefix of one) the query returns, e.g.
//! `ALTER TABLE t SPLIT AT VALUES (100), (200)` or `... SPLIT AT SELECT g FROM
//! generate_series(1, 1000, 10) AS g`.
//!
//! sqlparser does not know the statement: [`split_syntax`] takes it apart at parse time into the
//! table name and the query, which is parsed as usual. Each row must hold at most as many values
//! as the primary key has columns; each value is cast to its column's type. The split key is the
//! row-key prefix of those values, so a range boundary never falls inside a row. Splitting at an
//! existing boundary does nothing. The result has one row per split point: the key (as EXPLAIN
//! prints keys) and the pretty form of the values.
//!
//! Not handled: `ALTER INDEX t@i SPLIT AT` (index spans split only when their table's does),
//! `WITH EXPIRATION`.

use crate::datum::Datum;
use crate::encoding::{encode_key_datum, rows_prefix};
use crate::error::{SqlError, codes};
use crate::exec::{Column, Ctx, QueryResult, load_table};
use crate::query::plan_query;
use crate::txn::TxnClient;
use serde_json::json;
use sqlparser::ast::{ObjectName, Query};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

/// Most split points one statement may ask for.
pub const MAX_SPLIT_POINTS: usize = 10_000;

/// For `ALTER TABLE <name> SPLIT AT <rest>`: the table name and the text of the query `<rest>`.
/// None for any other statement.
pub(crate) fn split_syntax(text: &str) -> Option<(ObjectName, String)> {
    // Cheap test first: every statement passes through here.
    let head = text.trim_start().get(..5)?;
    if !head.eq_ignore_ascii_case("alter") {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text).tokenize().ok()?;
    let word = |t: &Token, w: &str| matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    let significant: Vec<(usize, &Token)> = tokens.iter().enumerate().filter(|(_, t)| !matches!(t, Token::Whitespace(_))).collect();
    if significant.len() < 5 || !word(significant[0].1, "alter") || !word(significant[1].1, "table") {
        return None;
    }
    let at = significant.windows(2).position(|w| word(w[0].1, "split") && word(w[1].1, "at"))?;
    let name_text: String = tokens[significant[2].0..significant[at].0].iter().map(|t| t.to_string()).collect();
    let rest_text: String = tokens[significant[at + 1].0 + 1..].iter().map(|t| t.to_string()).collect();
    let name = Parser::new(&PostgreSqlDialect {}).try_with_sql(&name_text).ok()?.parse_object_name(false).ok()?;
    Some((name, rest_text))
}

pub(crate) async fn split_at<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, name: &ObjectName, q: &Query) -> Result<QueryResult, SqlError> {
    let t = load_table(txn, ctx, name).await?;
    let (mut rel, out) = plan_query(txn, ctx, q, &[]).await?;
    if out.len() > t.primary_key.len() {
        return Err(SqlError::user(
            codes::SYNTAX,
            format!("too many columns in SPLIT AT data: {} for a primary key of {}", out.len(), t.primary_key.len()),
        ));
    }
    let points = rel.collect(txn, &ctx.budget, "SPLIT AT").await?;
    if points.len() > MAX_SPLIT_POINTS {
        return Err(SqlError::user(codes::LIMIT, format!("at most {MAX_SPLIT_POINTS} split points per statement")));
    }
    let mut rows = Vec::with_capacity(points.len());
    for row in points {
        let mut key = rows_prefix(&t);
        let mut shown = Vec::with_capacity(row.len());
        for (v, &col) in row.into_iter().zip(&t.primary_key) {
            let c = &t.columns[col];
            if v.is_null() {
                return Err(SqlError::user("22004", format!("SPLIT AT value of primary key column \"{}\" is NULL", c.name)));
            }
            let v: Datum = v.coerce_to(c.ty.base(), &c.name)?;
            encode_key_datum(&mut key, &v)?;
            shown.push(v.to_text());
        }
        txn.split_at(&key).await?;
        rows.push(vec![json!(crate::explain::pretty_key(&t, &key)), json!(format!("[{}]", shown.join(", ")))]);
    }
    Ok(QueryResult {
        columns: vec![Column { name: "key".into(), ty: "STRING".into() }, Column { name: "pretty".into(), ty: "STRING".into() }],
        rows,
        rows_affected: 0,
        tag: "SPLIT".into(),
    })
}
