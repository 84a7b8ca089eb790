//! The KV router of a gateway: finds the range of a key and sends requests to its leaseholder.
//!
//! - Range cache: descriptors keyed by end key, filled from the meta records in the system range
//!   (key `meta | end_key`; the range of key `k` is the first record with `end_key > k`). An entry
//!   is dropped when a replica says the range is unknown or the key is outside it.
//! - Leaseholder hints: every `NotLeaseholder` answer names the leader if known; the router goes
//!   there next and remembers it. The local replica is tried without serialization.
//! - Deadlines: every call carries one. While a range is unreachable or electing, the router
//!   retries with backoff until the deadline, then reports `Unavailable` (503), never hanging.
//! - Writes are never re-sent after they may have reached a leaseholder whose answer was lost:
//!   that outcome is `Ambiguous` (40003), because the write may have committed.

use crate::admin;
use crate::records::SysRecord;
use meridian_raft_glue::{Frame, NetError, Service, Transport};
use meridian_range::Store;
use meridian_types::keys::{self, KEY_MAX, TABLE_PREFIX};
use meridian_types::kv::{KvRequest, KvResponse, ReadOp, ReadRequest, ReadResult};
use meridian_types::{KvError, NodeDescriptor, NodeId, RangeDescriptor, SYSTEM_RANGE_ID};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// Meta records read by one cache miss: the range looked up and the ones after it, so that a
/// scan over many uncached ranges costs one lookup per this many ranges.
const LOOKUP_PREFETCH: u64 = 64;

/// Longest a single attempt to one node may take before trying another.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct CachedRange {
    desc: RangeDescriptor,
}

pub struct Router {
    node_id: AtomicU64,
    store: Arc<Store>,
    transport: Arc<dyn Transport>,
    cache: RwLock<BTreeMap<Vec<u8>, CachedRange>>,
    leaseholders: RwLock<BTreeMap<u64, NodeId>>,
    nodes: RwLock<BTreeMap<NodeId, NodeDescriptor>>,
}

pub fn system_descriptor() -> RangeDescriptor {
    let (s, e) = keys::system_span();
    RangeDescriptor { range_id: SYSTEM_RANGE_ID, start_key: s, end_key: e, replicas: vec![], generation: 0, table_id: None, sticky: false }
}

impl Router {
    pub fn new(store: Arc<Store>, transport: Arc<dyn Transport>) -> Router {
        Router {
            node_id: AtomicU64::new(0),
            store,
            transport,
            cache: RwLock::new(BTreeMap::new()),
            leaseholders: RwLock::new(BTreeMap::new()),
            nodes: RwLock::new(BTreeMap::new()),
        }
    }

    pub fn set_node_id(&self, id: NodeId) {
        self.node_id.store(id, Ordering::SeqCst);
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id.load(Ordering::SeqCst)
    }

    pub fn set_nodes(&self, nodes: &[NodeDescriptor]) {
        let mut m = self.nodes.write().unwrap_or_else(|e| e.into_inner());
        for n in nodes {
            m.insert(n.node_id, n.clone());
        }
    }

    pub fn nodes(&self) -> Vec<NodeDescriptor> {
        self.nodes.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    pub fn leaseholder_hint(&self, range: u64) -> Option<NodeId> {
        self.leaseholders.read().unwrap_or_else(|e| e.into_inner()).get(&range).copied()
    }

    fn note_leaseholder(&self, range: u64, node: NodeId) {
        self.leaseholders.write().unwrap_or_else(|e| e.into_inner()).insert(range, node);
    }

    pub fn evict(&self, desc: &RangeDescriptor) {
        self.cache.write().unwrap_or_else(|e| e.into_inner()).remove(&desc.end_key);
    }

    /// Forgets every cached range of a table (dropped or recreated).
    pub fn evict_span(&self, start: &[u8], end: &[u8]) {
        let mut c = self.cache.write().unwrap_or_else(|e| e.into_inner());
        let doomed: Vec<_> =
            c.range(keys::key_next(start)..).take_while(|(_, r)| r.desc.start_key.as_slice() < end).map(|(k, _)| k.clone()).collect();
        for k in doomed {
            c.remove(&k);
        }
    }

    /// The descriptor of the range holding `key`.
    pub async fn lookup(&self, key: &[u8], deadline: Instant) -> Result<RangeDescriptor, KvError> {
        if key < [TABLE_PREFIX].as_slice() {
            return Ok(system_descriptor());
        }
        if let Some((_, r)) = self.cache.read().unwrap_or_else(|e| e.into_inner()).range(keys::key_next(key)..).next()
            && r.desc.contains_key(key)
        {
            return Ok(r.desc.clone());
        }
        let start = keys::meta_key(&keys::key_next(key));
        let end = keys::meta_key(KEY_MAX);
        let req = KvRequest::Read(ReadRequest {
            range_id: SYSTEM_RANGE_ID,
            ts: None,
            uncertainty_limit: None,
            ops: vec![ReadOp::Scan { start, end, limit: LOOKUP_PREFETCH }],
        });
        let resp = self.send(&system_descriptor(), req, deadline).await?;
        let KvResponse::Read(r) = resp else {
            return Err(KvError::Internal("unexpected response".into()));
        };
        let Some(ReadResult::Scan { rows, .. }) = r.results.into_iter().next() else {
            return Err(KvError::Internal("unexpected result".into()));
        };
        let mut descs = rows.iter().map(|(_, v)| RangeDescriptor::decode_record(v)).collect::<Result<Vec<_>, _>>()?;
        // Only the first record must hold the key; the rest are the ranges after it, cached for
        // the scans that go on there (a stale one is dropped when its range says so).
        descs.retain(|d| d.end_key.as_slice() > key);
        let Some(desc) = descs.first().filter(|d| d.contains_key(key)).cloned() else {
            return Err(KvError::RangeNotFound { range_id: 0 });
        };
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        for d in descs {
            cache.insert(d.end_key.clone(), CachedRange { desc: d });
        }
        Ok(desc)
    }

    /// Candidate nodes for a range, most likely leaseholder first.
    fn candidates(&self, desc: &RangeDescriptor) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut push = |n: NodeId| {
            if n != 0 && !out.contains(&n) {
                out.push(n);
            }
        };
        if let Some(l) = self.leaseholder_hint(desc.range_id) {
            push(l);
        }
        if self.store.replica(desc.range_id).is_some() {
            push(self.node_id());
        }
        for r in &desc.replicas {
            push(r.node_id);
        }
        for n in self.nodes.read().unwrap_or_else(|e| e.into_inner()).keys() {
            push(*n);
        }
        out
    }

    /// Sends `req` to the leaseholder of `desc`'s range, following hints and retrying until the
    /// deadline. Routing errors that mean "the range is not what you think" are returned so the
    /// caller can look the key up again; the cache entry is dropped first.
    pub async fn send(&self, desc: &RangeDescriptor, req: KvRequest, deadline: Instant) -> Result<KvResponse, KvError> {
        self.send_and_say_who(desc, req, deadline).await.map(|(_, r)| r)
    }

    /// [`Router::send`], also naming the node that answered (the leaseholder).
    pub async fn send_and_say_who(
        &self,
        desc: &RangeDescriptor,
        req: KvRequest,
        deadline: Instant,
    ) -> Result<(NodeId, KvResponse), KvError> {
        let is_write = !req.is_read_only();
        let frame_body = admin::encode(&req);
        // A large write (a big transaction's commit) needs time to be replicated and applied:
        // 1 ms more per KiB, so it is not reported as ambiguous while it is still progressing.
        let attempt_cap =
            if is_write { ATTEMPT_TIMEOUT + Duration::from_millis((frame_body.len() / 1024) as u64) } else { ATTEMPT_TIMEOUT };
        // Until an attempt actually fails, running out of time is a timeout, not unavailability.
        let mut last_err = KvError::Timeout;
        let mut backoff = Duration::from_millis(20);
        let mut not_found = 0;
        loop {
            let mut tried: Vec<NodeId> = Vec::new();
            let mut queue = self.candidates(desc);
            while let Some(node) = (!queue.is_empty()).then(|| queue.remove(0)) {
                if tried.contains(&node) {
                    continue;
                }
                tried.push(node);
                let now = Instant::now();
                if now >= deadline {
                    return Err(last_err);
                }
                let attempt = (deadline - now).min(attempt_cap);
                let res = if node == self.node_id() {
                    match tokio::time::timeout(attempt, self.store.handle_kv(req.clone())).await {
                        Ok(r) => Ok(r),
                        Err(_) => Err(NetError::Timeout(node)),
                    }
                } else {
                    let frame = Frame { service: Service::Kv, range_id: desc.range_id, body: frame_body.clone() };
                    match self.transport.call(node, frame, attempt).await {
                        Ok(b) => admin::decode::<KvResponse>(&b).map_err(|e| NetError::Unreachable(node, e.to_string())),
                        Err(e) => Err(e),
                    }
                };
                match res {
                    Ok(KvResponse::Error(KvError::NotLeaseholder { leaseholder, .. })) => {
                        if let Some(l) = leaseholder.filter(|l| !tried.contains(l)) {
                            self.note_leaseholder(desc.range_id, l);
                            queue.insert(0, l);
                        }
                        last_err = KvError::Unavailable(format!("range r{} has no leaseholder yet", desc.range_id));
                    }
                    Ok(KvResponse::Error(e @ KvError::RangeNotFound { .. })) => {
                        // This node has no replica; others may. Only give up when none has it.
                        not_found += 1;
                        last_err = e;
                    }
                    Ok(KvResponse::Error(e @ KvError::KeyOutOfRange { .. })) => {
                        self.evict(desc);
                        return Err(e);
                    }
                    Ok(KvResponse::Error(KvError::Unavailable(m))) => last_err = KvError::Unavailable(m),
                    Ok(KvResponse::Error(e)) => {
                        self.note_leaseholder(desc.range_id, node);
                        return Err(e);
                    }
                    Ok(r) => {
                        self.note_leaseholder(desc.range_id, node);
                        return Ok((node, r));
                    }
                    Err(NetError::Timeout(_)) if is_write => {
                        return Err(KvError::Ambiguous(format!("leaseholder n{node} of r{} did not answer", desc.range_id)));
                    }
                    Err(NetError::Unreachable(_, m)) if is_write && m.contains("lost") => {
                        return Err(KvError::Ambiguous(format!("connection to n{node} lost during a write")));
                    }
                    // The request's own deadline ran out during a healthy attempt: a timeout.
                    Err(NetError::Timeout(_)) if Instant::now() >= deadline && last_err == KvError::Timeout => {}
                    Err(e) => last_err = KvError::Unavailable(format!("range r{}: {e}", desc.range_id)),
                }
            }
            if not_found > 0 && not_found >= tried.len() {
                tracing::debug!(range = desc.range_id, ?tried, "no node has a replica of the range");
                self.evict(desc);
                return Err(KvError::RangeNotFound { range_id: desc.range_id });
            }
            not_found = 0;
            if Instant::now() + backoff >= deadline {
                return Err(last_err);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(250));
        }
    }
}
