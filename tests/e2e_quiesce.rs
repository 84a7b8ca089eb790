//! End-to-end: idle ranges quiesce (stop ticking) and wake, on three real `meridian` processes.

mod common;

use common::{Cluster, rows, serial};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

async fn sql(c: &Cluster, gw: usize, stmt: &str) -> (u16, Value) {
    c.sql_body(gw, json!({"database": "d", "timeout": "5s", "statements": [{"sql": stmt}]})).await
}

async fn must(c: &Cluster, gw: usize, stmt: &str) -> Value {
    let (st, body) = sql(c, gw, stmt).await;
    if st != 200 {
        c.dump_logs();
        panic!("{stmt} on node {}: {st} {body}", gw + 1);
    }
    body
}

/// Waits until every running node's replicas of the table's ranges have stopped ticking.
/// Returns how many replicas that is.
async fn wait_quiesced(c: &Cluster, table_id: u64, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let mut total = 0;
        let mut awake = Vec::new();
        for i in (0..c.nodes.len()).filter(|i| c.is_running(*i)) {
            let st = c.status(i).await;
            for r in st["ranges"].as_array().unwrap().iter().filter(|r| r["table_id"] == table_id) {
                total += 1;
                if r["quiesced"] != true {
                    awake.push(format!("r{} on node {}", r["range_id"], st["node_id"]));
                }
            }
        }
        if awake.is_empty() && total > 0 {
            return total;
        }
        if Instant::now() > deadline {
            c.dump_logs();
            panic!("still ticking after {timeout:?}: {awake:?}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Cluster index of each node id.
async fn indexes(c: &Cluster) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for i in 0..c.nodes.len() {
        m.insert(c.status(i).await["node_id"].as_u64().unwrap(), i);
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_ranges_quiesce_wake_for_a_write_and_elect_when_their_leaseholder_dies() {
    let _g = serial().await;
    let c = Cluster::start(3, &[]).await;
    c.must(0, "", "CREATE DATABASE d").await;
    must(&c, 0, "CREATE TABLE t (k INT8 PRIMARY KEY, v INT8 NOT NULL)").await;
    must(&c, 0, "INSERT INTO t SELECT g, g FROM generate_series(1, 100) AS g").await;
    must(&c, 1, "ALTER TABLE t SPLIT AT SELECT g FROM generate_series(10, 90, 10) AS g").await;
    let st = c.status(0).await;
    let table_id = st["ranges"].as_array().unwrap().iter().filter_map(|r| r["table_id"].as_u64()).max().unwrap();
    // Every replica of the ten idle ranges stops ticking.
    assert_eq!(wait_quiesced(&c, table_id, Duration::from_secs(30)).await, 30);
    // A write to a quiesced range wakes it and is served; every gateway reads it.
    must(&c, 2, "UPDATE t SET v = -1 WHERE k = 55").await;
    for gw in 0..3 {
        assert_eq!(rows(&must(&c, gw, "SELECT v FROM t WHERE k = 55").await), vec![json!([-1])]);
    }
    // Idle again, it quiesces again.
    wait_quiesced(&c, table_id, Duration::from_secs(30)).await;
    // SIGKILL the leaseholder of a quiesced range (one not also holding the system range's
    // lease, so what is measured is this range's failover alone). Its followers are not ticking:
    // node liveness must wake them.
    let by_id = indexes(&c).await;
    let system_lh = {
        let mut lh = None;
        for i in 0..3 {
            let st = c.status(i).await;
            if st["ranges"].as_array().unwrap().iter().any(|r| r["range_id"] == 1 && r["is_leaseholder"] == true) {
                lh = Some(i);
            }
        }
        lh
    };
    let ranges = rows(&must(&c, 0, "SHOW RANGES FROM TABLE t").await);
    let (key, victim) = ranges
        .iter()
        .filter_map(|r| {
            let start = r[0].as_str().unwrap();
            let key: i64 = if start == "/Min" { 1 } else { start.rsplit('/').next().unwrap().parse().unwrap() };
            Some((key, *by_id.get(&r[4].as_u64()?)?))
        })
        .find(|(_, node)| Some(*node) != system_lh)
        .unwrap_or_else(|| panic!("no range led outside the system range's leaseholder: {ranges:?}"));
    c.sigkill(victim);
    let killed = Instant::now();
    let gw = (0..3).find(|i| *i != victim).unwrap();
    let took = loop {
        let (st, body) = sql(&c, gw, &format!("UPDATE t SET v = -2 WHERE k = {key}")).await;
        if st == 200 {
            break killed.elapsed();
        }
        assert!(killed.elapsed() < Duration::from_secs(30), "no write to k = {key} 30 s after its leaseholder died: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("quiesced range failover (SIGKILL to the next acknowledged write): {took:?}");
    // Bounded like a ticking range's failover (about 3 s; docs/benchmarks.md), with slack for a
    // loaded CI machine.
    assert!(took < Duration::from_secs(12), "failover of a quiesced range took {took:?}");
    for gw in (0..3).filter(|i| *i != victim) {
        assert_eq!(rows(&must(&c, gw, "SELECT count(*), sum(v) FROM t").await), vec![json!([100, 5050 - 55 - 1 - key - 2])]);
    }
}
