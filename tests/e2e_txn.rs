//! End-to-end: transactions across ranges on three real `meridian` processes. Every table is
//! its own range, so a request touching two tables is a two-range transaction (prepare on both,
//! record on the anchor, resolve). Each test says what it shows.

mod common;

use common::{Cluster, rows, serial};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn two_tables(c: &Cluster) {
    c.must(0, "", "CREATE DATABASE t").await;
    c.must(0, "t", "CREATE TABLE a (k INT PRIMARY KEY, v INT NOT NULL)").await;
    c.must(0, "t", "CREATE TABLE b (k INT PRIMARY KEY, v INT NOT NULL)").await;
}

fn int(body: &Value) -> i64 {
    rows(body)[0][0].as_i64().unwrap_or_else(|| panic!("not an int: {body}"))
}

/// Runs one request of several statements; returns (status, body).
async fn req(c: &Cluster, gw: usize, stmts: &[&str]) -> (u16, Value) {
    let s: Vec<(&str, Value)> = stmts.iter().map(|s| (*s, json!([]))).collect();
    c.sql(gw, "t", &s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_two_ranges_commits_atomically_or_not_at_all() {
    let _g = serial().await;
    let c = Cluster::start(3, &[]).await;
    two_tables(&c).await;
    let (st, body) = req(&c, 0, &["INSERT INTO a VALUES (1, 10)", "INSERT INTO b VALUES (1, 20)"]).await;
    assert_eq!(st, 200, "{body}");
    // Visible together from another gateway, in one read across both ranges.
    let body = c.must(1, "t", "SELECT (SELECT v FROM a WHERE k = 1) + (SELECT v FROM b WHERE k = 1)").await;
    assert_eq!(int(&body), 30);
    // The second statement fails (duplicate key in b): the insert into a must not happen.
    let (st, body) = req(&c, 2, &["INSERT INTO a VALUES (2, 1)", "INSERT INTO b VALUES (1, 1)"]).await;
    assert_eq!((st, body["error"]["code"].as_str()), (409, Some("23505")), "{body}");
    let body = c.must(0, "t", "SELECT count(*) FROM a").await;
    assert_eq!(int(&body), 1, "nothing of the failed request is visible");
    // A read of one range and a write of another commits (was refused before).
    let (st, body) = req(&c, 1, &["INSERT INTO b SELECT k + 1, v FROM a WHERE k = 1"]).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(int(&c.must(0, "t", "SELECT v FROM b WHERE k = 2").await), 10);
}

/// Runs `f(i)` as `n` concurrent tasks and waits for all.
async fn concurrently<F, Fut>(n: usize, f: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(f(i))).collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Sum over the running nodes of the gateway's retried attempts (`meridian_txn_restarts_total`):
/// each is a transaction that lost a conflict (40001) and was run again.
async fn restarts(c: &Cluster) -> u64 {
    let mut n = 0;
    for i in 0..c.nodes.len() {
        if !c.is_running(i) {
            continue;
        }
        let text = c.client.get(format!("http://{}/metrics", c.nodes[i].http)).send().await.unwrap().text().await.unwrap();
        let line = text.lines().find(|l| l.starts_with("meridian_txn_restarts_total ")).expect("restart counter");
        n += line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap();
    }
    n
}

async fn anomaly_cluster() -> Arc<Cluster> {
    let c = Arc::new(Cluster::start(3, &[]).await);
    two_tables(&c).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_update_across_ranges_is_prevented() {
    // The losers' attempts fail with 40001 and are retried by their gateway (counted).
    let _g = serial().await;
    let c = anomaly_cluster().await;
    let before = restarts(&c).await;
    // Lost update: concurrent read-modify-write of a row in each range, through every gateway.
    // Every acknowledged increment is counted exactly once, in both rows.
    req(&c, 0, &["INSERT INTO a VALUES (1, 0)", "INSERT INTO b VALUES (1, 0)"]).await;
    let acked = Arc::new(std::sync::atomic::AtomicI64::new(0));
    concurrently(8, |i| {
        let (c, acked) = (c.clone(), acked.clone());
        async move {
            for _ in 0..15 {
                let (st, _) = req(&c, i % 3, &["UPDATE a SET v = v + 1 WHERE k = 1", "UPDATE b SET v = v + 1 WHERE k = 1"]).await;
                if st == 200 {
                    acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }
    })
    .await;
    let acked = acked.load(std::sync::atomic::Ordering::SeqCst);
    assert!(acked > 0);
    assert_eq!(int(&c.must(1, "t", "SELECT v FROM a WHERE k = 1").await), acked, "lost update in a");
    assert_eq!(int(&c.must(2, "t", "SELECT v FROM b WHERE k = 1").await), acked, "lost update in b");
    let lost = restarts(&c).await - before;
    eprintln!("{lost} attempts lost a conflict (40001) and were retried");
    assert!(lost > 0, "the transactions never conflicted: the scenario did not test anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_skew_across_ranges_is_prevented() {
    let _g = serial().await;
    let c = anomaly_cluster().await;
    let mut conflicted = 0;
    // Write skew: two on-call doctors, one per range; each may leave only if the other stays.
    // Serializable: never both off.
    // At least 12 rounds, and on until some round's transactions actually conflicted.
    for round in 0..60 {
        req(&c, 0, &["UPSERT INTO a VALUES (5, 1)", "UPSERT INTO b VALUES (5, 1)"]).await;
        let r0 = restarts(&c).await;
        let c1 = c.clone();
        let c2 = c.clone();
        let t1 = tokio::spawn(async move { req(&c1, 1, &["UPDATE a SET v = 0 WHERE k = 5 AND (SELECT v FROM b WHERE k = 5) = 1"]).await });
        let t2 = tokio::spawn(async move { req(&c2, 2, &["UPDATE b SET v = 0 WHERE k = 5 AND (SELECT v FROM a WHERE k = 5) = 1"]).await });
        let (r1, r2) = (t1.await.unwrap(), t2.await.unwrap());
        conflicted += restarts(&c).await - r0;
        for (st, body) in [&r1, &r2] {
            assert!(*st == 200 || body["error"]["code"] == "40001", "round {round}: {st} {body}");
        }
        let on = int(&c.must(0, "t", "SELECT (SELECT v FROM a WHERE k = 5) + (SELECT v FROM b WHERE k = 5)").await);
        assert!(on >= 1, "round {round}: write skew, both doctors left");
        if round >= 11 && conflicted > 0 {
            break;
        }
    }
    eprintln!("{conflicted} attempts lost a conflict (40001) and were retried");
    assert!(conflicted > 0, "the transactions never conflicted: the scenario did not test anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phantom_across_ranges_is_prevented() {
    let _g = serial().await;
    let c = anomaly_cluster().await;
    let mut conflicted = 0;
    // Phantom: each inserts into its table only while the other table has no row matching a
    // predicate. Serializable: at most one of them inserts.
    // At least 12 rounds, and on until some round's transactions actually conflicted.
    for round in 0..60 {
        req(&c, 0, &["DELETE FROM a WHERE k >= 100", "DELETE FROM b WHERE k >= 100"]).await;
        let r0 = restarts(&c).await;
        let c1 = c.clone();
        let c2 = c.clone();
        let t1 =
            tokio::spawn(
                async move { req(&c1, 1, &["INSERT INTO a SELECT 100, 1 WHERE NOT EXISTS (SELECT 1 FROM b WHERE k >= 100)"]).await },
            );
        let t2 =
            tokio::spawn(
                async move { req(&c2, 2, &["INSERT INTO b SELECT 100, 1 WHERE NOT EXISTS (SELECT 1 FROM a WHERE k >= 100)"]).await },
            );
        let (r1, r2) = (t1.await.unwrap(), t2.await.unwrap());
        conflicted += restarts(&c).await - r0;
        for (st, body) in [&r1, &r2] {
            assert!(*st == 200 || body["error"]["code"] == "40001", "round {round}: {st} {body}");
        }
        let n = int(&c.must(0, "t", "SELECT (SELECT count(*) FROM a WHERE k >= 100) + (SELECT count(*) FROM b WHERE k >= 100)").await);
        assert!(n <= 1, "round {round}: phantom, both inserted");
        if round >= 11 && conflicted > 0 {
            break;
        }
    }
    eprintln!("{conflicted} attempts lost a conflict (40001) and were retried");
    assert!(conflicted > 0, "the transactions never conflicted: the scenario did not test anything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_skew_across_ranges_is_prevented() {
    let _g = serial().await;
    let c = anomaly_cluster().await;
    // Read skew: transfers between the ranges keep a + b constant; readers of both in one
    // request never see a transfer half done.
    req(&c, 0, &["UPSERT INTO a VALUES (9, 500)", "UPSERT INTO b VALUES (9, 500)"]).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let movers: Vec<_> = (0..3)
        .map(|i| {
            let (c, stop) = (c.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let (from, to) = if n % 2 == 0 { ("a", "b") } else { ("b", "a") };
                    let s1 = format!("UPDATE {from} SET v = v - 7 WHERE k = 9");
                    let s2 = format!("UPDATE {to} SET v = v + 7 WHERE k = 9");
                    req(&c, i, &[&s1, &s2]).await;
                    n += 1;
                }
            })
        })
        .collect();
    let mut checks = 0;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let (st, body) = req(&c, checks % 3, &["SELECT (SELECT v FROM a WHERE k = 9) + (SELECT v FROM b WHERE k = 9)"]).await;
        if st == 200 {
            assert_eq!(int(&body), 1000, "read skew: saw a transfer half done");
            checks += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for m in movers {
        m.await.unwrap();
    }
    assert!(checks > 10, "only {checks} consistent reads");
    assert_eq!(int(&c.must(0, "t", "SELECT (SELECT v FROM a WHERE k = 9) + (SELECT v FROM b WHERE k = 9)").await), 1000);
}

/// A cluster where node 3 coordinated `UPDATE a, b SET v = 100 WHERE k = 1` (both rows held 1)
/// and exited at `point` of the commit (the `MERIDIAN_TESTING_DIE_AT` hook) before answering.
async fn coordinator_died_at(point: &str) -> Cluster {
    let c = Cluster::start(3, &[]).await;
    two_tables(&c).await;
    c.must(0, "t", "INSERT INTO a VALUES (1, 1)").await;
    c.must(0, "t", "INSERT INTO b VALUES (1, 1)").await;
    c.sigkill(2);
    c.spawn_with_env(2, &[("MERIDIAN_TESTING_DIE_AT", point)]);
    c.wait_ready(2, Duration::from_secs(60)).await;
    let (st, _) = req(&c, 2, &["UPDATE a SET v = 100 WHERE k = 1", "UPDATE b SET v = 100 WHERE k = 1"]).await;
    assert_ne!(st, 200, "the coordinator died before answering");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_that_dies_after_prepare_leaves_no_lock_behind() {
    let _g = serial().await;
    // Node 3 was a coordinator that exited between laying its intents and committing.
    let c = coordinator_died_at("after-prepare").await;
    // Its intents block readers until its expiry, then are aborted: the old values, never half.
    let started = Instant::now();
    let body = c.must(0, "t", "SELECT (SELECT v FROM a WHERE k = 1), (SELECT v FROM b WHERE k = 1)").await;
    assert_eq!(rows(&body)[0], json!([1, 1]), "the dead transaction's writes never became visible");
    assert!(started.elapsed() < Duration::from_secs(9), "blocked for {:?}", started.elapsed());
    // Writers are not blocked either, and the node rejoins normally.
    let (st, body) = req(&c, 1, &["UPDATE a SET v = 2 WHERE k = 1", "UPDATE b SET v = 2 WHERE k = 1"]).await;
    assert_eq!(st, 200, "{body}");
    c.sigkill(2);
    c.spawn(2);
    c.wait_ready(2, Duration::from_secs(60)).await;
    let body = c.must(2, "t", "SELECT (SELECT v FROM a WHERE k = 1), (SELECT v FROM b WHERE k = 1)").await;
    assert_eq!(rows(&body)[0], json!([2, 2]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_that_dies_after_committing_leaves_its_writes_to_readers() {
    // Shows: a transaction whose record says committed is committed, even though its
    // coordinator died before resolving a single intent: readers that meet the intents learn
    // the outcome from the record and resolve them, on every range.
    let _g = serial().await;
    let c = coordinator_died_at("after-record").await;
    for gw in [0, 1] {
        let body = c.must(gw, "t", "SELECT (SELECT v FROM a WHERE k = 1), (SELECT v FROM b WHERE k = 1)").await;
        assert_eq!(rows(&body)[0], json!([100, 100]), "the committed transaction, whole, through node {}", gw + 1);
    }
    // Later writers go through, and the data stays consistent after the node returns.
    let (st, body) = req(&c, 1, &["UPDATE a SET v = v + 1 WHERE k = 1", "UPDATE b SET v = v + 1 WHERE k = 1"]).await;
    assert_eq!(st, 200, "{body}");
    c.sigkill(2);
    c.spawn(2);
    c.wait_ready(2, Duration::from_secs(60)).await;
    let body = c.must(2, "t", "SELECT (SELECT v FROM a WHERE k = 1), (SELECT v FROM b WHERE k = 1)").await;
    assert_eq!(rows(&body)[0], json!([101, 101]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opposite_order_transactions_over_two_ranges_never_deadlock() {
    let _g = serial().await;
    let c = Arc::new(Cluster::start(3, &[]).await);
    two_tables(&c).await;
    req(&c, 0, &["INSERT INTO a VALUES (1, 0)", "INSERT INTO b VALUES (1, 0)"]).await;
    // Half the clients update a then b, half b then a, with a read of the other row first: the
    // shape that deadlocks with lock-waiting. Every request must finish (200 or 40001) within
    // its timeout, and the rows must agree on how many committed.
    let acked = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let started = Instant::now();
    concurrently(8, |i| {
        let (c, acked) = (c.clone(), acked.clone());
        async move {
            let (x, y) = if i % 2 == 0 { ("a", "b") } else { ("b", "a") };
            let s1 = format!("UPDATE {x} SET v = v + 1 WHERE k = 1 AND (SELECT v FROM {y} WHERE k = 1) >= 0");
            let s2 = format!("UPDATE {y} SET v = v + 1 WHERE k = 1");
            for _ in 0..10 {
                let body = json!({"database": "t", "timeout": "8s", "statements": [{"sql": s1}, {"sql": s2}]});
                let (st, body) = c.sql_body(i % 3, body).await;
                assert!(st == 200 || body["error"]["code"] == "40001", "{st} {body}");
                if st == 200 {
                    acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        }
    })
    .await;
    let acked = acked.load(std::sync::atomic::Ordering::SeqCst);
    assert!(acked > 0, "nothing committed in {:?}", started.elapsed());
    let body = c.must(0, "t", "SELECT (SELECT v FROM a WHERE k = 1), (SELECT v FROM b WHERE k = 1)").await;
    assert_eq!(rows(&body)[0], json!([acked, acked]));
}

/// Runs `meridian workload bank` against the cluster; returns its JSON summary.
async fn bank(c: &Cluster, secs: u64) -> Value {
    let urls: Vec<String> = (0..3).filter(|i| c.is_running(*i)).map(|i| format!("http://{}", c.nodes[i].http)).collect();
    let out = tokio::process::Command::new(common::bin())
        .args(["workload", "bank", "--url", &urls.join(","), "--concurrency", "32", "--duration", &format!("{secs}s")])
        .args(["--accounts", "200", "--tables", "2", "--json"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bank failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_over_two_ranges_keeps_its_total_with_and_without_a_sigkill() {
    let _g = serial().await;
    let c = Arc::new(Cluster::start(3, &[]).await);
    let s = bank(&c, 6).await;
    assert_eq!(s["check"]["ok"], true, "{s}");
    assert!(s["ops"]["transfer"]["count"].as_u64().unwrap_or(0) > 50, "{s}");
    // Again, SIGKILLing the leaseholder of an accounts range in the middle (the node that
    // created the new tables leads them: the workload's first gateway, so the final check reads
    // through the next one), while every gateway carries transfers.
    let killed = {
        let c = c.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let st = c.status(0).await;
            let newest = st["ranges"].as_array().into_iter().flatten().filter_map(|r| r["table_id"].as_u64()).max();
            let victim = match newest {
                Some(t) => c.leaseholder_of_table(t).await.unwrap_or(0),
                None => 0,
            };
            c.sigkill(victim);
            victim
        })
    };
    let urls: Vec<String> = (0..3).map(|i| format!("http://{}", c.nodes[i].http)).collect();
    let out = tokio::process::Command::new(common::bin())
        .args(["workload", "bank", "--url", &urls.join(","), "--concurrency", "32", "--duration", "12s"])
        .args(["--accounts", "200", "--tables", "2", "--json"])
        .output()
        .await
        .unwrap();
    let victim = killed.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bank with a SIGKILL failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let s: Value = serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap();
    eprintln!("killed node {} (a leaseholder) during the run: {s}", victim + 1);
    assert!(s["ops"]["transfer"]["count"].as_u64().unwrap_or(0) > 50, "{s}");
    // Both account ranges serve writes again after the failover, through the survivors.
    let live = (0..3).find(|i| *i != victim).unwrap();
    for t in 0..2 {
        let (st, body) = c
            .sql_body(
                live,
                json!({"database": "bench", "timeout": "20s",
            "statements": [{"sql": format!("UPDATE accounts_{t} SET balance = balance WHERE id < 10")}]}),
            )
            .await;
        assert_eq!(st, 200, "accounts_{t} after the kill: {body}");
    }
    assert_eq!(s["check"]["ok"], true, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_of_one_unique_value_in_multi_range_transactions_one_wins() {
    let _g = serial().await;
    let c = Arc::new(Cluster::start(3, &[]).await);
    c.must(0, "", "CREATE DATABASE t").await;
    c.must(0, "t", "CREATE TABLE users (id INT PRIMARY KEY, email STRING NOT NULL)").await;
    c.must(0, "t", "CREATE UNIQUE INDEX users_email ON users (email)").await;
    c.must(0, "t", "CREATE TABLE audit (id INT PRIMARY KEY, what STRING)").await;
    for round in 0..5 {
        let email = format!("same{round}@example.com");
        let results = Arc::new(std::sync::Mutex::new(Vec::new()));
        concurrently(8, |i| {
            let (c, results, email) = (c.clone(), results.clone(), email.clone());
            async move {
                let id = (round * 100 + i) as i64;
                // Each request writes two ranges: the user (and its index entry) and an audit row.
                let r = c
                    .sql(
                        i % 3,
                        "t",
                        &[
                            ("INSERT INTO users VALUES ($1, $2)", json!([id, email])),
                            ("INSERT INTO audit VALUES ($1, 'signup')", json!([id])),
                        ],
                    )
                    .await;
                results.lock().unwrap().push(r);
            }
        })
        .await;
        let results = results.lock().unwrap().clone();
        let won = results.iter().filter(|(st, _)| *st == 200).count();
        for (st, body) in results.iter().filter(|(st, _)| *st != 200) {
            assert!(body["error"]["code"] == "23505" || body["error"]["code"] == "40001", "round {round}: {st} {body}");
        }
        assert_eq!(won, 1, "round {round}: exactly one insert of {email} wins: {results:?}");
        let n = int(&c.must(1, "t", &format!("SELECT count(*) FROM users WHERE email = '{email}'")).await);
        assert_eq!(n, 1, "round {round}");
        // The winner's audit row committed with it; no loser's did.
        let audits =
            int(&c.must(2, "t", &format!("SELECT count(*) FROM audit WHERE id >= {} AND id < {}", round * 100, round * 100 + 100)).await);
        assert_eq!(audits, 1, "round {round}");
    }
}
