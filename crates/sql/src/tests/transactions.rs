//! Transaction control inside one request (BEGIN first, COMMIT last, everything else refused
//! before any statement runs), and bulk INSERT ... SELECT.

use super::{rows, run};
use crate::testing::MemTxn;
use crate::{ExecOptions, QueryResult, SqlError, execute};
use futures::executor::block_on;
use serde_json::json;

fn request(t: &mut MemTxn, stmts: &[&str]) -> Result<Vec<QueryResult>, SqlError> {
    let stmts: Vec<(String, Vec<serde_json::Value>)> = stmts.iter().map(|s| (s.to_string(), vec![])).collect();
    block_on(execute(t, "db", &stmts, &ExecOptions::default()))
}

fn setup() -> MemTxn {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE t (k INT8 PRIMARY KEY, v INT8)");
    t
}

#[test]
fn begin_first_and_commit_last_are_no_ops() {
    let mut t = setup();
    let r = request(&mut t, &["BEGIN", "INSERT INTO t VALUES (1, 1)", "SELECT count(*) FROM t", "COMMIT"]).unwrap();
    let tags: Vec<_> = r.iter().map(|r| r.tag.as_str()).collect();
    assert_eq!(tags, ["BEGIN", "INSERT", "SELECT", "COMMIT"]);
    assert!(r[0].rows.is_empty() && r[0].columns.is_empty() && r[3].rows.is_empty());
    assert_eq!(r[2].rows, vec![vec![json!(1)]]);
    for (begin, end) in [
        ("START TRANSACTION", "END"),
        ("BEGIN TRANSACTION ISOLATION LEVEL SERIALIZABLE", "COMMIT TRANSACTION"),
        ("BEGIN ISOLATION LEVEL READ COMMITTED", "COMMIT"),
        ("START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ WRITE", "END TRANSACTION"),
        ("BEGIN WORK", "COMMIT WORK"),
    ] {
        let r = request(&mut t, &[begin, "UPDATE t SET v = v + 1", end]).unwrap();
        assert_eq!((r[0].tag.as_str(), r[2].tag.as_str()), ("BEGIN", "COMMIT"), "{begin}");
    }
    assert_eq!(rows(&mut t, "SELECT v FROM t"), vec![vec![json!(6)]]);
    // Alone, or only one of the two: still one transaction per request.
    assert_eq!(request(&mut t, &["BEGIN"]).unwrap()[0].tag, "BEGIN");
    assert_eq!(request(&mut t, &["COMMIT"]).unwrap()[0].tag, "COMMIT");
    assert_eq!(request(&mut t, &["INSERT INTO t VALUES (2, 0)", "COMMIT"]).unwrap().len(), 2);
    assert_eq!(request(&mut t, &["BEGIN", "INSERT INTO t VALUES (3, 0)"]).unwrap().len(), 2);
    assert_eq!(rows(&mut t, "SELECT count(*) FROM t"), vec![vec![json!(3)]]);
}

#[test]
fn misplaced_control_statements_are_refused_before_anything_runs() {
    let mut t = setup();
    let refused: &[&[&str]] = &[
        &["INSERT INTO t VALUES (1, 1)", "BEGIN", "COMMIT"],
        &["BEGIN", "INSERT INTO t VALUES (1, 1)", "BEGIN", "COMMIT"],
        &["BEGIN", "INSERT INTO t VALUES (1, 1)", "COMMIT", "BEGIN", "INSERT INTO t VALUES (2, 2)", "COMMIT"],
        &["INSERT INTO t VALUES (1, 1)", "COMMIT", "SELECT 1"],
        &["BEGIN", "INSERT INTO t VALUES (1, 1)", "ROLLBACK"],
        &["INSERT INTO t VALUES (1, 1)", "ROLLBACK"],
        &["BEGIN", "INSERT INTO t VALUES (1, 1)", "SAVEPOINT s", "COMMIT"],
        &["BEGIN", "INSERT INTO t VALUES (1, 1)", "RELEASE SAVEPOINT s", "COMMIT"],
        &["BEGIN", "INSERT INTO t VALUES (1, 1)", "ROLLBACK TO SAVEPOINT s", "COMMIT"],
        &["INSERT INTO t VALUES (1, 1)", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"],
        &["INSERT INTO t VALUES (1, 1)", "COMMIT AND CHAIN"],
    ];
    for stmts in refused {
        let e = request(&mut t, stmts).unwrap_err();
        assert_eq!(e.code(), "0A000", "{stmts:?}: {e}");
        assert!(t.data.is_empty(), "{stmts:?} ran a statement");
    }
    let e = request(&mut t, &["BEGIN", "INSERT INTO t VALUES (1, 1)", "ROLLBACK"]).unwrap_err();
    assert!(e.to_string().starts_with("ROLLBACK is not supported"), "{e}");
    // READ ONLY: a write anywhere in the request fails it before anything runs.
    let e = request(&mut t, &["BEGIN READ ONLY", "SELECT 1", "INSERT INTO t VALUES (1, 1)", "COMMIT"]).unwrap_err();
    assert_eq!((e.code(), e.to_string().as_str()), ("25006", "cannot execute INSERT INTO in a read-only transaction"));
    assert!(t.data.is_empty());
    assert_eq!(
        request(&mut t, &["BEGIN TRANSACTION READ ONLY", "SELECT count(*) FROM t", "COMMIT"]).unwrap()[1].rows,
        vec![vec![json!(0)]]
    );
    // Every entry is parsed first: a syntax error in a later entry runs nothing.
    assert_eq!(request(&mut t, &["INSERT INTO t VALUES (1, 1)", "SELEC 1"]).unwrap_err().code(), "42601");
    assert!(t.data.is_empty());
}

#[test]
fn bulk_insert_select_from_generate_series_and_tables() {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE b (k INT8 PRIMARY KEY, d INT8, s TEXT)");
    let r = run(&mut t, "INSERT INTO b SELECT g, g * 2, 'x' || g FROM generate_series(1, 20000) AS g");
    assert_eq!((r.tag.as_str(), r.rows_affected), ("INSERT", 20000));
    // A plain INSERT reads nothing first: its primary-key checks ride on its writes.
    assert_eq!((t.prefetches, t.prefetched_keys), (0, 0));
    assert_eq!(
        rows(&mut t, "SELECT count(*), sum(d), max(s), min(k) FROM b"),
        vec![vec![json!(20000), json!(400_020_000), json!("x9999"), json!(1)]]
    );
    run(&mut t, "CREATE TABLE c (k INT8 PRIMARY KEY, d INT8, s TEXT)");
    let r = run(&mut t, "INSERT INTO c SELECT * FROM b WHERE k % 1000 = 0 RETURNING k, s");
    assert_eq!((r.rows_affected, r.rows[0].clone()), (20, vec![json!(1000), json!("x1000")]));
    let r = run(&mut t, "INSERT INTO c (k, d) SELECT k, 0 FROM b WHERE k % 500 = 0 ON CONFLICT (k) DO NOTHING RETURNING k");
    assert_eq!(r.rows_affected, 20);
    // Conflict handling reads the existing rows: their keys are named to the TxnClient at once.
    assert_eq!((t.prefetches, t.prefetched_keys), (1, 40));
    let r = run(
        &mut t,
        "INSERT INTO c SELECT k, -d, s FROM b WHERE k <= 3000 AND k % 1000 = 0 ON CONFLICT (k) DO UPDATE SET d = excluded.d RETURNING d",
    );
    assert_eq!(r.rows, vec![vec![json!(-2000)], vec![json!(-4000)], vec![json!(-6000)]]);
    assert_eq!(rows(&mut t, "SELECT count(*), sum(d) FROM c WHERE d < 0"), vec![vec![json!(3), json!(-12000)]]);
    // The same table as source and target reads the source first.
    assert_eq!(run(&mut t, "INSERT INTO c SELECT k + 100000, d, s FROM c").rows_affected, 40);
    assert_eq!(rows(&mut t, "SELECT count(*) FROM c"), vec![vec![json!(80)]]);
    assert_eq!(super::err(&mut t, "INSERT INTO c SELECT k, d, s, 1 FROM b"), "42601");
    assert_eq!(super::err(&mut t, "INSERT INTO c SELECT k FROM b WHERE k = 1000"), "23505");
    // Errors still come in row order: the conflict of the first row before the bad second row.
    run(&mut t, "CREATE TABLE nn (k INT8 PRIMARY KEY, v INT8 NOT NULL)");
    run(&mut t, "INSERT INTO nn VALUES (1, 1)");
    assert_eq!(super::err(&mut t, "INSERT INTO nn VALUES (1, 1), (2, NULL)"), "23505");
    assert_eq!(super::err(&mut t, "INSERT INTO nn VALUES (2, NULL), (1, 1)"), "23502");
    assert_eq!(super::err(&mut t, "INSERT INTO nn VALUES (3, 'x'), (1, 1)"), "22P02");
    assert_eq!(rows(&mut t, "SELECT count(*) FROM nn"), vec![vec![json!(1)]]);
}
