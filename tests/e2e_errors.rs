//! End-to-end: bad input always gets a clear JSON error with a fitting status and SQLSTATE,
//! never a 500, a panic or a hang; and the node keeps serving afterwards.

mod common;

use common::{Cluster, serial};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors() {
    let _g = serial().await;
    let c = Cluster::start(1, &["--max-body-bytes", "65536"]).await;
    c.must(0, "", "CREATE DATABASE d").await;
    c.must(0, "d", "CREATE TABLE t (k INT PRIMARY KEY, v STRING NOT NULL, n INT DEFAULT 5)").await;
    c.must(0, "d", "INSERT INTO t VALUES (1, 'a')").await;
    let url = format!("http://{}/v1/sql", c.nodes[0].http);
    let raw = |body: String| {
        let client = c.client.clone();
        let url = url.clone();
        async move {
            let r = client.post(&url).header("content-type", "application/json").body(body).send().await.unwrap();
            let st = r.status().as_u16();
            (st, r.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let code = |v: &serde_json::Value| v["error"]["code"].as_str().unwrap_or("").to_string();

    let (st, b) = raw("{not json".into()).await;
    assert_eq!((st, code(&b).as_str()), (400, "08P01"), "{b}");
    let (st, b) = raw(r#"{"statements": [{"sql": "SELECT 1"}], "bogus": 1}"#.into()).await;
    assert_eq!((st, code(&b).as_str()), (400, "08P01"), "unknown field: {b}");
    let (st, b) = raw(format!(r#"{{"statements": [{{"sql": "SELECT '{}'"}}]}}"#, "x".repeat(70_000))).await;
    assert_eq!((st, code(&b).as_str()), (413, "54000"), "{b}");
    let (st, b) = raw(r#"{"statements": [{"sql": "SELECT 1"}], "timeout": "soon"}"#.into()).await;
    assert_eq!((st, code(&b).as_str()), (400, "22023"), "{b}");
    let (st, b) = raw(r#"{"statements": []}"#.into()).await;
    assert_eq!((st, code(&b).as_str()), (400, "08P01"), "{b}");
    let (st, b) = raw(r#"{"statements": [{"sql": "SELECT 1; SELECT 2"}]}"#.into()).await;
    assert_eq!(st, 400, "two statements in one entry: {b}");
    // Unknown endpoints and methods get the JSON error shape too.
    let r = c.client.get(format!("http://{}/v2/nope", c.nodes[0].http)).send().await.unwrap();
    let st = r.status().as_u16();
    let b: serde_json::Value = r.json().await.unwrap_or_default();
    assert_eq!((st, code(&b).as_str()), (404, "08P01"), "{b}");
    let r = c.client.get(&url).send().await.unwrap();
    let st = r.status().as_u16();
    let b: serde_json::Value = r.json().await.unwrap_or_default();
    assert_eq!((st, code(&b).as_str()), (405, "08P01"), "{b}");
    // A schema change with other statements is refused before anything runs.
    let (st, b) = c.sql(0, "d", &[("CREATE TABLE t2 (k INT PRIMARY KEY)", json!([])), ("INSERT INTO t VALUES (9, 'x')", json!([]))]).await;
    assert_eq!((st, code(&b).as_str()), (400, "0A000"), "{b}");
    let (st, b) = c.sql(0, "d", &[("SELECT * FROM t2", json!([]))]).await;
    assert_eq!((st, code(&b).as_str()), (400, "42P01"), "the refused CREATE TABLE did not run: {b}");

    let cases: Vec<(&str, serde_json::Value, u16, &str)> = vec![
        ("SELEC * FROM t", json!([]), 400, "42601"),
        ("SELECT * FROM nope", json!([]), 400, "42P01"),
        ("SELECT nope FROM t", json!([]), 400, "42703"),
        ("INSERT INTO t VALUES (1, 'dup')", json!([]), 409, "23505"),
        ("INSERT INTO t (k) VALUES (2)", json!([]), 409, "23502"),
        ("SELECT * FROM t WHERE k = $1", json!([]), 400, "08P01"),
        ("SELECT * FROM t WHERE k = $1", json!([1, 2]), 400, "08P01"),
        ("SELECT * FROM t WHERE k = $1", json!(["not a number"]), 400, "22P02"),
        ("SELECT * FROM t WHERE k = $1", json!([{"an": "object"}]), 400, "42883"),
        ("SELECT 1 / 0", json!([]), 400, "22012"),
    ];
    for (sql, args, status, want) in cases {
        let (st, b) = c.sql(0, "d", &[(sql, args.clone())]).await;
        assert_eq!(st, status, "{sql} {args}: {b}");
        let got = code(&b);
        assert_eq!(got, want, "{sql} {args}: {b}");
        assert!(b["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (st, b) = c.sql(0, "nodb", &[("SELECT * FROM t", json!([]))]).await;
    assert_eq!((st, code(&b).as_str()), (400, "3D000"), "{b}");

    // A failed statement rolls the whole request back.
    let (st, _) = c.sql(0, "d", &[("INSERT INTO t VALUES (3, 'c')", json!([])), ("INSERT INTO t VALUES (1, 'dup')", json!([]))]).await;
    assert_eq!(st, 409);
    let b = c.must(0, "d", "SELECT count(*) FROM t").await;
    assert_eq!(common::rows(&b), vec![json!([1])], "nothing of a failed request is applied");
    // DEFAULT applies; the node still serves.
    let b = c.must(0, "d", "SELECT n FROM t WHERE k = 1").await;
    assert_eq!(common::rows(&b), vec![json!([5])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_range_requests_commit_whole_and_deadlines_are_enforced() {
    let _g = serial().await;
    let c = Cluster::start(1, &[]).await;
    c.must(0, "", "CREATE DATABASE d").await;
    c.must(0, "d", "CREATE TABLE a (k INT PRIMARY KEY)").await;
    c.must(0, "d", "CREATE TABLE b (k INT PRIMARY KEY)").await;
    // Two tables are two ranges: a request writing both commits both (a two-range transaction).
    let (st, b) = c.sql(0, "d", &[("INSERT INTO a VALUES (1)", json!([])), ("INSERT INTO b VALUES (1)", json!([]))]).await;
    assert_eq!(st, 200, "{b}");
    // One whose second write fails writes nothing at all.
    let (st, b) = c.sql(0, "d", &[("INSERT INTO a VALUES (2)", json!([])), ("INSERT INTO b VALUES (1)", json!([]))]).await;
    assert_eq!((st, b["error"]["code"].as_str()), (409, Some("23505")), "{b}");
    for t in ["a", "b"] {
        let body = c.must(0, "d", &format!("SELECT count(*) FROM {t}")).await;
        assert_eq!(common::rows(&body), vec![json!([1])], "only the first request is in {t}");
    }
    // A deadline shorter than the work answers 57014, not 503 or a hang.
    let values: Vec<String> = (10..510).map(|i| format!("({i})")).collect();
    c.must(0, "d", &format!("INSERT INTO a VALUES {}", values.join(","))).await;
    let (st, b) = c.sql_body(0, json!({"database": "d", "timeout": "0ms", "statements": [{"sql": "SELECT count(*) FROM a"}]})).await;
    assert_eq!((st, b["error"]["code"].as_str()), (504, Some("57014")), "{b}");
}
