//! A throwaway PostgreSQL server for tests that compare Meridian with the real thing: `initdb` in a
//! temporary directory, `postgres` on 127.0.0.1 with a free port (`fsync=off`, `TimeZone=UTC`, C
//! collation so text sorts bytewise as in Meridian, C.UTF-8 character classes so upper/lower
//! handle non-ASCII letters), stopped when the guard drops.
//!
//! Installs Debian's `postgresql` package when no `initdb` is found, and runs the server as the
//! `postgres` user when the test runs as root (initdb refuses root). `Postgres::start()` fails
//! the test, after printing why, when PostgreSQL cannot be installed or started: a comparison
//! that silently did not run must not pass. It returns `None` only when asked to skip
//! (`MERIDIAN_SKIP_POSTGRES=1`, for machines without PostgreSQL). Also: the
//! text forms PostgreSQL prints for floats and timestamps, to render Meridian's JSON values alike.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Postgres {
    pub port: u16,
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`.
fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

fn loud(msg: &str) {
    eprintln!("\n{}\n!!! {msg}\n{}\n", "!".repeat(100), "!".repeat(100));
}

fn install() -> bool {
    eprintln!("PostgreSQL not found: apt-get install -y postgresql");
    let quiet = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    quiet(&["install", "-y", "-q", "postgresql"]) || (quiet(&["update", "-q"]) && quiet(&["install", "-y", "-q", "postgresql"]))
}

impl Postgres {
    /// Starts a server; None only when `MERIDIAN_SKIP_POSTGRES=1` (module docs).
    pub fn start() -> Option<Postgres> {
        if std::env::var("MERIDIAN_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
            loud("MERIDIAN_SKIP_POSTGRES=1: SKIPPING the comparison with PostgreSQL");
            return None;
        }
        match Self::try_start() {
            Some(pg) => Some(pg),
            None => panic!("PostgreSQL could not be started (why is printed above); MERIDIAN_SKIP_POSTGRES=1 skips the comparison"),
        }
    }

    /// Starts a server, or returns None (after a loud message) if that is impossible here.
    fn try_start() -> Option<Postgres> {
        let bin = match find_bin() {
            Some(b) => b,
            None if install() => find_bin()?,
            None => {
                loud("PostgreSQL is not installed and could not be installed: SKIPPING the comparison with PostgreSQL");
                return None;
            }
        };
        let as_postgres = is_root();
        let dir = tempfile::Builder::new().prefix("meridian-pg").tempdir().ok()?;
        if as_postgres {
            let ok = Command::new("chown").args(["-R", "postgres:", dir.path().to_str()?]).status().map(|s| s.success());
            if !ok.is_ok_and(|s| s) {
                loud("cannot hand the PostgreSQL data directory to user postgres: SKIPPING");
                return None;
            }
        }
        let pg = Postgres { port: TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port(), dir, bin, as_postgres };
        let data = pg.data();
        // C.UTF-8 character classes when the machine has them; plain C otherwise.
        let initdb = |ctype: &[&str]| {
            let _ = std::fs::remove_dir_all(&data);
            let mut args = vec!["-D", &data, "-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"];
            args.extend_from_slice(ctype);
            pg.cmd("initdb", &args).output()
        };
        let out = match initdb(&["--lc-ctype=C.UTF-8"]) {
            Ok(o) if o.status.success() => Ok(o),
            _ => initdb(&[]),
        };
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                loud(&format!("initdb failed: {}", String::from_utf8_lossy(&o.stderr)));
                return None;
            }
            Err(e) => {
                loud(&format!("initdb failed: {e}"));
                return None;
            }
        }
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c TimeZone=UTC",
            pg.port,
            pg.dir.path().display()
        );
        let log = pg.dir.path().join("pg.log");
        let st =
            pg.cmd("pg_ctl", &["-D", &data, "-l", log.to_str()?, "-o", &opts, "-w", "-t", "60", "start"]).stdout(Stdio::null()).status();
        if !st.is_ok_and(|s| s.success()) {
            loud(&format!("pg_ctl start failed: {}", std::fs::read_to_string(&log).unwrap_or_default()));
            return None;
        }
        eprintln!("PostgreSQL ({}) on 127.0.0.1:{}", pg.bin.display(), pg.port);
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    fn cmd(&self, tool: &str, args: &[&str]) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe).args(args);
            c
        } else {
            let mut c = Command::new(exe);
            c.args(args);
            c
        }
    }

    /// Connects to `dbname` (the connection task runs on the current tokio runtime).
    pub async fn connect(&self, dbname: &str) -> tokio_postgres::Client {
        let conf = format!("host=127.0.0.1 port={} user=postgres dbname={dbname}", self.port);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match tokio_postgres::connect(&conf, tokio_postgres::NoTls).await {
                Ok((client, conn)) => {
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    return client;
                }
                Err(e) if Instant::now() > deadline => panic!("connect to PostgreSQL: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.cmd("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// A float as PostgreSQL prints a float8 (shortest round-trip digits; exponent form below 1e-4
/// and from 1e15 on, with a sign and at least two exponent digits).
pub fn pg_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let sci = format!("{f:e}");
    let (mant, exp) = sci.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    if !(-4..15).contains(&exp) { format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs()) } else { format!("{f}") }
}

/// A float as PostgreSQL prints a float4: the shortest digits that round-trip as a 32-bit float,
/// exponent form below 1e-4 and from 1e6 on (FLT_DIG).
pub fn pg_float4(f: f32) -> String {
    if f.is_nan() || f.is_infinite() || f == 0.0 {
        return pg_float(f as f64);
    }
    let sci = format!("{f:e}");
    let (mant, exp) = sci.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    if !(-4..6).contains(&exp) { format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs()) } else { format!("{f}") }
}

/// RFC 3339 in UTC (`2024-05-06T07:08:09.500Z`) as PostgreSQL prints a timestamptz with
/// TimeZone=UTC (`2024-05-06 07:08:09.5+00`).
pub fn pg_timestamp(s: &str) -> String {
    let Some(body) = s.strip_suffix('Z') else {
        return s.to_string();
    };
    let body = body.replacen('T', " ", 1);
    let body = match body.split_once('.') {
        Some((whole, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() { whole.to_string() } else { format!("{whole}.{frac}") }
        }
        None => body,
    };
    format!("{body}+00")
}
