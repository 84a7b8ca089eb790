//! `meridian workload kv`: a closed-loop load generator against Meridian's HTTP SQL API.
//!
//! Each of `--concurrency` workers runs one request at a time on a kept-alive connection:
//! an INSERT of a new key (keys are `seq * concurrency + worker`, so workers never conflict) or,
//! with probability `--read-percent`, a point SELECT of a random already-loaded key. Latencies
//! go into HdrHistograms (microseconds, 3 significant digits) per operation type. A progress line
//! is printed every second; at the end (or on Ctrl-C) a summary per operation with count,
//! errors by SQLSTATE, throughput and p50/p95/p99/p99.9/max; `--json` prints it as JSON.
//!
//! Not yet: zipfian/sequential key distributions, batches, bank, other targets (etcd,
//! PostgreSQL) — the benchmark issue adds them.

use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone)]
pub struct KvArgs {
    /// HTTP URLs of gateways (comma-separated); workers are spread over them.
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
    /// Percentage of operations that are point reads.
    #[arg(long, default_value_t = 0)]
    read_percent: u8,
    /// Keys loaded before a run with reads (reads pick uniformly among them).
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    #[arg(long, default_value_t = 64)]
    value_bytes: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
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
}

async fn post(client: &reqwest::Client, url: &str, sql: &str, args: Value) -> Result<(), String> {
    let body = json!({"database": "kv", "statements": [{"sql": sql, "args": args}]});
    match client.post(format!("{url}/v1/sql")).json(&body).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => {
            let v: Value = r.json().await.unwrap_or_default();
            Err(v["error"]["code"].as_str().unwrap_or("HTTP").to_string())
        }
        Err(e) => Err(if e.is_timeout() { "timeout".into() } else { "connect".into() }),
    }
}

fn percentiles(h: &Histogram<u64>) -> Value {
    let ms = |v: u64| (v as f64) / 1000.0;
    json!({"p50_ms": ms(h.value_at_quantile(0.50)), "p95_ms": ms(h.value_at_quantile(0.95)), "p99_ms": ms(h.value_at_quantile(0.99)),
           "p999_ms": ms(h.value_at_quantile(0.999)), "max_ms": ms(h.max())})
}

pub async fn run_kv(args: KvArgs) -> Result<(), String> {
    let duration = crate::http::parse_duration(&args.duration).ok_or("invalid --duration")?;
    if args.concurrency == 0 || args.url.is_empty() || args.read_percent > 100 {
        return Err("need --concurrency >= 1, at least one --url and --read-percent <= 100".into());
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let url0 = &args.url[0];
    for sql in ["CREATE DATABASE IF NOT EXISTS kv", "CREATE TABLE IF NOT EXISTS kv.kv (k INT8 PRIMARY KEY, v STRING NOT NULL)"] {
        let body = json!({"statements": [{"sql": sql}]});
        let r = client.post(format!("{url0}/v1/sql")).json(&body).send().await.map_err(|e| format!("{url0}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("{sql}: {}", r.text().await.unwrap_or_default()));
        }
    }
    let value = "x".repeat(args.value_bytes);
    // Writes use keys above the read set, so inserts never collide with loaded keys or each other.
    let base = 1_000_000_000i64 + (rand::random::<u32>() as i64) * 1_000_000;
    if args.read_percent > 0 {
        let mut k = 0;
        while k < args.keys {
            let n = (args.keys - k).min(500);
            let rows: Vec<String> = (k..k + n).map(|i| format!("({i}, '{value}')")).collect();
            let sql = format!("INSERT INTO kv VALUES {}", rows.join(","));
            // A re-run finds the keys already loaded (23505): they are there, which is all reads need.
            if let Err(code) = post(&client, url0, &sql, json!([])).await
                && code != "23505"
            {
                return Err(format!("loading keys failed: {code}"));
            }
            k += n;
        }
    }
    let shared = Arc::new(Shared { ops: Mutex::new(BTreeMap::new()), done: AtomicU64::new(0), stop: AtomicBool::new(false) });
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let (client, shared, value, args) = (client.clone(), shared.clone(), value.clone(), args.clone());
        workers.push(tokio::spawn(async move {
            let url = args.url[w % args.url.len()].clone();
            let mut seq = 0i64;
            while !shared.stop.load(Ordering::Relaxed) {
                let read = args.read_percent > 0 && rand::random::<u8>() % 100 < args.read_percent;
                let t = Instant::now();
                let (op, res) = if read {
                    let k = (rand::random::<u64>() % args.keys.max(1)) as i64;
                    ("read", post(&client, &url, "SELECT v FROM kv WHERE k = $1", json!([k])).await)
                } else {
                    let k = base + seq * args.concurrency as i64 + w as i64;
                    seq += 1;
                    ("write", post(&client, &url, "INSERT INTO kv VALUES ($1, $2)", json!([k, value])).await)
                };
                let micros = t.elapsed().as_micros() as u64;
                {
                    let mut ops = shared.ops.lock().unwrap_or_else(|e| e.into_inner());
                    let s = ops.entry(op).or_default();
                    match res {
                        Ok(()) => s.record(micros),
                        Err(code) => *s.errors.entry(code).or_default() += 1,
                    }
                }
                let n = shared.done.fetch_add(1, Ordering::Relaxed) + 1;
                if args.max_ops > 0 && n >= args.max_ops {
                    shared.stop.store(true, Ordering::Relaxed);
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
                    line += &format!(
                        "  {op}: p50 {:.2}ms p99 {:.2}ms errors {errs}",
                        h.value_at_quantile(0.5) as f64 / 1000.0,
                        h.value_at_quantile(0.99) as f64 / 1000.0
                    );
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
    let mut summary = serde_json::Map::new();
    for (op, s) in ops.iter() {
        let count = s.hist.as_ref().map(|h| h.len()).unwrap_or(0);
        let mut v = json!({"count": count, "errors": s.errors, "ops_per_sec": count as f64 / elapsed});
        if let Some(h) = &s.hist
            && let (Value::Object(m), Value::Object(p)) = (&mut v, percentiles(h))
        {
            m.extend(p);
        }
        summary.insert(op.to_string(), v);
    }
    let summary =
        json!({"workload": "kv", "concurrency": args.concurrency, "read_percent": args.read_percent, "elapsed_s": elapsed, "ops": summary});
    if args.json {
        println!("{summary}");
    } else {
        println!("elapsed {elapsed:.1}s, concurrency {}", args.concurrency);
        println!(
            "{:<6} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}  errors",
            "op", "count", "ops/s", "p50ms", "p95ms", "p99ms", "p99.9ms", "maxms"
        );
        for (op, v) in summary["ops"].as_object().into_iter().flatten() {
            let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
            println!(
                "{:<6} {:>9} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}  {}",
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
    }
    Ok(())
}
