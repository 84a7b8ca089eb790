//! End-to-end: range splits on three real `meridian` processes. Each test says what it shows.

mod common;

use common::ranges::{int, kv_workload, must, replicas_agree, sql, table, tiled_ranges};
use common::{Cluster, rows, serial};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_splits_keep_every_row_readable_and_writable_from_every_gateway() {
    // Shows: ALTER TABLE ... SPLIT AT cuts a table into ranges that tile its span (SHOW RANGES,
    // and every replica's own descriptor), reads and writes through every gateway see every row
    // once, a transaction over many of the new ranges commits whole, and splitting at an existing
    // boundary changes nothing.
    let _g = serial().await;
    let c = Cluster::start(3, &[]).await;
    let table_id = table(&c, 2000).await;
    let body = must(&c, 1, "ALTER TABLE t SPLIT AT SELECT g FROM generate_series(100, 1900, 100) AS g").await;
    assert_eq!(rows(&body).len(), 19);
    assert_eq!(rows(&body)[0][1], json!("[100]"));
    for gw in 0..3 {
        let spans = tiled_ranges(&c, gw).await;
        assert_eq!(spans.len(), 20, "{spans:?}");
        assert!(spans[1].0.ends_with("/1/100") && spans[1].1.ends_with("/1/200"), "{spans:?}");
        let n = int(&must(&c, gw, "SELECT count(*) FROM t").await);
        if n != 2000 {
            let ks = rows(&must(&c, gw, "SELECT k FROM t ORDER BY k").await);
            let direct = int(&must(&c, gw, "SELECT count(*) FROM t WHERE k < 100").await);
            let again = int(&must(&c, gw, "SELECT count(*) FROM t").await);
            let mut per_gw = Vec::new();
            for g in 0..3 {
                per_gw.push(int(&must(&c, g, "SELECT count(*) FROM t WHERE k < 100").await));
            }
            let first = rows(&must(&c, gw, "SHOW RANGES FROM TABLE t").await)[0].clone();
            let mut views = Vec::new();
            for i in 0..3 {
                let st = c.status(i).await;
                for r in st["ranges"].as_array().unwrap().iter().filter(|r| r["range_id"] == first[2]) {
                    views.push(format!(
                        "n{}: r{} [{}, {}) applied {} leader n{} term {} replicas {}",
                        i + 1,
                        r["range_id"],
                        r["start_key"],
                        r["end_key"],
                        r["applied_index"],
                        r["leader_node"],
                        r["term"],
                        r["replicas"]
                    ));
                }
            }
            c.dump_logs();
            for (i, node) in c.nodes.iter().enumerate() {
                let _ = std::fs::copy(&node.log, std::env::temp_dir().join(format!("meridian-splitbug-n{}.log", i + 1)));
            }
            panic!(
                "count {n} through node {}; ORDER BY k gives {} rows, first {:?}; k < 100: {direct} (per gateway {per_gw:?}); count again: {again}; first range {first:?}; replicas: {views:#?}",
                gw + 1,
                ks.len(),
                ks.first()
            );
        }
        assert_eq!(int(&must(&c, gw, "SELECT sum(v) FROM t").await), 10 * 2000 * 2001 / 2);
        assert_eq!(rows(&must(&c, gw, "SELECT v FROM t WHERE k = 1234").await), vec![json!([12340])]);
        assert_eq!(int(&must(&c, gw, "SELECT count(*) FROM t WHERE k >= 150 AND k < 1050").await), 900);
    }
    // One request over many ranges (a transaction across all of them), and one on each side of
    // a boundary.
    must(&c, 2, "UPDATE t SET v = v + 1 WHERE k % 7 = 0").await;
    must(&c, 0, "UPDATE t SET v = 0 WHERE k IN (99, 100)").await;
    must(&c, 1, "INSERT INTO t VALUES (2001, 1), (-5, 1), (1500, 1) ON CONFLICT (k) DO UPDATE SET v = excluded.v").await;
    let expected = 10 * 2000 * 2001 / 2 + 2000 / 7 - 990 - 1000 + 1 + 1 - 15000 + 1;
    for gw in 0..3 {
        assert_eq!(int(&must(&c, gw, "SELECT sum(v) FROM t").await), expected, "through node {}", gw + 1);
        assert_eq!(int(&must(&c, gw, "SELECT count(*) FROM t").await), 2002);
    }
    // Existing boundaries: nothing new.
    must(&c, 0, "ALTER TABLE t SPLIT AT VALUES (100), (200)").await;
    assert_eq!(tiled_ranges(&c, 0).await.len(), 20);
    // The new ranges are replicated like the first: wait for every replica to know its span.
    replicas_agree(&c, table_id, 20).await;
    // DROP TABLE removes every range of the table.
    must(&c, 0, "DROP TABLE t").await;
    let (st, body) = sql(&c, 1, "SELECT count(*) FROM t").await;
    assert_eq!((st, body["error"]["code"].as_str()), (400, Some("42P01")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_in_the_middle_of_splits_leaves_no_gap_or_overlap() {
    // Shows: splits driven through one gateway while the node holding the table's leases is
    // SIGKILLed and restarted: afterwards the ranges still tile the table from every gateway,
    // the replicas agree on every span, and every row is there once.
    let _g = serial().await;
    let c = Cluster::start(3, &[]).await;
    let table_id = table(&c, 1000).await;
    let victim = c.leaseholder_of_table(table_id).await.expect("a leaseholder");
    let gw = (victim + 1) % 3;
    let splitter = {
        let (http, client) = (c.nodes[gw].http.clone(), c.client.clone());
        tokio::spawn(async move {
            let mut done = 0;
            for k in (25..1000).step_by(25) {
                let body =
                    json!({"database": "d", "timeout": "20s", "statements": [{"sql": format!("ALTER TABLE t SPLIT AT VALUES ({k})")}]});
                let r = client.post(format!("http://{http}/v1/sql")).json(&body).send().await;
                if r.is_ok_and(|r| r.status().is_success()) {
                    done += 1;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            done
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.sigkill(victim);
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.spawn(victim);
    let done = splitter.await.unwrap();
    c.wait_ready(victim, Duration::from_secs(60)).await;
    eprintln!("{done} of 39 splits acknowledged around a SIGKILL of node {}", victim + 1);
    assert!(done >= 20, "splits did not resume after the failover");
    // Whatever was acknowledged or not, the ranges tile the table (given a moment for the meta
    // records to be checked by the new leaseholders), and every row is there once.
    let deadline = Instant::now() + Duration::from_secs(30);
    for g in 0..3 {
        loop {
            let (st, body) = sql(&c, g, "SHOW RANGES FROM TABLE t").await;
            if st == 200 && !rows(&body).is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "SHOW RANGES through node {}: {st} {body}", g + 1);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let spans = tiled_ranges(&c, g).await;
        assert!(spans.len() > done, "{} ranges after {done} splits", spans.len());
        assert_eq!(int(&must(&c, g, "SELECT count(*) FROM t").await), 1000);
        assert_eq!(int(&must(&c, g, "SELECT sum(v) FROM t").await), 10 * 1000 * 1001 / 2);
    }
    replicas_agree(&c, table_id, done + 1).await;
    // And the table still takes writes in every range.
    must(&c, victim, "UPDATE t SET v = v + 1").await;
    assert_eq!(int(&must(&c, gw, "SELECT sum(v) FROM t").await), 10 * 1000 * 1001 / 2 + 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_over_range_max_bytes_splits_by_itself_and_every_row_stays_readable() {
    // Shows: with a small range_max_bytes (zone configuration), writing 100,000 rows makes the
    // table's leaseholders split its ranges by size, while the writes go on; afterwards the
    // ranges tile the table, none is far over the limit, and every gateway counts and sums every
    // row.
    let _g = serial().await;
    let c = Cluster::start(3, &[]).await;
    c.must(0, "", "CREATE DATABASE d").await;
    must(&c, 0, "CREATE TABLE t (k INT8 PRIMARY KEY, v INT8 NOT NULL)").await;
    let max: u64 = 256 << 10;
    must(&c, 0, &format!("ALTER TABLE t CONFIGURE ZONE USING range_max_bytes = {max}, range_min_bytes = 1024")).await;
    let n: i64 = 100_000;
    for chunk in 0..10i64 {
        let (lo, hi) = (chunk * n / 10 + 1, (chunk + 1) * n / 10);
        // UPSERT, so a write whose outcome was ambiguous (503 on a loaded machine) can be sent
        // again, as a client would.
        let stmt = format!("UPSERT INTO t SELECT g, g * 2 FROM generate_series({lo}, {hi}) AS g");
        for attempt in 1.. {
            let (st, body) = sql(&c, chunk as usize % 3, &stmt).await;
            if st == 200 {
                break;
            }
            assert!(st == 503 && attempt < 5, "{stmt}: {st} {body}");
        }
    }
    // Splits follow the writes within a few rounds of the split queue (one a second).
    let deadline = Instant::now() + Duration::from_secs(90);
    let ranges = loop {
        let r = rows(&must(&c, 0, "SHOW RANGES FROM TABLE t").await);
        let biggest = r.iter().map(|r| r[3].as_u64().unwrap()).max().unwrap();
        if biggest <= 2 * max {
            break r;
        }
        if Instant::now() >= deadline {
            for (i, node) in c.nodes.iter().enumerate() {
                let log = std::fs::read_to_string(&node.log).unwrap_or_default();
                for l in log.lines().filter(|l| l.contains("split")).rev().take(12) {
                    eprintln!("node {}: {l}", i + 1);
                }
            }
            panic!("ranges still over the limit: {} ranges, biggest {biggest} bytes: {r:?}", r.len());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let total: u64 = ranges.iter().map(|r| r[3].as_u64().unwrap()).sum();
    eprintln!("{} ranges after {n} rows ({total} bytes, range_max_bytes {max})", ranges.len());
    assert!(ranges.len() as u64 >= total / (2 * max), "{} ranges for {total} bytes", ranges.len());
    for gw in 0..3 {
        tiled_ranges(&c, gw).await;
        assert_eq!(int(&must(&c, gw, "SELECT count(*) FROM t").await), n);
        assert_eq!(int(&must(&c, gw, "SELECT sum(v) FROM t").await), n * (n + 1));
        assert_eq!(rows(&must(&c, gw, "SELECT v FROM t WHERE k = 77777").await), vec![json!([155554])]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_under_sustained_load_splits_where_the_load_divides() {
    // Shows: with --split-qps low, the kv workload (reads and writes over a few thousand keys of
    // one table) makes the table's leaseholder split it by load, at sampled request keys, into
    // ranges that each hold part of the keys (the load spreads over them); the workload sees no
    // error from the splits.
    let _g = serial().await;
    let c = Cluster::start(3, &["--split-qps", "100"]).await;
    let (summary, errors) = kv_workload(&c, "12s").await;
    assert_eq!(errors, 0, "the workload saw errors: {summary}");
    let ranges = rows(&c.must(0, "bench", "SHOW RANGES FROM TABLE kv").await);
    let holding = ranges.iter().filter(|r| r[3].as_u64().unwrap_or(0) > 0).count();
    let leaseholders: std::collections::BTreeSet<u64> = ranges.iter().filter_map(|r| r[4].as_u64()).collect();
    eprintln!("{} ranges after the load ({holding} holding keys), leaseholders on nodes {leaseholders:?}", ranges.len());
    assert!(ranges.len() >= 2 && holding >= 2, "no load split: {ranges:?}");
    let count = |b: &Value| rows(b)[0][0].as_i64().unwrap();
    let n = count(&c.must(1, "bench", "SELECT count(*) FROM kv").await);
    assert_eq!(count(&c.must(2, "bench", "SELECT count(*) FROM kv WHERE k >= 0").await), n, "every gateway sees every row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_index_holds_across_ranges_under_concurrent_inserts() {
    // Shows: on a table split into ranges, rows in different ranges that would share a unique
    // value conflict through the index's entry (which lives in another range than either row):
    // of concurrent inserts of one value through every gateway exactly one wins and the others get
    // 23505, and a later insert of a taken value is refused whatever range its row falls in.
    let _g = serial().await;
    let c = Cluster::start(3, &[]).await;
    c.must(0, "", "CREATE DATABASE d").await;
    must(&c, 0, "CREATE TABLE t (k INT8 PRIMARY KEY, v INT8 NOT NULL)").await;
    must(&c, 0, "CREATE UNIQUE INDEX t_v ON t (v)").await;
    must(&c, 0, "ALTER TABLE t SPLIT AT VALUES (100), (200), (300)").await;
    assert_eq!(tiled_ranges(&c, 0).await.len(), 4);
    for round in 0..6 {
        let value = 1000 + round;
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let (http, client) = (c.nodes[i % 3].http.clone(), c.client.clone());
                // Each contender's row lies in a different range: k = 50, 150, 250, 350 (+ round).
                let k = 50 + 100 * i as i64 + round;
                tokio::spawn(async move {
                    let body = json!({"database": "d", "timeout": "20s", "statements": [{"sql": "INSERT INTO t VALUES ($1, $2)", "args": [k, value]}]});
                    let r = client.post(format!("http://{http}/v1/sql")).json(&body).send().await.unwrap();
                    let st = r.status().as_u16();
                    let b: Value = r.json().await.unwrap_or_default();
                    (st, b["error"]["code"].as_str().map(str::to_string))
                })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                (200, _) => wins += 1,
                (409, Some(code)) if code == "23505" => {}
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(wins, 1, "round {round}: exactly one insert of {value} wins");
        assert_eq!(int(&must(&c, 1, &format!("SELECT count(*) FROM t WHERE v + 0 = {value}")).await), 1);
    }
    let (st, body) = sql(&c, 2, "INSERT INTO t VALUES (399, 1003)").await;
    assert_eq!((st, body["error"]["code"].as_str()), (409, Some("23505")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_manual_splits_are_listed_and_queries_across_them_are_right() {
    // Shows: 999 SPLIT AT points make 1,000 ranges; SHOW RANGES lists them tiling the table from
    // every gateway; scans, aggregates and a write across all of them are right. (Idle, they
    // quiesce: 1,000 ranges cost about as much CPU as a few.)
    // The nodes run with the default Raft timings, not the tests' fast ones: until they quiesce,
    // 1,000 ranges heartbeating every 100 ms are more than a debug build on two cores can carry.
    let _g = serial().await;
    let c = Cluster::start(3, &["--raft-heartbeat-ms", "200", "--dead-after", "30s"]).await;
    c.must(0, "", "CREATE DATABASE d").await;
    must(&c, 0, "CREATE TABLE t (k INT8 PRIMARY KEY, v INT8 NOT NULL)").await;
    must(&c, 0, "INSERT INTO t SELECT g, g FROM generate_series(1, 3000) AS g").await;
    let body = long(&c, 1, "ALTER TABLE t SPLIT AT SELECT g * 3 FROM generate_series(1, 999) AS g").await;
    assert_eq!(rows(&body).len(), 999);
    for gw in 0..3 {
        let spans = tiled_ranges(&c, gw).await;
        assert_eq!(spans.len(), 1000, "through node {}", gw + 1);
        assert!(spans[1].0.ends_with("/1/3") && spans[999].0.ends_with("/1/2997"), "{:?}", &spans[..2]);
    }
    // Scans read up to 32 ranges at once.
    let started = Instant::now();
    assert_eq!(rows(&long(&c, 0, "SELECT count(*), sum(v) FROM t").await), vec![json!([3000, 4501500])]);
    eprintln!("count and sum over 1,000 ranges: {:?}", started.elapsed());
    assert_eq!(int(&long(&c, 2, "SELECT count(*) FROM t WHERE k BETWEEN 1000 AND 2000").await), 1001);
    assert_eq!(
        rows(&long(&c, 1, "SELECT k FROM t WHERE v IN (1, 1500, 3000) ORDER BY k").await),
        vec![json!([1]), json!([1500]), json!([3000])]
    );
    // One write over every range, then read back through another gateway.
    long(&c, 0, "UPDATE t SET v = v + 1 WHERE k % 100 = 0").await;
    assert_eq!(int(&long(&c, 1, "SELECT sum(v) FROM t").await), 4501500 + 30);
}

/// One statement with a long deadline (minutes), for work over many ranges; must succeed.
async fn long(c: &Cluster, gw: usize, stmt: &str) -> Value {
    let resp = c
        .client
        .post(format!("http://{}/v1/sql", c.nodes[gw].http))
        .timeout(Duration::from_secs(600))
        .json(&json!({"database": "d", "timeout": "600s", "statements": [{"sql": stmt}]}))
        .send()
        .await
        .unwrap();
    let st = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(st, 200, "{stmt}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_node_hands_its_leases_to_the_others_before_it_exits() {
    // Shows: on SIGTERM a node moves every lease it holds to the other nodes while it still
    // serves, then exits cleanly; writes through the other gateways succeed throughout; the
    // survivors hold every lease afterwards, and balancing gives the draining node none back.
    let _g = serial().await;
    let c = std::sync::Arc::new(Cluster::start(3, &[]).await);
    c.must(0, "", "CREATE DATABASE d").await;
    must(&c, 0, "CREATE TABLE t (k INT8 PRIMARY KEY, v INT8 NOT NULL)").await;
    must(&c, 0, "INSERT INTO t SELECT g, 0 FROM generate_series(1, 30) AS g").await;
    must(&c, 0, "ALTER TABLE t SPLIT AT SELECT g FROM generate_series(3, 30, 3) AS g").await;
    // Lease balancing spreads the 11 table ranges and the system range: wait for node 1 to hold
    // a few.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let held = c.status(0).await["leaseholder_count"].as_u64().unwrap_or(0);
        if held >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "node 1 never got leases");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (c, stop) = (c.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, Vec::new());
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let stmt = format!("UPDATE t SET v = v + 1 WHERE k = {}", i % 30 + 1);
                let (st, body) = sql(&c, 1 + (i % 2) as usize, &stmt).await;
                if st == 200 {
                    ok += 1;
                } else {
                    failed.push(format!("{st} {body}"));
                }
                i += 1;
            }
            (ok, failed)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c2 = c.clone();
    let st = tokio::task::spawn_blocking(move || c2.sigterm(0)).await.unwrap();
    assert!(st.success(), "SIGTERM stops cleanly: {st:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failed) = writer.await.unwrap();
    assert!(failed.is_empty(), "writes failed during the drain: {failed:?}");
    assert!(ok > 0);
    let log = std::fs::read_to_string(&c.nodes[0].log).unwrap();
    assert!(log.contains("drained: no leases left"), "node 1 stopped holding leases:\n{}", &log[log.len().saturating_sub(3000)..]);
    // The survivors lead every range (12 with the system range).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (a, b) = (c.status(1).await, c.status(2).await);
        let total = a["leaseholder_count"].as_u64().unwrap_or(0) + b["leaseholder_count"].as_u64().unwrap_or(0);
        if total == 12 {
            break;
        }
        assert!(Instant::now() < deadline, "survivors lead {total} of 12 ranges");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = rows(&must(&c, 1, "SELECT count(*), sum(v) FROM t").await);
    assert_eq!(r[0][0], json!(30));
    assert_eq!(r[0][1].as_u64().unwrap(), ok, "every acknowledged increment is there");
}
