//! Column types end to end: range/length/scale enforcement on write, JSON output formats,
//! result type names, casts, UUID/JSONB/INTERVAL, key encodings of new types.

use super::{err, rows, run};
use crate::testing::MemTxn;
use serde_json::json;

#[test]
fn integer_widths_are_range_checked_and_named() {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE i (a SMALLINT PRIMARY KEY, b INTEGER, c BIGINT, f REAL, d DOUBLE PRECISION)");
    run(&mut t, "INSERT INTO i VALUES (1, 2147483647, 9223372036854775807, 1.1, 1.1)");
    let r = run(&mut t, "SELECT * FROM i");
    let tys: Vec<_> = r.columns.iter().map(|c| c.ty.as_str()).collect();
    assert_eq!(tys, ["INT2", "INT4", "INT8", "FLOAT4", "FLOAT8"]);
    assert_eq!(r.rows[0], vec![json!(1), json!(2147483647), json!(9223372036854775807i64), json!(1.1), json!(1.1)]);
    let e = super::run_args(&mut t, "INSERT INTO i (a) VALUES (40000)", vec![]).unwrap_err();
    assert_eq!((e.code(), e.to_string().as_str()), ("22003", "smallint out of range"));
    let e = super::run_args(&mut t, "INSERT INTO i (a, b) VALUES (2, 2147483648)", vec![]).unwrap_err();
    assert_eq!((e.code(), e.to_string().as_str()), ("22003", "integer out of range"));
    assert_eq!(err(&mut t, "UPDATE i SET b = b + 1"), "22003");
    assert_eq!(err(&mut t, "INSERT INTO i (a) VALUES ('abc')"), "22P02");
}

#[test]
fn decimals_are_exact_and_enforce_precision() {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE m (id DECIMAL PRIMARY KEY, amount NUMERIC(6,2))");
    run(&mut t, "INSERT INTO m VALUES (1.5, 10.005), (2, '0.1'), (0.25, NULL)");
    assert_eq!(
        rows(&mut t, "SELECT id, amount FROM m"),
        vec![vec![json!("0.25"), json!(null)], vec![json!("1.5"), json!("10.01")], vec![json!("2"), json!("0.10")]]
    );
    assert_eq!(rows(&mut t, "SELECT sum(amount), min(id) FROM m"), vec![vec![json!("10.11"), json!("0.25")]]);
    assert_eq!(run(&mut t, "SELECT amount FROM m").columns[0].ty, "DECIMAL");
    assert_eq!(err(&mut t, "INSERT INTO m VALUES (3, 10000)"), "22003");
    assert_eq!(rows(&mut t, "SELECT id FROM m WHERE id = 1.50"), vec![vec![json!("1.5")]]);
    assert_eq!(err(&mut t, "INSERT INTO m VALUES (1.50, 1)"), "23505");
    assert_eq!(rows(&mut t, "SELECT 0.1 + 0.2 = 0.3"), vec![vec![json!(true)]]);
}

#[test]
fn strings_have_length_limits() {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE s (k VARCHAR(3) PRIMARY KEY, c CHAR(3), x TEXT)");
    run(&mut t, "INSERT INTO s VALUES ('abc', 'a', 'long text')");
    let e = super::run_args(&mut t, "INSERT INTO s VALUES ('abcd', 'b', '')", vec![]).unwrap_err();
    assert_eq!((e.code(), e.to_string().as_str()), ("22001", "value too long for type character varying(3)"));
    assert_eq!(rows(&mut t, "SELECT c, 'abcdef'::VARCHAR(2) FROM s"), vec![vec![json!("a  "), json!("ab")]]);
}

#[test]
fn temporal_types_round_trip_with_postgres_formats() {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE e (d DATE PRIMARY KEY, ts TIMESTAMP, tz TIMESTAMPTZ, iv INTERVAL)");
    run(&mut t, "INSERT INTO e VALUES ('2024-02-29', '2024-02-29 13:14:15.5', '2024-02-29 13:14:15+02', '1 day 2 hours')");
    run(&mut t, "INSERT INTO e VALUES ('2023-01-01', NULL, NULL, '-90 minutes')");
    let r = run(&mut t, "SELECT d, ts, tz, iv FROM e ORDER BY d DESC");
    assert_eq!(
        r.rows[0],
        vec![json!("2024-02-29"), json!("2024-02-29 13:14:15.5"), json!("2024-02-29T11:14:15Z"), json!("1 day 02:00:00")]
    );
    assert_eq!(r.rows[1][3], json!("-01:30:00"));
    let tys: Vec<_> = r.columns.iter().map(|c| c.ty.as_str()).collect();
    assert_eq!(tys, ["DATE", "TIMESTAMP", "TIMESTAMPTZ", "INTERVAL"]);
    assert_eq!(rows(&mut t, "SELECT count(*) FROM e WHERE d >= '2024-01-01' AND ts < ts + INTERVAL '1 second'"), vec![vec![json!(1)]]);
    assert_eq!(err(&mut t, "CREATE TABLE bad (iv INTERVAL PRIMARY KEY)"), "0A000");
}

#[test]
fn uuid_and_jsonb() {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE docs (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), body JSONB)");
    run(&mut t, r#"INSERT INTO docs (body) VALUES ('{"a": {"b": [1, 2]}, "n": null}'), ('[1]')"#);
    run(&mut t, "INSERT INTO docs VALUES ('123e4567-e89b-12d3-a456-426614174000', '{\"k\": \"v\"}')");
    let r = run(&mut t, "SELECT id, body FROM docs WHERE id = '123e4567-e89b-12d3-a456-426614174000'");
    assert_eq!(r.rows, vec![vec![json!("123e4567-e89b-12d3-a456-426614174000"), json!({"k": "v"})]]);
    assert_eq!(r.columns[0].ty, "UUID");
    assert_eq!(r.columns[1].ty, "JSONB");
    assert_eq!(rows(&mut t, "SELECT count(*) FROM docs"), vec![vec![json!(3)]]);
    assert_eq!(
        rows(&mut t, "SELECT body -> 'a' -> 'b' -> 1, body -> 'a' ->> 'b', body ->> 'n' FROM docs WHERE body -> 'a' IS NOT NULL"),
        vec![vec![json!(2), json!("[1,2]"), json!(null)]]
    );
    assert_eq!(err(&mut t, "INSERT INTO docs VALUES ('not-a-uuid', NULL)"), "22P02");
    assert_eq!(err(&mut t, "CREATE TABLE j (a JSONB PRIMARY KEY)"), "0A000");
}
