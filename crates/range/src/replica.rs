//! The leaseholder's side of a range: evaluating reads and proposing writes.
//!
//! Invariants that make one-range transactions serializable and reads linearizable:
//! - A read at `ts` first passes the Raft read barrier (this replica leads and has applied all
//!   that was committed), then raises the timestamp cache to `ts`, then waits for every write
//!   already proposed at or below `ts` to finish. Afterwards no write can commit at or below
//!   `ts`: new proposals are timestamped above the cache, and apply only raises timestamps.
//!   So the snapshot at `ts` never changes once read.
//! - When this replica becomes leader in a new term, the cache is raised to now + maximum clock
//!   offset: a previous leaseholder may have served reads up to its own clock.

use crate::fsm::{ApplyResult, RangeCommand, RangeFsm, WriteCmd};
use meridian_raft_glue::{Group, ProposeError};
use meridian_storage::{Engine, mvcc};
use meridian_types::kv::{
    PrepareRequest, ReadOp, ReadRequest, ReadResponse, ReadResult, ResolveRequest, TxnRecord, WriteRequest, WriteResponse,
};
use meridian_types::{Hlc, KvError, RangeDescriptor, ReplicaDescriptor, ReplicaId, ReplicaKind, Timestamp};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// Largest number of rows one scan request returns; the caller resumes from `resume`.
pub const MAX_SCAN_ROWS: u64 = 10_000;

#[derive(Default)]
struct LeaseState {
    /// Highest timestamp served to a read in the current term.
    max_read: Timestamp,
    term: u64,
    /// Proposal timestamps of writes proposed and not yet finished.
    inflight: BTreeSet<(Timestamp, u64)>,
}

pub struct Replica {
    group: Arc<Group>,
    fsm: Arc<RangeFsm>,
    hlc: Arc<Hlc>,
    engine: Engine,
    lease: Mutex<LeaseState>,
    seq: AtomicU64,
    finished: Notify,
    /// Bytes of keys and values proposed through this replica (as leaseholder): how much the
    /// range may have grown since the split queue last measured it.
    written: AtomicU64,
    /// Load: requests served as leaseholder, and a sample of their keys (load splits).
    load: Load,
}

/// Requests served by a leaseholder and a sample of the keys they touched, for load-based
/// splits: one request in [`Load::SAMPLE_EVERY`] records its first key in a ring of
/// [`Load::SAMPLES`], so the hot path pays an atomic increment and, rarely, a short lock.
#[derive(Default)]
pub struct Load {
    requests: AtomicU64,
    samples: Mutex<(usize, Vec<Vec<u8>>)>,
    /// Start of the current rate window, requests then, and the rate of the last full window.
    window: Mutex<Option<(std::time::Instant, u64, u64)>>,
}

impl Load {
    const SAMPLE_EVERY: u64 = 16;
    const SAMPLES: usize = 512;

    /// Window over which [`Load::qps`] measures.
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

    /// Requests a second: the higher of the last full window's rate and the current one's.
    fn qps(&self) -> u64 {
        let (now, n) = (std::time::Instant::now(), self.requests.load(Ordering::Relaxed));
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let (start, at_start, last) = *w.get_or_insert((now, n, 0));
        let secs = now.duration_since(start).as_secs_f64();
        let current = if secs >= 1.0 { (n.saturating_sub(at_start) as f64 / secs) as u64 } else { 0 };
        if secs >= Self::WINDOW.as_secs_f64() {
            *w = Some((now, n, current));
        }
        last.max(current)
    }

    fn record(&self, key: &[u8]) {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(Self::SAMPLE_EVERY) {
            let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
            let (next, ring) = &mut *s;
            if ring.len() < Self::SAMPLES {
                ring.push(key.to_vec());
            } else {
                ring[*next] = key.to_vec();
            }
            *next = (*next + 1) % Self::SAMPLES;
        }
    }
}

pub(crate) fn propose_err(range_id: u64, e: ProposeError) -> KvError {
    match e {
        ProposeError::NotLeader { leader } => KvError::NotLeaseholder { range_id, leaseholder: leader },
        ProposeError::Unavailable(m) => KvError::Unavailable(m),
        // The group was shut down: the replica is being destroyed.
        ProposeError::Fatal(_) => KvError::RangeNotFound { range_id },
    }
}

/// Removes a proposal from the in-flight set when the proposal ends, however it ends.
struct InflightGuard<'a> {
    replica: &'a Replica,
    key: (Timestamp, u64),
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.replica.lease.lock().unwrap_or_else(|e| e.into_inner()).inflight.remove(&self.key);
        self.replica.finished.notify_waiters();
    }
}

impl Replica {
    pub fn new(group: Arc<Group>, fsm: Arc<RangeFsm>, hlc: Arc<Hlc>, engine: Engine) -> Replica {
        Replica {
            group,
            fsm,
            hlc,
            engine,
            lease: Mutex::new(LeaseState::default()),
            seq: AtomicU64::new(0),
            finished: Notify::new(),
            written: AtomicU64::new(0),
            load: Load::default(),
        }
    }

    pub fn group(&self) -> &Arc<Group> {
        &self.group
    }

    pub fn fsm(&self) -> &Arc<RangeFsm> {
        &self.fsm
    }

    pub(crate) fn range_id(&self) -> u64 {
        self.group.range_id()
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A timestamp at or above every read this leaseholder served in its term; taken after the
    /// range froze for a merge, under the lease lock that reads register under, so no read can
    /// be served above it afterwards (`crate::merge`).
    pub(crate) fn freeze_ts(&self) -> Timestamp {
        let mut st = self.lease.lock().unwrap_or_else(|e| e.into_inner());
        self.observe_term(&mut st);
        st.max_read.max(self.hlc.now())
    }

    /// Raises the timestamp cache on a new term (see module docs). Called with the lock held.
    fn observe_term(&self, st: &mut LeaseState) {
        let term = self.group.current_term();
        if term != st.term {
            st.term = term;
            // Physical time, not the HLC: repeated leader changes must not push timestamps ever
            // further into the future.
            st.max_read = st.max_read.max(self.hlc.physical_now().add_nanos(self.hlc.max_offset_ns()));
        }
    }

    pub(crate) fn not_leaseholder(&self) -> KvError {
        KvError::NotLeaseholder { range_id: self.range_id(), leaseholder: self.group.status().leader_node }
    }

    pub async fn read(&self, req: &ReadRequest) -> Result<ReadResponse, KvError> {
        self.group.read_barrier().await.map_err(|e| propose_err(self.range_id(), e))?;
        if let Some(op) = req.ops.first() {
            self.load.record(match op {
                ReadOp::Get { key } => key,
                ReadOp::Scan { start, .. } => start,
            });
        }
        let Some(desc) = self.fsm.live_descriptor() else {
            return Err(KvError::RangeNotFound { range_id: self.range_id() });
        };
        for op in &req.ops {
            let ok = match op {
                ReadOp::Get { key } => desc.contains_key(key),
                ReadOp::Scan { start, end, .. } => desc.contains_span(start, end),
            };
            if !ok {
                return Err(KvError::KeyOutOfRange { range_id: self.range_id() });
            }
        }
        let ts = match req.ts {
            Some(t) => {
                self.hlc.update(t);
                t
            }
            None => self.hlc.now(),
        };
        {
            let mut st = self.lease.lock().unwrap_or_else(|e| e.into_inner());
            // Checked under the lock `freeze_ts` takes: a read either counts in a merge's
            // freeze timestamp or sees the freeze.
            if self.fsm.frozen().is_some() {
                return Err(KvError::Unavailable(format!("r{} is being merged", self.range_id())));
            }
            self.observe_term(&mut st);
            st.max_read = st.max_read.max(ts);
        }
        self.wait_inflight_at_or_below(ts).await;
        let uncertainty = req.uncertainty_limit.filter(|u| *u > ts);
        let mut results = Vec::with_capacity(req.ops.len());
        for op in &req.ops {
            let r = match op {
                ReadOp::Get { key } => mvcc::get(&self.engine, key, ts, uncertainty).map(ReadResult::Get),
                ReadOp::Scan { start, end, limit } => {
                    let limit = if *limit == 0 { MAX_SCAN_ROWS } else { (*limit).min(MAX_SCAN_ROWS) };
                    mvcc::scan(&self.engine, start, end, ts, uncertainty, limit as usize)
                        .map(|(rows, resume)| ReadResult::Scan { rows, resume })
                }
            };
            results.push(r.map_err(|e| match e {
                mvcc::MvccError::Uncertain(ts) => KvError::ReadUncertainty { ts },
                mvcc::MvccError::Intent(key, txn) => KvError::WriteIntent { key, txn },
                mvcc::MvccError::Storage(m) => KvError::Internal(m),
            })?);
        }
        Ok(ReadResponse { ts, results })
    }

    async fn wait_inflight_at_or_below(&self, ts: Timestamp) {
        loop {
            let notified = self.finished.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let blocked = {
                let st = self.lease.lock().unwrap_or_else(|e| e.into_inner());
                st.inflight.first().is_some_and(|(t, _)| *t <= ts)
            };
            if !blocked {
                return;
            }
            notified.await;
        }
    }

    /// Bytes written through this replica so far (see the field).
    pub fn written_bytes(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Requests a second served lately as leaseholder (windows of 10 s).
    pub fn qps(&self) -> u64 {
        self.load.qps()
    }

    /// Requests served through this replica as leaseholder so far.
    pub fn requests_served(&self) -> u64 {
        self.load.requests.load(Ordering::Relaxed)
    }

    /// The median of the sampled request keys inside the range (excluding its start key), as a
    /// point that divides the recent load about evenly; clears the sample. None with fewer
    /// than 16 samples.
    pub fn load_split_key(&self) -> Option<Vec<u8>> {
        let desc = self.fsm.live_descriptor()?;
        let mut keys = std::mem::take(&mut self.load.samples.lock().unwrap_or_else(|e| e.into_inner()).1);
        keys.retain(|k| desc.contains_key(k) && *k != desc.start_key);
        if keys.len() < 16 {
            return None;
        }
        keys.sort();
        Some(keys.swap_remove(keys.len() / 2))
    }

    fn count_written(&self, writes: &[meridian_types::kv::Write]) {
        let n: usize = writes.iter().map(|w| w.key.len() + w.value.as_ref().map_or(0, |v| v.len())).sum();
        self.written.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The range's size (MVCC bytes) and, if it holds more than one key, the first key at or
    /// past half of those bytes: a split there divides the range about evenly, at a key
    /// boundary (a whole row). Counted by scanning the span, twice at most: call it rarely.
    pub async fn size_and_middle(&self) -> Result<(u64, Option<Vec<u8>>), KvError> {
        let desc = self.fsm.live_descriptor().ok_or(KvError::RangeNotFound { range_id: self.range_id() })?;
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || mvcc::span_middle(&engine, &desc.start_key, &desc.end_key))
            .await
            .map_err(|e| KvError::Internal(e.to_string()))?
            .map_err(|e| KvError::Internal(e.to_string()))
    }

    pub async fn write(&self, req: WriteRequest) -> Result<WriteResponse, KvError> {
        self.count_written(&req.writes);
        if let Some(w) = req.writes.first() {
            self.load.record(&w.key);
        }
        let cmd = |proposal_ts| {
            RangeCommand::Write(WriteCmd { proposal_ts, read_ts: req.read_ts, read_spans: req.read_spans, writes: req.writes })
        };
        match self.propose_timestamped(cmd).await? {
            ApplyResult::Committed(commit_ts) => Ok(WriteResponse { commit_ts }),
            r => Err(self.apply_error(r)),
        }
    }

    /// Phase one of a multi-range transaction: returns the prepare timestamp.
    pub async fn prepare(&self, req: PrepareRequest) -> Result<Timestamp, KvError> {
        self.count_written(&req.writes);
        let cmd = |proposal_ts| RangeCommand::Prepare {
            txn: req.txn,
            cmd: WriteCmd { proposal_ts, read_ts: req.read_ts, read_spans: req.read_spans, writes: req.writes },
        };
        match self.propose_timestamped(cmd).await? {
            ApplyResult::Prepared(ts) => Ok(ts),
            r => Err(self.apply_error(r)),
        }
    }

    /// Resolves a finished transaction's intents and read locks here.
    pub async fn resolve(&self, req: ResolveRequest) -> Result<(), KvError> {
        if !self.group.is_leader() {
            return Err(self.not_leaseholder());
        }
        let cmd = RangeCommand::Resolve { txn_id: req.txn_id, status: req.status, keys: req.keys, forget_record: req.forget_record };
        match self.propose_cmd(&cmd).await? {
            ApplyResult::Ok => Ok(()),
            r => Err(self.apply_error(r)),
        }
    }

    /// Writes a transaction record here (committed at `commit`, or aborted unless a heartbeat
    /// keeps it alive past `now_ms`); returns the record (the first final record wins).
    pub async fn end_txn(&self, txn_id: u128, commit: Option<Timestamp>, now_ms: u64) -> Result<TxnRecord, KvError> {
        self.propose_record(RangeCommand::EndTxn { txn_id, commit, now_ms }).await
    }

    /// Records that the coordinator of `txn_id` is alive until `expires_ms`.
    pub async fn heartbeat(&self, txn_id: u128, expires_ms: u64) -> Result<TxnRecord, KvError> {
        self.propose_record(RangeCommand::Heartbeat { txn_id, expires_ms }).await
    }

    async fn propose_record(&self, cmd: RangeCommand) -> Result<TxnRecord, KvError> {
        if !self.group.is_leader() {
            return Err(self.not_leaseholder());
        }
        match self.propose_cmd(&cmd).await? {
            ApplyResult::Txn(r) => Ok(r),
            r => Err(self.apply_error(r)),
        }
    }

    /// The range's replicas as its Raft membership has them now (a descriptor records the
    /// founding set until a replica change publishes a new one).
    pub fn members(&self) -> Vec<ReplicaDescriptor> {
        self.group
            .status()
            .members
            .iter()
            .map(|m| ReplicaDescriptor {
                replica_id: m.replica_id,
                node_id: m.node_id,
                kind: if m.voter { ReplicaKind::Voter } else { ReplicaKind::NonVoter },
            })
            .collect()
    }

    /// The descriptor (with the current members as its replicas) and MVCC bytes of this range,
    /// from its leaseholder (the size is counted by a scan of the span: for `SHOW RANGES`, not
    /// for hot paths).
    pub async fn stats(&self) -> Result<(RangeDescriptor, u64), KvError> {
        if !self.group.is_leader() {
            return Err(self.not_leaseholder());
        }
        let mut desc = self.fsm.live_descriptor().ok_or(KvError::RangeNotFound { range_id: self.range_id() })?;
        desc.replicas = self.members();
        let (engine, start, end) = (self.engine.clone(), desc.start_key.clone(), desc.end_key.clone());
        let bytes = tokio::task::spawn_blocking(move || mvcc::span_bytes(&engine, &start, &end))
            .await
            .map_err(|e| KvError::Internal(e.to_string()))?
            .map_err(|e| KvError::Internal(e.to_string()))?;
        Ok((desc, bytes))
    }

    /// Splits the range at `split_key` into itself and `new_range_id`, whose replicas get ids from
    /// `replica_ids` (one per current member, in member order). Returns both descriptors.
    pub async fn split(
        &self,
        split_key: Vec<u8>,
        new_range_id: u64,
        replica_ids: &[ReplicaId],
        sticky: bool,
    ) -> Result<(RangeDescriptor, RangeDescriptor), KvError> {
        if !self.group.is_leader() {
            return Err(self.not_leaseholder());
        }
        let members = self.group.status().members;
        if members.len() > replica_ids.len() {
            return Err(KvError::Internal(format!("{} replica ids for {} members", replica_ids.len(), members.len())));
        }
        let replicas = members.iter().zip(replica_ids).map(|(m, id)| (m.replica_id, (*id, m.node_id, m.voter))).collect();
        match self.propose_cmd(&RangeCommand::Split(crate::split::SplitCmd { split_key, new_range_id, replicas, sticky })).await? {
            ApplyResult::Split(descs) => Ok(*descs),
            ApplyResult::Busy(why) => Err(KvError::Unavailable(format!("r{} cannot split now: {why}", self.range_id()))),
            r => Err(self.apply_error(r)),
        }
    }

    /// Raises the range's schema fence above everything this leaseholder served; returns the
    /// range's descriptor.
    pub async fn fence(&self) -> Result<RangeDescriptor, KvError> {
        match self.propose_timestamped(|ts| RangeCommand::Fence { ts }).await? {
            ApplyResult::Ok => self.fsm.live_descriptor().ok_or(KvError::RangeNotFound { range_id: self.range_id() }),
            r => Err(self.apply_error(r)),
        }
    }

    /// A transaction record held here, linearizably.
    pub async fn query_txn(&self, txn_id: u128) -> Result<TxnRecord, KvError> {
        self.group.read_barrier().await.map_err(|e| propose_err(self.range_id(), e))?;
        Ok(self.fsm.txn_record(txn_id))
    }

    /// Proposes a command stamped with a timestamp above every read served, tracked in flight
    /// so reads at or above it wait for its outcome (module docs).
    async fn propose_timestamped(&self, cmd: impl FnOnce(Timestamp) -> RangeCommand) -> Result<ApplyResult, KvError> {
        if !self.group.is_leader() {
            return Err(self.not_leaseholder());
        }
        let key = {
            let mut st = self.lease.lock().unwrap_or_else(|e| e.into_inner());
            self.observe_term(&mut st);
            let ts = self.hlc.now().max(st.max_read.next());
            let key = (ts, self.seq.fetch_add(1, Ordering::Relaxed));
            st.inflight.insert(key);
            key
        };
        let _guard = InflightGuard { replica: self, key };
        self.propose_cmd(&cmd(key.0)).await
    }

    pub(crate) async fn propose_cmd(&self, cmd: &RangeCommand) -> Result<ApplyResult, KvError> {
        let bytes = postcard::to_stdvec(cmd).map_err(|e| KvError::Internal(e.to_string()))?;
        let out = self.group.propose(bytes).await.map_err(|e| propose_err(self.range_id(), e))?;
        postcard::from_bytes::<ApplyResult>(&out).map_err(|e| KvError::Internal(e.to_string()))
    }

    pub(crate) fn apply_error(&self, r: ApplyResult) -> KvError {
        match r {
            ApplyResult::Conflict(ts) => KvError::WriteConflict(format!("a value read was written at {ts} after the transaction read it")),
            ApplyResult::KeyExists(key) => KvError::KeyExists { key },
            ApplyResult::IntentConflict(key, txn) => KvError::WriteIntent { key, txn },
            ApplyResult::OutOfRange => KvError::KeyOutOfRange { range_id: self.range_id() },
            ApplyResult::Dropped => KvError::RangeNotFound { range_id: self.range_id() },
            // Frozen for a merge, or busy with unfinished transactions: the router retries.
            ApplyResult::Busy(why) => KvError::Unavailable(format!("r{}: {why}", self.range_id())),
            r => KvError::Internal(format!("unexpected apply result {r:?}")),
        }
    }

    /// Proposes a descriptor for this range (creation, replica changes).
    pub async fn set_descriptor(&self, desc: meridian_types::RangeDescriptor) -> Result<(), KvError> {
        self.propose_admin(RangeCommand::SetDescriptor(desc)).await
    }

    /// Marks the range dropped on every replica (its table is gone).
    pub async fn mark_dropped(&self) -> Result<(), KvError> {
        if !self.group.is_leader() {
            return Err(self.not_leaseholder());
        }
        self.propose_admin(RangeCommand::MarkDropped).await
    }

    async fn propose_admin(&self, cmd: RangeCommand) -> Result<(), KvError> {
        match self.propose_cmd(&cmd).await {
            Ok(ApplyResult::Ok) => Ok(()),
            Ok(other) => Err(KvError::Internal(format!("range command: {other:?}"))),
            Err(e) => Err(e),
        }
    }
}
