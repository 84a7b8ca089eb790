//! EXPLAIN output and streaming behaviour: access methods, join methods, paging and limits.

use super::{err, rows, run, run_args};
use crate::testing::MemTxn;
use crate::{ExecOptions, execute};
use futures::executor::block_on;
use serde_json::json;

fn explain(t: &mut MemTxn, sql: &str) -> Vec<String> {
    let r = run(t, &format!("EXPLAIN {sql}"));
    assert_eq!((r.columns[0].name.as_str(), r.columns[0].ty.as_str()), ("info", "STRING"));
    r.rows.into_iter().map(|r| r[0].as_str().unwrap_or_default().to_string()).collect()
}

fn setup() -> MemTxn {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE a (k INT PRIMARY KEY, v STRING, bk INT)");
    run(&mut t, "CREATE TABLE b (k INT PRIMARY KEY, w STRING)");
    run(&mut t, "INSERT INTO a VALUES (1, 'x', 10), (2, 'y', 20), (3, 'z', 99)");
    run(&mut t, "INSERT INTO b VALUES (10, 'ten'), (20, 'twenty')");
    t
}

#[test]
fn explain_shows_point_span_and_full_scans() {
    let mut t = setup();
    let id = t.tables.get(&("db".to_string(), "a".to_string())).map(|d| d.id).unwrap_or(0);
    let p = explain(&mut t, "SELECT v FROM a WHERE k = 5");
    assert!(p.iter().any(|l| l.contains(&format!("point get /Table/{id}/1/5"))), "{p:?}");
    let p = explain(&mut t, "SELECT v FROM a WHERE k >= 3 AND k < 7");
    assert!(p.iter().any(|l| l.contains(&format!("span scan [/Table/{id}/1/3, /Table/{id}/1/7)"))), "{p:?}");
    let p = explain(&mut t, "SELECT v FROM a WHERE v = 'x' ORDER BY k LIMIT 2");
    assert!(p.iter().any(|l| l.contains(&format!("full scan /Table/{id}"))), "{p:?}");
    assert!(p.iter().any(|l| l.contains("sort")) && p.iter().any(|l| l.contains("limit 2")), "{p:?}");
    let p = explain(&mut t, "SELECT count(*) FROM a WHERE k BETWEEN 1 AND 2");
    assert!(p.iter().any(|l| l.contains("aggregation")) && !p.iter().any(|l| l.contains("full scan")), "{p:?}");
}

#[test]
fn explain_picks_lookup_hash_and_nested_loop_joins() {
    let mut t = setup();
    let p = explain(&mut t, "SELECT a.v, b.w FROM a JOIN b ON b.k = a.bk");
    assert!(p[0..].iter().any(|l| l.contains("lookup join (inner) on b")), "{p:?}");
    let p = explain(&mut t, "SELECT a.v, b.w FROM a JOIN b ON b.w = a.v");
    assert!(p.iter().any(|l| l.contains("hash join")), "{p:?}");
    let p = explain(&mut t, "SELECT * FROM a, b WHERE a.k < b.k");
    assert!(p.iter().any(|l| l.contains("nested loop")), "{p:?}");
    let p = explain(&mut t, "SELECT * FROM a CROSS JOIN b");
    assert!(p.iter().any(|l| l.contains("cross join")), "{p:?}");
    // WHERE conjuncts reach the scans they constrain, even through joins.
    let p = explain(&mut t, "SELECT * FROM a JOIN b ON a.bk = b.k WHERE a.k = 1");
    assert!(p.iter().any(|l| l.contains("point get") && l.contains("scan a")), "{p:?}");
    // The lookup join really does one get per left row and never scans b.
    let (gets, scans) = (t.gets, t.scans);
    assert_eq!(
        rows(&mut t, "SELECT a.k, b.w FROM a JOIN b ON b.k = a.bk ORDER BY a.k"),
        vec![vec![json!(1), json!("ten")], vec![json!(2), json!("twenty")]]
    );
    assert_eq!((t.gets - gets, t.scans - scans), (3, 1));
    assert_eq!(err(&mut t, "EXPLAIN SELECT * FROM nope"), "42P01");
}

#[test]
fn scans_stream_in_pages_and_results_are_bounded() {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE big (k INT PRIMARY KEY, v INT)");
    run(&mut t, "INSERT INTO big SELECT x, x * 2 FROM generate_series(1, 50000) AS g(x)");
    let scans = t.scans;
    assert_eq!(rows(&mut t, "SELECT k FROM big LIMIT 5").len(), 5);
    assert_eq!(t.scans - scans, 1, "LIMIT 5 must fetch a single page");
    let scans = t.scans;
    assert_eq!(rows(&mut t, "SELECT count(*), sum(v) FROM big"), vec![vec![json!(50000), json!(2_500_050_000i64)]]);
    // 50 full pages of 1,000, then one empty page ends the cursor.
    assert_eq!(t.scans - scans, 51, "aggregation streams pages of 1,000");
    let opts = ExecOptions { max_result_rows: 1000, ..ExecOptions::default() };
    let e = block_on(execute(&mut t, "db", &[("SELECT * FROM big".to_string(), vec![])], &opts)).unwrap_err();
    assert_eq!(e.code(), "54000");
    assert!(e.to_string().contains("max_result_rows"), "{e}");
    // A sort buffer over the limit fails the same way; a small result is fine.
    let e = block_on(execute(&mut t, "db", &[("SELECT k FROM big ORDER BY v DESC LIMIT 1".to_string(), vec![])], &opts)).unwrap_err();
    assert_eq!(e.code(), "54000");
    let r = block_on(execute(&mut t, "db", &[("SELECT k FROM big WHERE k > 49990".to_string(), vec![])], &opts)).unwrap();
    assert_eq!(r[0].rows.len(), 10);
    let small = ExecOptions { max_result_bytes: 1000, ..ExecOptions::default() };
    let e = block_on(execute(&mut t, "db", &[("SELECT k FROM big LIMIT 500".to_string(), vec![])], &small)).unwrap_err();
    assert!(e.to_string().contains("max_result_bytes"), "{e}");
    let _ = run_args;
}
