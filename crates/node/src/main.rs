//! `meridian`: the server binary and its tools.
//!
//! - `meridian start`: run a node (see `node.rs` for its life cycle).
//! - `meridian init --host`: bootstrap a new cluster through one node, exactly once.
//! - `meridian demo`: an in-process cluster on temporary stores.
//! - `meridian workload kv`: load generator with latency percentiles.

/// Log filter unless `MERIDIAN_LOG` says otherwise. openraft logs every failed heartbeat, one per
/// range and follower every heartbeat interval: with thousands of ranges and one node down, that
/// is thousands of lines a second saying what node liveness already reports once.
pub const DEFAULT_LOG: &str = "info,openraft=warn,openraft::core::heartbeat=error";

/// mimalloc instead of glibc malloc: the 64-client write profile spent ~12% of all samples in
/// glibc's malloc/free (see docs/benchmarks.md for the before/after).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod catalog_cache;
mod demo;
mod dist_txn;
mod drain;
mod http;
mod merge;
mod node;
mod range_ops;
mod records;
mod replicate;
mod router;
mod scan;
mod split;
mod txn;
mod workload;

use clap::{Parser, Subcommand};
use meridian_raft_glue::{Frame, Service, TcpTransport};
use node::{Node, NodeConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "meridian", version, about = "Meridian: a distributed SQL database")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a node.
    Start(StartArgs),
    /// Bootstrap a new cluster through the node at HOST:PORT (its --listen-addr). Once only.
    Init {
        #[arg(long)]
        host: String,
    },
    /// Generate load against a running cluster and report latency percentiles.
    Workload {
        #[command(subcommand)]
        kind: WorkloadKind,
    },
    /// Run an in-process cluster on temporary stores until Ctrl-C.
    Demo {
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// First HTTP port; node i serves on PORT+i-1.
        #[arg(long, default_value_t = 8080)]
        http_port: u16,
    },
}

#[derive(Subcommand)]
enum WorkloadKind {
    /// Point reads and writes over a key space (uniform, zipfian or sequential keys).
    Kv(workload::KvArgs),
    /// Transfers between accounts; checks at the end that the total balance is unchanged.
    Bank(workload::BankArgs),
}

/// A flag given twice takes its last value (scripts append overrides to a default set).
#[derive(clap::Args, Clone)]
#[command(args_override_self = true)]
pub struct StartArgs {
    /// Directory of the node's store (created if missing).
    #[arg(long)]
    store: PathBuf,
    /// Address for node-to-node traffic (Raft, KV, admin).
    #[arg(long, default_value = "127.0.0.1:26257")]
    listen_addr: String,
    /// Address of the HTTP SQL API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http_addr: String,
    /// Comma-separated listen addresses of nodes to join.
    #[arg(long, value_delimiter = ',')]
    join: Vec<String>,
    /// Locality, e.g. region=us-east,zone=us-east-a.
    #[arg(long, default_value = "")]
    locality: String,
    /// Maximum tolerated clock offset between nodes, in milliseconds.
    #[arg(long, default_value_t = 500)]
    max_offset_ms: u64,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    max_body_bytes: usize,
    /// Default request timeout, e.g. 10s.
    #[arg(long, default_value = "10s")]
    request_timeout: String,
    /// Raft heartbeat interval in milliseconds (election timeout: 5-7 heartbeats).
    #[arg(long, default_value_t = 200)]
    raft_heartbeat_ms: u64,
    /// Raft log entries between snapshots (log purge point).
    #[arg(long, default_value_t = 5000)]
    raft_snapshot_logs: u64,
    /// Most rows one statement may return or buffer (sorts, joins, groups); more fails with 54000.
    #[arg(long, default_value_t = 100_000)]
    max_result_rows: usize,
    /// Most bytes one statement may return or buffer.
    #[arg(long, default_value_t = 64 << 20)]
    max_result_bytes: usize,
    /// A node that has not answered for this long is dead: its replicas are replaced.
    #[arg(long, default_value = "30s")]
    dead_after: String,
    /// On SIGTERM or Ctrl-C, how long the node may spend handing its leases to other nodes
    /// before it stops anyway (0s: stop at once).
    #[arg(long, default_value = "10s")]
    drain_timeout: String,
    /// A range serving more requests a second than this splits where its load divides (0, the
    /// default: never; CockroachDB uses 2500 on machines with cores to spare).
    #[arg(long, default_value_t = 0)]
    split_qps: u64,
    /// A range smaller than its `range_min_bytes` whose span and load stayed unchanged and cold
    /// for this long merges with the range on its right (0s: never merge).
    #[arg(long, default_value = "60s")]
    merge_delay: String,
}

pub fn parse_locality(s: &str) -> Result<Vec<(String, String)>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
            _ => Err(format!("invalid locality tier {p:?}: expected key=value")),
        })
        .collect()
}

impl StartArgs {
    pub fn config(&self) -> Result<NodeConfig, String> {
        let timeout =
            http::parse_duration(&self.request_timeout).ok_or_else(|| format!("invalid --request-timeout {:?}", self.request_timeout))?;
        let hb = self.raft_heartbeat_ms.max(10);
        Ok(NodeConfig {
            store: self.store.clone(),
            listen_addr: self.listen_addr.clone(),
            http_addr: self.http_addr.clone(),
            join: self.join.iter().filter(|s| !s.is_empty()).cloned().collect(),
            locality: parse_locality(&self.locality)?,
            max_offset_ms: self.max_offset_ms,
            raft: meridian_raft_glue::RaftTimings {
                heartbeat_ms: hb,
                election_min_ms: hb * 5,
                election_max_ms: hb * 7,
                snapshot_logs: self.raft_snapshot_logs,
            },
            max_body_bytes: self.max_body_bytes,
            default_timeout: timeout,
            dead_after: http::parse_duration(&self.dead_after).ok_or_else(|| format!("invalid --dead-after {:?}", self.dead_after))?,
            drain_timeout: http::parse_duration(&self.drain_timeout)
                .ok_or_else(|| format!("invalid --drain-timeout {:?}", self.drain_timeout))?,
            split_qps: self.split_qps,
            merge_delay: http::parse_duration(&self.merge_delay).ok_or_else(|| format!("invalid --merge-delay {:?}", self.merge_delay))?,
            exec: meridian_sql::ExecOptions { max_result_rows: self.max_result_rows, max_result_bytes: self.max_result_bytes },
        })
    }
}

/// Starts a node and its HTTP server; returns the node and a handle that ends when it stops.
pub async fn run_node(
    cfg: NodeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(std::sync::Arc<Node>, tokio::task::JoinHandle<()>), String> {
    let node = Node::start(cfg.clone()).await.map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(&cfg.http_addr).await.map_err(|e| format!("cannot listen on {}: {e}", cfg.http_addr))?;
    let app = http::router(node.clone());
    let n2 = node.clone();
    let drainer = node.clone();
    // On the stop signal, hand the leases off first, still serving HTTP (`drain`).
    let shutdown = async move {
        shutdown.await;
        let timeout = drainer.cfg.drain_timeout;
        if !timeout.is_zero() && drainer.node_id() != 0 {
            drain::drain(&drainer, timeout).await;
        }
    };
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
        n2.shutdown().await;
    });
    Ok((node, handle))
}

async fn terminate_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("MERIDIAN_LOG").unwrap_or_else(|_| DEFAULT_LOG.into()))
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(async move {
        match cli.cmd {
            Cmd::Start(args) => {
                let cfg = args.config()?;
                let (node, handle) = run_node(cfg, terminate_signal()).await?;
                tracing::info!(http = %node.cfg.http_addr, listen = %node.cfg.listen_addr, "node started");
                let _ = handle.await;
                tracing::info!("node stopped");
                Ok(())
            }
            Cmd::Init { host } => init(&host).await,
            Cmd::Demo { nodes, http_port } => demo::run(nodes, http_port).await,
            Cmd::Workload { kind: WorkloadKind::Kv(args) } => workload::run_kv(args).await,
            Cmd::Workload { kind: WorkloadKind::Bank(args) } => workload::run_bank(args).await,
        }
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn init(host: &str) -> Result<(), String> {
    let t = TcpTransport::new();
    let frame = Frame { service: Service::Admin, range_id: 0, body: admin::encode(&admin::AdminRequest::Bootstrap) };
    let b = t.call_addr(host, frame, Duration::from_secs(30)).await.map_err(|e| format!("cannot reach {host}: {e}"))?;
    match admin::decode::<admin::AdminResponse>(&b).map_err(|e| e.to_string())? {
        admin::AdminResponse::Ok => {
            println!("cluster initialized");
            Ok(())
        }
        admin::AdminResponse::Error { message, .. } => Err(message),
        other => Err(format!("unexpected answer {other:?}")),
    }
}
