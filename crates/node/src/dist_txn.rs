//! Transactions across ranges: the gateway as coordinator of a two-phase commit, and the
//! resolution of intents a request meets.
//!
//! Commit of a transaction that wrote several ranges, or wrote one and read others:
//! 1. **Prepare**, in parallel, on every range it read or wrote. Each range validates the reads
//!    like a one-range commit, then lays write intents (the new values, provisional) and read
//!    locks (the spans read), and answers a prepare timestamp above everything it served.
//!    Conflicts never wait: a prepare that meets another transaction's intent or lock fails.
//! 2. **Commit point**: the record `Committed(max prepare timestamp)` is written on the anchor
//!    range (the range of the first written key) with one Raft proposal. The client is answered.
//! 3. **Resolve**, in the background: every range turns the intents into versions at the commit
//!    timestamp and drops the read locks; the anchor forgets the record last.
//!
//! Why it is serializable: from its prepare to its resolution nobody can write what the
//! transaction read (read locks) or wrote (intents), so its reads are still true at its commit
//! timestamp, and everyone who reads its keys after the prepare must first learn the outcome.
//!
//! No deadlocks: only requests that hold nothing wait (reads meeting an intent); a prepare or a
//! one-range commit that meets an intent or lock fails at once with a retryable error after
//! pushing the holder (below), and the HTTP layer retries the whole request with backoff.
//!
//! Pushing (what anyone who meets an intent or lock does): read the holder's record on its
//! anchor. Committed or aborted: resolve the intent met and go on. Pending: pause and look again
//! while the holder is alive, that is until the later of its intents' `expires_ms` (start of the
//! commit + [`TXN_EXPIRY`]) and its record's heartbeat (a commit running longer than a second
//! heartbeats its record every second, each beat good for [`TXN_EXPIRY`]); after that, write an
//! `Aborted` record (the first final record wins, so a coordinator that commits late learns it
//! was aborted; an abort racing a fresh heartbeat is refused) and resolve. A coordinator that dies
//! therefore blocks others for at most [`TXN_EXPIRY`] after its last sign of life.
//!
//! Not handled: records of transactions aborted by others, and of committed transactions whose
//! coordinator died before resolving, are never garbage-collected (a few bytes each in the anchor
//! range's state); a prepare's intents are not split if the range splits meanwhile.

use crate::node::Node;
use futures::StreamExt;
use futures::future::BoxFuture;
use meridian_sql::SqlError;
use meridian_types::kv::{KvRequest, KvResponse, PrepareRequest, ResolveRequest, Span, TxnMeta, TxnStatus, Write};
use meridian_types::{KvError, RangeDescriptor, RangeId, Timestamp};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long after its start a multi-range commit may leave intents behind before anyone it
/// blocks may abort it.
pub const TXN_EXPIRY: Duration = Duration::from_secs(5);

/// Most ranges one transaction prepares or resolves at once: a commit across a thousand ranges
/// must not put a thousand Raft proposals in flight together.
const PARALLEL_RANGE_REQUESTS: usize = 64;

/// How long resolving one range may take before it is left to whoever meets its intents.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// One range's part of a multi-range transaction.
#[derive(Default)]
pub struct Participant {
    pub desc: Option<RangeDescriptor>,
    pub reads: Vec<Span>,
    pub writes: Vec<Write>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Commits a multi-range transaction (module docs). `anchor_key` is its first written key.
/// Errors: the first prepare failure (the transaction is aborted and nothing is visible), or an
/// outcome the coordinator could not learn (`Ambiguous`).
pub async fn commit(
    node: &Arc<Node>,
    deadline: Instant,
    read_ts: Option<Timestamp>,
    anchor_key: Vec<u8>,
    parts: BTreeMap<RangeId, Participant>,
) -> Result<Timestamp, KvError> {
    let txn = TxnMeta { id: rand::random::<u128>(), anchor_key: anchor_key.clone(), expires_ms: now_ms() + TXN_EXPIRY.as_millis() as u64 };
    let started = Instant::now();
    // While the commit runs, a heartbeat keeps the record alive past the intents' expiry.
    let heartbeat_task = AbortOnDrop(tokio::spawn(heartbeat(node.clone(), anchor_key.clone(), txn.id)));
    let span = tracing::debug_span!("txn", id = %format!("{:032x}", txn.id), ranges = parts.len());
    let _e = span.enter();
    let prepares: Vec<_> = parts
        .iter()
        .map(|(range_id, p)| {
            let desc = p.desc.clone().expect("participant descriptor");
            let req = KvRequest::Prepare(PrepareRequest {
                range_id: *range_id,
                txn: txn.clone(),
                read_ts,
                read_spans: p.reads.clone(),
                writes: p.writes.clone(),
            });
            let node = node.clone();
            let f: BoxFuture<'static, _> = Box::pin(async move { (desc.range_id, node.router.send(&desc, req, deadline).await) });
            f
        })
        .collect();
    let results: Vec<_> = futures::stream::iter(prepares).buffer_unordered(PARALLEL_RANGE_REQUESTS).collect().await;
    let mut commit_ts = read_ts.map(|t| t.next()).unwrap_or_default();
    let mut failure: Option<KvError> = None;
    let mut prepared: Vec<RangeId> = Vec::new();
    for (range_id, r) in results {
        match r {
            Ok(KvResponse::Prepared(ts)) => {
                commit_ts = commit_ts.max(ts);
                prepared.push(range_id);
            }
            Ok(other) => failure = failure.or(Some(KvError::Internal(format!("unexpected prepare answer {other:?}")))),
            // A prepare that may have been applied must be resolved too.
            Err(e @ KvError::Ambiguous(_)) => {
                prepared.push(range_id);
                failure = failure.or(Some(e));
            }
            Err(e) => {
                failure = Some(match failure {
                    // Prefer reporting a conflict the client can retry over anything else.
                    Some(f) if f.is_txn_retryable() || matches!(f, KvError::KeyExists { .. }) => f,
                    _ => e,
                })
            }
        }
    }
    if let Some(e) = failure {
        // Nothing was committed: no record exists, so nobody can commit this transaction.
        // Abort what was prepared (best effort: intents left behind expire).
        let mut aborts = Vec::new();
        for range_id in prepared {
            let p = &parts[&range_id];
            let keys = p.writes.iter().map(|w| w.key.clone()).collect();
            aborts.push((p.desc.clone().expect("descriptor"), keys, false));
        }
        // Stop beating first, so no beat re-creates the record forgotten below.
        drop(heartbeat_task);
        if started.elapsed() >= HEARTBEAT_EVERY
            && let Ok(anchor) = node.router.lookup(&anchor_key, deadline).await
        {
            // A heartbeat may have written a pending record: forget it too.
            aborts.push((anchor, Vec::new(), true));
        }
        let _ = end_and_resolve(node, txn.id, None, aborts).await;
        if let KvError::WriteIntent { key, txn: other } = &e {
            let _ = push(node, deadline, key, other).await;
        }
        // A prepare whose answer was lost is not an ambiguous commit: only this coordinator can
        // write the record that commits, and it will not. The transaction is aborted, and the
        // client may run it again.
        if let KvError::Ambiguous(m) = e {
            return Err(KvError::TxnAborted(format!("{m} during prepare; nothing was committed")));
        }
        return Err(e);
    }
    die_here_when_testing("after-prepare"); // intents laid, no record
    let anchor = node.router.lookup(&anchor_key, deadline).await?;
    let status = match node
        .router
        .send(&anchor, KvRequest::EndTxn { range_id: anchor.range_id, txn_id: txn.id, commit: Some(commit_ts), now_ms: now_ms() }, deadline)
        .await?
    {
        KvResponse::Txn(r) => r.status,
        other => return Err(KvError::Internal(format!("unexpected record answer {other:?}"))),
    };
    // The record is final: nothing left to keep alive.
    drop(heartbeat_task);
    die_here_when_testing("after-record"); // committed (or aborted), nothing resolved
    // Resolve everything in the background; the anchor (which forgets the record) last.
    let mut todo = Vec::new();
    let mut anchor_part = None;
    for (range_id, p) in &parts {
        let keys: Vec<Vec<u8>> = p.writes.iter().map(|w| w.key.clone()).collect();
        let d = p.desc.clone().expect("descriptor");
        if *range_id == anchor.range_id {
            anchor_part = Some((d, keys, true));
        } else {
            todo.push((d, keys, false));
        }
    }
    todo.push(anchor_part.unwrap_or((anchor.clone(), Vec::new(), true)));
    let node2 = node.clone();
    let final_status = status;
    tokio::spawn(async move {
        let _ = end_and_resolve(&node2, txn.id, Some(final_status), todo).await;
    });
    match status {
        TxnStatus::Committed(ts) => Ok(ts),
        _ => Err(KvError::TxnAborted("another transaction aborted this one while it committed".into())),
    }
}

/// Resolves `txn_id` on each `(range, keys, forget_record)` as `status` (aborted when `None`):
/// all but the last at once (up to [`PARALLEL_RANGE_REQUESTS`]), then the last, which alone may
/// forget the record. Stops at a failure, leaving the rest to whoever meets them.
async fn end_and_resolve(
    node: &Arc<Node>,
    txn_id: u128,
    status: Option<TxnStatus>,
    mut ranges: Vec<(RangeDescriptor, Vec<Vec<u8>>, bool)>,
) -> Result<(), KvError> {
    let status = status.unwrap_or(TxnStatus::Aborted);
    let resolve = |(desc, keys, forget_record): (RangeDescriptor, Vec<Vec<u8>>, bool)| -> BoxFuture<'static, Result<(), KvError>> {
        let node = node.clone();
        Box::pin(async move {
            let deadline = Instant::now() + RESOLVE_TIMEOUT;
            let req = KvRequest::Resolve(ResolveRequest { range_id: desc.range_id, txn_id, status, keys, forget_record });
            node.router.send(&desc, req, deadline).await.map(|_| ())
        })
    };
    let Some((last_desc, last_keys, last_forgets)) = ranges.pop() else {
        return Ok(());
    };
    // Forgetting the record is safe only once every other range is resolved.
    let others: Vec<_> = ranges.into_iter().map(|(d, k, _)| (d, k, false)).collect();
    let results: Vec<_> = futures::stream::iter(others).map(resolve).buffer_unordered(PARALLEL_RANGE_REQUESTS).collect().await;
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    resolve((last_desc, last_keys, last_forgets)).await
}

/// Deals with the intent (or read lock) of `holder` met on `key`: resolves what was met once the
/// holder's outcome is known, aborts it once expired, and otherwise pauses briefly. Returns when
/// the caller should look again (module docs); the caller's deadline bounds the whole wait.
pub async fn push(node: &Arc<Node>, deadline: Instant, key: &[u8], holder: &TxnMeta) -> Result<(), KvError> {
    let anchor = node.router.lookup(&holder.anchor_key, deadline).await?;
    let record = match node.router.send(&anchor, KvRequest::QueryTxn { range_id: anchor.range_id, txn_id: holder.id }, deadline).await? {
        KvResponse::Txn(r) => r,
        other => return Err(KvError::Internal(format!("unexpected record answer {other:?}"))),
    };
    let now = now_ms();
    tracing::trace!(holder = %format!("{:032x}", holder.id), record = ?record, now, "pushing a transaction");
    let status = match record.status {
        TxnStatus::Pending if now > holder.expires_ms.max(record.expires_ms) => {
            let req = KvRequest::EndTxn { range_id: anchor.range_id, txn_id: holder.id, commit: None, now_ms: now };
            match node.router.send(&anchor, req, deadline).await? {
                KvResponse::Txn(r) => r.status,
                other => return Err(KvError::Internal(format!("unexpected record answer {other:?}"))),
            }
        }
        s => s,
    };
    if status == TxnStatus::Pending {
        // Still committing (alive), or already resolved everywhere and its record forgotten:
        // the caller looks again after a short pause and finds the intent gone or calls back.
        let pause = Duration::from_micros(1000 + rand::random::<u64>() % 4000);
        if Instant::now() + pause >= deadline {
            return Err(KvError::Timeout);
        }
        tokio::time::sleep(pause).await;
        return Ok(());
    }
    let desc = node.router.lookup(key, deadline).await?;
    let req = KvRequest::Resolve(ResolveRequest {
        range_id: desc.range_id,
        txn_id: holder.id,
        status,
        keys: vec![key.to_vec()],
        forget_record: false,
    });
    node.router.send(&desc, req, deadline).await?;
    Ok(())
}

/// How often a committing coordinator heartbeats its record (after the first interval: most
/// commits finish before and never write a pending record).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// Keeps transaction `txn_id`'s record alive [`TXN_EXPIRY`] past every beat, until aborted.
async fn heartbeat(node: Arc<Node>, anchor_key: Vec<u8>, txn_id: u128) {
    loop {
        tokio::time::sleep(HEARTBEAT_EVERY).await;
        let deadline = Instant::now() + HEARTBEAT_EVERY;
        let Ok(anchor) = node.router.lookup(&anchor_key, deadline).await else { continue };
        let req = KvRequest::Heartbeat { range_id: anchor.range_id, txn_id, expires_ms: now_ms() + TXN_EXPIRY.as_millis() as u64 };
        if let Ok(KvResponse::Txn(r)) = node.router.send(&anchor, req, deadline).await
            && r.status != TxnStatus::Pending
        {
            return; // decided (by a pusher, if not by us): nothing left to keep alive
        }
    }
}

/// Testing hook for the coordinator-crash tests: the process exits at `point` of a multi-range
/// commit when `MERIDIAN_TESTING_DIE_AT` names it.
fn die_here_when_testing(point: &str) {
    if std::env::var("MERIDIAN_TESTING_DIE_AT").is_ok_and(|p| p == point) {
        tracing::warn!(point, "MERIDIAN_TESTING_DIE_AT: exiting in the middle of a commit");
        std::process::exit(86);
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Groups a transaction's writes and reads by range for [`commit`].
pub async fn participants(
    node: &Arc<Node>,
    deadline: Instant,
    writes: Vec<Write>,
    reads: &[(RangeId, Span)],
    descs: &HashMap<RangeId, RangeDescriptor>,
) -> Result<BTreeMap<RangeId, Participant>, KvError> {
    let mut parts: BTreeMap<RangeId, Participant> = BTreeMap::new();
    let mut current: Option<RangeDescriptor> = None;
    for w in writes {
        // Writes are in key order: consecutive keys mostly share a range.
        let desc = match current.take() {
            Some(d) if d.contains_key(&w.key) => d,
            _ => node.router.lookup(&w.key, deadline).await?,
        };
        let p = parts.entry(desc.range_id).or_default();
        p.desc.get_or_insert_with(|| desc.clone());
        p.writes.push(w);
        current = Some(desc);
    }
    for (range_id, span) in reads {
        let Some(desc) = descs.get(range_id) else { continue };
        let p = parts.entry(*range_id).or_default();
        p.desc.get_or_insert_with(|| desc.clone());
        p.reads.push(span.clone());
    }
    Ok(parts)
}

/// Maps a commit error for the client: a failed absence check becomes the SQL error recorded
/// for its key.
pub fn to_sql(e: KvError, absent: &mut HashMap<Vec<u8>, SqlError>) -> SqlError {
    match e {
        KvError::KeyExists { key } => absent.remove(&key).unwrap_or(SqlError::Kv(KvError::KeyExists { key })),
        e => SqlError::Kv(e),
    }
}
