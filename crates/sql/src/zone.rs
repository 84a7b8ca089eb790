//! `ALTER TABLE t CONFIGURE ZONE USING range_max_bytes = N, range_min_bytes = M` and the same
//! for `ALTER DATABASE d` (CockroachDB syntax): the size bounds of a table's ranges. A range
//! larger than `range_max_bytes` splits at its middle (the node's split queue); a database's
//! settings apply to its tables, present and future. Unset settings keep their defaults
//! (512 MiB / 128 MiB, as CockroachDB's).
//!
//! sqlparser does not know the statement: [`zone_syntax`] reads it at parse time. Values are
//! integer literals. Errors: an unknown setting is 0A000; `range_max_bytes` below 64 KiB or not
//! above `range_min_bytes` is 22023. Not handled: `= DEFAULT`, `DISCARD`, replica settings
//! (`num_replicas`, constraints: survival goals are their own issue), `SHOW ZONE CONFIGURATION`.

use crate::error::{SqlError, codes};
use crate::exec::{Ctx, QueryResult, load_table};
use crate::txn::TxnClient;
use meridian_types::ZoneConfig;
use sqlparser::ast::ObjectName;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};

/// What the statement configures.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ZoneTarget {
    Table(ObjectName),
    Database(String),
}

/// A parsed `... CONFIGURE ZONE USING ...`: the target and the settings as written.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ZoneChange {
    pub target: ZoneTarget,
    pub settings: Vec<(String, u64)>,
}

/// For `ALTER TABLE|DATABASE <name> CONFIGURE ZONE USING k = v, ...`: the change, or the
/// syntax error in it. None for any other statement.
pub(crate) fn zone_syntax(text: &str) -> Option<Result<ZoneChange, SqlError>> {
    let head = text.trim_start().get(..5)?;
    if !head.eq_ignore_ascii_case("alter") {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, text).tokenize().ok()?;
    let toks: Vec<&Token> = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_))).collect();
    let word = |t: &Token, w: &str| matches!(t, Token::Word(x) if x.quote_style.is_none() && x.value.eq_ignore_ascii_case(w));
    let at = toks.windows(3).position(|w| word(w[0], "configure") && word(w[1], "zone") && word(w[2], "using"))?;
    if toks.len() < 4 || at < 3 {
        return None;
    }
    let is_table = word(toks[1], "table");
    if !is_table && !word(toks[1], "database") {
        return None;
    }
    let name_text: String = toks[2..at].iter().map(|t| t.to_string()).collect::<Vec<_>>().join("");
    let syntax = |m: &str| Some(Err(SqlError::user(codes::SYNTAX, m.to_string())));
    let Some(name) = Parser::new(&PostgreSqlDialect {}).try_with_sql(&name_text).ok().and_then(|mut p| p.parse_object_name(false).ok())
    else {
        return syntax("CONFIGURE ZONE: expected a table or database name");
    };
    let target = if is_table {
        ZoneTarget::Table(name)
    } else {
        match name.0.as_slice() {
            [part] => match part.as_ident() {
                Some(i) => ZoneTarget::Database(crate::expr::ident_name(i)),
                None => return syntax("CONFIGURE ZONE: expected a database name"),
            },
            _ => return syntax("CONFIGURE ZONE: expected a database name"),
        }
    };
    let mut settings = Vec::new();
    let mut rest = toks[at + 3..].iter().copied().filter(|t| !matches!(t, Token::SemiColon));
    loop {
        let (Some(Token::Word(k)), Some(Token::Eq), Some(Token::Number(v, _))) = (rest.next(), rest.next(), rest.next()) else {
            return syntax("CONFIGURE ZONE USING expects setting = integer, ...");
        };
        let Ok(v) = v.parse::<u64>() else {
            return Some(Err(SqlError::user(codes::INVALID_PARAM, format!("invalid value {v} for {}", k.value))));
        };
        settings.push((k.value.to_lowercase(), v));
        match rest.next() {
            None => break,
            Some(Token::Comma) => {}
            Some(_) => return syntax("CONFIGURE ZONE USING expects setting = integer, ..."),
        }
    }
    Some(Ok(ZoneChange { target, settings }))
}

pub(crate) async fn configure_zone<T: TxnClient>(txn: &mut T, ctx: &Ctx<'_>, change: &ZoneChange) -> Result<QueryResult, SqlError> {
    let mut cfg = ZoneConfig::default();
    for (k, v) in &change.settings {
        match k.as_str() {
            "range_max_bytes" => cfg.range_max_bytes = Some(*v),
            "range_min_bytes" => cfg.range_min_bytes = Some(*v),
            other => return Err(SqlError::user(codes::UNSUPPORTED, format!("unsupported zone setting \"{other}\""))),
        }
    }
    let (db, table) = match &change.target {
        ZoneTarget::Table(name) => {
            let t = load_table(txn, ctx, name).await?;
            (t.db.clone(), Some(t))
        }
        ZoneTarget::Database(db) => {
            if txn.get_database(db).await?.is_none() {
                return Err(SqlError::user(codes::UNDEFINED_DATABASE, format!("database \"{db}\" does not exist")));
            }
            (db.clone(), None)
        }
    };
    txn.configure_zone(&db, table.as_ref(), cfg).await?;
    Ok(QueryResult::tag("CONFIGURE ZONE", 0))
}

/// Merges `change` into `cur`, checking the result (22023 when out of bounds).
pub fn merge_zone(cur: ZoneConfig, change: ZoneConfig) -> Result<ZoneConfig, SqlError> {
    let merged = ZoneConfig {
        range_max_bytes: change.range_max_bytes.or(cur.range_max_bytes),
        range_min_bytes: change.range_min_bytes.or(cur.range_min_bytes),
    };
    if merged.range_max_bytes() < ZoneConfig::MIN_RANGE_MAX_BYTES {
        return Err(SqlError::user(
            codes::INVALID_PARAM,
            format!("range_max_bytes {} is below the minimum of {}", merged.range_max_bytes(), ZoneConfig::MIN_RANGE_MAX_BYTES),
        ));
    }
    if merged.range_min_bytes() >= merged.range_max_bytes() {
        return Err(SqlError::user(
            codes::INVALID_PARAM,
            format!("range_min_bytes {} must be below range_max_bytes {}", merged.range_min_bytes(), merged.range_max_bytes()),
        ));
    }
    Ok(merged)
}
