//! End-to-end tests of [`crate::execute`] against the in-memory [`MemTxn`]: statements in, JSON
//! rows and SQLSTATE codes out.

mod exprs;
mod indexes;
mod plans;
mod queries;
mod subqueries;
mod transactions;
mod types;
mod writes;

use crate::testing::MemTxn;
use crate::{ExecOptions, QueryResult, SqlError, execute};
use futures::executor::block_on;
use serde_json::{Value, json};

pub(super) fn run_args(t: &mut MemTxn, sql: &str, args: Vec<Value>) -> Result<QueryResult, SqlError> {
    block_on(execute(t, "db", &[(sql.to_string(), args)], &ExecOptions::default())).map(|mut v| v.remove(0))
}

pub(super) fn run(t: &mut MemTxn, sql: &str) -> QueryResult {
    match run_args(t, sql, vec![]) {
        Ok(r) => r,
        Err(e) => panic!("{sql}: {e} ({})", e.code()),
    }
}

pub(super) fn err(t: &mut MemTxn, sql: &str) -> &'static str {
    match run_args(t, sql, vec![]) {
        Ok(r) => panic!("{sql}: expected an error, got {r:?}"),
        Err(e) => e.code(),
    }
}

pub(super) fn rows(t: &mut MemTxn, sql: &str) -> Vec<Vec<Value>> {
    run(t, sql).rows
}

fn setup() -> MemTxn {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE kv (k INT PRIMARY KEY, v STRING, n FLOAT8 DEFAULT 1.5, ok BOOL NOT NULL DEFAULT true)");
    t
}

#[test]
fn create_insert_select_round_trip() {
    let mut t = setup();
    let r = run(&mut t, "INSERT INTO kv (k, v) VALUES (1, 'one'), (2, NULL), (3, 'three')");
    assert_eq!((r.tag.as_str(), r.rows_affected), ("INSERT", 3));
    let r = run(&mut t, "SELECT * FROM kv");
    let names: Vec<_> = r.columns.iter().map(|c| (c.name.as_str(), c.ty.as_str())).collect();
    assert_eq!(names, [("k", "INT8"), ("v", "STRING"), ("n", "FLOAT8"), ("ok", "BOOL")]);
    assert_eq!(r.rows[0], vec![json!(1), json!("one"), json!(1.5), json!(true)]);
    assert_eq!(r.rows[1], vec![json!(2), Value::Null, json!(1.5), json!(true)]);
    assert_eq!(r.tag, "SELECT");
    assert_eq!(rows(&mut t, "SELECT 1 + 1 AS two"), vec![vec![json!(2)]]);
    let r = run(&mut t, "SHOW TABLES");
    assert_eq!(r.rows, vec![vec![json!("kv")]]);
    assert_eq!(run(&mut t, "SHOW DATABASES").rows, vec![vec![json!("db")]]);
}

#[test]
fn composite_primary_keys_order_rows() {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE c (a STRING, b INT, v INT, PRIMARY KEY (a, b))");
    run(&mut t, "INSERT INTO c VALUES ('b', 1, 0), ('a', 10, 1), ('a', -5, 2), ('ab', 0, 3)");
    let r = rows(&mut t, "SELECT a, b FROM c");
    assert_eq!(r, vec![vec![json!("a"), json!(-5)], vec![json!("a"), json!(10)], vec![json!("ab"), json!(0)], vec![json!("b"), json!(1)]]);
    let before = t.scans;
    assert_eq!(rows(&mut t, "SELECT v FROM c WHERE a = 'a' AND b > 0"), vec![vec![json!(1)]]);
    assert_eq!(t.scans, before + 1);
}

#[test]
fn where_order_by_limit() {
    let mut t = setup();
    run(&mut t, "INSERT INTO kv (k, v) VALUES (1, 'c'), (2, 'a'), (3, 'b'), (4, NULL), (5, 'a')");
    let r = rows(&mut t, "SELECT k FROM kv WHERE v >= 'b' OR v IS NULL ORDER BY k DESC");
    assert_eq!(r, vec![vec![json!(4)], vec![json!(3)], vec![json!(1)]]);
    let r = rows(&mut t, "SELECT v, k FROM kv ORDER BY v, k DESC LIMIT 3");
    assert_eq!(r, vec![vec![json!("a"), json!(5)], vec![json!("a"), json!(2)], vec![json!("b"), json!(3)]]);
    // NULLs sort last ascending, first descending.
    assert_eq!(rows(&mut t, "SELECT k FROM kv ORDER BY v LIMIT 1 OFFSET 4"), vec![vec![json!(4)]]);
    assert_eq!(rows(&mut t, "SELECT k FROM kv ORDER BY v DESC LIMIT 1"), vec![vec![json!(4)]]);
    assert_eq!(rows(&mut t, "SELECT k FROM kv LIMIT 2").len(), 2);
    assert_eq!(rows(&mut t, "SELECT k AS x FROM kv WHERE k IN (2, 3) ORDER BY x DESC"), vec![vec![json!(3)], vec![json!(2)]]);
    assert_eq!(rows(&mut t, "SELECT k FROM kv WHERE v LIKE 'a%' AND k BETWEEN 3 AND 9"), vec![vec![json!(5)]]);
    assert_eq!(rows(&mut t, "SELECT DISTINCT v FROM kv WHERE v IS NOT NULL ORDER BY 1").len(), 3);
    let r = run_args(&mut t, "SELECT v FROM kv WHERE k = $1", vec![json!(3)]).unwrap();
    assert_eq!(r.rows, vec![vec![json!("b")]]);
}

#[test]
fn aggregates_and_group_by() {
    let mut t = setup();
    assert_eq!(
        rows(&mut t, "SELECT count(*), sum(k), min(v), max(k) FROM kv"),
        vec![vec![json!(0), Value::Null, Value::Null, Value::Null]]
    );
    run(&mut t, "INSERT INTO kv (k, v) VALUES (1, 'x'), (2, 'y'), (3, NULL), (4, 'x')");
    let r = run(&mut t, "SELECT count(*), count(v), sum(k), min(v), max(k), avg(k) FROM kv");
    assert_eq!(r.rows, vec![vec![json!(4), json!(3), json!(10), json!("x"), json!(4), json!(2.5)]]);
    let tys: Vec<_> = r.columns.iter().map(|c| c.ty.as_str()).collect();
    assert_eq!(tys, ["INT8", "INT8", "INT8", "STRING", "INT8", "FLOAT8"]);
    assert_eq!(r.columns[0].name, "count");
    let r = rows(&mut t, "SELECT v, count(*) FROM kv GROUP BY v HAVING count(*) > 0 ORDER BY count(*) DESC, v");
    assert_eq!(r, vec![vec![json!("x"), json!(2)], vec![json!("y"), json!(1)], vec![Value::Null, json!(1)]]);
    assert_eq!(err(&mut t, "SELECT k, count(*) FROM kv"), "42803");
    assert_eq!(err(&mut t, "SELECT k FROM kv WHERE count(*) > 1"), "42803");
    assert_eq!(err(&mut t, "SELECT sum(v) FROM kv"), "42883");
}

#[test]
fn update_with_expressions_and_primary_key_moves() {
    let mut t = setup();
    run(&mut t, "INSERT INTO kv (k, v, n) VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 30)");
    let r = run(&mut t, "UPDATE kv SET n = n * 2 + k, v = upper(v) || '!' WHERE k >= 2");
    assert_eq!((r.tag.as_str(), r.rows_affected), ("UPDATE", 2));
    assert_eq!(rows(&mut t, "SELECT v, n FROM kv WHERE k = 3"), vec![vec![json!("C!"), json!(63.0)]]);
    assert_eq!(rows(&mut t, "SELECT v FROM kv WHERE k = 1"), vec![vec![json!("a")]]);
    // Shifting every key by one succeeds (old keys are deleted before new ones are checked).
    assert_eq!(run(&mut t, "UPDATE kv SET k = k + 1").rows_affected, 3);
    assert_eq!(rows(&mut t, "SELECT k FROM kv"), vec![vec![json!(2)], vec![json!(3)], vec![json!(4)]]);
    assert_eq!(err(&mut t, "UPDATE kv SET k = 2 WHERE k = 4"), "23505");
    assert_eq!(err(&mut t, "UPDATE kv SET ok = NULL"), "23502");
    assert_eq!(err(&mut t, "UPDATE kv SET nope = 1"), "42703");
    assert_eq!(err(&mut t, "UPDATE kv SET ok = 5"), "42804");
}

#[test]
fn delete_rows() {
    let mut t = setup();
    run(&mut t, "INSERT INTO kv (k) VALUES (1), (2), (3), (4)");
    let r = run(&mut t, "DELETE FROM kv WHERE k > 2");
    assert_eq!((r.tag.as_str(), r.rows_affected), ("DELETE", 2));
    assert_eq!(run(&mut t, "DELETE FROM kv WHERE k = 9").rows_affected, 0);
    assert_eq!(rows(&mut t, "SELECT k FROM kv"), vec![vec![json!(1)], vec![json!(2)]]);
    assert_eq!(run(&mut t, "DELETE FROM kv").rows_affected, 2);
    assert!(t.data.is_empty());
}

#[test]
fn constraint_violations() {
    let mut t = setup();
    run(&mut t, "INSERT INTO kv (k) VALUES (1)");
    let e = run_args(&mut t, "INSERT INTO kv (k) VALUES (1)", vec![]).unwrap_err();
    assert_eq!(e.code(), "23505");
    assert_eq!(e.to_string(), "duplicate key value violates unique constraint \"kv_pkey\"");
    assert_eq!(err(&mut t, "INSERT INTO kv (k) VALUES (5), (5)"), "23505");
    assert_eq!(err(&mut t, "INSERT INTO kv (k, ok) VALUES (6, NULL)"), "23502");
    assert_eq!(err(&mut t, "INSERT INTO kv (v) VALUES ('x')"), "23502");
    assert_eq!(err(&mut t, "INSERT INTO kv (k, ok) VALUES (7, 'maybe')"), "22P02");
    assert_eq!(err(&mut t, "INSERT INTO kv (k, v) VALUES (7)"), "42601");
    assert_eq!(err(&mut t, "CREATE TABLE nopk (a INT)"), "42P16");
    assert_eq!(err(&mut t, "CREATE TABLE kv (a INT PRIMARY KEY)"), "42P07");
    run(&mut t, "CREATE TABLE IF NOT EXISTS kv (a INT PRIMARY KEY)");
}

#[test]
fn error_codes() {
    let mut t = setup();
    assert_eq!(err(&mut t, "SELECT * FROM nope"), "42P01");
    assert_eq!(err(&mut t, "SELECT nope FROM kv"), "42703");
    assert_eq!(err(&mut t, "SELEC 1"), "42601");
    assert_eq!(err(&mut t, "SELECT 1; SELECT 2"), "42601");
    assert_eq!(err(&mut t, "SELECT 1 / 0"), "22012");
    assert_eq!(err(&mut t, "SELECT 9223372036854775807 * 2"), "22003");
    assert_eq!(err(&mut t, "SELECT * FROM kv JOIN kv ON true"), "42712");
    assert_eq!(err(&mut t, "SELECT * FROM other.kv"), "3D000");
    assert_eq!(run_args(&mut t, "SELECT $1 + $2", vec![json!(1)]).unwrap_err().code(), "08P01");
    assert_eq!(run_args(&mut t, "SELECT 1", vec![json!(1)]).unwrap_err().code(), "08P01");
    let e = block_on(execute(&mut t, "", &[("SELECT * FROM kv".to_string(), vec![])], &ExecOptions::default())).unwrap_err();
    assert_eq!(e.code(), "3D000");
    // Statements stop at the first error.
    let stmts = vec![("INSERT INTO kv (k) VALUES (1)".to_string(), vec![]), ("SELECT 1/0".to_string(), vec![])];
    assert_eq!(block_on(execute(&mut t, "db", &stmts, &ExecOptions::default())).unwrap_err().code(), "22012");
}

#[test]
fn null_three_valued_logic_in_where() {
    let mut t = setup();
    run(&mut t, "INSERT INTO kv (k, v) VALUES (1, 'a'), (2, NULL)");
    assert_eq!(rows(&mut t, "SELECT k FROM kv WHERE v = NULL").len(), 0);
    assert_eq!(rows(&mut t, "SELECT k FROM kv WHERE NOT (v = 'a')").len(), 0);
    assert_eq!(rows(&mut t, "SELECT k FROM kv WHERE v <> 'a' OR k = 2"), vec![vec![json!(2)]]);
    assert_eq!(rows(&mut t, "SELECT k FROM kv WHERE v NOT IN ('b', NULL)").len(), 0);
    assert_eq!(rows(&mut t, "SELECT coalesce(v, 'none') FROM kv WHERE k = 2"), vec![vec![json!("none")]]);
}

#[test]
fn types_and_args_round_trip() {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE ty (id BIGINT PRIMARY KEY, f DOUBLE PRECISION, b BYTEA, ts TIMESTAMPTZ DEFAULT now(), s TEXT)");
    let args = vec![json!(1), json!(2.5), json!("\\x00ff"), json!("2024-05-06T07:08:09Z"), json!("hi")];
    run_args(&mut t, "INSERT INTO ty VALUES ($1, $2, $3, $4, $5)", args).unwrap();
    let r = run(&mut t, "SELECT id, f, b, ts, s, ts::STRING AS t2, length(b) FROM ty WHERE ts > '2024-01-01'");
    assert_eq!(
        r.rows,
        vec![vec![
            json!(1),
            json!(2.5),
            json!("\\x00ff"),
            json!("2024-05-06T07:08:09Z"),
            json!("hi"),
            json!("2024-05-06T07:08:09Z"),
            json!(2)
        ]]
    );
    let tys: Vec<_> = r.columns.iter().map(|c| c.ty.as_str()).collect();
    assert_eq!(tys, ["INT8", "FLOAT8", "BYTES", "TIMESTAMPTZ", "STRING", "STRING", "INT8"]);
    run(&mut t, "INSERT INTO ty (id) VALUES (2)");
    assert_eq!(rows(&mut t, "SELECT count(*) FROM ty WHERE ts IS NOT NULL"), vec![vec![json!(2)]]);
    assert_eq!(run_args(&mut t, "INSERT INTO ty (id) VALUES ($1)", vec![json!(true)]).unwrap_err().code(), "42804");
    assert_eq!(rows(&mut t, "SELECT 'NaN'::FLOAT8"), vec![vec![json!("NaN")]]);
}

#[test]
fn point_lookup_is_one_get_and_no_scan() {
    let mut t = setup();
    for chunk in 0..10 {
        let values: Vec<String> = (0..100).map(|i| format!("({}, 'v{}')", chunk * 100 + i, i)).collect();
        run(&mut t, &format!("INSERT INTO kv (k, v) VALUES {}", values.join(", ")));
    }
    assert_eq!(rows(&mut t, "SELECT count(*) FROM kv"), vec![vec![json!(1000)]]);
    let (gets, scans) = (t.gets, t.scans);
    assert_eq!(rows(&mut t, "SELECT v FROM kv WHERE k = 5"), vec![vec![json!("v5")]]);
    assert_eq!((t.gets - gets, t.scans - scans), (1, 0));
    run(&mut t, "UPDATE kv SET v = 'x' WHERE k = 7");
    run(&mut t, "DELETE FROM kv WHERE k = 8");
    assert_eq!((t.gets - gets, t.scans - scans), (3, 0));
}

#[test]
fn databases_and_drops() {
    let mut t = MemTxn::new();
    let r = block_on(execute(&mut t, "", &[("CREATE DATABASE d1".to_string(), vec![])], &ExecOptions::default())).unwrap();
    assert_eq!(r[0].tag, "CREATE DATABASE");
    // A schema change commits on its own: with other statements in its request it is refused
    // before anything runs (never half applied).
    let stmts = |v: &[&str]| v.iter().map(|s| (s.to_string(), vec![])).collect::<Vec<_>>();
    let ex = |t: &mut MemTxn, v: &[&str]| block_on(execute(t, "d1", &stmts(v), &ExecOptions::default()));
    for mixed in [
        &["CREATE TABLE t (a INT PRIMARY KEY)", "INSERT INTO t VALUES (1)"][..],
        &["CREATE DATABASE IF NOT EXISTS d1", "CREATE TABLE t (a INT PRIMARY KEY)"],
        &["BEGIN", "SELECT 1", "DROP TABLE IF EXISTS t", "COMMIT"],
    ] {
        let e = ex(&mut t, mixed).unwrap_err();
        assert_eq!(e.code(), "0A000", "{mixed:?}: {e}");
        assert!(e.to_string().contains("only statement of its request"), "{e}");
    }
    assert_eq!(ex(&mut t, &["SHOW TABLES"]).unwrap()[0].rows.len(), 0, "nothing of the refused requests ran");
    ex(&mut t, &["CREATE DATABASE IF NOT EXISTS d1"]).unwrap();
    let r = ex(&mut t, &["BEGIN", "CREATE TABLE t (a INT PRIMARY KEY)", "COMMIT"]).unwrap();
    assert_eq!(r[1].tag, "CREATE TABLE");
    ex(&mut t, &["INSERT INTO t VALUES (1)"]).unwrap();
    assert_eq!(ex(&mut t, &["DROP TABLE t"]).unwrap()[0].tag, "DROP TABLE");
    ex(&mut t, &["DROP TABLE IF EXISTS t"]).unwrap();
    assert!(t.data.is_empty());
    let e = block_on(execute(&mut t, "d1", &[("DROP TABLE t".to_string(), vec![])], &ExecOptions::default())).unwrap_err();
    assert_eq!(e.code(), "42P01");
    let r = block_on(execute(&mut t, "", &[("DROP DATABASE d1".to_string(), vec![])], &ExecOptions::default())).unwrap();
    assert_eq!(r[0].tag, "DROP DATABASE");
    let e = block_on(execute(&mut t, "", &[("DROP DATABASE d1".to_string(), vec![])], &ExecOptions::default())).unwrap_err();
    assert_eq!(e.code(), "3D000");
    block_on(execute(&mut t, "", &[("DROP DATABASE IF EXISTS d1".to_string(), vec![])], &ExecOptions::default())).unwrap();
}

#[test]
fn execute_future_is_send() {
    fn assert_send<F: Send>(_: F) {}
    let mut t = MemTxn::new();
    let opts = ExecOptions::default();
    assert_send(execute(&mut t, "", &[], &opts));
}

#[test]
fn insert_without_column_list_fills_leading_columns_and_defaults_the_rest() {
    let mut t = setup();
    run(&mut t, "INSERT INTO kv VALUES (1, 'a')");
    assert_eq!(rows(&mut t, "SELECT k, v, n, ok FROM kv"), vec![vec![json!(1), json!("a"), json!(1.5), json!(true)]]);
    assert_eq!(err(&mut t, "INSERT INTO kv VALUES (2, 'b', 1.0, true, 5)"), "42601");
    assert_eq!(err(&mut t, "INSERT INTO kv (k, v, n) VALUES (3, 'c')"), "42601");
}

#[test]
fn hostile_input_gets_errors_not_panics() {
    let mut t = setup();
    run(&mut t, "INSERT INTO kv (k, v) VALUES (1, 'a')");
    let deep = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
    let long_ident = format!("SELECT {} FROM kv", "x".repeat(100_000));
    let inputs = [
        "",
        ";",
        ";;;",
        "SELECT",
        "SELECT * FROM",
        "SELECT 9223372036854775807 + 1",
        "SELECT -9223372036854775808 - 1",
        "SELECT 99999999999999999999999999",
        "SELECT 1e999",
        "SELECT 'é' || 'ü' || '\u{1F600}'",
        "SELECT * FROM kv WHERE k = 'abc'",
        "SELECT * FROM kv WHERE k = 1.5",
        "SELECT * FROM kv WHERE v > 1",
        "SELECT * FROM kv ORDER BY 99",
        "SELECT * FROM kv LIMIT -1",
        "SELECT * FROM kv LIMIT 'x'",
        "SELECT count(*) FROM kv GROUP BY nope",
        "SELECT sum(v) FROM kv",
        "SELECT max(count(*)) FROM kv",
        "INSERT INTO kv VALUES",
        "INSERT INTO kv VALUES ()",
        "INSERT INTO kv (k, k) VALUES (1, 2)",
        "INSERT INTO kv (nope) VALUES (1)",
        "UPDATE kv SET nope = 1",
        "UPDATE kv SET k = NULL WHERE k = 1",
        "DELETE FROM kv WHERE",
        "CREATE TABLE x ()",
        "CREATE TABLE x (a INT PRIMARY KEY, a INT)",
        "CREATE TABLE x (a NOTATYPE PRIMARY KEY)",
        "CREATE TABLE x (a INT PRIMARY KEY, PRIMARY KEY (a))",
        "DROP TABLE",
        "SELECT $0",
        "SELECT $99999999999",
        "SELECT CAST('x' AS INT)",
        "SELECT CAST(1 AS NOTATYPE)",
        "SELECT 1 % 0",
        "SELECT abs(-9223372036854775808)",
        "SELECT -(-9223372036854775808)",
        "SELECT lower()",
        "SELECT nosuchfunction(1)",
        "BEGIN; COMMIT",
        "ROLLBACK",
        "SAVEPOINT x",
        "BEGIN ISOLATION LEVEL SNAPSHOT",
        "SELECT (SELECT k) FROM kv",
        "SELECT (SELECT kv.k, kv.v) FROM kv",
        "SELECT k FROM kv WHERE k = ANY (SELECT k FROM kv k2 WHERE k2.v = kv.v)",
        "SELECT k FROM kv WHERE k = ANY (SELECT 'x')",
        "SELECT k FROM kv WHERE k ~ ANY (SELECT v FROM kv)",
        "SELECT * FROM kv WHERE EXISTS (SELECT 1 FROM generate_series(1, kv.k) g)",
        "SELECT * FROM kv WHERE EXISTS (SELECT 1 FROM generate_series(1, (SELECT kv.k)) g)",
        "SELECT * FROM kv WHERE EXISTS (SELECT 1 FROM generate_series(kv.v, 1) g)",
        "SELECT (SELECT 1 FROM kv k2 LIMIT kv.k) FROM kv",
        "SELECT * FROM kv LEFT JOIN kv k2 ON EXISTS (SELECT kv.k)",
        "SELECT k FROM kv GROUP BY k HAVING (SELECT v) IS NULL",
        "SELECT (SELECT count(kv.v)) FROM kv",
        "SELECT (SELECT (SELECT (SELECT kv.k + k2.k) FROM kv k3) FROM kv k2) FROM kv",
        "UPDATE kv SET v = (SELECT v FROM kv k2 WHERE k2.k = kv.k)",
        "DELETE FROM kv WHERE k IN (SELECT k2.k FROM kv k2 WHERE k2.v = kv.v AND k2.k <> kv.k)",
        "\0\0\0",
        &deep,
        &long_ident,
    ];
    for sql in inputs {
        // Ok or a coded error are both fine; a panic fails the test.
        if let Err(e) = run_args(&mut t, sql, vec![]) {
            assert_eq!(e.code().len(), 5, "{sql:.60}: {e}");
            assert!(!e.code().starts_with("XX"), "client input must not cause an internal error: {sql:.60}: {e}");
        }
    }
    // The table is intact afterwards.
    assert_eq!(rows(&mut t, "SELECT k, v FROM kv"), vec![vec![json!(1), json!("a")]]);
}

#[test]
fn show_ranges_lists_the_ranges_of_a_table() {
    let mut t = setup();
    run(&mut t, "CREATE TABLE r (k INT PRIMARY KEY, v TEXT)");
    let before = rows(&mut t, "SHOW RANGES FROM TABLE r");
    assert_eq!(
        before,
        vec![vec![json!("/Min"), json!("/Max"), json!(1), json!(0), json!(1), json!("region=mem"), json!([1]), json!(["region=mem"])]]
    );
    run(&mut t, "INSERT INTO r VALUES (1, 'one'), (2, 'two')");
    let after = rows(&mut t, "show ranges from table r");
    assert!(after[0][3].as_u64().unwrap() > 0, "the size counts the rows: {after:?}");
    assert_eq!(err(&mut t, "SHOW RANGES FROM TABLE nope"), "42P01");
    assert_eq!(err(&mut t, "SHOW RANGES"), "0A000");
    let r = run(&mut t, "SHOW RANGES FROM TABLE r");
    let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["start_key", "end_key", "range_id", "range_size", "lease_holder", "lease_holder_locality", "replicas", "replica_localities"]
    );
}

#[test]
fn split_at_cuts_the_table_span_at_primary_keys() {
    let mut t = setup();
    run(&mut t, "INSERT INTO kv (k, v) VALUES (1, 'a'), (5, 'b'), (9, 'c')");
    let id = t.tables.values().find(|d| d.name == "kv").unwrap().id;
    let r = run(&mut t, "ALTER TABLE kv SPLIT AT VALUES (5), (3)");
    assert_eq!(r.tag, "SPLIT");
    assert_eq!(r.rows, vec![vec![json!(format!("/Table/{id}/1/5")), json!("[5]")], vec![json!(format!("/Table/{id}/1/3")), json!("[3]")]]);
    let ranges = rows(&mut t, "SHOW RANGES FROM TABLE kv");
    let spans: Vec<(Value, Value)> = ranges.iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    let key = |k: i64| json!(format!("/Table/{id}/1/{k}"));
    assert_eq!(spans, vec![(json!("/Min"), key(3)), (key(3), key(5)), (key(5), json!("/Max"))]);
    let sizes: Vec<u64> = ranges.iter().map(|r| r[3].as_u64().unwrap()).collect();
    assert!(sizes[0] > 0 && sizes[1] == 0 && sizes[2] > sizes[0], "one row, none, two rows: {sizes:?}");
    // Split points from a query, cast to the key's type; an existing boundary is fine.
    assert_eq!(run(&mut t, "alter table kv split at select g::TEXT::INT8 from generate_series(5, 7) as g").rows.len(), 3);
    assert_eq!(rows(&mut t, "SHOW RANGES FROM TABLE kv").len(), 5);
    assert_eq!(rows(&mut t, "SELECT count(*) FROM kv"), vec![vec![json!(3)]], "rows are untouched");
    for (sql, code) in [
        ("ALTER TABLE kv SPLIT AT VALUES (1, 2)", "42601"),
        ("ALTER TABLE kv SPLIT AT VALUES (NULL)", "22004"),
        ("ALTER TABLE kv SPLIT AT VALUES ('x')", "22P02"),
        ("ALTER TABLE nope SPLIT AT VALUES (1)", "42P01"),
        ("ALTER TABLE kv SPLIT AT", "42601"),
        ("ALTER TABLE kv SPLIT AT DELETE FROM kv", "42601"),
    ] {
        assert_eq!(err(&mut t, sql), code, "{sql}");
    }
    let before = t.splits.len();
    let stmts = vec![("ALTER TABLE kv SPLIT AT VALUES (8)".to_string(), vec![]), ("SELECT 1".to_string(), vec![])];
    let e = block_on(execute(&mut t, "db", &stmts, &ExecOptions::default())).unwrap_err();
    assert_eq!(e.code(), "0A000");
    assert_eq!(t.splits.len(), before, "the refused request split nothing");
}

#[test]
fn unsplit_at_names_the_same_boundaries_as_split_at() {
    let mut t = setup();
    run(&mut t, "ALTER TABLE kv SPLIT AT VALUES (3), (6)");
    let r = run(&mut t, "alter table kv unsplit at values (6)");
    assert_eq!((r.tag.as_str(), r.rows.len()), ("UNSPLIT", 1));
    assert_eq!(t.unsplit.len(), 1);
    assert!(t.splits.contains(t.unsplit.first().unwrap()), "the key of the boundary SPLIT AT made");
    assert_eq!(err(&mut t, "ALTER TABLE kv UNSPLIT AT VALUES (4)"), "22023", "not a boundary");
    assert_eq!(err(&mut t, "ALTER TABLE kv UNSPLIT AT VALUES (1, 2)"), "42601");
    assert_eq!(rows(&mut t, "SHOW RANGES FROM TABLE kv").len(), 3, "an unsplit boundary stays until a merge");
}

#[test]
fn alter_index_split_at_cuts_the_table_span_at_index_entries() {
    let mut t = setup();
    run(&mut t, "CREATE TABLE people (id INT8 PRIMARY KEY, name STRING, age INT8)");
    run(&mut t, "CREATE INDEX by_name ON people (name)");
    run(&mut t, "CREATE UNIQUE INDEX by_age ON people (age DESC)");
    run(&mut t, "INSERT INTO people VALUES (1, 'ann', 30), (2, 'bob', 40), (3, NULL, 50), (4, 'zed', NULL)");
    let table = t.tables.values().find(|d| d.name == "people").unwrap().clone();
    let by_name = table.indexes.iter().find(|i| i.name == "by_name").unwrap().id;
    let by_age = table.indexes.iter().find(|i| i.name == "by_age").unwrap().id;
    let r = run(&mut t, "ALTER INDEX people@by_name SPLIT AT VALUES ('m'), (NULL)");
    assert_eq!(r.tag, "SPLIT");
    assert_eq!(
        r.rows,
        vec![
            vec![json!(format!("/Table/{}/{by_name}/\"m\"", table.id)), json!("[m]")],
            vec![json!(format!("/Table/{}/{by_name}/NULL", table.id)), json!("[NULL]")],
        ]
    );
    run(&mut t, "ALTER INDEX db.people@by_age SPLIT AT VALUES (35)");
    // Each split key is an entry prefix encoded like the entries: 'bob' sorts after 'm' only if
    // the boundary is where the entry of 'bob' would be, and DESC inverts the order of ages.
    let ranges = rows(&mut t, "SHOW RANGES FROM TABLE people");
    let starts: Vec<String> = ranges.iter().map(|r| r[0].as_str().unwrap().to_string()).collect();
    assert_eq!(starts.len(), 4, "{starts:?}");
    assert!(starts.contains(&format!("/Table/{}/{by_age}/35", table.id)), "{starts:?}");
    let entry = |row: &[crate::datum::Datum], idx: u32| {
        crate::index::entry(&table, table.indexes.iter().find(|i| i.id == idx).unwrap(), row).unwrap().unwrap().0
    };
    use crate::datum::Datum;
    let m = t.splits.iter().find(|k| k.starts_with(&meridian_types::keys::index_prefix(table.id, by_name))).unwrap().clone();
    let row = |name: Option<&str>, age: i64| vec![Datum::Int(9), name.map_or(Datum::Null, |n| Datum::String(n.into())), Datum::Int(age)];
    assert!(entry(&row(Some("bob"), 1), by_name) < m && m < entry(&row(Some("zed"), 1), by_name));
    let a35 = t.splits.iter().find(|k| k.starts_with(&meridian_types::keys::index_prefix(table.id, by_age))).unwrap().clone();
    assert!(entry(&row(None, 40), by_age) < a35 && a35 < entry(&row(None, 30), by_age), "DESC: 40 sorts before 35, 30 after");
    assert_eq!(rows(&mut t, "SELECT count(*) FROM people WHERE name > 'b'"), vec![vec![json!(2)]], "the index still answers");
    for (sql, code) in [
        ("ALTER INDEX people@nope SPLIT AT VALUES ('x')", "42704"),
        ("ALTER INDEX people@by_name SPLIT AT VALUES ('a', 1, 2)", "42601"),
        ("ALTER INDEX people@by_age SPLIT AT VALUES (NULL)", "22004"),
        ("ALTER INDEX people@by_age SPLIT AT VALUES ('old')", "22P02"),
        ("ALTER INDEX nope@by_name SPLIT AT VALUES ('x')", "42P01"),
    ] {
        assert_eq!(err(&mut t, sql), code, "{sql}");
    }
}

#[test]
fn configure_zone_sets_range_sizes_of_a_table_or_database() {
    let mut t = setup();
    let id = t.tables.values().find(|d| d.name == "kv").unwrap().id;
    let r = run(&mut t, "ALTER TABLE kv CONFIGURE ZONE USING range_max_bytes = 262144, range_min_bytes = 1024");
    assert_eq!(r.tag, "CONFIGURE ZONE");
    let z = t.zones[&(id, String::new())];
    assert_eq!((z.range_max_bytes(), z.range_min_bytes()), (262144, 1024));
    // Settings not named keep their value.
    run(&mut t, "alter table db.kv configure zone using range_max_bytes = 1048576");
    assert_eq!(t.zones[&(id, String::new())].range_min_bytes, Some(1024));
    run(&mut t, "ALTER DATABASE db CONFIGURE ZONE USING range_max_bytes = 65536");
    assert_eq!(t.zones[&(0, "db".to_string())].range_max_bytes, Some(65536));
    for (sql, code) in [
        ("ALTER TABLE kv CONFIGURE ZONE USING range_max_bytes = 100", "22023"),
        ("ALTER TABLE kv CONFIGURE ZONE USING range_min_bytes = 2000000", "22023"),
        ("ALTER TABLE kv CONFIGURE ZONE USING num_replicas = 5", "0A000"),
        ("ALTER TABLE kv CONFIGURE ZONE USING range_max_bytes", "42601"),
        ("ALTER TABLE kv CONFIGURE ZONE USING range_max_bytes = 'big'", "42601"),
        ("ALTER TABLE nope CONFIGURE ZONE USING range_max_bytes = 65536", "42P01"),
        ("ALTER DATABASE nope CONFIGURE ZONE USING range_max_bytes = 65536", "3D000"),
    ] {
        assert_eq!(err(&mut t, sql), code, "{sql}");
    }
    assert_eq!(t.zones[&(id, String::new())].range_max_bytes, Some(1048576), "refused changes change nothing");
}
