//! Secondary indexes: maintenance under every write kind, backfill, unique violations, DROP
//! INDEX, plans (EXPLAIN), and results that are the same with and without the index.

use super::{err, rows, run, run_args};
use crate::catalog::{IndexState, TableDesc};
use crate::encoding::{decode_row, rows_prefix};
use crate::index;
use crate::testing::MemTxn;
use meridian_types::keys;
use serde_json::{Value, json};
use std::collections::BTreeMap;

fn desc(t: &MemTxn, name: &str) -> TableDesc {
    t.tables.get(&("db".to_string(), name.to_string())).cloned().expect("table")
}

/// Every index of `table` holds exactly the entries its rows call for.
fn check_indexes(t: &MemTxn, table: &str) {
    let d = desc(t, table);
    let p = rows_prefix(&d);
    let rows: Vec<_> = t.data.range(p.clone()..keys::prefix_end(&p)).map(|(_, v)| decode_row(&d, v).unwrap()).collect();
    for idx in &d.indexes {
        let mut want = BTreeMap::new();
        for r in &rows {
            if let Some((k, v)) = index::entry(&d, idx, r).unwrap() {
                assert!(want.insert(k, v).is_none(), "duplicate entry in {}", idx.name);
            }
        }
        let ip = keys::index_prefix(d.id, idx.id);
        let have: BTreeMap<_, _> = t.data.range(ip.clone()..keys::prefix_end(&ip)).map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(have, want, "entries of {}", idx.name);
    }
    // Nothing under index ids the descriptor does not have.
    let (start, end) = keys::table_span(d.id);
    for k in t.data.range(start..end).map(|(k, _)| k) {
        let id = u32::from_be_bytes(k[9..13].try_into().unwrap());
        // 0 is the schema fence.
        assert!(id <= 1 || d.indexes.iter().any(|i| i.id == id), "stray entry of index {id}");
    }
}

fn explain(t: &mut MemTxn, sql: &str) -> String {
    run(t, &format!("EXPLAIN {sql}")).rows.iter().map(|r| r[0].as_str().unwrap_or_default().to_string()).collect::<Vec<_>>().join("\n")
}

fn setup() -> MemTxn {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE t (k INT PRIMARY KEY, a INT, b STRING, c FLOAT8)");
    run(&mut t, "INSERT INTO t SELECT g, g % 7, 'b' || (g % 5)::STRING, g * 1.5 FROM generate_series(1, 300) AS g");
    run(&mut t, "INSERT INTO t VALUES (1000, NULL, NULL, NULL), (1001, NULL, 'x', 0)");
    t
}

const QUERIES: &[&str] = &[
    "SELECT k FROM t WHERE a = 3 ORDER BY k",
    "SELECT k, b FROM t WHERE a = 3 AND b = 'b2' ORDER BY k",
    "SELECT k FROM t WHERE a > 4 ORDER BY k",
    "SELECT k FROM t WHERE a BETWEEN 2 AND 3 AND k < 50 ORDER BY k",
    "SELECT k FROM t WHERE a IN (1, 5, NULL) ORDER BY k",
    "SELECT k FROM t WHERE a IS NULL ORDER BY k",
    "SELECT a, k FROM t ORDER BY a, k LIMIT 12",
    "SELECT a, k FROM t ORDER BY a DESC, k DESC LIMIT 7",
    "SELECT a, k FROM t WHERE a < 2 ORDER BY a LIMIT 5 OFFSET 3",
    "SELECT count(*), sum(k) FROM t WHERE a = 6",
    "SELECT a, count(*) FROM t WHERE a >= 0 GROUP BY a ORDER BY a",
    "SELECT k FROM t WHERE a = 3 AND c > 100 ORDER BY k",
    "SELECT t.k, u.k FROM t JOIN t AS u ON u.a = t.a WHERE t.k = 5 ORDER BY 2",
    "SELECT DISTINCT a FROM t WHERE a < 3 ORDER BY a",
    "SELECT a, b, k FROM t WHERE a IN (2, 3) AND b > 'b1' ORDER BY k",
    "SELECT a, b, k FROM t WHERE a = 4 AND b BETWEEN 'b1' AND 'b3' ORDER BY b, k",
    "SELECT a, b FROM t WHERE a < 3 ORDER BY a DESC, b, k LIMIT 10",
    "SELECT a, b, k FROM t ORDER BY a DESC, b, k LIMIT 5",
    "SELECT a, b, k FROM t WHERE a IN (1, 2) ORDER BY a DESC, b, k LIMIT 9",
    "SELECT count(*) FROM t WHERE a = 1 AND b IS NULL",
    "SELECT k FROM t WHERE a IN (SELECT a FROM t WHERE k < 3) ORDER BY k LIMIT 4",
];

#[test]
fn results_are_the_same_with_and_without_indexes() {
    let mut t = setup();
    let before: Vec<_> = QUERIES.iter().map(|q| rows(&mut t, q)).collect();
    run(&mut t, "CREATE INDEX t_a ON t (a)");
    run(&mut t, "CREATE INDEX t_ab ON t (a DESC, b)");
    check_indexes(&t, "t");
    for (q, want) in QUERIES.iter().zip(&before) {
        assert_eq!(&rows(&mut t, q), want, "{q}");
    }
    assert!(explain(&mut t, QUERIES[0]).contains("scan t@t_a: index scan"), "{}", explain(&mut t, QUERIES[0]));
    assert!(explain(&mut t, QUERIES[1]).contains("scan t@t_ab"), "{}", explain(&mut t, QUERIES[1]));
    for q in &QUERIES[17..19] {
        let p = explain(&mut t, q);
        assert!(p.contains("t@t_ab") && !p.contains("sort"), "{q}: {p}");
    }
}

#[test]
fn backfill_walks_delete_only_then_write_only_then_public() {
    let mut t = setup();
    let commits = t.commits;
    run(&mut t, "CREATE INDEX ON t (b)");
    let d = desc(&t, "t");
    let ix = d.indexes.iter().find(|i| i.name == "t_b_idx").expect("default name");
    assert_eq!((ix.state, ix.standalone, ix.unique), (IndexState::Public, true, false));
    let states: Vec<_> = t.schema_history.iter().flat_map(|d| d.indexes.iter().map(|i| i.state)).collect();
    assert_eq!(states, [IndexState::DeleteOnly, IndexState::WriteOnly]);
    // One flush, a schema fence after each wait, then two chunks of 256 rows.
    assert_eq!(t.commits - commits, 5);
    assert!(t.data.contains_key(&index::schema_fence_key(d.id)));
    check_indexes(&t, "t");
    run(&mut t, "CREATE INDEX ON t (b)");
    assert!(desc(&t, "t").indexes.iter().any(|i| i.name == "t_b_idx1"));
}

#[test]
fn every_write_kind_keeps_indexes_in_step() {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE w (k INT PRIMARY KEY, a INT, b STRING UNIQUE, n INT DEFAULT 0)");
    run(&mut t, "CREATE INDEX w_a ON w (a)");
    run(&mut t, "CREATE UNIQUE INDEX w_an ON w (a DESC, n)");
    let steps = [
        "INSERT INTO w VALUES (1, 10, 'x', 1), (2, 20, 'y', 2), (3, NULL, NULL, 3), (4, 10, 'z', 4)",
        "UPDATE w SET a = a + 1 WHERE a >= 10",
        "UPDATE w SET n = n + 100",
        "UPDATE w SET b = 'q' WHERE k = 3",
        "UPDATE w SET k = k + 10 WHERE k <= 2",
        "UPSERT INTO w VALUES (11, 5, 'x2', 7), (50, 6, 'new', 8)",
        "INSERT INTO w VALUES (50, 1, 'dup', 9) ON CONFLICT (k) DO UPDATE SET a = excluded.a, b = excluded.b",
        "INSERT INTO w VALUES (60, 1, 'dup', 9) ON CONFLICT (b) DO UPDATE SET a = 77",
        "INSERT INTO w VALUES (61, 2, 'q', 9) ON CONFLICT DO NOTHING",
        "DELETE FROM w WHERE a = 11",
        "UPDATE w SET a = NULL WHERE k = 12",
        "DELETE FROM w WHERE k = 3 RETURNING k",
    ];
    for s in steps {
        run(&mut t, s);
        check_indexes(&t, "w");
    }
    assert_eq!(
        rows(&mut t, "SELECT k, a, b, n FROM w ORDER BY k"),
        vec![
            vec![json!(11), json!(5), json!("x2"), json!(7)],
            vec![json!(12), Value::Null, json!("y"), json!(102)],
            vec![json!(50), json!(77), json!("dup"), json!(8)]
        ]
    );
    // Through the indexes.
    assert_eq!(rows(&mut t, "SELECT k FROM w WHERE a = 77"), vec![vec![json!(50)]]);
    assert_eq!(rows(&mut t, "SELECT k FROM w WHERE a IS NULL"), vec![vec![json!(12)]]);
}

#[test]
fn an_update_found_through_an_index_moves_each_row_once() {
    let mut t = setup();
    run(&mut t, "CREATE INDEX t_a ON t (a)");
    assert!(explain(&mut t, "SELECT k FROM t WHERE a >= 5").contains("t@t_a"));
    let n = run(&mut t, "UPDATE t SET a = a + 1 WHERE a >= 5").rows_affected;
    assert_eq!(n, rows(&mut t, "SELECT count(*) FROM t WHERE a >= 6")[0][0].as_u64().unwrap());
    assert_eq!(rows(&mut t, "SELECT max(a) FROM t"), vec![vec![json!(7)]]);
    check_indexes(&t, "t");
    run(&mut t, "DELETE FROM t WHERE a > 5");
    assert_eq!(rows(&mut t, "SELECT count(*) FROM t WHERE a > 5"), vec![vec![json!(0)]]);
    check_indexes(&t, "t");
}

#[test]
fn unique_indexes_reject_duplicates() {
    let mut t = setup();
    let e = run_args(&mut t, "CREATE UNIQUE INDEX t_a_u ON t (a)", vec![]).unwrap_err();
    assert_eq!(e.code(), "23505");
    assert!(e.to_string().starts_with("could not create unique index \"t_a_u\""), "{e}");
    // The failed index is gone, entries and all.
    assert!(desc(&t, "t").indexes.is_empty());
    check_indexes(&t, "t");
    run(&mut t, "CREATE UNIQUE INDEX t_c_u ON t (c)");
    check_indexes(&t, "t");
    let e = run_args(&mut t, "INSERT INTO t VALUES (2000, 1, 'q', 3.0)", vec![]).unwrap_err();
    assert_eq!((e.code(), e.to_string().as_str()), ("23505", "duplicate key value violates unique constraint \"t_c_u\""));
    assert_eq!(err(&mut t, "UPDATE t SET c = 4.5 WHERE k = 1"), "23505");
    // NULLs never conflict.
    run(&mut t, "INSERT INTO t VALUES (2000, 1, 'q', NULL), (2001, 1, 'q', NULL)");
    run(&mut t, "UPDATE t SET c = c + 1000 WHERE k < 10");
    check_indexes(&t, "t");
    // A unique index with NULLs is not used for IS NULL (it has no entries for them).
    assert_eq!(rows(&mut t, "SELECT count(*) FROM t WHERE c IS NULL"), vec![vec![json!(3)]]);
    assert!(explain(&mut t, "SELECT k FROM t WHERE c = 3").contains("t@t_c_u"));
    run(&mut t, "INSERT INTO t VALUES (3000, 1, 'q', 30.0) ON CONFLICT (c) DO NOTHING");
    assert_eq!(rows(&mut t, "SELECT count(*) FROM t WHERE k = 3000"), vec![vec![json!(0)]]);
}

#[test]
fn drop_index_removes_entries_and_plans() {
    let mut t = setup();
    run(&mut t, "CREATE INDEX t_a ON t (a)");
    run(&mut t, "CREATE TABLE u (k INT PRIMARY KEY, v INT UNIQUE)");
    run(&mut t, "CREATE INDEX u_v_plain ON u (v)");
    assert_eq!(err(&mut t, "CREATE INDEX t_a ON t (b)"), "42P07");
    assert_eq!(err(&mut t, "CREATE INDEX u_v_plain ON t (b)"), "42P07");
    assert_eq!(err(&mut t, "CREATE INDEX u ON t (b)"), "42P07");
    run(&mut t, "CREATE INDEX IF NOT EXISTS t_a ON t (b)");
    assert_eq!(err(&mut t, "CREATE INDEX x ON t (nope)"), "42703");
    assert_eq!(err(&mut t, "CREATE INDEX x ON nope (a)"), "42P01");
    assert_eq!(err(&mut t, "CREATE INDEX x ON t (lower(b))"), "0A000");
    assert_eq!(err(&mut t, "CREATE INDEX x ON t USING hash (a)"), "0A000");
    assert_eq!(err(&mut t, "CREATE INDEX x ON t (a) WHERE a > 1"), "0A000");
    assert_eq!(err(&mut t, "DROP INDEX nope"), "42704");
    run(&mut t, "DROP INDEX IF EXISTS nope");
    assert_eq!(err(&mut t, "DROP INDEX u_v_key"), "2BP01");
    assert_eq!(err(&mut t, "DROP INDEX u_pkey"), "2BP01");
    let waits = t.schema_waits;
    run(&mut t, "DROP INDEX t@t_a");
    assert_eq!(t.schema_waits - waits, 1);
    assert!(desc(&t, "t").indexes.is_empty());
    check_indexes(&t, "t");
    assert!(!explain(&mut t, "SELECT k FROM t WHERE a = 3").contains('@'));
    run(&mut t, "DROP INDEX u_v_plain");
    run(&mut t, "DROP INDEX u@u_v_key CASCADE");
    assert!(desc(&t, "u").indexes.is_empty());
    run(&mut t, "DROP INDEX IF EXISTS t@u_v_key");
    assert_eq!(err(&mut t, "DROP INDEX t@u_v_key"), "42704");
}

#[test]
fn plans_use_indexes_for_ranges_lists_order_and_index_only_reads() {
    let mut t = setup();
    run(&mut t, "CREATE INDEX t_a ON t (a)");
    run(&mut t, "CREATE INDEX t_bd ON t (b DESC)");
    let id = desc(&t, "t").id;
    let p = explain(&mut t, "SELECT k FROM t WHERE a = 3");
    assert!(p.contains(&format!("scan t@t_a: index scan spans=[/Table/{id}/2/3, /Table/{id}/2/4)")), "{p}");
    assert!(p.contains("(index-only)"), "{p}");
    let p = explain(&mut t, "SELECT k, c FROM t WHERE a IN (1, 5)");
    assert!(p.contains("then row lookups") && p.matches("[/Table/").count() == 2, "{p}");
    assert!(
        explain(&mut t, "SELECT k FROM t WHERE a IS NULL").contains("/Table/")
            && explain(&mut t, "SELECT k FROM t WHERE a IS NULL").contains("NULL")
    );
    // The primary key wins ties; a point read always wins.
    assert!(!explain(&mut t, "SELECT * FROM t WHERE k = 3 AND a = 3").contains('@'));
    assert!(!explain(&mut t, "SELECT * FROM t WHERE k > 3 AND a > 3").contains('@'));
    assert!(explain(&mut t, "SELECT * FROM t WHERE k > 3 AND a = 3").contains("t@t_a"));
    // ORDER BY ... LIMIT through the index: no sort, a small first read.
    let p = explain(&mut t, "SELECT k, a FROM t ORDER BY a LIMIT 3");
    assert!(p.contains("t@t_a") && !p.contains("sort") && p.contains("first 3"), "{p}");
    let p = explain(&mut t, "SELECT k FROM t ORDER BY b DESC LIMIT 3");
    assert!(p.contains("t@t_bd") && !p.contains("sort"), "{p}");
    // Directions or NULL placements the index does not give keep the sort.
    assert!(explain(&mut t, "SELECT k FROM t ORDER BY a DESC LIMIT 3").contains("sort"));
    assert!(explain(&mut t, "SELECT k FROM t ORDER BY a NULLS FIRST LIMIT 3").contains("sort"));
    assert!(explain(&mut t, "SELECT k FROM t ORDER BY a LIMIT 3").contains("t@t_a"));
    assert!(explain(&mut t, "SELECT k FROM t ORDER BY a").contains("sort"));
    // Equality on the leading column orders by primary key.
    assert!(!explain(&mut t, "SELECT k FROM t WHERE a = 2 ORDER BY k").contains("sort"));
    assert_eq!(
        rows(&mut t, "SELECT k FROM t ORDER BY b DESC, k LIMIT 4"),
        vec![vec![json!(1000)], vec![json!(1001)], vec![json!(4)], vec![json!(9)]]
    );
    // Index-only: no row is fetched.
    let gets = t.gets;
    assert_eq!(rows(&mut t, "SELECT count(*) FROM t WHERE a = 3"), vec![vec![json!(43)]]);
    assert_eq!(t.gets, gets);
    let scans = t.scans;
    assert_eq!(rows(&mut t, "SELECT a, k FROM t ORDER BY a LIMIT 2"), vec![vec![json!(0), json!(7)], vec![json!(0), json!(14)]]);
    assert_eq!((t.scans - scans, t.gets), (1, gets));
    // Empty lists and contradictions read nothing.
    assert!(explain(&mut t, "SELECT k FROM t WHERE a = NULL").contains("empty"));
    assert!(explain(&mut t, "SELECT k FROM t WHERE a > 5 AND a < 2").contains("empty"));
}

#[test]
fn show_indexes_and_show_create_table() {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE s (k INT, j INT, v STRING UNIQUE, PRIMARY KEY (k, j))");
    run(&mut t, "CREATE INDEX s_v_j ON s (v DESC, j)");
    let r = run(&mut t, "SHOW INDEXES FROM s");
    let names: Vec<_> = r.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["table_name", "index_name", "non_unique", "seq_in_index", "column_name", "direction", "storing", "implicit"]);
    let got: Vec<String> = r.rows.iter().map(|r| format!("{} {} {} {} {} {}", r[1], r[2], r[3], r[4], r[5], r[7])).collect();
    assert_eq!(
        got,
        [
            r#""s_pkey" false 1 "k" "ASC" false"#,
            r#""s_pkey" false 2 "j" "ASC" false"#,
            r#""s_v_key" false 1 "v" "ASC" false"#,
            r#""s_v_key" false 2 "k" "ASC" true"#,
            r#""s_v_key" false 3 "j" "ASC" true"#,
            r#""s_v_j" true 1 "v" "DESC" false"#,
            r#""s_v_j" true 2 "j" "ASC" false"#,
            r#""s_v_j" true 3 "k" "ASC" true"#,
        ]
    );
    assert_eq!(run(&mut t, "SHOW INDEX FROM db.s").rows.len(), 8);
    assert_eq!(err(&mut t, "SHOW INDEXES FROM nope"), "42P01");
    assert_eq!(err(&mut t, "SHOW transaction_isolation"), "0A000");
    let create = rows(&mut t, "SHOW CREATE TABLE s")[0][1].as_str().unwrap_or_default().to_string();
    assert!(create.ends_with(");\nCREATE INDEX s_v_j ON s (v DESC, j)"), "{create}");
}

#[test]
fn dropping_an_indexed_column_retires_its_indexes_first() {
    let mut t = setup();
    run(&mut t, "CREATE INDEX t_a ON t (a)");
    run(&mut t, "CREATE INDEX t_b ON t (b)");
    // A failing ALTER leaves the index public (it was maintained while retired).
    assert_eq!(err(&mut t, "ALTER TABLE t DROP COLUMN a, ADD COLUMN k INT8"), "42701");
    assert!(desc(&t, "t").indexes.iter().all(|i| i.is_public()));
    let waits = t.schema_waits;
    t.schema_history.clear();
    run(&mut t, "ALTER TABLE t DROP COLUMN a");
    assert_eq!(t.schema_waits - waits, 1);
    let retired = t.schema_history.iter().flat_map(|d| d.indexes.iter()).find(|i| i.name == "t_a").map(|i| i.state);
    assert_eq!(retired, Some(IndexState::WriteOnly));
    let d = desc(&t, "t");
    assert_eq!(d.indexes.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["t_b"]);
    check_indexes(&t, "t");
    assert_eq!(rows(&mut t, "SELECT count(*) FROM t WHERE b = 'b1'"), vec![vec![json!(60)]]);
}
