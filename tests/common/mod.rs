//! A real cluster for end-to-end tests: `meridian` processes on loopback, each with its own
//! store in a temporary directory, started, killed (SIGKILL or SIGTERM), wiped and restarted by
//! the test. Logs of every process go to `<tmp>/nK.log` and are printed when a test fails.

#![allow(dead_code)]

pub mod ranges;

use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NodeProc {
    pub listen: String,
    pub http: String,
    pub store: PathBuf,
    pub log: PathBuf,
    pub child: std::sync::Mutex<Option<Child>>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<NodeProc>,
    pub extra_args: Vec<String>,
    pub client: reqwest::Client,
}

/// `n` distinct free ports: all held at once while chosen, so no two are the same (one at a
/// time, the kernel may hand the same port out twice).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    held.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_meridian")
}

impl Cluster {
    /// Starts `n` nodes, initializes the cluster through node 1 and waits until every node is
    /// ready to serve SQL.
    pub async fn start(n: usize, extra_args: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(2 * n);
        let nodes = (1..=n)
            .map(|i| NodeProc {
                listen: format!("127.0.0.1:{}", ports[2 * i - 2]),
                http: format!("127.0.0.1:{}", ports[2 * i - 1]),
                store: dir.path().join(format!("n{i}")),
                log: dir.path().join(format!("n{i}.log")),
                child: std::sync::Mutex::new(None),
            })
            .collect();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let c = Cluster { dir, nodes, extra_args: extra_args.iter().map(|s| s.to_string()).collect(), client };
        for i in 0..n {
            c.spawn(i);
        }
        c.init().await;
        for i in 0..n {
            c.wait_ready(i, Duration::from_secs(60)).await;
        }
        c.wait_system_range_replicated().await;
        c
    }

    /// Waits until the system range has a voter on `min(3, n)` nodes: until then the loss of
    /// one node may cost it its quorum, which tests that kill nodes must not run into (the
    /// replicate queue adds one replica a second after the nodes join).
    pub async fn wait_system_range_replicated(&self) {
        let want = self.nodes.len().min(3);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut voters = 0;
            for i in 0..self.nodes.len() {
                let st = self.status(i).await;
                let seen = st["ranges"]
                    .as_array()
                    .and_then(|rs| rs.iter().find(|r| r["range_id"] == 1 && r["is_leaseholder"] == true))
                    .map_or(0, |r| r["replicas"].as_array().map_or(0, |v| v.iter().filter(|m| m["type"] == "VOTER").count()));
                voters = voters.max(seen);
            }
            if voters >= want {
                return;
            }
            if Instant::now() > deadline {
                self.dump_logs();
                panic!("the system range has {voters} voters, want {want}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn join_list(&self) -> String {
        self.nodes.iter().map(|n| n.listen.clone()).collect::<Vec<_>>().join(",")
    }

    pub fn spawn(&self, i: usize) {
        self.spawn_with_env(i, &[]);
    }

    /// Starts node `i` with extra environment variables (testing hooks).
    pub fn spawn_with_env(&self, i: usize, env: &[(&str, &str)]) {
        let join = self.join_list();
        let n = &self.nodes[i];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&n.log).unwrap();
        let child = Command::new(bin())
            .args(["start", "--store", n.store.to_str().unwrap(), "--listen-addr", &n.listen, "--http-addr", &n.http, "--join", &join])
            .args(["--locality", &format!("region=local,zone=z{}", i + 1), "--raft-heartbeat-ms", "100", "--dead-after", "4s"])
            .args(&self.extra_args)
            .env(
                "MERIDIAN_LOG",
                std::env::var("MERIDIAN_TEST_LOG").unwrap_or_else(|_| "info,openraft=warn,openraft::core::heartbeat=error".into()),
            )
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn meridian");
        *n.child.lock().unwrap() = Some(child);
    }

    pub async fn init(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new(bin()).args(["init", "--host", &self.nodes[0].listen]).output().unwrap();
            if out.status.success() {
                return;
            }
            assert!(Instant::now() < deadline, "init failed: {}", String::from_utf8_lossy(&out.stderr));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn wait_ready(&self, i: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let url = format!("http://{}/health/ready", self.nodes[i].http);
        loop {
            if let Ok(r) = self.client.get(&url).timeout(Duration::from_secs(3)).send().await
                && r.status().is_success()
            {
                return;
            }
            if Instant::now() > deadline {
                self.dump_logs();
                panic!("node {} not ready after {timeout:?}", i + 1);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.lock().unwrap().is_some()
    }

    pub fn sigkill(&self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and returns the exit status (a clean stop exits 0).
    pub fn sigterm(&self, i: usize) -> std::process::ExitStatus {
        let mut c = self.nodes[i].child.lock().unwrap().take().expect("node running");
        Command::new("kill").args(["-TERM", &c.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("node {} did not stop on SIGTERM", i + 1);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wipe(&self, i: usize) {
        self.sigkill(i);
        let _ = std::fs::remove_dir_all(&self.nodes[i].store);
    }

    /// POST /v1/sql; returns (HTTP status, JSON body).
    pub async fn sql_body(&self, i: usize, body: Value) -> (u16, Value) {
        let url = format!("http://{}/v1/sql", self.nodes[i].http);
        match self.client.post(&url).json(&body).send().await {
            Ok(r) => {
                let st = r.status().as_u16();
                (st, r.json().await.unwrap_or(Value::Null))
            }
            Err(e) => (0, json!({"transport_error": e.to_string()})),
        }
    }

    pub async fn sql(&self, i: usize, db: &str, stmts: &[(&str, Value)]) -> (u16, Value) {
        let stmts: Vec<Value> = stmts.iter().map(|(s, a)| json!({"sql": s, "args": a})).collect();
        self.sql_body(i, json!({"database": db, "statements": stmts})).await
    }

    /// Runs SQL and panics unless it succeeds.
    pub async fn must(&self, i: usize, db: &str, sql: &str) -> Value {
        let (st, body) = self.sql(i, db, &[(sql, json!([]))]).await;
        if st != 200 {
            self.dump_logs();
            panic!("{sql} on node {}: {st} {body}", i + 1);
        }
        body
    }

    pub async fn status(&self, i: usize) -> Value {
        let url = format!("http://{}/v1/status", self.nodes[i].http);
        self.client.get(&url).send().await.unwrap().json().await.unwrap()
    }

    /// Index of the node holding the lease of the range of table `table_id`, if any answers.
    pub async fn leaseholder_of_table(&self, table_id: u64) -> Option<usize> {
        for i in 0..self.nodes.len() {
            if !self.is_running(i) {
                continue;
            }
            let url = format!("http://{}/v1/status", self.nodes[i].http);
            let Ok(r) = self.client.get(&url).timeout(Duration::from_secs(3)).send().await else {
                continue;
            };
            let Ok(st) = r.json::<Value>().await else {
                continue;
            };
            for r in st["ranges"].as_array().into_iter().flatten() {
                if r["table_id"].as_u64() == Some(table_id) && r["is_leaseholder"].as_bool() == Some(true) {
                    return Some(i);
                }
            }
        }
        None
    }

    pub fn dump_logs(&self) {
        for (i, n) in self.nodes.iter().enumerate() {
            let log = std::fs::read_to_string(&n.log).unwrap_or_default();
            // A panic's message is what matters most, wherever it is in the log.
            for l in log.lines().filter(|l| l.contains("panicked at")).take(3) {
                eprintln!("node {} PANIC: {l}", i + 1);
            }
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("---- node {} log (last 40 lines) ----", i + 1);
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.sigkill(i);
        }
    }
}

/// The table id of `db.table` (from the table range's status entry): tables get ids in creation
/// order from 100.
pub fn rows(body: &Value) -> Vec<Value> {
    body["results"].as_array().and_then(|r| r.last()).and_then(|r| r["rows"].as_array()).cloned().unwrap_or_default()
}

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs end-to-end tests one at a time: each starts several processes on a 2-core machine.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}
