//! The systems a workload can drive, behind one interface so numbers are comparable: Meridian's
//! HTTP SQL API, etcd's v3 JSON gateway (`/v3/kv/put`, `/v3/kv/range`, `/v3/kv/txn`), and
//! PostgreSQL through a real client (`tokio-postgres`, one connection per worker, prepared
//! statements).
//!
//! Every operation returns `Err(code)` on failure: a SQLSTATE for SQL systems, `HTTP<status>`,
//! `timeout` or `connect` otherwise, so summaries can count errors by kind.

use serde_json::{Value, json};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Meridian,
    Etcd,
    Postgres,
}

/// A connection of one worker to the system under test.
pub enum Conn {
    Meridian { client: reqwest::Client, url: String },
    Etcd { client: reqwest::Client, url: String },
    Postgres { client: tokio_postgres::Client, stmts: Vec<tokio_postgres::Statement> },
}

pub type OpResult = Result<(), String>;

fn http_err(e: reqwest::Error) -> String {
    if e.is_timeout() { "timeout".into() } else { "connect".into() }
}

fn pg_err(e: tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_else(|| "connect".into())
}

/// Standard base64 (etcd's JSON gateway encodes keys and values this way).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= c.len() { T[(n >> shift) as usize & 63] as char } else { '=' });
        }
    }
    out
}

fn etcd_key(k: i64) -> String {
    base64(format!("kv/{k:020}").as_bytes())
}

/// Statements prepared on every PostgreSQL connection, by index.
const PG_STMTS: [&str; 4] = [
    "INSERT INTO kv (k, v) VALUES ($1, $2) ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
    "SELECT v FROM kv WHERE k = $1",
    "UPDATE accounts SET balance = balance - $2 WHERE id = $1",
    "UPDATE accounts SET balance = balance + $2 WHERE id = $1",
];

impl Conn {
    pub async fn open(kind: Kind, url: &str, timeout: Duration) -> Result<Conn, String> {
        match kind {
            Kind::Meridian | Kind::Etcd => {
                let client = reqwest::Client::builder().timeout(timeout).pool_max_idle_per_host(1024).build().map_err(|e| e.to_string())?;
                let url = url.trim_end_matches('/').to_string();
                Ok(if kind == Kind::Meridian { Conn::Meridian { client, url } } else { Conn::Etcd { client, url } })
            }
            Kind::Postgres => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|e| format!("{url}: {e}"))?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok(Conn::Postgres { client, stmts: Vec::new() })
            }
        }
    }

    /// Runs SQL on a SQL system (Meridian: one request, one transaction).
    pub async fn sql(&self, stmts: &[(&str, Value)]) -> Result<Value, String> {
        match self {
            Conn::Meridian { client, url } => {
                let stmts: Vec<Value> = stmts.iter().map(|(s, a)| json!({"sql": s, "args": a})).collect();
                let body = json!({"database": "bench", "statements": stmts});
                let r = client.post(format!("{url}/v1/sql")).json(&body).send().await.map_err(http_err)?;
                let ok = r.status().is_success();
                let v: Value = r.json().await.map_err(http_err)?;
                if ok { Ok(v) } else { Err(v["error"]["code"].as_str().unwrap_or("HTTP").to_string()) }
            }
            Conn::Postgres { client, .. } => {
                for (s, _) in stmts {
                    client.batch_execute(s).await.map_err(pg_err)?;
                }
                Ok(Value::Null)
            }
            Conn::Etcd { .. } => Err("etcd has no SQL".into()),
        }
    }

    /// Creates what the kv workload needs (idempotent): `tables` tables for Meridian.
    pub async fn setup_kv(&mut self, tables: usize) -> OpResult {
        match self {
            Conn::Meridian { .. } => {
                self.sql(&[("CREATE DATABASE IF NOT EXISTS bench", json!([]))]).await?;
                for t in 0..tables {
                    let ddl = format!("CREATE TABLE IF NOT EXISTS {} (k INT8 PRIMARY KEY, v STRING NOT NULL)", kv_table(t));
                    self.sql(&[(&ddl, json!([]))]).await?;
                }
                Ok(())
            }
            Conn::Postgres { client, .. } => {
                client.batch_execute("CREATE TABLE IF NOT EXISTS kv (k BIGINT PRIMARY KEY, v TEXT NOT NULL)").await.map_err(pg_err)
            }
            Conn::Etcd { .. } => Ok(()),
        }
    }

    pub async fn prepare(&mut self) -> OpResult {
        if let Conn::Postgres { client, stmts } = self {
            for s in PG_STMTS {
                // The bank statements need the accounts table; prepare lazily what exists.
                if let Ok(p) = client.prepare(s).await {
                    stmts.push(p);
                }
            }
        }
        Ok(())
    }

    /// Writes `keys` (one statement / request / transaction). `insert_only`: the keys are new,
    /// so SQL systems use a plain INSERT; otherwise an upsert.
    pub async fn write(&self, keys: &[i64], value: &str, insert_only: bool, tables: usize) -> OpResult {
        match self {
            Conn::Meridian { .. } => {
                let mut values = String::new();
                let mut args = Vec::with_capacity(keys.len() * 2);
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        values.push(',');
                    }
                    values.push_str(&format!("(${}, ${})", 2 * i + 1, 2 * i + 2));
                    args.push(json!(k));
                    args.push(json!(value));
                }
                let verb = if insert_only { "INSERT" } else { "UPSERT" };
                let stmts: Vec<(String, Value)> =
                    (0..tables).map(|t| (format!("{verb} INTO {} VALUES {values}", kv_table(t)), Value::Array(args.clone()))).collect();
                let refs: Vec<(&str, Value)> = stmts.iter().map(|(s, a)| (s.as_str(), a.clone())).collect();
                self.sql(&refs).await.map(|_| ())
            }
            Conn::Etcd { client, url } => {
                let (path, body) = if keys.len() == 1 {
                    ("put", json!({"key": etcd_key(keys[0]), "value": base64(value.as_bytes())}))
                } else {
                    let ops: Vec<Value> =
                        keys.iter().map(|k| json!({"request_put": {"key": etcd_key(*k), "value": base64(value.as_bytes())}})).collect();
                    ("txn", json!({"success": ops}))
                };
                let r = client.post(format!("{url}/v3/kv/{path}")).json(&body).send().await.map_err(http_err)?;
                if r.status().is_success() { Ok(()) } else { Err(format!("HTTP{}", r.status().as_u16())) }
            }
            Conn::Postgres { client, stmts } => {
                if keys.len() == 1 && !stmts.is_empty() {
                    return client.execute(&stmts[0], &[&keys[0], &value]).await.map(|_| ()).map_err(pg_err);
                }
                let rows: Vec<String> = keys.iter().map(|k| format!("({k}, '{value}')")).collect();
                let verb = if insert_only { "" } else { " ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v" };
                client.batch_execute(&format!("INSERT INTO kv (k, v) VALUES {}{verb}", rows.join(","))).await.map_err(pg_err)
            }
        }
    }

    /// A strong (linearizable) point read.
    pub async fn read(&self, key: i64) -> OpResult {
        match self {
            Conn::Meridian { .. } => self.sql(&[("SELECT v FROM kv WHERE k = $1", json!([key]))]).await.map(|_| ()),
            Conn::Etcd { client, url } => {
                let r = client.post(format!("{url}/v3/kv/range")).json(&json!({"key": etcd_key(key)})).send().await.map_err(http_err)?;
                if r.status().is_success() { Ok(()) } else { Err(format!("HTTP{}", r.status().as_u16())) }
            }
            Conn::Postgres { client, stmts } => match stmts.get(1) {
                Some(s) => client.query_opt(s, &[&key]).await.map(|_| ()).map_err(pg_err),
                None => Err("unprepared".into()),
            },
        }
    }

    /// Moves `amount` from account `from` to account `to` in one transaction.
    pub async fn transfer(&mut self, from: i64, to: i64, amount: i64, tables: i64) -> OpResult {
        let (tf, tt) = (bank_table(from, tables), bank_table(to, tables));
        match self {
            Conn::Meridian { .. } => self
                .sql(&[
                    (&format!("UPDATE {tf} SET balance = balance - $2 WHERE id = $1"), json!([from, amount])),
                    (&format!("UPDATE {tt} SET balance = balance + $2 WHERE id = $1"), json!([to, amount])),
                ])
                .await
                .map(|_| ()),
            Conn::Postgres { client, stmts } => {
                let tx = client.transaction().await.map_err(pg_err)?;
                match (stmts.get(2), stmts.get(3)) {
                    (Some(a), Some(b)) if tables == 1 => {
                        tx.execute(a, &[&from, &amount]).await.map_err(pg_err)?;
                        tx.execute(b, &[&to, &amount]).await.map_err(pg_err)?;
                    }
                    _ => {
                        tx.execute(&format!("UPDATE {tf} SET balance = balance - $2 WHERE id = $1"), &[&from, &amount])
                            .await
                            .map_err(pg_err)?;
                        tx.execute(&format!("UPDATE {tt} SET balance = balance + $2 WHERE id = $1"), &[&to, &amount])
                            .await
                            .map_err(pg_err)?;
                    }
                }
                tx.commit().await.map_err(pg_err)
            }
            Conn::Etcd { .. } => Err("the bank workload needs SQL".into()),
        }
    }

    /// (sum of balances, number of accounts), read in one transaction.
    pub async fn bank_totals(&self, tables: i64) -> Result<(i64, i64), String> {
        let parts: Vec<String> = (0..tables).map(|t| format!("SELECT balance FROM {}", bank_table(t, tables))).collect();
        let sql = format!("SELECT sum(balance)::BIGINT, count(*) FROM ({}) AS a", parts.join(" UNION ALL "));
        match self {
            Conn::Meridian { .. } => {
                let v = self.sql(&[(&sql, json!([]))]).await?;
                let row = &v["results"][0]["rows"][0];
                Ok((row[0].as_i64().unwrap_or(0), row[1].as_i64().unwrap_or(0)))
            }
            Conn::Postgres { client, .. } => {
                let row = client.query_one(&sql, &[]).await.map_err(pg_err)?;
                Ok((row.get::<_, Option<i64>>(0).unwrap_or(0), row.get(1)))
            }
            Conn::Etcd { .. } => Err("the bank workload needs SQL".into()),
        }
    }

    /// Creates `n` accounts with `balance` each over `tables` tables (replacing any previous ones).
    pub async fn setup_bank(&mut self, n: i64, balance: i64, tables: i64) -> OpResult {
        if let Conn::Meridian { .. } = self {
            self.sql(&[("CREATE DATABASE IF NOT EXISTS bench", json!([]))]).await?;
        }
        for t in 0..tables {
            let name = bank_table(t, tables);
            self.sql(&[(&format!("DROP TABLE IF EXISTS {name}"), json!([]))]).await?;
            self.sql(&[(&format!("CREATE TABLE {name} (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)"), json!([]))]).await?;
            let ids: Vec<i64> = (0..n).filter(|i| i % tables == t).collect();
            for chunk in ids.chunks(500) {
                let rows: Vec<String> = chunk.iter().map(|k| format!("({k}, {balance})")).collect();
                self.sql(&[(&format!("INSERT INTO {name} VALUES {}", rows.join(",")), json!([]))]).await?;
            }
        }
        Ok(())
    }
}

/// The `t`-th table of the kv workload.
fn kv_table(t: usize) -> String {
    if t == 0 { "kv".into() } else { format!("kv_{t}") }
}

/// The table holding bank account `id` when accounts are spread over `tables` tables.
fn bank_table(id: i64, tables: i64) -> String {
    if tables == 1 { "accounts".into() } else { format!("accounts_{}", id % tables) }
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }
}
