//! The HTTP API (axum): `POST /v1/sql`, `GET /health`, `GET /health/ready`, `GET /v1/status`,
//! `GET /metrics`.
//!
//! `/v1/sql` runs all statements of a request as one transaction. Retryable conflicts are
//! retried transparently (nothing has been returned yet) up to [`MAX_ATTEMPTS`] times within the
//! request's deadline; then the client gets 40001 with `retryable: true`. Every failure is a JSON
//! error `{"error": {"code", "message", "retryable"}}` with a fitting HTTP status; client input
//! never produces a 500.

use crate::node::Node;
use crate::txn::Txn;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use meridian_sql::{QueryResult, SqlError};
use meridian_types::{KvError, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;

/// Attempts of one request on retryable conflicts.
pub const MAX_ATTEMPTS: usize = 10;

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/v1/sql", post(sql))
        .route("/health", get(health))
        .route("/health/ready", get(ready))
        .route("/v1/status", get(status))
        .route("/metrics", get(metrics))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(node)
}

const ENDPOINTS: &str = "POST /v1/sql, GET /health, GET /health/ready, GET /v1/status, GET /metrics";

async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "08P01", format!("no endpoint {method} {}; the API is {ENDPOINTS}", uri.path()))
}

async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "08P01", format!("{method} is not allowed on {}; the API is {ENDPOINTS}", uri.path()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    #[serde(default)]
    database: String,
    statements: Vec<Statement>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    read: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Statement {
    sql: String,
    #[serde(default)]
    args: Vec<Value>,
}

pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retryable: bool,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retryable: false }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message, "retryable": self.retryable}});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<SqlError> for ApiError {
    fn from(e: SqlError) -> Self {
        match e {
            SqlError::User { code, message } => {
                let status = match &code[..2] {
                    "23" | "40" => StatusCode::CONFLICT,
                    "57" if code == "57014" => StatusCode::GATEWAY_TIMEOUT,
                    "3D" | "42" | "22" | "0A" | "08" | "25" => StatusCode::BAD_REQUEST,
                    _ => StatusCode::BAD_REQUEST,
                };
                ApiError { status, code, message, retryable: code == "40001" }
            }
            SqlError::Kv(k) => kv_error(k),
        }
    }
}

fn kv_error(k: KvError) -> ApiError {
    let msg = k.to_string();
    match k {
        KvError::WriteConflict(_) | KvError::ReadUncertainty { .. } | KvError::WriteIntent { .. } | KvError::TxnAborted(_) => {
            ApiError { status: StatusCode::CONFLICT, code: "40001", message: format!("restart transaction: {msg}"), retryable: true }
        }
        // The router follows these until the deadline; one left over means the range could not
        // be reached in time.
        KvError::NotLeaseholder { .. } | KvError::RangeNotFound { .. } | KvError::KeyOutOfRange { .. } => ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "57P03",
            message: format!("range unavailable: {msg}"),
            retryable: true,
        },
        KvError::Unavailable(_) => ApiError { status: StatusCode::SERVICE_UNAVAILABLE, code: "57P03", message: msg, retryable: true },
        KvError::Timeout => ApiError {
            status: StatusCode::GATEWAY_TIMEOUT,
            code: "57014",
            message: "query canceled: request timeout exceeded".into(),
            retryable: false,
        },
        KvError::Ambiguous(_) => ApiError { status: StatusCode::SERVICE_UNAVAILABLE, code: "40003", message: msg, retryable: false },
        KvError::KeyExists { .. } => {
            ApiError { status: StatusCode::CONFLICT, code: "23505", message: "duplicate key value".into(), retryable: false }
        }
        KvError::Internal(_) => {
            tracing::error!(error = %msg, "internal error");
            ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: "XX000", message: msg, retryable: false }
        }
    }
}

/// Parses durations like `500ms`, `5s`, `2m`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map(|i| s.split_at(i)).unwrap_or((s, "s"));
    let n: f64 = num.parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        _ => return None,
    };
    (secs <= 3600.0).then(|| Duration::from_secs_f64(secs))
}

async fn sql(State(node): State<Arc<Node>>, body: Body) -> Result<Response, ApiError> {
    let limit = node.cfg.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if e.into_inner().downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "54000", format!("request body exceeds the limit of {limit} bytes"))
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "08P01", "could not read the request body")
        }
    })?;
    let req: SqlRequest =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "08P01", format!("invalid request: {e}")))?;
    if req.read.is_some() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "0A000", "stale follower reads (\"read\") are not supported yet"));
    }
    if req.statements.is_empty() {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "08P01", "invalid request: \"statements\" is empty"));
    }
    let timeout = match &req.timeout {
        Some(t) => parse_duration(t)
            .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "22023", format!("invalid timeout {t:?}: use e.g. \"500ms\", \"5s\"")))?,
        None => node.cfg.default_timeout,
    };
    if node.node_id() == 0 {
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "57P03",
            message: "node has not joined a cluster yet".into(),
            retryable: true,
        });
    }
    let deadline = Instant::now() + timeout;
    let stmts: Vec<(String, Vec<Value>)> = req.statements.into_iter().map(|s| (s.sql, s.args)).collect();
    let run = run_transaction(node.clone(), &req.database, &stmts, deadline);
    let (results, ts) = match tokio::time::timeout_at(deadline, run).await {
        Ok(r) => r?,
        Err(_) => return Err(kv_error(KvError::Timeout)),
    };
    let results: Vec<Value> = results.into_iter().map(result_json).collect();
    Ok(axum::Json(json!({"results": results, "timestamp": ts.to_string()})).into_response())
}

async fn run_transaction(
    node: Arc<Node>,
    db: &str,
    stmts: &[(String, Vec<Value>)],
    deadline: Instant,
) -> Result<(Vec<QueryResult>, Timestamp), ApiError> {
    let mut restart_ts = None;
    let mut backoff = Duration::from_millis(5);
    let m = &node.metrics;
    m.requests.fetch_add(1, Ordering::Relaxed);
    for attempt in 1..=MAX_ATTEMPTS {
        let mut txn = Txn::new(node.clone(), deadline, restart_ts);
        let res = match meridian_sql::execute(&mut txn, db, stmts, &node.cfg.exec).await {
            Ok(results) => txn.commit().await.map(|ts| (results, ts)),
            Err(e) => Err(e),
        };
        if let Err(e) = &res {
            tracing::debug!(node = node.node_id(), attempt, error = %e, "request attempt failed");
        }
        match res {
            Ok(r) => return Ok(r),
            // A range this gateway's catalog pointed at is gone (table dropped and maybe
            // re-created elsewhere): forget the catalog and run the request again.
            Err(SqlError::Kv(KvError::RangeNotFound { .. })) if attempt < MAX_ATTEMPTS && Instant::now() < deadline => {
                node.catalog.clear();
                restart_ts = None;
            }
            // A range split or moved under the request's commit (nothing of it was applied): run
            // it again, routed afresh.
            Err(SqlError::Kv(KvError::KeyOutOfRange { .. })) if attempt < MAX_ATTEMPTS && Instant::now() + backoff < deadline => {
                m.restarts.fetch_add(1, Ordering::Relaxed);
                restart_ts = None;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(200));
            }
            Err(SqlError::Kv(e)) if e.is_txn_retryable() && attempt < MAX_ATTEMPTS && Instant::now() + backoff < deadline => {
                m.restarts.fetch_add(1, Ordering::Relaxed);
                if let KvError::ReadUncertainty { ts } = e {
                    restart_ts = Some(ts);
                } else {
                    restart_ts = None;
                }
                tokio::time::sleep(backoff + Duration::from_micros(rand::random::<u64>() % 5000)).await;
                backoff = (backoff * 2).min(Duration::from_millis(200));
            }
            Err(e) => {
                let e = ApiError::from(e);
                if e.code == "40001" {
                    m.conflicts.fetch_add(1, Ordering::Relaxed);
                }
                return Err(e);
            }
        }
    }
    m.conflicts.fetch_add(1, Ordering::Relaxed);
    Err(kv_error(KvError::WriteConflict("too many conflicting attempts".into())))
}

fn result_json(r: QueryResult) -> Value {
    let cols: Vec<Value> = r.columns.iter().map(|c| json!({"name": c.name, "type": c.ty})).collect();
    json!({"columns": cols, "rows": r.rows, "rows_affected": r.rows_affected, "tag": r.tag})
}

async fn health(State(node): State<Arc<Node>>) -> Response {
    axum::Json(json!({"status": "ok", "node_id": node.node_id()})).into_response()
}

async fn ready(State(node): State<Arc<Node>>) -> Response {
    if node.ready().await {
        axum::Json(json!({"ready": true, "node_id": node.node_id()})).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"ready": false, "node_id": node.node_id()}))).into_response()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[derive(serde::Deserialize)]
struct StatusQuery {
    /// `false` leaves out the per-range list (counts only): cheap with many ranges.
    ranges: Option<bool>,
}

async fn status(State(node): State<Arc<Node>>, axum::extract::Query(q): axum::extract::Query<StatusQuery>) -> Response {
    let live = node.live_nodes().await;
    let peers: Vec<Value> = node
        .router
        .nodes()
        .into_iter()
        .map(|n| json!({"node_id": n.node_id, "addr": n.addr, "http_addr": n.http_addr, "locality": n.locality_string(), "live": live.contains(&n.node_id)}))
        .collect();
    let replicas = node.store.replicas();
    let statuses: Vec<_> = replicas.iter().map(|r| r.group().status()).collect();
    let leaseholders = statuses.iter().filter(|s| s.is_leader).count();
    let quiesced = statuses.iter().filter(|s| s.quiesced).count();
    let ranges: Vec<Value> = replicas
        .iter()
        .zip(statuses)
        .filter(|_| q.ranges != Some(false))
        .map(|(r, st)| {
            let desc = r.fsm().descriptor();
            let replicas: Vec<Value> = st
                .members
                .iter()
                .map(|m| json!({"replica_id": m.replica_id, "node_id": m.node_id, "type": if m.voter {"VOTER"} else {"NON_VOTER"}}))
                .collect();
            json!({
                "range_id": st.range_id,
                "start_key": desc.as_ref().map(|d| hex(&d.start_key)),
                "end_key": desc.as_ref().map(|d| hex(&d.end_key)),
                "table_id": desc.as_ref().and_then(|d| d.table_id),
                "replica_id": st.replica_id,
                "replicas": replicas,
                "leader_node": st.leader_node,
                "leaseholder_node": st.leader_node,
                "is_leaseholder": st.is_leader,
                "term": st.term,
                "applied_index": st.last_applied,
                "quiesced": st.quiesced,
            })
        })
        .collect();
    let locality: serde_json::Map<String, Value> = node.cfg.locality.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    axum::Json(json!({
        "node_id": node.node_id(),
        "replica_count": replicas.len(),
        "leaseholder_count": leaseholders,
        "quiesced_count": quiesced,
        "lease_counts": node.lease_counts().into_iter().map(|(n, c)| (n.to_string(), json!(c))).collect::<serde_json::Map<_, _>>(),
        "cluster_id": node.cluster_id(),
        "addr": node.cfg.listen_addr,
        "http_addr": node.cfg.http_addr,
        "locality": locality,
        "peers": peers,
        "ranges": ranges,
    }))
    .into_response()
}

async fn metrics(State(node): State<Arc<Node>>) -> Response {
    let replicas = node.store.host().groups().len();
    let leaders = node.store.host().leaders().len();
    let m = &node.metrics;
    let text = format!(
        "# TYPE meridian_ranges gauge\nmeridian_ranges {}\n# TYPE meridian_leaseholders gauge\nmeridian_leaseholders {}\n# TYPE meridian_wal_fsyncs_total counter\nmeridian_wal_fsyncs_total {}\n\
         # TYPE meridian_sql_requests_total counter\nmeridian_sql_requests_total {}\n\
         # TYPE meridian_txn_restarts_total counter\nmeridian_txn_restarts_total {}\n\
         # TYPE meridian_txn_conflicts_total counter\nmeridian_txn_conflicts_total {}\n",
        replicas,
        leaders,
        node.engine.syncer().fsync_count(),
        m.requests.load(Ordering::Relaxed),
        m.restarts.load(Ordering::Relaxed),
        m.conflicts.load(Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("abc"), None);
        assert_eq!(parse_duration("5h"), None);
    }
}
