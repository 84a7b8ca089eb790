//! Parsed statements by their text, so a statement an application sends again and again (with
//! `$n` arguments) is tokenized and parsed once, not per request.
//!
//! What is cached is a pure function of the text: the parsed statement, whether it was written
//! as CockroachDB's `UPSERT`, and its highest `$n`. Nothing depends on the catalog, so entries
//! never go stale. Bounded: two generations of at most [`GENERATION`] entries each (a hit in the
//! old generation moves the entry to the new one; when the new one fills, the old one is
//! dropped), so memory is bounded and statements in use stay. Texts longer than [`MAX_TEXT`]
//! (bulk INSERTs with literal values) are parsed but never cached. Parse errors are not cached.

use crate::error::{SqlError, codes};
use sqlparser::ast::Statement;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Entries per generation.
const GENERATION: usize = 2048;
/// Longest statement text that is cached.
const MAX_TEXT: usize = 4096;

/// One statement, parsed.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub stmt: Statement,
    /// Written as `UPSERT INTO ...` (parsed as INSERT).
    pub upsert: bool,
    /// The highest `$n` placeholder (0 if none).
    pub placeholders: usize,
    /// A statement sqlparser does not know, read by Meridian itself.
    pub ext: Option<Ext>,
}

/// Statements read by Meridian itself (CockroachDB syntax).
#[derive(Debug)]
pub(crate) enum Ext {
    /// `ALTER TABLE <this> SPLIT AT <stmt>` or `ALTER INDEX <this> SPLIT AT <stmt>`: `stmt` is
    /// the query of split points (`crate::split_at`).
    SplitAt(crate::split_at::SplitTarget),
    /// `ALTER TABLE|DATABASE ... CONFIGURE ZONE USING ...` (`crate::zone`); `stmt` is unused.
    Zone(crate::zone::ZoneChange),
}

#[derive(Default)]
struct Generations {
    new: HashMap<String, Arc<Parsed>>,
    old: HashMap<String, Arc<Parsed>>,
}

static CACHE: Mutex<Option<Generations>> = Mutex::new(None);

/// The parsed form of `sql`, from the cache when it was parsed before.
pub(crate) fn parse(sql: &str) -> Result<Arc<Parsed>, SqlError> {
    if sql.len() > MAX_TEXT {
        return parse_uncached(sql).map(Arc::new);
    }
    {
        let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        let g = guard.get_or_insert_with(Generations::default);
        if let Some(p) = g.new.get(sql) {
            return Ok(p.clone());
        }
        if let Some(p) = g.old.remove(sql) {
            insert(g, sql, p.clone());
            return Ok(p);
        }
    }
    let p = Arc::new(parse_uncached(sql)?);
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    insert(guard.get_or_insert_with(Generations::default), sql, p.clone());
    Ok(p)
}

fn insert(g: &mut Generations, sql: &str, p: Arc<Parsed>) {
    if g.new.len() >= GENERATION {
        g.old = std::mem::take(&mut g.new);
    }
    g.new.insert(sql.to_string(), p);
}

fn parse_uncached(sql: &str) -> Result<Parsed, SqlError> {
    if let Some((table, query)) = crate::split_at::split_syntax(sql) {
        let mut p = parse_uncached(&query)?;
        if !matches!(p.stmt, Statement::Query(_)) || p.upsert || p.ext.is_some() {
            return Err(SqlError::user(codes::SYNTAX, "SPLIT AT needs a query (VALUES or SELECT)"));
        }
        p.ext = Some(Ext::SplitAt(table));
        return Ok(p);
    }
    if let Some(change) = crate::zone::zone_syntax(sql) {
        let mut p = parse_uncached("SELECT 1")?;
        p.ext = Some(Ext::Zone(change?));
        return Ok(p);
    }
    let (text, upsert) = strip_upsert(sql);
    // CockroachDB's `t@idx` index names become something sqlparser accepts.
    let rewritten = crate::index_ddl::rewrite_at_syntax(&text);
    let text: &str = rewritten.as_deref().unwrap_or(&text);
    let dialect = PostgreSqlDialect {};
    // Tokenized once, with locations, for both the placeholder count and the parser (the same
    // steps as `Parser::parse_sql`, so errors read the same).
    let tokens = Tokenizer::new(&dialect, text).tokenize_with_location().map_err(|e| syntax_error(e.into()))?;
    let placeholders = tokens
        .iter()
        .filter_map(|t| match &t.token {
            Token::Placeholder(p) => p.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let mut stmts = Parser::new(&dialect).with_tokens_with_locations(tokens).parse_statements().map_err(syntax_error)?;
    if stmts.len() != 1 {
        let msg = if stmts.is_empty() { "empty statement" } else { "one statement per entry" };
        return Err(SqlError::user(codes::SYNTAX, msg));
    }
    let stmt = stmts.pop().expect("one statement");
    if upsert && !matches!(stmt, Statement::Insert(_)) {
        return Err(SqlError::user(codes::SYNTAX, "syntax error at or near \"UPSERT\""));
    }
    Ok(Parsed { stmt, upsert, placeholders, ext: None })
}

/// `UPSERT INTO t ...` is CockroachDB syntax sqlparser does not know: it becomes `INSERT INTO t
/// ...` and is flagged so the insert replaces rows with the same primary key.
fn strip_upsert(sql: &str) -> (std::borrow::Cow<'_, str>, bool) {
    let trimmed = sql.trim_start();
    if trimmed.len() >= 6 && trimmed.is_char_boundary(6) && trimmed[..6].eq_ignore_ascii_case("upsert") {
        return (format!("INSERT{}", &trimmed[6..]).into(), true);
    }
    (sql.into(), false)
}

/// A parse error in PostgreSQL's words where possible (`syntax error at or near "x"`).
fn syntax_error(e: sqlparser::parser::ParserError) -> SqlError {
    let msg = e.to_string();
    let found = msg.split(", found: ").nth(1).map(|rest| rest.split(" at Line").next().unwrap_or(rest).trim().to_string());
    match found {
        Some(tok) if tok == "EOF" => SqlError::user(codes::SYNTAX, "syntax error at end of input"),
        Some(tok) => SqlError::user(codes::SYNTAX, format!("syntax error at or near \"{tok}\"")),
        None => SqlError::user(codes::SYNTAX, msg.trim_start_matches("sql parser error: ").to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_is_parsed_once_and_errors_are_not_cached() {
        let a = parse("SELECT v FROM parse_cache_t WHERE k = $2").unwrap();
        let b = parse("SELECT v FROM parse_cache_t WHERE k = $2").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.placeholders, 2);
        assert_eq!(parse("SELECT $1 + $3, '$9'").unwrap().placeholders, 3, "counted from tokens, not string contents");
        assert!(!a.upsert);
        let u = parse("upsert INTO parse_cache_t VALUES ($1, 'x')").unwrap();
        assert!(u.upsert && u.placeholders == 1);
        assert_eq!(parse("UPSERT SELECT 1").unwrap_err().code(), codes::SYNTAX);
        assert_eq!(parse("SELEC 1").unwrap_err().code(), codes::SYNTAX);
        assert_eq!(parse("SELECT 1; SELECT 2").unwrap_err().code(), codes::SYNTAX);
        assert_eq!(parse("  ").unwrap_err().code(), codes::SYNTAX);
    }

    #[test]
    fn generations_bound_the_cache_and_keep_what_is_used() {
        let mut g = Generations::default();
        let p = Arc::new(parse_uncached("SELECT 1").unwrap());
        for i in 0..GENERATION * 3 {
            insert(&mut g, &format!("SELECT {i}"), p.clone());
        }
        assert!(g.new.len() <= GENERATION && g.old.len() <= GENERATION);
    }
}
