//! `meridian demo`: an in-process cluster of N nodes on temporary stores, for trying Meridian.
//! Node 1 bootstraps; the others join it. Stops cleanly on Ctrl-C and deletes the stores.

use crate::node::NodeConfig;
use meridian_raft_glue::RaftTimings;
use std::time::Duration;

pub async fn run(nodes: usize, http_port: u16) -> Result<(), String> {
    if nodes == 0 || nodes > 32 {
        return Err("--nodes must be between 1 and 32".into());
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut listen = Vec::new();
    for _ in 0..nodes {
        let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        listen.push(l.local_addr().map_err(|e| e.to_string())?.to_string());
    }
    let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut handles = Vec::new();
    let mut urls = Vec::new();
    for i in 0..nodes {
        let http_addr = format!("127.0.0.1:{}", http_port as usize + i);
        let cfg = NodeConfig {
            store: dir.path().join(format!("n{}", i + 1)),
            listen_addr: listen[i].clone(),
            http_addr: http_addr.clone(),
            join: listen.clone(),
            locality: vec![("region".into(), "local".into()), ("zone".into(), format!("local-{}", (b'a' + (i % 26) as u8) as char))],
            max_offset_ms: 500,
            raft: RaftTimings::default(),
            max_body_bytes: 8 << 20,
            default_timeout: Duration::from_secs(10),
            dead_after: Duration::from_secs(30),
            // Every node stops at once: there is no one to hand leases to.
            drain_timeout: Duration::ZERO,
            split_qps: 0,
            merge_delay: Duration::from_secs(60),
            exec: meridian_sql::ExecOptions::default(),
        };
        let mut rx = stop_tx.subscribe();
        let (node, h) = crate::run_node(cfg, async move {
            let _ = rx.recv().await;
        })
        .await?;
        if i == 0 {
            node.bootstrap_for_demo().await?;
        }
        handles.push(h);
        urls.push(format!("http://{http_addr}"));
    }
    println!("Meridian demo cluster: {nodes} nodes (stores in {})", dir.path().display());
    for (i, u) in urls.iter().enumerate() {
        println!("  node {}: {u}", i + 1);
    }
    println!("\nTry:\n  curl -s {}/v1/sql -d '{{\"statements\": [{{\"sql\": \"CREATE DATABASE demo\"}}]}}'", urls[0]);
    println!(
        "  curl -s {}/v1/sql -d '{{\"database\": \"demo\", \"statements\": [{{\"sql\": \"CREATE TABLE kv (k INT PRIMARY KEY, v STRING)\"}}]}}'",
        urls[0]
    );
    println!(
        "  curl -s {}/v1/sql -d '{{\"database\": \"demo\", \"statements\": [{{\"sql\": \"INSERT INTO kv VALUES ($1, $2), ($3, $4)\", \"args\": [1, \"one\", 2, \"two\"]}}]}}'",
        urls[0]
    );
    println!(
        "  curl -s {}/v1/sql -d '{{\"database\": \"demo\", \"statements\": [{{\"sql\": \"SELECT * FROM kv\"}}]}}'",
        urls[urls.len() - 1]
    );
    println!("\nPress Ctrl-C to stop.");
    let _ = tokio::signal::ctrl_c().await;
    println!("stopping...");
    let _ = stop_tx.send(());
    for h in handles {
        let _ = h.await;
    }
    Ok(())
}
