//! End-to-end: secondary indexes built online on a real 3-node cluster. Each test says what it
//! shows.

mod common;

use common::{Cluster, rows, serial};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Runs one statement with a generous timeout; returns (HTTP status, body).
async fn sql(c: &Cluster, gw: usize, stmt: &str, args: Value) -> (u16, Value) {
    c.sql_body(gw, json!({"database": "shop", "timeout": "25s", "statements": [{"sql": stmt, "args": args}]})).await
}

async fn must(c: &Cluster, gw: usize, stmt: &str) -> Value {
    let (st, body) = sql(c, gw, stmt, json!([])).await;
    if st != 200 {
        c.dump_logs();
        panic!("{stmt} on node {}: {st} {body}", gw + 1);
    }
    body
}

/// A small deterministic generator (no shared RNG across tasks needed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Writes through gateway `gw` until `stop`: inserts, updates of the indexed column (to values
/// and to NULL), primary-key moves, deletes and upserts, each its own request. Counts the writes
/// acknowledged, and those acknowledged while `building` is set.
/// What the writers share with the test.
#[derive(Clone, Default)]
struct Shared {
    next_key: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    building: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    during: Arc<AtomicUsize>,
}

async fn writer(c: Arc<Cluster>, gw: usize, seed: u64, s: Shared) {
    let mut rng = Lcg(seed);
    let next_key = &s.next_key;
    while !s.stop.load(Ordering::SeqCst) {
        let hi = next_key.load(Ordering::SeqCst).max(2) as u64;
        let k = 1 + rng.next(hi) as i64;
        let a = if rng.next(10) == 0 { Value::Null } else { json!(rng.next(50)) };
        let (stmt, args) = match rng.next(20) {
            0..=6 => {
                let k = next_key.fetch_add(1, Ordering::SeqCst);
                ("INSERT INTO t VALUES ($1, $2, 'w', $1)", json!([k, a]))
            }
            7..=13 => ("UPDATE t SET a = $1 WHERE k = $2", json!([a, k])),
            14..=15 => ("DELETE FROM t WHERE k = $1", json!([k])),
            16..=17 => ("UPSERT INTO t VALUES ($1, $2, 'u', $1)", json!([k, a])),
            _ => {
                let to = next_key.fetch_add(1, Ordering::SeqCst);
                ("UPDATE t SET k = $1, n = $1 WHERE k = $2", json!([to, k]))
            }
        };
        let b = json!({"database": "shop", "timeout": "5s", "statements": [{"sql": stmt, "args": args}]});
        let (st, body) = c.sql_body(gw, b).await;
        if st == 200 {
            s.acked.fetch_add(1, Ordering::SeqCst);
            if s.building.load(Ordering::SeqCst) {
                s.during.fetch_add(1, Ordering::SeqCst);
            }
        } else if st == 0 || body["error"]["code"] == "XX000" {
            panic!("writer on node {}: {st} {body}", gw + 1);
        }
    }
}

/// (a, k) pairs of every row, read by a full scan of the rows (no index).
async fn pairs_by_rows(c: &Cluster, gw: usize, col: &str) -> Vec<Value> {
    let body = must(c, gw, &format!("SELECT {col}, k FROM t WHERE k + 0 > -1 ORDER BY {col}, k")).await;
    rows(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_built_while_two_other_gateways_write_has_exactly_every_rows_entry() {
    // Shows: CREATE INDEX and CREATE UNIQUE INDEX on a table with rows, while two other
    // gateways keep inserting, updating (the indexed column included), moving, deleting and
    // upserting rows, finish with an index holding exactly one entry per row with its current
    // values (compared with a scan of the rows), which the planner then uses.
    let _g = serial().await;
    let c = Arc::new(Cluster::start(3, &[]).await);
    c.must(0, "", "CREATE DATABASE shop").await;
    must(&c, 0, "CREATE TABLE t (k INT8 PRIMARY KEY, a INT8, b TEXT, n INT8)").await;
    must(&c, 0, "INSERT INTO t SELECT g, g % 50, 'seed', g FROM generate_series(1, 3000) AS g").await;
    let s = Shared::default();
    s.next_key.store(3001, Ordering::SeqCst);
    let mut tasks = Vec::new();
    for (gw, seed) in [(1, 7), (2, 11)] {
        tasks.push(tokio::spawn(writer(c.clone(), gw, seed, s.clone())));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    s.building.store(true, Ordering::SeqCst);
    let started = Instant::now();
    must(&c, 0, "CREATE INDEX t_a ON t (a)").await;
    must(&c, 0, "CREATE UNIQUE INDEX t_n ON t (n)").await;
    let took = started.elapsed();
    s.building.store(false, Ordering::SeqCst);
    // Writers keep going against the public indexes for a while (maintenance, not backfill).
    tokio::time::sleep(Duration::from_secs(3)).await;
    s.stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.expect("writer");
    }
    let (acked, during) = (s.acked.load(Ordering::SeqCst), s.during.load(Ordering::SeqCst));
    eprintln!("indexes built in {took:?}; {acked} writes acknowledged, {during} of them during the builds");
    assert!(during >= 20, "the writers barely ran during the build ({during})");

    for gw in 0..3 {
        // The planner reads through the indexes, index-only.
        let plan = rows(&must(&c, gw, "EXPLAIN SELECT a, k FROM t WHERE a >= 0 ORDER BY a, k").await);
        assert!(plan.iter().any(|l| l[0].as_str().is_some_and(|l| l.contains("t@t_a") && l.contains("index-only"))), "{plan:?}");
        let plan = rows(&must(&c, gw, "EXPLAIN SELECT n, k FROM t WHERE n >= 0 ORDER BY n").await);
        assert!(plan.iter().any(|l| l[0].as_str().is_some_and(|l| l.contains("t@t_n"))), "{plan:?}");
        // Every row has exactly its entry: the index's (a, k) pairs (NULLs included) equal the
        // rows' pairs.
        let rows_a = pairs_by_rows(&c, gw, "a").await;
        let mut via_index = rows(&must(&c, gw, "SELECT a, k FROM t WHERE a >= 0 ORDER BY a, k").await);
        via_index.extend(rows(&must(&c, gw, "SELECT a, k FROM t WHERE a IS NULL ORDER BY k").await));
        assert_eq!(via_index.len(), rows_a.len(), "entries vs rows through node {}", gw + 1);
        assert_eq!(via_index, rows_a, "index t_a through node {}", gw + 1);
        let rows_n = pairs_by_rows(&c, gw, "n").await;
        let via_unique = rows(&must(&c, gw, "SELECT n, k FROM t WHERE n >= 0 ORDER BY n").await);
        assert_eq!(via_unique, rows_n, "index t_n through node {}", gw + 1);
        // Lookups of whole rows through the index (batched by primary key) agree too.
        for v in [0, 17, 49] {
            let by_index = rows(&must(&c, gw, &format!("SELECT k, b, n FROM t WHERE a = {v} ORDER BY k")).await);
            let by_rows = rows(&must(&c, gw, &format!("SELECT k, b, n FROM t WHERE a + 0 = {v} ORDER BY k")).await);
            assert_eq!(by_index, by_rows, "a = {v}");
        }
        let plan = rows(&must(&c, gw, "EXPLAIN SELECT k, b, n FROM t WHERE a = 17").await);
        assert!(plan.iter().any(|l| l[0].as_str().is_some_and(|l| l.contains("t@t_a") && l.contains("row lookups"))), "{plan:?}");
        let by_unique = rows(&must(&c, gw, "SELECT n, a FROM t WHERE n >= 0 ORDER BY n").await);
        let by_rows = rows(&must(&c, gw, "SELECT n, a FROM t WHERE n + 0 >= 0 ORDER BY n").await);
        assert_eq!(by_unique, by_rows, "rows through t_n");
    }
    // The unique index is enforced from every gateway: a value some row holds now (the writers
    // have stopped, so it stays) cannot be inserted again, and the rows still hold it once.
    let taken = rows(&must(&c, 0, "SELECT n FROM t WHERE n + 0 >= 0 ORDER BY n LIMIT 1").await)[0][0].clone();
    for gw in 0..3 {
        let (st, body) = sql(&c, gw, "INSERT INTO t VALUES (-1 - $2, 1, 'dup', $1)", json!([taken, gw])).await;
        assert_eq!((st, body["error"]["code"].as_str()), (409, Some("23505")), "node {}: {body}", gw + 1);
    }
    let holders = rows(&must(&c, 1, &format!("SELECT count(*) FROM t WHERE n + 0 = {taken}")).await);
    assert_eq!(holders, vec![json!([1])], "n = {taken} is held by exactly one row");
    // DROP INDEX while writers are gone: entries go, plans stop using it.
    must(&c, 2, "DROP INDEX t@t_a").await;
    let plan = rows(&must(&c, 0, "EXPLAIN SELECT k FROM t WHERE a = 3").await);
    assert!(plan.iter().all(|l| !l[0].as_str().unwrap_or_default().contains('@')), "{plan:?}");
}
