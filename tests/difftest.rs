//! Differential testing against PostgreSQL: the same schema and data are loaded into a 3-node
//! Meridian cluster and into a throwaway PostgreSQL server, then a corpus of queries — a
//! hand-written list of every query shape that works today plus at least 1,500 queries generated
//! from a seeded RNG (random scalar expressions, WHERE predicates, ORDER BY with full keys,
//! LIMIT/OFFSET, aggregates with GROUP BY/HAVING, DISTINCT) plus 1,200 over t1 joined with t3
//! (inner/left/right/full joins on keys and non-keys, grouped joins, DISTINCT over CASE/COALESCE/
//! NULLIF, IN/NOT IN subqueries, UNION/EXCEPT/INTERSECT [ALL], ORDER BY + LIMIT/OFFSET) — runs on both
//! (the hand-written list includes correlated subqueries). Shows that Meridian
//! returns PostgreSQL's rows, or fails with the same SQLSTATE class, except for the differences
//! listed in [`KNOWN`] (each with its reason); any NEW difference fails the test.
//!
//! Comparison: rows as multisets unless the query's ORDER BY determines the order; integers
//! exactly, floats (and PostgreSQL NUMERIC) with relative tolerance 1e-9, bools, NULL, text
//! (timestamps in PostgreSQL's UTC text form). Both erroring: the first two SQLSTATE characters
//! must agree. Meridian's types map as INT8 ↔ bigint, FLOAT8 ↔ float8, STRING ↔ text.
//!
//! The seed is printed; `DIFFTEST_SEED=<n>` reproduces a run, `DIFFTEST_QUERIES=<n>` changes how
//! many are generated. Features the generator uses only when Meridian supports them (CASE,
//! NULLIF) are probed at start, so the corpus widens as the dialect does.

mod common;
#[path = "common/pg.rs"]
mod pg;

use common::{Cluster, serial};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::time::Instant;

const SCHEMA: &[&str] = &[
    "CREATE TABLE t1 (k BIGINT PRIMARY KEY, a BIGINT, b FLOAT8, s TEXT, flag BOOL)",
    "CREATE TABLE t2 (x TEXT, y BIGINT, v BIGINT, w FLOAT8, PRIMARY KEY (x, y))",
    "CREATE TABLE t3 (id BIGINT PRIMARY KEY, k1 BIGINT, g BIGINT, name TEXT, m FLOAT8)",
];

const DATA: &[&str] = &[
    "INSERT INTO t1 VALUES (1, 10, 1.5, 'apple', true), (2, 20, -2.5, 'banana', false), (3, NULL, 0.75, 'cherry', NULL), \
     (4, 10, NULL, NULL, true), (5, -5, 3.25, 'Apple', false), (6, 0, 1.5, '', true), (7, 30, -0.5, 'date', NULL), \
     (8, NULL, NULL, 'a%b', false), (9, -5, 100.125, 'apple', true), (10, 3037000500, 10000000000, 'zeta', false), \
     (11, -1, 0.1, ' spaced ', NULL), (12, 7, -7, 'banana', true), (-3, 2, 2, 'Zed', false), (0, NULL, 0.3, 'x_y', true), \
     (13, 1, NULL, '', NULL), (14, -100, 0.00001, 'ápple', false)",
    "INSERT INTO t2 VALUES ('a', 1, 5, 0.5), ('a', 2, NULL, 1.5), ('a', -1, 7, NULL), ('b', 1, 5, -2), ('b', 10, 0, 0.25), \
     ('', 0, 1, 1), ('c', -5, NULL, NULL), ('c', 5, -3, 3.5), ('ab', 1, 2, 2), ('B', 3, 9, -0.5)",
    "INSERT INTO t3 VALUES (1, 1, 10, 'one', 0.5), (2, 1, 20, 'two', NULL), (3, 2, NULL, 'three', 1.5), (4, NULL, 10, NULL, -2), \
     (5, 9, -5, 'five', 0), (6, 99, 7, 'six', 2.5), (7, 0, 0, '', 1), (8, 12, 3037000500, 'eight', NULL), (9, -3, 2, 'apple', 3)",
];

/// The hand-written corpus: `(sql, ordered)`; `ordered` when ORDER BY fixes the row order.
const HAND: &[(&str, bool)] = &[
    ("SELECT * FROM t1", false),
    ("SELECT * FROM t2", false),
    ("SELECT * FROM t1 ORDER BY k", true),
    ("SELECT k, a, b, s, flag FROM t1 WHERE k = 5", false),
    ("SELECT k FROM t1 WHERE k = 99", false),
    ("SELECT k FROM t1 WHERE k > 3 AND k <= 9 ORDER BY k DESC", true),
    ("SELECT k FROM t1 WHERE k BETWEEN -3 AND 2 ORDER BY k", true),
    ("SELECT k FROM t1 WHERE k IN (1, 3, 99, -3) ORDER BY k", true),
    ("SELECT a + k, a - k, a * 2, a / 3, a % 3, -a FROM t1 WHERE a IS NOT NULL AND a < 1000", false),
    ("SELECT b + 1, b - k, b * b, b / 2, -b FROM t1", false),
    ("SELECT k / 2.5, k + 0.5, k * 1.5 FROM t1", false),
    ("SELECT s || '!', lower(s), upper(s), length(s) FROM t1", false),
    ("SELECT coalesce(a, 0), coalesce(s, 'none'), coalesce(b, -1) FROM t1", false),
    ("SELECT abs(a), abs(b) FROM t1 WHERE a < 1000", false),
    ("SELECT k AS key, a AS val FROM t1 WHERE a > 5 ORDER BY val DESC, key", true),
    ("SELECT t1.k, x.k FROM t1 AS x WHERE x.k = 1", false),
    ("SELECT k FROM t1 WHERE a = NULL", false),
    ("SELECT k FROM t1 WHERE NOT (a > 5)", false),
    ("SELECT k FROM t1 WHERE flag", false),
    ("SELECT k FROM t1 WHERE NOT flag", false),
    ("SELECT k FROM t1 WHERE flag IS NULL", false),
    ("SELECT k FROM t1 WHERE a IN (10, NULL)", false),
    ("SELECT k FROM t1 WHERE a NOT IN (10, NULL)", false),
    ("SELECT k FROM t1 WHERE a NOT IN (10, 20)", false),
    ("SELECT k FROM t1 WHERE s LIKE 'a%'", false),
    ("SELECT k FROM t1 WHERE s LIKE '%a%a%'", false),
    ("SELECT k FROM t1 WHERE s LIKE '_p%'", false),
    ("SELECT k FROM t1 WHERE s LIKE 'a\\%b'", false),
    ("SELECT k FROM t1 WHERE s NOT LIKE '%e%'", false),
    ("SELECT k FROM t1 WHERE s ILIKE 'APPLE'", false),
    ("SELECT k FROM t1 WHERE s BETWEEN 'a' AND 'c'", false),
    ("SELECT k FROM t1 WHERE b NOT BETWEEN 0 AND 2", false),
    ("SELECT k, a FROM t1 ORDER BY a, k", true),
    ("SELECT k, a FROM t1 ORDER BY a DESC, k", true),
    ("SELECT k, a FROM t1 ORDER BY a NULLS FIRST, k", true),
    ("SELECT k, a FROM t1 ORDER BY a DESC NULLS LAST, k DESC", true),
    ("SELECT k, s FROM t1 ORDER BY s, k", true),
    ("SELECT k, b FROM t1 ORDER BY b DESC, k", true),
    ("SELECT k, flag FROM t1 ORDER BY flag, k", true),
    ("SELECT k FROM t1 ORDER BY 1 DESC", true),
    ("SELECT k, a * -1 AS neg FROM t1 WHERE a IS NOT NULL ORDER BY neg, k", true),
    ("SELECT k FROM t1 ORDER BY k LIMIT 3", true),
    ("SELECT k FROM t1 ORDER BY k LIMIT 3 OFFSET 5", true),
    ("SELECT k FROM t1 ORDER BY k OFFSET 14", true),
    ("SELECT k FROM t1 ORDER BY k LIMIT 0", true),
    ("SELECT DISTINCT a FROM t1", false),
    ("SELECT DISTINCT s FROM t1", false),
    ("SELECT DISTINCT flag, a > 0 FROM t1", false),
    ("SELECT count(*), count(a), count(b), count(s), count(flag) FROM t1", false),
    ("SELECT sum(a), min(a), max(a), avg(a) FROM t1", false),
    ("SELECT sum(b), min(b), max(b), avg(b) FROM t1", false),
    ("SELECT min(s), max(s), min(flag::INT) FROM t1", false),
    ("SELECT count(*), sum(a), avg(b) FROM t1 WHERE k > 100", false),
    ("SELECT flag, count(*), sum(a), avg(b) FROM t1 GROUP BY flag", false),
    ("SELECT s, count(*) FROM t1 GROUP BY s HAVING count(*) > 1", false),
    ("SELECT a, count(*), min(k) FROM t1 GROUP BY a ORDER BY a, count(*)", true),
    ("SELECT flag, a > 0, count(*) FROM t1 GROUP BY flag, a > 0", false),
    ("SELECT x, count(*), sum(v), avg(w) FROM t2 GROUP BY x", false),
    ("SELECT x, y, v FROM t2 WHERE x = 'a' ORDER BY y", true),
    ("SELECT x, y FROM t2 WHERE x = 'a' AND y > 0 ORDER BY x, y", true),
    ("SELECT x, y FROM t2 WHERE x >= 'a' AND x < 'b' ORDER BY x, y DESC", true),
    ("SELECT x, y FROM t2 WHERE y = 1 ORDER BY x", true),
    ("SELECT x, y, v * w FROM t2 ORDER BY x, y", true),
    ("SELECT max(v) - min(v), count(*) * 2 FROM t2", false),
    ("SELECT 1", false),
    ("SELECT 1 + 2 * 3, (1 + 2) * 3, 7 / 2, -7 / 2, 7 % 3, -7 % 3", false),
    ("SELECT 7 / 2.0, 1.5 + 1, 0.1 + 0.2", false),
    ("SELECT 'a' || 'b', 'a' < 'b', 'B' < 'a', '' = ''", false),
    ("SELECT NULL AND false, NULL AND true, NULL OR true, NULL OR false", false),
    ("SELECT 1 IN (2, NULL), 2 IN (2, NULL), 1 NOT IN (2, 3)", false),
    ("SELECT NULL IS NULL, 1 IS NULL, 1 + NULL", false),
    ("SELECT CAST('12' AS BIGINT), '3'::INT8 + 1, 2.75::FLOAT8::BIGINT, 12::TEXT, 't'::BOOL", false),
    ("SELECT 1 / 0", false),
    ("SELECT 1 % 0", false),
    ("SELECT k / (a - 10) FROM t1 WHERE a IS NOT NULL", false),
    ("SELECT a * a FROM t1", false),
    ("SELECT 9223372036854775807 + 1", false),
    ("SELECT nosuch FROM t1", false),
    ("SELECT * FROM nosuch", false),
    ("SELECT k, count(*) FROM t1", false),
    ("SELECT sum(s) FROM t1", false),
    ("SELEC 1", false),
    ("SELECT 'abc'::BIGINT", false),
    ("SELECT k FROM t1 WHERE -0.0::FLOAT8 = b * 0", false),
    ("SELECT k FROM t1 WHERE k = 2 OR 1 / (k - 2) > 0", false),
    ("SELECT k FROM t1 WHERE 1 AND true", false),
    // Correlated subqueries.
    ("SELECT k FROM t1 WHERE EXISTS (SELECT 1 FROM t3 WHERE t3.k1 = t1.k) ORDER BY k", true),
    ("SELECT k FROM t1 WHERE NOT EXISTS (SELECT 1 FROM t3 WHERE t3.k1 = t1.k) ORDER BY k", true),
    ("SELECT k, (SELECT count(*) FROM t3 WHERE t3.k1 = t1.k) FROM t1 ORDER BY k", true),
    ("SELECT k, (SELECT max(m) FROM t3 WHERE t3.g > t1.a) FROM t1 ORDER BY k", true),
    ("SELECT k, (SELECT name FROM t3 WHERE t3.id = t1.k) FROM t1 ORDER BY k", true),
    ("SELECT k, (SELECT name FROM t3 WHERE t3.k1 = t1.k) FROM t1 ORDER BY k", true),
    ("SELECT k, a IN (SELECT g FROM t3 WHERE t3.k1 = t1.k) FROM t1 ORDER BY k", true),
    ("SELECT k, a NOT IN (SELECT g FROM t3 WHERE t3.k1 <= t1.k) FROM t1 ORDER BY k", true),
    ("SELECT k, a > ALL (SELECT g FROM t3 WHERE t3.id > t1.k), a <= ANY (SELECT g FROM t3 WHERE t3.id < t1.k) FROM t1 ORDER BY k", true),
    ("SELECT x, y FROM t2 WHERE v > (SELECT avg(v) FROM t2 t2b WHERE t2b.x = t2.x) ORDER BY x, y", true),
    ("SELECT a, count(*) FROM t1 GROUP BY a HAVING EXISTS (SELECT 1 FROM t3 WHERE t3.k1 = t1.a)", false),
    ("SELECT k FROM t1 WHERE b > (SELECT min(m) FROM t3 WHERE t3.k1 = t1.k OR t3.g = t1.a) ORDER BY k", true),
    (
        "SELECT k FROM t1 WHERE EXISTS (SELECT 1 FROM t3 WHERE t3.k1 = t1.k AND EXISTS (SELECT 1 FROM t2 WHERE t2.y = t3.g - t1.k)) ORDER BY k",
        true,
    ),
    ("SELECT k, (SELECT sum(v) FROM t2 WHERE t2.y < t1.k AND t2.v IS NOT NULL) FROM t1 WHERE k < 5 ORDER BY k", true),
];

/// One engine's answer: rows (Meridian JSON values with their column types, or PostgreSQL text),
/// or an error's SQLSTATE and message.
#[derive(Debug)]
enum Out<R> {
    Rows(R),
    Err(String, String),
}

type MOut = Out<(Vec<String>, Vec<Vec<Value>>)>;
type POut = Out<Vec<Vec<Option<String>>>>;

/// A known, accepted difference from PostgreSQL: the test tolerates a query's mismatch when
/// `applies` says this entry explains it.
struct Known {
    name: &'static str,
    reason: &'static str,
    applies: fn(sql: &str, m: &MOut, p: &POut) -> bool,
}

fn m_err(m: &MOut) -> Option<&str> {
    match m {
        Out::Err(c, _) => Some(c),
        _ => None,
    }
}

fn p_err(p: &POut) -> Option<&str> {
    match p {
        Out::Err(c, _) => Some(c),
        _ => None,
    }
}

fn m_rows(m: &MOut) -> Option<usize> {
    match m {
        Out::Rows((_, r)) => Some(r.len()),
        _ => None,
    }
}

/// Every difference from PostgreSQL the corpus is known to show, and why it is accepted (for now).
/// Keep each `applies` as narrow as possible: anything it does not match fails the test.
const KNOWN: &[Known] = &[
    Known {
        name: "constant folding of errors",
        reason: "PostgreSQL folds constant subexpressions at plan time, so `100 / 0` fails even when no row is evaluated; Meridian evaluates per row and returns a result when no row reaches the division",
        applies: |sql, m, p| {
            p_err(p) == Some("22012")
                && m_rows(m).is_some()
                && (sql.contains("/ 0)") || sql.contains("% 0)") || sql.contains("/ (-0)") || sql.contains("% (-0)"))
        },
    },
    Known {
        name: "LIMIT 0 still evaluates WHERE",
        reason: "PostgreSQL fetches no row for LIMIT 0, so a failing WHERE is never evaluated; Meridian filters first \
                 and reports the error",
        applies: |sql, m, p| matches!(m_err(m), Some("22012" | "22003")) && p_err(p).is_none() && sql.contains("LIMIT 0"),
    },
    Known {
        name: "table name behind an alias",
        reason: "Meridian accepts `t1.k` when t1 is aliased `AS x`; PostgreSQL says 42P01 (the alias hides the name)",
        applies: |sql, m, p| m_err(m).is_none() && p_err(p) == Some("42P01") && sql.contains(" AS x"),
    },
    Known {
        name: "CASE output column name",
        reason: "PostgreSQL names a CASE column after its ELSE operand's column (so `ORDER BY y` can become ambiguous, 42702); Meridian names it `case`",
        applies: |sql, m, p| m_err(m).is_none() && p_err(p) == Some("42702") && sql.contains("CASE"),
    },
    Known {
        name: "projection before LIMIT",
        reason: "Meridian computes the select list of every sorted row before LIMIT/OFFSET cut them; PostgreSQL only for the \
                 rows it returns, so an expression failing on a cut row (22012/22003) fails only on Meridian",
        applies: |sql, m, p| matches!(m_err(m), Some("22012" | "22003")) && p_err(p).is_none() && sql.contains(" LIMIT "),
    },
    Known {
        name: "WHERE pushed below an outer join",
        reason: "PostgreSQL turns an outer join with a strict WHERE on the nullable side into an inner join and evaluates the \
                 filter on every scanned row, so a failing expression (22012/22003) on a row that joins nothing fails there; \
                 Meridian filters joined rows only",
        applies: |sql, m, p| {
            matches!(p_err(p), Some("22012" | "22003")) && m_err(m).is_none() && sql.contains(" JOIN ") && sql.contains(" WHERE ")
        },
    },
];

/// An exact decimal in canonical form: no trailing fractional zeros, no `-0`. PostgreSQL and
/// Meridian agree on values but not always on the display scale of division and `avg` results
/// (docs/sql.md lists the difference), so decimals compare by value, exactly.
fn canon_decimal(s: &str) -> String {
    let mut t = s.to_string();
    if t.contains('.') {
        t = t.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if t == "-0" { "0".into() } else { t }
}

#[derive(Clone, Debug)]
enum N {
    Null,
    Int(i128),
    Num(f64),
    Bool(bool),
    Text(String),
}

fn parse_num(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

fn norm_m(ty: &str, v: &Value) -> N {
    match v {
        Value::Null => N::Null,
        Value::Bool(b) => N::Bool(*b),
        Value::Number(n) if ty == "INT8" && n.is_i64() => N::Int(n.as_i64().unwrap() as i128),
        Value::Number(n) => N::Num(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) if ty == "FLOAT8" => parse_num(s).map(N::Num).unwrap_or(N::Text(s.clone())),
        Value::String(s) if ty == "TIMESTAMPTZ" => N::Text(pg::pg_timestamp(s)),
        Value::String(s) if ty == "DECIMAL" => N::Text(canon_decimal(s)),
        Value::String(s) => N::Text(s.clone()),
        other => N::Text(other.to_string()),
    }
}

/// PostgreSQL's text, read as the type Meridian reported for the column (when it has one).
fn norm_p(ty: Option<&str>, v: &Option<String>) -> N {
    let Some(s) = v else { return N::Null };
    match ty {
        Some("INT8") => s.parse::<i128>().map(N::Int).unwrap_or_else(|_| parse_num(s).map(N::Num).unwrap_or(N::Text(s.clone()))),
        Some("FLOAT8") => parse_num(s).map(N::Num).unwrap_or(N::Text(s.clone())),
        Some("DECIMAL") => N::Text(canon_decimal(s)),
        Some("BOOL") => match s.as_str() {
            "t" => N::Bool(true),
            "f" => N::Bool(false),
            _ => N::Text(s.clone()),
        },
        _ => N::Text(s.clone()),
    }
}

fn as_f64(n: &N) -> Option<f64> {
    match n {
        N::Int(i) => Some(*i as f64),
        N::Num(f) => Some(*f),
        _ => None,
    }
}

fn n_eq(a: &N, b: &N) -> bool {
    match (a, b) {
        (N::Null, N::Null) => true,
        (N::Int(x), N::Int(y)) => x == y,
        (N::Bool(x), N::Bool(y)) => x == y,
        (N::Text(x), N::Text(y)) => x == y,
        _ => match (as_f64(a), as_f64(b)) {
            (Some(x), Some(y)) => {
                (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()) || (x - y).abs() < 1e-12
            }
            _ => false,
        },
    }
}

/// A total order for sorting unordered results the same way on both sides.
fn n_cmp(a: &N, b: &N) -> Ordering {
    let rank = |n: &N| match n {
        N::Null => 0,
        N::Int(_) | N::Num(_) => 1,
        N::Bool(_) => 2,
        N::Text(_) => 3,
    };
    match (a, b) {
        (N::Int(x), N::Int(y)) => x.cmp(y),
        (N::Bool(x), N::Bool(y)) => x.cmp(y),
        (N::Text(x), N::Text(y)) => x.cmp(y),
        _ => match (as_f64(a), as_f64(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => rank(a).cmp(&rank(b)),
        },
    }
}

fn row_cmp(a: &[N], b: &[N]) -> Ordering {
    a.iter().zip(b).map(|(x, y)| n_cmp(x, y)).find(|o| o.is_ne()).unwrap_or(a.len().cmp(&b.len()))
}

/// None when the answers agree, else a description of the difference.
fn compare(ordered: bool, m: &MOut, p: &POut) -> Option<String> {
    match (m, p) {
        (Out::Err(mc, mm), Out::Err(pc, pm)) => {
            (mc.get(..2) != pc.get(..2)).then(|| format!("SQLSTATE class differs: {mc} ({mm}) vs {pc} ({pm})"))
        }
        (Out::Err(..), _) => Some("only Meridian fails".into()),
        (_, Out::Err(..)) => Some("only PostgreSQL fails".into()),
        (Out::Rows((tys, mrows)), Out::Rows(prows)) => {
            let mut mn: Vec<Vec<N>> = mrows.iter().map(|r| r.iter().zip(tys).map(|(v, t)| norm_m(t, v)).collect()).collect();
            let mut pn: Vec<Vec<N>> =
                prows.iter().map(|r| r.iter().enumerate().map(|(i, v)| norm_p(tys.get(i).map(|s| s.as_str()), v)).collect()).collect();
            if mn.len() != pn.len() {
                return Some(format!("{} rows vs {} rows", mn.len(), pn.len()));
            }
            if !ordered {
                mn.sort_by(|a, b| row_cmp(a, b));
                pn.sort_by(|a, b| row_cmp(a, b));
            }
            for (i, (a, b)) in mn.iter().zip(&pn).enumerate() {
                if a.len() != b.len() || !a.iter().zip(b).all(|(x, y)| n_eq(x, y)) {
                    return Some(format!("row {i}: {a:?} vs {b:?}"));
                }
            }
            None
        }
    }
}

async fn run_meridian(c: &Cluster, gw: usize, sql: &str) -> MOut {
    let (st, body) = c.sql(gw, "diff", &[(sql, json!([]))]).await;
    if st != 200 {
        let code = body["error"]["code"].as_str().unwrap_or("XXXXX").to_string();
        return Out::Err(code, body["error"]["message"].as_str().unwrap_or(&body.to_string()).to_string());
    }
    let res = &body["results"][0];
    let tys = res["columns"].as_array().into_iter().flatten().map(|c| c["type"].as_str().unwrap_or("").to_string()).collect();
    let rows = res["rows"].as_array().into_iter().flatten().map(|r| r.as_array().cloned().unwrap_or_default()).collect();
    Out::Rows((tys, rows))
}

async fn run_pg(client: &tokio_postgres::Client, sql: &str) -> POut {
    use tokio_postgres::SimpleQueryMessage as M;
    match client.simple_query(sql).await {
        Ok(msgs) => Out::Rows(
            msgs.into_iter()
                .filter_map(|m| match m {
                    M::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect()),
                    _ => None,
                })
                .collect(),
        ),
        Err(e) => match e.as_db_error() {
            Some(d) => Out::Err(d.code().code().to_string(), d.message().to_string()),
            None => Out::Err("XXXXX".into(), e.to_string()),
        },
    }
}

/// Which optional expression forms Meridian supports today (probed at start).
struct Features {
    case: bool,
    nullif: bool,
}

/// Random typed expressions over t1 (k, a, b, s, flag) or t2 (x, y, v, w).
struct Gen {
    rng: StdRng,
    f: Features,
    t2: bool,
}

impl Gen {
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.rng.random_range(0..xs.len())]
    }

    fn int_lit(&mut self) -> String {
        let v = self.pick(&["0", "1", "2", "3", "5", "7", "10", "100", "-1", "-3", "-7"]);
        if v.starts_with('-') { format!("({v})") } else { v.to_string() }
    }

    fn int(&mut self, d: u32) -> String {
        if d == 0 || self.rng.random_bool(0.3) {
            return if self.rng.random_bool(0.6) {
                let cols: &[&str] = if self.t2 { &["y", "v", "y", "v"] } else { &["k", "a", "a", "k"] };
                self.pick(cols).to_string()
            } else {
                self.int_lit()
            };
        }
        match self.rng.random_range(0..10) {
            0..=4 => {
                let op = self.pick(&["+", "-", "*", "/", "%", "+", "-", "*"]);
                format!("({} {op} {})", self.int(d - 1), self.int(d - 1))
            }
            5 => format!("(-{})", self.int(d - 1)),
            6 => format!("abs({})", self.int(d - 1)),
            7 => format!("coalesce({}, {})", self.int(d - 1), self.int(d - 1)),
            8 if !self.t2 => format!("length({})", self.text(d - 1)),
            8 if self.f.nullif => format!("nullif({}, {})", self.int(d - 1), self.int(d - 1)),
            9 if self.f.case => format!("CASE WHEN {} THEN {} ELSE {} END", self.bool(d - 1), self.int(d - 1), self.int(d - 1)),
            _ => self.int(d - 1),
        }
    }

    fn float(&mut self, d: u32) -> String {
        if d == 0 || self.rng.random_bool(0.3) {
            return match self.rng.random_range(0..3) {
                0 | 1 => (if self.t2 { "w" } else { "b" }).to_string(),
                _ => {
                    let v = self.pick(&["0.5", "1.5", "2.25", "0.1", "100.0", "-0.5", "-2.5", "3.0"]);
                    if v.starts_with('-') { format!("({v})") } else { v.to_string() }
                }
            };
        }
        match self.rng.random_range(0..8) {
            0..=3 => {
                let op = self.pick(&["+", "-", "*", "/"]);
                format!("({} {op} {})", self.float(d - 1), self.float(d - 1))
            }
            4 => {
                let op = self.pick(&["+", "-", "*", "/"]);
                format!("({} {op} {})", self.float(d - 1), self.int(d - 1))
            }
            5 => format!("(-{})", self.float(d - 1)),
            6 => format!("abs({})", self.float(d - 1)),
            _ => format!("coalesce({}, {})", self.float(d - 1), self.float(d - 1)),
        }
    }

    fn text(&mut self, d: u32) -> String {
        if d == 0 || self.rng.random_bool(0.4) {
            return if self.rng.random_bool(0.6) {
                (if self.t2 { "x" } else { "s" }).to_string()
            } else {
                format!("'{}'", self.pick(&["a", "", "apple", "B", "banana", "zz", "a%", " "]))
            };
        }
        match self.rng.random_range(0..5) {
            0 => format!("lower({})", self.text(d - 1)),
            1 => format!("upper({})", self.text(d - 1)),
            2 => format!("({} || {})", self.text(d - 1), self.text(d - 1)),
            3 => format!("coalesce({}, {})", self.text(d - 1), self.text(d - 1)),
            _ => format!("({} || {})", self.text(d - 1), self.int(d - 1)),
        }
    }

    fn bool(&mut self, d: u32) -> String {
        if d == 0 {
            return if self.t2 { format!("(y > {})", self.int_lit()) } else { "flag".to_string() };
        }
        let cmp = self.pick(&["=", "<>", "<", "<=", ">", ">="]);
        match self.rng.random_range(0..16) {
            0 | 1 => format!("({} {cmp} {})", self.int(d - 1), self.int(d - 1)),
            2 => format!("({} {cmp} {})", self.float(d - 1), self.float(d - 1)),
            3 => format!("({} {cmp} {})", self.int(d - 1), self.float(d - 1)),
            4 => format!("({} {cmp} {})", self.text(d - 1), self.text(d - 1)),
            5 => format!("({} AND {})", self.bool(d - 1), self.bool(d - 1)),
            6 => format!("({} OR {})", self.bool(d - 1), self.bool(d - 1)),
            7 => format!("(NOT {})", self.bool(d - 1)),
            8 => {
                let e = match self.rng.random_range(0..4) {
                    0 => self.int(d - 1),
                    1 => self.float(d - 1),
                    2 => self.text(d - 1),
                    _ => self.bool(d - 1),
                };
                format!("({e} IS {}NULL)", if self.rng.random_bool(0.5) { "NOT " } else { "" })
            }
            9 => {
                let n = self.rng.random_range(1..5);
                let mut items: Vec<String> = (0..n).map(|_| self.int_lit()).collect();
                if self.rng.random_bool(0.2) {
                    items.push("NULL".into());
                }
                let not = if self.rng.random_bool(0.3) { "NOT " } else { "" };
                format!("({} {not}IN ({}))", self.int(d - 1), items.join(", "))
            }
            10 => {
                let not = if self.rng.random_bool(0.3) { "NOT " } else { "" };
                format!("({} {not}BETWEEN {} AND {})", self.int(d - 1), self.int_lit(), self.int_lit())
            }
            11 => {
                let pat = self.pick(&["a%", "%a%", "_p%", "%e", "", "%", "A%", "b_n%", "a\\%b", "%\\_%"]);
                let op = self.pick(&["LIKE", "NOT LIKE", "ILIKE", "LIKE"]);
                format!("({} {op} '{pat}')", self.text(d - 1))
            }
            12 if !self.t2 => format!("(flag = {})", self.pick(&["true", "false"])),
            13 if self.f.case => {
                format!("(CASE WHEN {} THEN {} ELSE {} END)", self.bool(d - 1), self.bool(d - 1), self.bool(d - 1))
            }
            _ => self.bool(d - 1),
        }
    }

    /// Not bool: PostgreSQL has no min/max(boolean) (Meridian has; not compared).
    fn orderable(&mut self, d: u32) -> String {
        match self.rng.random_range(0..3) {
            0 => self.int(d),
            1 => self.float(d),
            _ => self.text(d),
        }
    }

    fn any(&mut self, d: u32) -> String {
        match self.rng.random_range(0..5) {
            0 | 1 => self.int(d),
            2 => self.float(d),
            3 => self.text(d),
            _ => self.bool(d),
        }
    }

    /// A join condition between t1 and t3: key = non-key, key = key, non-key = non-key, or more.
    fn join_on(&mut self) -> String {
        self.pick(&[
            "t1.k = t3.k1",
            "t1.k = t3.id",
            "t1.a = t3.g",
            "t1.k = t3.k1 AND t3.g > 0",
            "t1.a = t3.g OR t1.k = t3.id",
            "t1.s = t3.name",
        ])
        .to_string()
    }

    /// Queries over t1 and t3 (joinable): joins, grouped joins, DISTINCT over CASE/COALESCE/NULLIF,
    /// IN/NOT IN subqueries, UNION/EXCEPT, ORDER BY + LIMIT/OFFSET. Returns the SQL and whether
    /// the ORDER BY fixes the row order.
    fn join_query(&mut self) -> (String, bool) {
        self.t2 = false;
        let d = self.rng.random_range(1..3);
        let kind = self.pick(&["JOIN", "LEFT JOIN", "JOIN", "LEFT JOIN", "RIGHT JOIN", "FULL JOIN"]);
        let mut on = self.join_on();
        // PostgreSQL runs FULL JOIN only on hash/merge-joinable (equality, AND-ed) conditions:
        // 0A000 for `... OR ...`, a PostgreSQL limit not worth comparing.
        while kind == "FULL JOIN" && on.contains(" OR ") {
            on = self.join_on();
        }
        let w = if self.rng.random_bool(0.5) { format!(" WHERE {}", self.bool(d)) } else { String::new() };
        match self.rng.random_range(0..8) {
            0 | 1 => {
                let e = self.any(d);
                let limit = match self.rng.random_range(0..3) {
                    0 => String::new(),
                    1 => format!(" LIMIT {}", self.rng.random_range(0..8)),
                    _ => format!(" LIMIT {} OFFSET {}", self.rng.random_range(1..8), self.rng.random_range(0..6)),
                };
                let dir = self.pick(&["", " DESC"]);
                (format!("SELECT t1.k, t3.id, t3.name, {e} FROM t1 {kind} t3 ON {on}{w} ORDER BY t1.k{dir}, t3.id{dir}{limit}"), true)
            }
            2 => {
                let g = self.pick(&["t3.name", "t1.flag", "t3.g % 3", "t1.a > 0", "coalesce(t3.k1, -1)", "t1.s IS NULL"]);
                let a = self.aggs(d);
                let having = if self.rng.random_bool(0.3) { " HAVING count(*) > 1" } else { "" };
                (format!("SELECT {g}, count(t3.id), sum(t3.g), max(t3.m), {a} FROM t1 {kind} t3 ON {on}{w} GROUP BY {g}{having}"), false)
            }
            3 => {
                let e = match self.rng.random_range(0..4) {
                    0 => format!("CASE WHEN {} THEN t3.name ELSE coalesce(t1.s, 'none') END", self.bool(d)),
                    1 => format!("coalesce(t3.g, t1.a, {})", self.int_lit()),
                    2 => format!("nullif(t3.g, {})", self.int(d)),
                    _ => "nullif(t1.s, t3.name)".to_string(),
                };
                (format!("SELECT DISTINCT {e} FROM t1 {kind} t3 ON {on}{w}"), false)
            }
            4 => {
                let not = self.pick(&["", "NOT "]);
                let col = self.pick(&["k1", "g", "id"]);
                let sw = if self.rng.random_bool(0.5) { format!(" WHERE m > {}", self.pick(&["0", "1", "-1"])) } else { String::new() };
                let lhs = self.pick(&["k", "a", "k + 1", "coalesce(a, 0)"]);
                (format!("SELECT k, a FROM t1 WHERE {lhs} {not}IN (SELECT {col} FROM t3{sw}) ORDER BY k"), true)
            }
            5 => {
                let op = self.pick(&["UNION", "UNION ALL", "EXCEPT", "EXCEPT ALL", "INTERSECT", "INTERSECT ALL"]);
                let (l, r) = if self.rng.random_bool(0.5) { ("a", "g") } else { ("k", "k1") };
                let w2 = if self.rng.random_bool(0.5) { format!(" WHERE id > {}", self.rng.random_range(0..6)) } else { String::new() };
                if self.rng.random_bool(0.5) {
                    (format!("SELECT {l} FROM t1{w} {op} SELECT {r} FROM t3{w2} ORDER BY 1 NULLS FIRST"), true)
                } else {
                    (format!("SELECT {l} FROM t1{w} {op} SELECT {r} FROM t3{w2}"), false)
                }
            }
            6 => {
                let e = self.int(d);
                (
                    format!(
                        "SELECT t3.id, {e} FROM t3 JOIN t1 ON {on} ORDER BY t3.id, t1.k LIMIT {} OFFSET {}",
                        self.rng.random_range(1..10),
                        self.rng.random_range(0..4)
                    ),
                    true,
                )
            }
            _ => {
                let a = self.aggs(d);
                (format!("SELECT count(*), {a} FROM t1 {kind} t3 ON {on}{w}"), false)
            }
        }
    }

    /// One random query and whether its ORDER BY fixes the row order.
    fn query(&mut self) -> (String, bool) {
        self.t2 = self.rng.random_bool(0.2);
        let (table, key) = if self.t2 { ("t2", "x, y") } else { ("t1", "k") };
        let d = self.rng.random_range(1..4);
        let where_ = |g: &mut Gen| if g.rng.random_bool(0.8) { format!(" WHERE {}", g.bool(d)) } else { String::new() };
        match self.rng.random_range(0..10) {
            0..=2 => {
                let n = self.rng.random_range(1..4);
                let exprs: Vec<String> = (0..n).map(|_| self.any(d)).collect();
                let w = where_(self);
                (format!("SELECT {key}, {} FROM {table}{w} ORDER BY {key}", exprs.join(", ")), true)
            }
            3 | 4 => {
                let e = self.any(d);
                let w = where_(self);
                (format!("SELECT {e} FROM {table}{w}"), false)
            }
            5 => {
                let col = if self.t2 { self.pick(&["v", "w", "v"]) } else { self.pick(&["a", "b", "s", "flag"]) };
                let dir = self.pick(&["", " ASC", " DESC"]);
                let nulls = self.pick(&["", "", " NULLS FIRST", " NULLS LAST"]);
                let kdir = self.pick(&["", " DESC"]);
                let keys: Vec<String> = key.split(", ").map(|k| format!("{k}{kdir}")).collect();
                let w = where_(self);
                let limit = match self.rng.random_range(0..4) {
                    0 => String::new(),
                    1 => format!(" LIMIT {}", self.rng.random_range(0..6)),
                    2 => format!(" OFFSET {}", self.rng.random_range(0..6)),
                    _ => format!(" LIMIT {} OFFSET {}", self.rng.random_range(0..6), self.rng.random_range(0..6)),
                };
                (format!("SELECT {key}, {col} FROM {table}{w} ORDER BY {col}{dir}{nulls}, {}{limit}", keys.join(", ")), true)
            }
            6 | 7 => {
                let g = if self.t2 { self.pick(&["x", "y", "v"]).to_string() } else { self.pick(&["flag", "a", "s"]).to_string() };
                let g = if self.rng.random_bool(0.2) { format!("{g} IS NULL") } else { g };
                let aggs = self.aggs(d);
                let w = where_(self);
                let having =
                    if self.rng.random_bool(0.3) { format!(" HAVING count(*) > {}", self.rng.random_range(0..3)) } else { String::new() };
                (format!("SELECT {g}, {aggs} FROM {table}{w} GROUP BY {g}{having}"), false)
            }
            8 => {
                let aggs = self.aggs(d);
                let w = where_(self);
                (format!("SELECT {aggs} FROM {table}{w}"), false)
            }
            _ => {
                let e = self.any(d);
                let w = where_(self);
                (format!("SELECT DISTINCT {e} FROM {table}{w}"), false)
            }
        }
    }

    fn aggs(&mut self, d: u32) -> String {
        let n = self.rng.random_range(1..4);
        (0..n)
            .map(|_| match self.rng.random_range(0..8) {
                0 => "count(*)".to_string(),
                1 => format!("count({})", self.any(d - 1)),
                2 => format!("sum({})", self.int(d - 1)),
                3 => format!("sum({})", self.float(d - 1)),
                4 => format!("min({})", self.orderable(d - 1)),
                5 => format!("max({})", self.orderable(d - 1)),
                6 => format!("avg({})", self.float(d - 1)),
                _ => format!("avg({})", self.int(d - 1)),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meridian_matches_postgres() {
    let _g = serial().await;
    let Some(pg) = pg::Postgres::start() else {
        return;
    };
    let started = Instant::now();
    let c = Cluster::start(3, &[]).await;
    let admin = pg.connect("postgres").await;
    admin.simple_query("CREATE DATABASE diff").await.unwrap();
    let client = pg.connect("diff").await;
    c.must(0, "", "CREATE DATABASE diff").await;
    for sql in SCHEMA.iter().chain(DATA) {
        c.must(0, "diff", sql).await;
        client.simple_query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    let probe = |sql: &'static str| {
        let c = &c;
        async move { matches!(run_meridian(c, 0, sql).await, Out::Rows(_)) }
    };
    let features = Features { case: probe("SELECT CASE WHEN true THEN 1 ELSE 0 END").await, nullif: probe("SELECT nullif(1, 2)").await };
    let seed: u64 = std::env::var("DIFFTEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_240_601);
    let n_gen: usize = std::env::var("DIFFTEST_QUERIES").ok().and_then(|s| s.parse().ok()).unwrap_or(1500);
    eprintln!("difftest: seed {seed} (DIFFTEST_SEED), {n_gen} generated queries, CASE {}, NULLIF {}", features.case, features.nullif);
    let mut g = Gen { rng: StdRng::seed_from_u64(seed), f: features, t2: false };
    let mut corpus: Vec<(String, bool)> = HAND.iter().map(|(s, o)| (s.to_string(), *o)).collect();
    corpus.extend((0..n_gen).map(|_| g.query()));
    let n_join: usize = std::env::var("DIFFTEST_JOIN_QUERIES").ok().and_then(|s| s.parse().ok()).unwrap_or(1200);
    corpus.extend((0..n_join).map(|_| g.join_query()));

    let mut known_hits = vec![0usize; KNOWN.len()];
    let mut new_diffs = Vec::new();
    let (mut both_ok, mut both_err) = (0, 0);
    for (i, (sql, ordered)) in corpus.iter().enumerate() {
        let m = run_meridian(&c, i % c.nodes.len(), sql).await;
        let p = run_pg(&client, sql).await;
        match compare(*ordered, &m, &p) {
            None => match m {
                Out::Rows(_) => both_ok += 1,
                Out::Err(..) => both_err += 1,
            },
            Some(what) => match KNOWN.iter().position(|k| (k.applies)(sql, &m, &p)) {
                Some(k) => known_hits[k] += 1,
                None => new_diffs.push(format!("{sql}\n    {what}\n    meridian: {m:?}\n    postgres: {p:?}")),
            },
        }
    }
    eprintln!(
        "difftest: {} queries ({} hand-written, {n_gen} + {n_join} generated) in {:?}: {both_ok} same rows, {both_err} same error class, \
         {} known differences, {} new",
        corpus.len(),
        HAND.len(),
        started.elapsed(),
        known_hits.iter().sum::<usize>(),
        new_diffs.len()
    );
    for (k, n) in KNOWN.iter().zip(&known_hits) {
        eprintln!("  known difference {:<32} {n:>5} queries: {}", k.name, k.reason);
    }
    if !new_diffs.is_empty() {
        for d in new_diffs.iter().take(60) {
            eprintln!("---- NEW DIFFERENCE ----\n{d}");
        }
        panic!("{} queries differ from PostgreSQL in new ways (first 60 listed above; seed {seed})", new_diffs.len());
    }
}
