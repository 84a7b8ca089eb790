//! Helpers for tests of a table's ranges (splits, merges) in database `d`.

use super::{Cluster, rows};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Runs one statement in database `d` with a generous timeout; returns (status, body).
pub async fn sql(c: &Cluster, gw: usize, stmt: &str) -> (u16, Value) {
    c.sql_body(gw, json!({"database": "d", "timeout": "30s", "statements": [{"sql": stmt}]})).await
}

pub async fn must(c: &Cluster, gw: usize, stmt: &str) -> Value {
    let (st, body) = sql(c, gw, stmt).await;
    if st != 200 {
        c.dump_logs();
        panic!("{stmt} on node {}: {st} {body}", gw + 1);
    }
    body
}

/// SHOW RANGES through `gw`, checked to tile the table: from /Min to /Max, each range starting
/// where the previous one ended, each with a leaseholder among its replicas. Returns the
/// (start, end) spans.
pub async fn tiled_ranges(c: &Cluster, gw: usize) -> Vec<(String, String)> {
    let r = rows(&must(c, gw, "SHOW RANGES FROM TABLE t").await);
    let spans: Vec<(String, String)> = r.iter().map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_str().unwrap().to_string())).collect();
    assert_eq!(spans.first().map(|s| s.0.as_str()), Some("/Min"), "{spans:?}");
    assert_eq!(spans.last().map(|s| s.1.as_str()), Some("/Max"), "{spans:?}");
    for w in spans.windows(2) {
        assert_eq!(w[0].1, w[1].0, "a gap or an overlap between ranges: {spans:?}");
    }
    for row in &r {
        let replicas: Vec<u64> = row[6].as_array().unwrap().iter().map(|n| n.as_u64().unwrap()).collect();
        assert!(replicas.contains(&row[4].as_u64().unwrap()), "leaseholder among the replicas: {row:?}");
    }
    spans
}

/// Waits until every node's replicas of the table's ranges agree on each range's span (a node
/// catching up may briefly lag), then checks that distinct ranges never overlap (from
/// `/v1/status`, i.e. the replicas' own descriptors). Returns the number of ranges.
pub async fn replicas_agree(c: &Cluster, table_id: u64, at_least: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        match replica_spans(c, table_id).await {
            Ok(n) if n >= at_least => return n,
            Ok(n) => assert!(Instant::now() < deadline, "only {n} ranges hosted, want {at_least}"),
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

pub async fn replica_spans(c: &Cluster, table_id: u64) -> Result<usize, String> {
    let mut spans: BTreeMap<u64, (String, String)> = BTreeMap::new();
    for i in 0..c.nodes.len() {
        if !c.is_running(i) {
            continue;
        }
        let st = c.status(i).await;
        for r in st["ranges"].as_array().unwrap().iter().filter(|r| r["table_id"] == table_id) {
            let span = (r["start_key"].as_str().unwrap().to_string(), r["end_key"].as_str().unwrap().to_string());
            let id = r["range_id"].as_u64().unwrap();
            if let Some(prev) = spans.insert(id, span.clone())
                && prev != span
            {
                return Err(format!("replicas of r{id} disagree on its span: {prev:?} {span:?}"));
            }
        }
    }
    let mut sorted: Vec<_> = spans.values().cloned().collect();
    sorted.sort();
    // A range merged away is hosted for a moment beside the range that absorbed it: callers
    // retry until their deadline.
    for w in sorted.windows(2) {
        if w[0].1 > w[1].0 {
            return Err(format!("overlapping ranges: {w:?}"));
        }
    }
    Ok(spans.len())
}

pub fn int(body: &Value) -> i64 {
    rows(body)[0][0].as_i64().unwrap_or_else(|| panic!("not an int: {body}"))
}

/// Runs `meridian workload kv` (8 clients, 80% reads over 3,000 keys of table `bench.kv`)
/// through every gateway for `duration` (e.g. "10s"); returns its JSON summary and the number
/// of failed operations.
pub async fn kv_workload(c: &Cluster, duration: &str) -> (Value, u64) {
    let urls: Vec<String> = (0..c.nodes.len()).map(|i| format!("http://{}", c.nodes[i].http)).collect();
    let out = tokio::process::Command::new(super::bin())
        .args(["workload", "kv", "--url", &urls.join(","), "--concurrency", "8", "--duration", duration])
        .args(["--read-percent", "80", "--keys", "3000", "--json"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    let errors: u64 = ["read", "write"]
        .iter()
        .map(|op| summary["ops"][op]["errors"].as_object().map_or(0, |e| e.values().filter_map(Value::as_u64).sum()))
        .sum();
    (summary, errors)
}

/// Creates database `d` and table `t (k, v)` holding `n` rows (`v = 10 k`) through node 1;
/// returns the table's id.
pub async fn table(c: &Cluster, n: i64) -> u64 {
    c.must(0, "", "CREATE DATABASE d").await;
    must(c, 0, "CREATE TABLE t (k INT8 PRIMARY KEY, v INT8 NOT NULL)").await;
    must(c, 0, &format!("INSERT INTO t SELECT g, g * 10 FROM generate_series(1, {n}) AS g")).await;
    let st = c.status(0).await;
    st["ranges"].as_array().unwrap().iter().filter_map(|r| r["table_id"].as_u64()).max().expect("the table's range")
}
