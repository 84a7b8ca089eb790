//! End-to-end: range merges on three real `meridian` processes. Each test says what it shows.

mod common;

use common::ranges::{int, kv_workload, must, replica_spans, sql, table, tiled_ranges};
use common::{Cluster, rows, serial};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn range_count(body: &Value) -> usize {
    rows(body).len()
}

/// Waits until SHOW RANGES lists `want` ranges for the table through `gw` and every node hosts
/// replicas of exactly that many (merged replicas are gone everywhere).
async fn wait_for_ranges(c: &Cluster, gw: usize, table_id: u64, want: usize, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (st, body) = sql(c, gw, "SHOW RANGES FROM TABLE t").await;
        let listed = if st == 200 { range_count(&body) } else { 0 };
        let hosted = replica_spans(c, table_id).await;
        if listed == want && hosted == Ok(want) {
            return;
        }
        if Instant::now() > deadline {
            c.dump_logs();
            panic!("want {want} ranges: SHOW RANGES lists {listed} ({st}), replicas host {hosted:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsplit_ranges_merge_once_small_and_cold_and_no_request_fails_meanwhile() {
    // Shows: SPLIT AT boundaries are sticky (never merged); after UNSPLIT AT, the merge queue
    // merges the small, cold ranges back into one, pair by pair, while a light stream of
    // updates and reads through every gateway goes on without a single error; afterwards every
    // row is there once with every acknowledged update, from every gateway, and no node hosts a
    // replica of a merged-away range.
    let _g = serial().await;
    let c = Cluster::start(3, &["--merge-delay", "1s"]).await;
    let table_id = table(&c, 1000).await;
    must(&c, 0, "ALTER TABLE t SPLIT AT SELECT g FROM generate_series(100, 900, 100) AS g").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(range_count(&must(&c, 1, "SHOW RANGES FROM TABLE t").await), 10, "SPLIT AT boundaries do not merge");
    // A light, steady load on every range: cold enough to merge (merges wait for no load when
    // load splits are off), and it must see no error while the ranges merge under it.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, done, failed) = (stop.clone(), done.clone(), failed.clone());
        let (client, https) = (c.client.clone(), c.nodes.iter().map(|n| n.http.clone()).collect::<Vec<_>>());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let k = (i * 337) % 1000 + 1;
                let stmt = if i.is_multiple_of(2) {
                    format!("UPDATE t SET v = v + 1 WHERE k = {k}")
                } else {
                    format!("SELECT v FROM t WHERE k = {k}")
                };
                let body = json!({"database": "d", "timeout": "20s", "statements": [{"sql": stmt}]});
                let r = client.post(format!("http://{}/v1/sql", https[i as usize % 3])).json(&body).send().await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        if i.is_multiple_of(2) {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    other => {
                        eprintln!("{stmt}: {:?}", other.map(|r| r.status()));
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let r = must(&c, 2, "ALTER TABLE t UNSPLIT AT SELECT g FROM generate_series(100, 900, 100) AS g").await;
    assert_eq!(rows(&r).len(), 9);
    let (st, body) = sql(&c, 0, "ALTER TABLE t UNSPLIT AT VALUES (150)").await;
    assert_eq!((st, body["error"]["code"].as_str()), (400, Some("22023")), "not a boundary: {body}");
    let t0 = Instant::now();
    wait_for_ranges(&c, 0, table_id, 1, Duration::from_secs(120)).await;
    eprintln!("10 ranges merged into 1 in {:.1} s", t0.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed during the merges");
    let updates = done.load(Ordering::Relaxed) as i64;
    assert!(updates > 20, "the load ran: {updates} updates");
    for gw in 0..3 {
        assert_eq!(tiled_ranges(&c, gw).await.len(), 1);
        assert_eq!(int(&must(&c, gw, "SELECT count(*) FROM t").await), 1000);
        assert_eq!(int(&must(&c, gw, "SELECT sum(v) FROM t").await), 10 * 1000 * 1001 / 2 + updates);
    }
    // The merged range takes writes over its whole span.
    must(&c, 1, "UPDATE t SET v = v + 1").await;
    assert_eq!(int(&must(&c, 2, "SELECT sum(v) FROM t").await), 10 * 1000 * 1001 / 2 + updates + 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_split_by_load_merge_back_once_the_load_is_gone() {
    // Shows: the kv workload makes the table split by load (--split-qps); once the workload
    // stops, its ranges are cold and small, and the merge queue merges them back into one;
    // every row stays readable from every gateway.
    let _g = serial().await;
    let c = Cluster::start(3, &["--split-qps", "100", "--merge-delay", "2s"]).await;
    let (summary, errors) = kv_workload(&c, "10s").await;
    assert_eq!(errors, 0, "the workload saw errors: {summary}");
    let split = range_count(&c.must(0, "bench", "SHOW RANGES FROM TABLE kv").await);
    assert!(split >= 2, "no load split happened: {split} ranges");
    let n = int(&c.must(1, "bench", "SELECT count(*) FROM kv").await);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let now = range_count(&c.must(0, "bench", "SHOW RANGES FROM TABLE kv").await);
        if now == 1 {
            eprintln!("{split} ranges split by load merged back into 1");
            break;
        }
        if Instant::now() > deadline {
            c.dump_logs();
            panic!("{split} ranges after the load, still {now} after two minutes without load");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for gw in 0..3 {
        assert_eq!(int(&c.must(gw, "bench", "SELECT count(*) FROM kv").await), n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_in_the_middle_of_merges_leaves_no_gap_or_overlap() {
    // Shows: 40 unsplit ranges merging while the node holding the table's leases is SIGKILLed
    // and restarted: afterwards the merges finish (a frozen range whose merge was cut short is
    // settled), the ranges tile the table from every gateway, the replicas agree on every span,
    // and every row is there once.
    let _g = serial().await;
    let c = Cluster::start(3, &["--merge-delay", "1s"]).await;
    let table_id = table(&c, 1000).await;
    let points = "SELECT g FROM generate_series(25, 975, 25) AS g";
    must(&c, 0, &format!("ALTER TABLE t SPLIT AT {points}")).await;
    let victim = c.leaseholder_of_table(table_id).await.expect("a leaseholder");
    let gw = (victim + 1) % 3;
    must(&c, gw, &format!("ALTER TABLE t UNSPLIT AT {points}")).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = range_count(&must(&c, gw, "SHOW RANGES FROM TABLE t").await);
    c.sigkill(victim);
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.spawn(victim);
    c.wait_ready(victim, Duration::from_secs(60)).await;
    eprintln!("{before} ranges when node {} was killed", victim + 1);
    wait_for_ranges(&c, gw, table_id, 1, Duration::from_secs(180)).await;
    for g in 0..3 {
        tiled_ranges(&c, g).await;
        assert_eq!(int(&must(&c, g, "SELECT count(*) FROM t").await), 1000);
        assert_eq!(int(&must(&c, g, "SELECT sum(v) FROM t").await), 10 * 1000 * 1001 / 2);
    }
    must(&c, victim, "UPDATE t SET v = v + 1").await;
    assert_eq!(int(&must(&c, gw, "SELECT sum(v) FROM t").await), 10 * 1000 * 1001 / 2 + 1000);
}
