//! The range state machine: deterministic application of committed range commands.
//!
//! State (`range_meta` family, key `range_id | 's'`, written with every change): the range
//! descriptor, the highest commit timestamp applied, and the range's part in multi-range
//! transactions: how many write intents it holds, the read locks of prepared transactions, and
//! the records of transactions anchored here. Invariants:
//! - Commit timestamps of one-range writes strictly increase in log order, and every one is
//!   above the transaction's read timestamp. A resolved intent becomes a version at its
//!   transaction's commit timestamp, which may be lower, but never below a version of the same
//!   key (the intent blocked every writer of the key since its prepare) and never below a read
//!   that saw the key (such a read met the intent and had to resolve it first).
//! - A write or prepare whose read spans hold a version newer than its read timestamp, or an
//!   intent of another transaction, is rejected (`Conflict` / `IntentConflict`) on every replica
//!   alike and changes nothing; so is one that writes a key holding another transaction's
//!   intent or lying in another prepared transaction's read lock.
//! - Keys outside the descriptor's span are never written.
//! - A write conditional on its key being absent (`Write::absent`) that finds a live value
//!   fails the whole command (`KeyExists`), which changes nothing.
//! - A transaction record, once written, never changes (committed or aborted: the first one
//!   proposed wins); it is forgotten only when its coordinator has resolved everything.

use meridian_raft_glue::Fsm;
use meridian_storage::{Batch, Cf, Engine, mvcc};
use meridian_types::keys::{range_local, range_local_key};
use meridian_types::kv::{Intent, Span, TxnMeta, TxnRecord, TxnStatus, Write};
use meridian_types::{Hlc, RangeDescriptor, RangeId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

/// A command replicated through a range's Raft log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RangeCommand {
    /// Sets the range's descriptor (first command of every new range).
    SetDescriptor(RangeDescriptor),
    /// The write half of a one-range transaction.
    Write(WriteCmd),
    /// The range's table was dropped: refuse everything from now on.
    MarkDropped,
    /// Phase one of a multi-range transaction here: validate its reads, lay its intents and
    /// read locks.
    Prepare { txn: TxnMeta, cmd: WriteCmd },
    /// Resolve a finished transaction's intents on `keys` and release its read locks.
    Resolve { txn_id: u128, status: TxnStatus, keys: Vec<Vec<u8>>, forget_record: bool },
    /// Write a transaction record (this range is its anchor): committed or aborted (an abort is
    /// refused while the record's heartbeat is later than `now_ms`).
    EndTxn { txn_id: u128, commit: Option<Timestamp>, now_ms: u64 },
    /// The coordinator of a transaction anchored here is alive until `expires_ms`.
    Heartbeat { txn_id: u128, expires_ms: u64 },
    /// Split the range in two (`crate::split`).
    Split(crate::split::SplitCmd),
    /// Raise the schema fence to `ts` (the leaseholder's proposal timestamp: above every read
    /// it served).
    Fence { ts: Timestamp },
    /// Freeze for a merge into the range on the left (`crate::merge`).
    Subsume(crate::merge::Frozen),
    /// Absorb the frozen range on the right, if this range is still at `lhs_generation`.
    Merge { lhs_generation: u64, rhs: Box<meridian_types::kv::Subsumed> },
    /// Settle a merge of `lhs` at `lhs_generation` with the range starting at `rhs_start`.
    ResolveMerge { lhs: RangeId, lhs_generation: u64, rhs_start: Vec<u8> },
    /// Thaw after the merge into `lhs` at `lhs_generation` was abandoned.
    Unfreeze { lhs: RangeId, lhs_generation: u64 },
}

/// A one-range transaction's writes, with what it read and when.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WriteCmd {
    /// The leaseholder's timestamp for the write: above every read it served.
    pub proposal_ts: Timestamp,
    pub read_ts: Option<Timestamp>,
    pub read_spans: Vec<Span>,
    pub writes: Vec<Write>,
}

/// What applying a command produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyResult {
    Ok,
    Committed(Timestamp),
    Conflict(Timestamp),
    /// A write conditional on absence found this key live.
    KeyExists(Vec<u8>),
    /// The command met an intent or read lock of this other, unfinished transaction.
    IntentConflict(Vec<u8>, TxnMeta),
    Prepared(Timestamp),
    Txn(TxnRecord),
    OutOfRange,
    Dropped,
    Invalid(String),
    /// The range split: its new descriptor, and the new range's.
    Split(Box<(RangeDescriptor, RangeDescriptor)>),
    /// Refused for now; the proposer may retry later.
    Busy(String),
    /// Frozen for a merge at this log index.
    Frozen(u64),
    /// The merged range's descriptor.
    Merged(Box<RangeDescriptor>),
    /// Whether a merge being settled happened.
    MergeOutcome(bool),
}

/// A prepared transaction's read of a span: no other transaction may write into it until the
/// transaction is resolved here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadLock {
    pub txn: TxnMeta,
    pub span: Span,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RangeState {
    pub desc: Option<RangeDescriptor>,
    pub last_write_ts: Timestamp,
    /// Set when the range's table is dropped; the range then serves nothing.
    pub dropped: bool,
    /// Write intents held in this range (0 lets every check for them be skipped).
    pub intents: u64,
    pub read_locks: Vec<ReadLock>,
    /// Records of transactions anchored here (pending ones while heartbeating), until their
    /// coordinator forgets them.
    pub txn_records: BTreeMap<u128, TxnRecord>,
    /// Schema fence: a write whose transaction read below this timestamp fails (the table's
    /// schema changed since it began; `RangeCommand::Fence`).
    pub fence_ts: Timestamp,
    /// Frozen for a merge into the range on the left: serves nothing (`crate::merge`).
    pub frozen: Option<crate::merge::Frozen>,
}

/// Writes of entries applied into the batch that is not written to the engine yet: validation
/// must see them (see `Fsm::apply`).
#[derive(Default)]
struct Unflushed {
    /// Key, commit timestamp, whether the write deleted.
    versions: Vec<(Vec<u8>, Timestamp, bool)>,
    /// Intents laid (`Some`) or cleared (`None`).
    intents: HashMap<Vec<u8>, Option<Intent>>,
}

/// Called with (new range, this node's replica of it, the range it split from) for each split
/// applied here, once the batch is written.
pub type SplitHook = Box<dyn Fn(RangeId, meridian_types::ReplicaId, RangeId) + Send + Sync>;

/// Called with (the right-hand range, its freeze index) for each merge applied here, once the
/// batch is written: this node's replica of that range is to be stopped and its log deleted.
pub type MergeHook = Box<dyn Fn(RangeId, u64) + Send + Sync>;

pub struct RangeFsm {
    range_id: RangeId,
    hlc: Arc<Hlc>,
    state: RwLock<RangeState>,
    unflushed: std::sync::Mutex<Unflushed>,
    /// The last applied log index, for waiters.
    applied: watch::Sender<u64>,
    /// Replicas of new ranges created by splits applied in the unwritten batch: started (sent to
    /// the hook) once the batch is written.
    split_replicas: std::sync::Mutex<Vec<(RangeId, meridian_types::ReplicaId)>>,
    split_hook: std::sync::OnceLock<SplitHook>,
    /// Right-hand ranges merged in the unwritten batch, for the merge hook.
    merged_ranges: std::sync::Mutex<Vec<(RangeId, u64)>>,
    merge_hook: std::sync::OnceLock<MergeHook>,
    /// Where a split applied here claims its new range's span (`meridian_raft_glue::SpanClaims`).
    span_claims: std::sync::OnceLock<Arc<meridian_raft_glue::SpanClaims>>,
}

pub(crate) fn storage_failure(range: RangeId, e: impl std::fmt::Debug) -> ! {
    // A storage read failure during apply must not let replicas diverge: stop.
    panic!("r{range}: storage failure during apply: {e:?}")
}

impl RangeFsm {
    pub fn open(range_id: RangeId, engine: &Engine, hlc: Arc<Hlc>) -> Arc<RangeFsm> {
        let fsm = Arc::new(RangeFsm {
            range_id,
            hlc,
            state: RwLock::new(RangeState::default()),
            unflushed: Default::default(),
            applied: watch::channel(0).0,
            split_replicas: Default::default(),
            split_hook: Default::default(),
            merged_ranges: Default::default(),
            merge_hook: Default::default(),
            span_claims: Default::default(),
        });
        fsm.reload(engine);
        fsm
    }

    pub fn range_id(&self) -> RangeId {
        self.range_id
    }

    /// Sets the hook called for each split applied here ([`SplitHook`]).
    pub fn set_split_hook(&self, hook: SplitHook) {
        let _ = self.split_hook.set(hook);
    }

    /// Sets the hook called for each merge applied here ([`MergeHook`]).
    pub fn set_merge_hook(&self, hook: MergeHook) {
        let _ = self.merge_hook.set(hook);
    }

    pub(crate) fn note_merge(&self, gone: RangeId, frozen_index: u64) {
        self.merged_ranges.lock().unwrap_or_else(|e| e.into_inner()).push((gone, frozen_index));
    }

    pub(crate) fn hlc_forward(&self, ts: Timestamp) {
        self.hlc.forward(ts);
    }

    /// Sets where splits applied here claim their new range's span.
    pub fn set_span_claims(&self, claims: Arc<meridian_raft_glue::SpanClaims>) {
        let _ = self.span_claims.set(claims);
    }

    /// Claims the span of this node's replica of a new range a split creates
    /// (`meridian_raft_glue::SpanClaims::claim_new`); false if the node has or had one.
    pub(crate) fn claim_new_replica(&self, engine: &Engine, range: RangeId, start: Vec<u8>, end: Vec<u8>) -> bool {
        match self.span_claims.get() {
            Some(c) => c.claim_new(engine, range, start, end).unwrap_or_else(|e| storage_failure(self.range_id, e)),
            None => true, // no host (unit tests): write_initial_state still checks the store
        }
    }

    pub(crate) fn note_split(&self, range: RangeId, replica: meridian_types::ReplicaId) {
        self.split_replicas.lock().unwrap_or_else(|e| e.into_inner()).push((range, replica));
    }

    pub fn state(&self) -> RangeState {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn descriptor(&self) -> Option<RangeDescriptor> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).desc.clone()
    }

    /// The descriptor of a range that serves requests (`None` before it has one, or once dropped).
    pub fn live_descriptor(&self) -> Option<RangeDescriptor> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        if st.dropped { None } else { st.desc.clone() }
    }

    /// The generation and table of a range that serves requests, without copying its
    /// descriptor (the background queues look at every led range every second).
    pub fn live_generation(&self) -> Option<(u64, Option<u64>)> {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        st.desc.as_ref().filter(|_| !st.dropped).map(|d| (d.generation, d.table_id))
    }

    /// The merge this range is frozen for, if any (it serves nothing meanwhile: `crate::merge`).
    pub fn frozen(&self) -> Option<crate::merge::Frozen> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).frozen.clone()
    }

    /// The record of transaction `id` (`Pending`, expired, when there is none).
    pub fn txn_record(&self, id: u128) -> TxnRecord {
        let st = self.state.read().unwrap_or_else(|e| e.into_inner());
        st.txn_records.get(&id).copied().unwrap_or(TxnRecord { status: TxnStatus::Pending, expires_ms: 0 })
    }

    pub fn watch_applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// The intent on `key`, counting the unflushed batch.
    fn intent_of(&self, engine: &Engine, key: &[u8]) -> Option<Intent> {
        if let Some(i) = self.unflushed.lock().unwrap_or_else(|e| e.into_inner()).intents.get(key) {
            return i.clone();
        }
        mvcc::get_intent(engine, key).unwrap_or_else(|e| storage_failure(self.range_id, e))
    }

    /// An intent of a transaction other than `own` in `span`, counting the unflushed batch.
    fn foreign_intent_in_span(&self, engine: &Engine, span: &Span, own: Option<u128>) -> Option<(Vec<u8>, TxnMeta)> {
        let u = self.unflushed.lock().unwrap_or_else(|e| e.into_inner());
        for (k, i) in &u.intents {
            if let Some(i) = i
                && *k >= span.start
                && *k < span.end
                && Some(i.txn.id) != own
            {
                return Some((k.clone(), i.txn.clone()));
            }
        }
        // Intents of the engine the batch cleared or replaced are judged above.
        let found = mvcc::intent_in_span(engine, &span.start, &span.end, |k| u.intents.contains_key(k))
            .unwrap_or_else(|e| storage_failure(self.range_id, e));
        found.filter(|(_, i)| Some(i.txn.id) != own).map(|(k, i)| (k, i.txn))
    }

    /// Whether `key` holds a live value, counting writes applied but not yet flushed.
    fn is_live(&self, engine: &Engine, key: &[u8]) -> bool {
        let u = self.unflushed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, deleted)) = u.versions.iter().rev().find(|(k, _, _)| k == key) {
            return !deleted;
        }
        drop(u);
        mvcc::get(engine, key, Timestamp::MAX, None).unwrap_or_else(|e| storage_failure(self.range_id, e)).is_some()
    }

    /// Every check a write or prepare must pass before it changes anything (module docs).
    fn check(&self, engine: &Engine, st: &RangeState, own: Option<u128>, cmd: &WriteCmd) -> Result<(), ApplyResult> {
        let WriteCmd { read_ts, read_spans, writes, .. } = cmd;
        if st.dropped {
            return Err(ApplyResult::Dropped);
        }
        let Some(desc) = &st.desc else {
            return Err(ApplyResult::OutOfRange);
        };
        if writes.iter().any(|w| !desc.contains_key(&w.key)) || read_spans.iter().any(|s| !desc.contains_span(&s.start, &s.end)) {
            return Err(ApplyResult::OutOfRange);
        }
        if let Some(rts) = *read_ts
            && rts < st.fence_ts
            && !writes.is_empty()
        {
            return Err(ApplyResult::Conflict(st.fence_ts));
        }
        if let Some(rts) = *read_ts {
            // Fast path: nothing at all was written in this range after the read.
            if st.last_write_ts > rts {
                let u = self.unflushed.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((_, ts, _)) =
                    u.versions.iter().find(|(k, ts, _)| *ts > rts && read_spans.iter().any(|s| *k >= s.start && *k < s.end))
                {
                    return Err(ApplyResult::Conflict(*ts));
                }
                drop(u);
                for s in read_spans {
                    match mvcc::newer_version_in_span(engine, &s.start, &s.end, rts) {
                        Ok(Some(ts)) => return Err(ApplyResult::Conflict(ts)),
                        Ok(None) => {}
                        Err(e) => storage_failure(self.range_id, e),
                    }
                }
            }
        }
        if st.intents > 0 {
            for s in read_spans {
                if let Some((k, txn)) = self.foreign_intent_in_span(engine, s, own) {
                    return Err(ApplyResult::IntentConflict(k, txn));
                }
            }
            for w in writes {
                if let Some(i) = self.intent_of(engine, &w.key).filter(|i| Some(i.txn.id) != own) {
                    return Err(ApplyResult::IntentConflict(w.key.clone(), i.txn));
                }
            }
        }
        for lock in st.read_locks.iter().filter(|l| Some(l.txn.id) != own) {
            if let Some(w) = writes.iter().find(|w| w.key >= lock.span.start && w.key < lock.span.end) {
                return Err(ApplyResult::IntentConflict(w.key.clone(), lock.txn.clone()));
            }
        }
        for w in writes.iter().filter(|w| w.absent) {
            if self.is_live(engine, &w.key) {
                return Err(ApplyResult::KeyExists(w.key.clone()));
            }
        }
        Ok(())
    }

    fn commit_ts(st: &RangeState, cmd: &WriteCmd) -> Timestamp {
        let mut ts = cmd.proposal_ts.max(st.last_write_ts.next());
        if let Some(rts) = cmd.read_ts {
            ts = ts.max(rts.next());
        }
        ts
    }

    fn apply_write(&self, engine: &Engine, batch: &mut Batch, st: &mut RangeState, cmd: &WriteCmd) -> ApplyResult {
        if let Err(r) = self.check(engine, st, None, cmd) {
            return r;
        }
        let commit_ts = Self::commit_ts(st, cmd);
        let mut u = self.unflushed.lock().unwrap_or_else(|e| e.into_inner());
        for w in &cmd.writes {
            mvcc::put(batch, engine, &w.key, commit_ts, w.value.as_deref());
            u.versions.push((w.key.clone(), commit_ts, w.value.is_none()));
        }
        st.last_write_ts = commit_ts;
        self.hlc.forward(commit_ts);
        ApplyResult::Committed(commit_ts)
    }

    fn apply_prepare(&self, engine: &Engine, batch: &mut Batch, st: &mut RangeState, txn: &TxnMeta, cmd: &WriteCmd) -> ApplyResult {
        if let Err(r) = self.check(engine, st, Some(txn.id), cmd) {
            return r;
        }
        let prepare_ts = Self::commit_ts(st, cmd);
        for w in &cmd.writes {
            let had = self.intent_of(engine, &w.key).is_some();
            let intent = Intent { txn: txn.clone(), prepare_ts, value: w.value.clone() };
            mvcc::put_intent(batch, engine, &w.key, &intent);
            self.unflushed.lock().unwrap_or_else(|e| e.into_inner()).intents.insert(w.key.clone(), Some(intent));
            if !had {
                st.intents += 1;
            }
        }
        for span in &cmd.read_spans {
            st.read_locks.push(ReadLock { txn: txn.clone(), span: span.clone() });
        }
        self.hlc.forward(prepare_ts);
        ApplyResult::Prepared(prepare_ts)
    }

    fn apply_resolve(
        &self,
        engine: &Engine,
        batch: &mut Batch,
        st: &mut RangeState,
        txn_id: u128,
        status: TxnStatus,
        keys: &[Vec<u8>],
    ) -> ApplyResult {
        let commit = match status {
            TxnStatus::Committed(ts) => Some(ts),
            TxnStatus::Aborted => None,
            TxnStatus::Pending => return ApplyResult::Invalid("resolve of a pending transaction".into()),
        };
        if st.intents > 0 {
            for key in keys {
                let Some(intent) = self.intent_of(engine, key).filter(|i| i.txn.id == txn_id) else { continue };
                mvcc::clear_intent(batch, engine, key);
                let mut u = self.unflushed.lock().unwrap_or_else(|e| e.into_inner());
                u.intents.insert(key.clone(), None);
                if let Some(ts) = commit {
                    mvcc::put(batch, engine, key, ts, intent.value.as_deref());
                    u.versions.push((key.clone(), ts, intent.value.is_none()));
                }
                st.intents = st.intents.saturating_sub(1);
            }
        }
        st.read_locks.retain(|l| l.txn.id != txn_id);
        if let Some(ts) = commit {
            st.last_write_ts = st.last_write_ts.max(ts);
            self.hlc.forward(ts);
        }
        ApplyResult::Ok
    }
}

fn persist(engine: &Engine, batch: &mut Batch, range: RangeId, st: &RangeState) {
    let bytes = postcard::to_stdvec(st).unwrap_or_default();
    batch.put(engine, Cf::RangeMeta, &range_local_key(range, range_local::RANGE_STATE), &bytes);
}

impl Fsm for RangeFsm {
    fn apply(&self, engine: &Engine, batch: &mut Batch, index: u64, cmd: &[u8]) -> Vec<u8> {
        let result = match postcard::from_bytes::<RangeCommand>(cmd) {
            Err(e) => ApplyResult::Invalid(e.to_string()),
            Ok(cmd) => {
                let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
                let mut next = st.clone();
                // Frozen for a merge: nothing changes but the freeze itself (crate::merge).
                let frozen = next.frozen.is_some() && !matches!(cmd, RangeCommand::Subsume(_) | RangeCommand::Unfreeze { .. });
                let r = if frozen {
                    ApplyResult::Busy(format!("r{} is being merged", self.range_id))
                } else {
                    match &cmd {
                        RangeCommand::SetDescriptor(d) => match &next.desc {
                            _ if d.range_id != self.range_id => ApplyResult::Invalid("descriptor of another range".into()),
                            // The same descriptor again (a retried proposal): done already.
                            Some(cur) if cur == d => ApplyResult::Ok,
                            // Only a newer descriptor of the same span: one proposed from an older
                            // view (before a split) must not undo the split.
                            Some(cur) if cur.start_key != d.start_key || cur.end_key != d.end_key || d.generation <= cur.generation => {
                                ApplyResult::Busy("the descriptor changed since this one was made".into())
                            }
                            _ => {
                                next.desc = Some(d.clone());
                                ApplyResult::Ok
                            }
                        },
                        RangeCommand::Write(w) => self.apply_write(engine, batch, &mut next, w),
                        RangeCommand::MarkDropped => {
                            next.dropped = true;
                            ApplyResult::Ok
                        }
                        RangeCommand::Prepare { txn, cmd } => self.apply_prepare(engine, batch, &mut next, txn, cmd),
                        RangeCommand::Resolve { txn_id, status, keys, forget_record } => {
                            let r = self.apply_resolve(engine, batch, &mut next, *txn_id, *status, keys);
                            if *forget_record {
                                next.txn_records.remove(txn_id);
                            }
                            r
                        }
                        RangeCommand::EndTxn { txn_id, commit, now_ms } => {
                            let pending = TxnRecord { status: TxnStatus::Pending, expires_ms: 0 };
                            let cur = next.txn_records.get(txn_id).copied().unwrap_or(pending);
                            let alive = cur.status == TxnStatus::Pending && cur.expires_ms > *now_ms;
                            let rec = if cur.status != TxnStatus::Pending || (commit.is_none() && alive) {
                                cur
                            } else {
                                let status = commit.map_or(TxnStatus::Aborted, TxnStatus::Committed);
                                let rec = TxnRecord { status, expires_ms: cur.expires_ms };
                                next.txn_records.insert(*txn_id, rec);
                                rec
                            };
                            ApplyResult::Txn(rec)
                        }
                        RangeCommand::Split(c) => self.apply_split(engine, batch, &mut next, c),
                        RangeCommand::Fence { ts } => {
                            next.fence_ts = next.fence_ts.max(*ts);
                            ApplyResult::Ok
                        }
                        RangeCommand::Heartbeat { txn_id, expires_ms } => {
                            let rec = next.txn_records.entry(*txn_id).or_insert(TxnRecord { status: TxnStatus::Pending, expires_ms: 0 });
                            if rec.status == TxnStatus::Pending {
                                rec.expires_ms = rec.expires_ms.max(*expires_ms);
                            }
                            ApplyResult::Txn(*rec)
                        }
                        RangeCommand::Subsume(f) => self.apply_subsume(&mut next, index, f),
                        RangeCommand::Merge { lhs_generation, rhs } => self.apply_merge(engine, batch, &mut next, *lhs_generation, rhs),
                        RangeCommand::ResolveMerge { lhs, lhs_generation, rhs_start } => {
                            Self::apply_resolve_merge(&mut next, *lhs, *lhs_generation, rhs_start)
                        }
                        RangeCommand::Unfreeze { lhs, lhs_generation } => Self::apply_unfreeze(&mut next, *lhs, *lhs_generation),
                    }
                };
                if matches!(r, ApplyResult::OutOfRange | ApplyResult::Dropped) {
                    tracing::debug!(range = self.range_id, index, desc = ?next.desc, result = ?r, "command refused at apply");
                }
                if matches!(
                    r,
                    ApplyResult::Ok
                        | ApplyResult::Committed(_)
                        | ApplyResult::Prepared(_)
                        | ApplyResult::Txn(_)
                        | ApplyResult::Split(..)
                        | ApplyResult::Frozen(_)
                        | ApplyResult::Merged(_)
                        | ApplyResult::MergeOutcome(_)
                ) {
                    persist(engine, batch, self.range_id, &next);
                    *st = next;
                }
                r
            }
        };
        postcard::to_stdvec(&result).unwrap_or_default()
    }

    fn applied(&self, index: u64) {
        let mut u = self.unflushed.lock().unwrap_or_else(|e| e.into_inner());
        u.versions.clear();
        u.intents.clear();
        drop(u);
        let splits = std::mem::take(&mut *self.split_replicas.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(hook) = self.split_hook.get() {
            for (range, replica) in splits {
                hook(range, replica, self.range_id);
            }
        }
        let merges = std::mem::take(&mut *self.merged_ranges.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(hook) = self.merge_hook.get() {
            for (gone, frozen_index) in merges {
                hook(gone, frozen_index);
            }
        }
        self.applied.send_replace(index);
    }

    fn span(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        self.descriptor().map(|d| (d.start_key, d.end_key))
    }

    fn frozen_for(&self) -> Option<RangeId> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).frozen.as_ref().map(|f| f.lhs)
    }

    fn reload(&self, engine: &Engine) {
        let st = engine
            .get(Cf::RangeMeta, &range_local_key(self.range_id, range_local::RANGE_STATE))
            .ok()
            .flatten()
            .and_then(|b| postcard::from_bytes::<RangeState>(&b).ok())
            .unwrap_or_default();
        self.hlc.forward(st.last_write_ts);
        *self.unflushed.lock().unwrap_or_else(|e| e.into_inner()) = Unflushed::default();
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = st;
    }
}

#[cfg(test)]
#[path = "fsm_tests.rs"]
mod tests;
