//! `meridian workload`: closed-loop load generators with HdrHistogram latency percentiles, for
//! Meridian and, with the same code paths, for etcd and PostgreSQL (`--target`), so numbers are
//! comparable side by side.
//!
//! - `kv`: point reads (`--read-percent`) and writes of `--batch` rows per statement over
//!   `--keys` keys chosen `uniform`, `zipfian` (theta 0.99, key 0 hottest) or `sequential` (every
//!   write a new key: plain INSERTs). Keys are preloaded when the run reads.
//! - `bank`: `--accounts` accounts; each operation moves a random amount between two random
//!   accounts in one transaction; at the end the total balance must be unchanged (the run fails
//!   otherwise).
//!
//! Each of `--concurrency` workers has its own connection and runs one operation at a time.
//! A progress line per second on stderr; at the end (or on Ctrl-C) a summary per operation type:
//! count, errors by code, throughput and p50/p95/p99/p99.9/max; `--json` prints it as JSON.

pub mod target;
mod zipf;

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use target::{Conn, Kind, OpResult};

#[derive(clap::Args, Clone)]
pub struct Common {
    /// The system under test.
    #[arg(long, value_enum, default_value = "meridian")]
    target: Kind,
    /// Comma-separated endpoints: Meridian/etcd HTTP URLs, or PostgreSQL connection strings
    /// (`host=127.0.0.1 port=5432 user=postgres`). Workers are spread over them.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8080")]
    url: Vec<String>,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// How long to run, e.g. 30s.
    #[arg(long, default_value = "10s")]
    duration: String,
    /// Stop after this many operations in total (0 = run for --duration).
    #[arg(long, default_value_t = 0)]
    max_ops: u64,
    /// Per-operation timeout.
    #[arg(long, default_value = "10s")]
    timeout: String,
    /// Seed of the key/amount choices (random if 0).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Distribution {
    Uniform,
    Zipfian,
    Sequential,
}

#[derive(clap::Args, Clone)]
pub struct KvArgs {
    #[command(flatten)]
    common: Common,
    /// Percentage of operations that are point reads.
    #[arg(long, default_value_t = 0)]
    read_percent: u8,
    /// Size of the key space (preloaded when the run reads).
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    #[arg(long, value_enum, default_value = "uniform")]
    distribution: Distribution,
    #[arg(long, default_value_t = 64)]
    value_bytes: usize,
    /// Rows written per statement.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Meridian only: write the same rows into this many tables (`kv`, `kv_1`, ...: one range
    /// each) in one request, so every write is a transaction over that many ranges.
    #[arg(long, default_value_t = 1)]
    tables: usize,
}

#[derive(clap::Args, Clone)]
pub struct BankArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 1000)]
    accounts: i64,
    #[arg(long, default_value_t = 1000)]
    initial_balance: i64,
    #[arg(long, default_value_t = 100)]
    max_transfer: i64,
    /// Spread the accounts over this many tables (`accounts_0` .. by id modulo), so transfers
    /// and the final check span that many ranges.
    #[arg(long, default_value_t = 1)]
    tables: i64,
}

#[derive(Default)]
struct OpStats {
    hist: Option<Histogram<u64>>,
    errors: BTreeMap<String, u64>,
}

impl OpStats {
    fn record(&mut self, micros: u64) {
        let h = self.hist.get_or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"));
        let _ = h.record(micros.clamp(1, 60_000_000));
    }
}

struct Shared {
    ops: Mutex<BTreeMap<&'static str, OpStats>>,
    done: AtomicU64,
    stop: AtomicBool,
    /// Next new key of a sequential kv run.
    next_key: AtomicI64,
}

enum Workload {
    Kv { read_percent: u8, keys: u64, dist: Distribution, zipf: Option<zipf::Zipf>, value: String, batch: usize, tables: usize },
    Bank { accounts: i64, max_transfer: i64, tables: i64 },
}

impl Workload {
    async fn step(&self, conn: &mut Conn, rng: &mut StdRng, shared: &Shared) -> (&'static str, OpResult) {
        match self {
            Workload::Kv { read_percent, keys, dist, zipf, value, batch, tables } => {
                let pick = |rng: &mut StdRng| match (dist, zipf) {
                    (Distribution::Zipfian, Some(z)) => z.sample(rng) as i64,
                    _ => rng.random_range(0..(*keys).max(1)) as i64,
                };
                if *read_percent > 0 && rng.random_range(0..100u8) < *read_percent {
                    let k = pick(rng);
                    return ("read", conn.read(k).await);
                }
                let ks: Vec<i64> = match dist {
                    Distribution::Sequential => (0..*batch).map(|_| shared.next_key.fetch_add(1, Ordering::Relaxed)).collect(),
                    _ => {
                        let mut ks: Vec<i64> = (0..*batch).map(|_| pick(rng)).collect();
                        ks.sort_unstable();
                        ks.dedup();
                        ks
                    }
                };
                ("write", conn.write(&ks, value, *dist == Distribution::Sequential, *tables).await)
            }
            Workload::Bank { accounts, max_transfer, tables } => {
                let from = rng.random_range(0..*accounts);
                let mut to = rng.random_range(0..*accounts - 1);
                if to >= from {
                    to += 1;
                }
                let amount = rng.random_range(1..=*max_transfer);
                ("transfer", conn.transfer(from, to, amount, *tables).await)
            }
        }
    }
}

fn parse(d: &str, what: &str) -> Result<Duration, String> {
    crate::http::parse_duration(d).ok_or_else(|| format!("invalid {what} {d:?}"))
}

async fn connect_all(c: &Common) -> Result<Vec<Conn>, String> {
    if c.concurrency == 0 || c.url.is_empty() {
        return Err("need --concurrency >= 1 and at least one --url".into());
    }
    let timeout = parse(&c.timeout, "--timeout")?;
    let mut conns = Vec::with_capacity(c.concurrency);
    for w in 0..c.concurrency {
        let mut conn = Conn::open(c.target, &c.url[w % c.url.len()], timeout).await?;
        conn.prepare().await?;
        conns.push(conn);
    }
    Ok(conns)
}

pub async fn run_kv(a: KvArgs) -> Result<(), String> {
    if a.read_percent > 100 || a.batch == 0 || a.keys == 0 {
        return Err("need --read-percent <= 100, --batch >= 1, --keys >= 1".into());
    }
    let mut setup = Conn::open(a.common.target, &a.common.url[0], Duration::from_secs(60)).await?;
    if a.tables < 1 || (a.tables > 1 && !matches!(a.common.target, Kind::Meridian)) {
        return Err("--tables must be >= 1, and above 1 only with --target meridian".into());
    }
    setup.setup_kv(a.tables).await?;
    let value = "x".repeat(a.value_bytes);
    if a.read_percent > 0 {
        let mut k = 0i64;
        while (k as u64) < a.keys {
            // 100 per batch: etcd refuses transactions of more than 128 operations by default.
            let ks: Vec<i64> = (k..(k + 100).min(a.keys as i64)).collect();
            setup.write(&ks, &value, false, a.tables).await.map_err(|e| format!("loading keys: {e}"))?;
            k += 100;
        }
    }
    let conns = connect_all(&a.common).await?;
    let zipf = (a.distribution == Distribution::Zipfian).then(|| zipf::Zipf::new(a.keys, 0.99));
    let w =
        Workload::Kv { read_percent: a.read_percent, keys: a.keys, dist: a.distribution, zipf, value, batch: a.batch, tables: a.tables };
    // Sequential writes start above the preloaded keys, at a random offset so reruns do not collide.
    let start_key = a.keys as i64 + (rand::random::<u32>() as i64) * 1_000_000;
    let summary = drive(&a.common, conns, Arc::new(w), start_key, "kv").await?;
    print_summary(&a.common, &summary);
    Ok(())
}

pub async fn run_bank(a: BankArgs) -> Result<(), String> {
    if a.accounts < 2 || a.max_transfer < 1 || a.tables < 1 {
        return Err("need --accounts >= 2, --max-transfer >= 1 and --tables >= 1".into());
    }
    let mut setup = Conn::open(a.common.target, &a.common.url[0], Duration::from_secs(60)).await?;
    setup.setup_bank(a.accounts, a.initial_balance, a.tables).await?;
    let conns = connect_all(&a.common).await?;
    let w = Workload::Bank { accounts: a.accounts, max_transfer: a.max_transfer, tables: a.tables };
    let mut summary = drive(&a.common, conns, Arc::new(w), 0, "bank").await?;
    let expected = a.accounts * a.initial_balance;
    let (total, count) = bank_totals(&a.common, a.tables).await?;
    summary["check"] =
        json!({"expected_total": expected, "total": total, "accounts": count, "ok": total == expected && count == a.accounts});
    print_summary(&a.common, &summary);
    if total != expected || count != a.accounts {
        return Err(format!("bank check FAILED: total {total} (expected {expected}), {count} accounts (expected {})", a.accounts));
    }
    Ok(())
}

/// The bank's (total, accounts), read through the first gateway that answers (one may have
/// been killed during the run).
async fn bank_totals(c: &Common, tables: i64) -> Result<(i64, i64), String> {
    let mut last = String::new();
    for url in &c.url {
        let totals = async {
            let mut check = Conn::open(c.target, url, Duration::from_secs(60)).await?;
            check.prepare().await?;
            check.bank_totals(tables).await
        };
        match totals.await {
            Ok(t) => return Ok(t),
            Err(e) => last = format!("{url}: {e}"),
        }
    }
    Err(format!("bank check could not read the totals through any --url ({last})"))
}

async fn drive(c: &Common, conns: Vec<Conn>, w: Arc<Workload>, start_key: i64, name: &str) -> Result<Value, String> {
    let duration = parse(&c.duration, "--duration")?;
    let shared = Arc::new(Shared {
        ops: Mutex::new(BTreeMap::new()),
        done: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        next_key: AtomicI64::new(start_key),
    });
    let seed = if c.seed == 0 { rand::random() } else { c.seed };
    let start = Instant::now();
    let mut workers = Vec::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        let (shared, w, max_ops) = (shared.clone(), w.clone(), c.max_ops);
        workers.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(i as u64));
            while !shared.stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let (op, res) = w.step(&mut conn, &mut rng, &shared).await;
                let micros = t.elapsed().as_micros() as u64;
                // A gateway that refuses connections is down: do not spin on it.
                let gateway_down = matches!(&res, Err(code) if code == "connect");
                {
                    let mut ops = shared.ops.lock().unwrap_or_else(|e| e.into_inner());
                    let s = ops.entry(op).or_default();
                    match res {
                        Ok(()) => s.record(micros),
                        Err(code) => *s.errors.entry(code).or_default() += 1,
                    }
                }
                let n = shared.done.fetch_add(1, Ordering::Relaxed) + 1;
                if max_ops > 0 && n >= max_ops {
                    shared.stop.store(true, Ordering::Relaxed);
                }
                if gateway_down {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let n = shared.done.load(Ordering::Relaxed);
        {
            let ops = shared.ops.lock().unwrap_or_else(|e| e.into_inner());
            let mut line = format!("{:>6.1}s {:>8} ops/s", start.elapsed().as_secs_f64(), n - last);
            for (op, s) in ops.iter() {
                let errs: u64 = s.errors.values().sum();
                if let Some(h) = &s.hist {
                    let ms = |q| h.value_at_quantile(q) as f64 / 1000.0;
                    line += &format!("  {op}: p50 {:.2}ms p99 {:.2}ms errors {errs}", ms(0.5), ms(0.99));
                } else if errs > 0 {
                    line += &format!("  {op}: errors {errs}");
                }
            }
            eprintln!("{line}");
        }
        last = n;
        if shared.stop.load(Ordering::Relaxed) || start.elapsed() >= duration {
            break;
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let ops = shared.ops.lock().unwrap_or_else(|e| e.into_inner());
    let mut per_op = serde_json::Map::new();
    for (op, s) in ops.iter() {
        let count = s.hist.as_ref().map(|h| h.len()).unwrap_or(0);
        let mut v = json!({"count": count, "errors": s.errors, "ops_per_sec": count as f64 / elapsed});
        if let Some(h) = &s.hist {
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            v["p50_ms"] = json!(ms(0.5));
            v["p95_ms"] = json!(ms(0.95));
            v["p99_ms"] = json!(ms(0.99));
            v["p999_ms"] = json!(ms(0.999));
            v["max_ms"] = json!(h.max() as f64 / 1000.0);
        }
        per_op.insert(op.to_string(), v);
    }
    Ok(
        json!({"workload": name, "target": format!("{:?}", c.target).to_lowercase(), "concurrency": c.concurrency, "elapsed_s": elapsed, "seed": seed, "ops": per_op}),
    )
}

fn print_summary(c: &Common, summary: &Value) {
    if c.json {
        println!("{summary}");
        return;
    }
    println!(
        "{} on {}: {:.1}s, concurrency {}",
        summary["workload"].as_str().unwrap_or(""),
        summary["target"].as_str().unwrap_or(""),
        summary["elapsed_s"].as_f64().unwrap_or(0.0),
        c.concurrency
    );
    println!(
        "{:<9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}  errors",
        "op", "count", "ops/s", "p50ms", "p95ms", "p99ms", "p99.9ms", "maxms"
    );
    for (op, v) in summary["ops"].as_object().into_iter().flatten() {
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        println!(
            "{:<9} {:>9} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {}",
            op,
            v["count"],
            f("ops_per_sec"),
            f("p50_ms"),
            f("p95_ms"),
            f("p99_ms"),
            f("p999_ms"),
            f("max_ms"),
            v["errors"]
        );
    }
    if let Some(ch) = summary.get("check") {
        println!("check: {ch}");
    }
}
