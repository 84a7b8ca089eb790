//! Merging a range with the range on its right: the commands both ranges apply.
//!
//! A merge of the left range L and the right range R (adjacent, same table, replicas on the
//! same nodes) goes through both Raft logs; the node layer's merge queue drives it
//! (`meridian_node::merge`):
//!
//! 1. **Subsume** (R's log): R freezes. From then on R refuses every command but a later
//!    subsume by L and an unfreeze, and its leaseholder serves no read. The leaseholder answers
//!    with what L needs ([`Subsumed`]): R's descriptor and members, the freeze's log index, a
//!    timestamp at or above every read R served and every write it committed (taken under the
//!    lease lock after the freeze applied, so no read slips past it), its fence and its
//!    transaction records. A range holding intents or read locks refuses to freeze (`Busy`).
//! 2. The coordinator waits until every replica of R has applied the freeze, durably
//!    (`WaitApplied`): every node with a replica of L then holds all of R's data in its store.
//! 3. **Merge** (L's log, only at the generation L had when the merge began): L's span grows to
//!    R's end, its generation goes above both, its last write timestamp above R's freeze
//!    timestamp (so no write of L can commit below a read R served), and R's transaction
//!    records join L's. The same batch tombstones this node's replica of R and deletes its
//!    state; once the batch is written the store stops R's group and deletes its log (the data
//!    stays: it is L's now).
//!
//! A coordinator that dies between 1 and 3 leaves R frozen. R's leaseholder settles it after a
//! while with **ResolveMerge**, sent to the range now holding L's start key: if that range
//! covers R's start, the merge happened; if not, a range that is still L at the merge's
//! generation raises its generation (so the merge can never apply), and either way R is told
//! to **Unfreeze**. Every decision is made in L's log, so a merge is applied or abandoned,
//! never both.
//!
//! Not handled: merging ranges whose replicas are on different nodes (the merge queue skips
//! them; relocating replicas first is not built). L's membership must not change between step
//! 2 and 3: the merge queue and the replicate queue of L's leaseholder run one after the
//! other, and a new leaseholder in between fails the merge (its proposal is not L's).

use crate::fsm::{ApplyResult, RangeCommand, RangeFsm, RangeState};
use crate::replica::Replica;
use meridian_storage::{Batch, Cf, Engine};
use meridian_types::keys::{range_local, range_local_key};
use meridian_types::kv::Subsumed;
use meridian_types::{KvError, RangeDescriptor, RangeId};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// R's state while frozen for a merge into `lhs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frozen {
    pub lhs: RangeId,
    pub lhs_start: Vec<u8>,
    pub lhs_generation: u64,
}

impl RangeFsm {
    pub(crate) fn apply_subsume(&self, st: &mut RangeState, index: u64, frozen: &Frozen) -> ApplyResult {
        if st.dropped {
            return ApplyResult::Dropped;
        }
        let Some(desc) = &st.desc else { return ApplyResult::OutOfRange };
        if desc.sticky {
            // Asked for by SPLIT AT (the merge queue may have gone by a stale cached copy).
            return ApplyResult::Busy("the range starts at a SPLIT AT boundary".into());
        }
        match &st.frozen {
            // A newer attempt by the same left range (the earlier one was abandoned).
            Some(f) if f.lhs == frozen.lhs && f.lhs_generation <= frozen.lhs_generation => {}
            Some(f) => return ApplyResult::Busy(format!("frozen for a merge into r{}", f.lhs)),
            None => {}
        }
        if st.intents > 0 || !st.read_locks.is_empty() {
            return ApplyResult::Busy("the range holds intents or read locks of unfinished transactions".into());
        }
        st.frozen = Some(frozen.clone());
        ApplyResult::Frozen(index)
    }

    pub(crate) fn apply_merge(&self, engine: &Engine, batch: &mut Batch, st: &mut RangeState, lhs_gen: u64, rhs: &Subsumed) -> ApplyResult {
        if st.dropped {
            return ApplyResult::Dropped;
        }
        let Some(desc) = st.desc.clone() else { return ApplyResult::OutOfRange };
        if desc.generation != lhs_gen {
            return ApplyResult::Busy("the range changed since the merge began".into());
        }
        if desc.end_key != rhs.desc.start_key || desc.table_id != rhs.desc.table_id {
            return ApplyResult::Invalid(format!("r{} is not the right neighbour of r{}", rhs.desc.range_id, self.range_id()));
        }
        let merged =
            RangeDescriptor { end_key: rhs.desc.end_key.clone(), generation: desc.generation.max(rhs.desc.generation) + 1, ..desc };
        st.desc = Some(merged.clone());
        st.last_write_ts = st.last_write_ts.max(rhs.freeze_ts);
        st.fence_ts = st.fence_ts.max(rhs.fence_ts);
        for (id, rec) in &rhs.txn_records {
            st.txn_records.entry(*id).or_insert(*rec);
        }
        self.hlc_forward(st.last_write_ts);
        // This node's replica of the right range ends with this batch (module docs).
        let gone = rhs.desc.range_id;
        for s in [range_local::APPLIED, range_local::MEMBERSHIP, range_local::RANGE_STATE] {
            batch.delete(engine, Cf::RangeMeta, &range_local_key(gone, s));
        }
        batch.put(engine, Cf::RaftMeta, &range_local_key(gone, range_local::TOMBSTONE), &[1]);
        self.note_merge(gone, rhs.frozen_index);
        ApplyResult::Merged(Box::new(merged))
    }

    pub(crate) fn apply_resolve_merge(st: &mut RangeState, lhs: RangeId, lhs_generation: u64, rhs_start: &[u8]) -> ApplyResult {
        let Some(desc) = st.desc.as_mut() else { return ApplyResult::OutOfRange };
        if desc.end_key.as_slice() > rhs_start {
            // Only a merge with the right range makes a range cover its start.
            return ApplyResult::MergeOutcome(true);
        }
        if desc.range_id == lhs && desc.generation == lhs_generation && desc.end_key == rhs_start {
            // The merge cannot apply any more: it requires this generation.
            desc.generation += 1;
        }
        ApplyResult::MergeOutcome(false)
    }

    pub(crate) fn apply_unfreeze(st: &mut RangeState, lhs: RangeId, lhs_generation: u64) -> ApplyResult {
        if st.frozen.as_ref().is_some_and(|f| f.lhs == lhs && f.lhs_generation == lhs_generation) {
            st.frozen = None;
        }
        ApplyResult::Ok
    }
}

impl Replica {
    /// Freezes this range for a merge into `lhs` (module docs, step 1).
    pub async fn subsume(&self, frozen: Frozen) -> Result<Subsumed, KvError> {
        if !self.group().is_leader() {
            return Err(self.not_leaseholder());
        }
        let index = match self.propose_cmd(&RangeCommand::Subsume(frozen)).await? {
            ApplyResult::Frozen(index) => index,
            r => return Err(self.apply_error(r)),
        };
        let freeze_ts = self.freeze_ts();
        let st = self.fsm().state();
        let mut desc = st.desc.ok_or(KvError::RangeNotFound { range_id: self.range_id() })?;
        desc.replicas = self.members();
        Ok(Subsumed {
            desc,
            frozen_index: index,
            freeze_ts: freeze_ts.max(st.last_write_ts),
            fence_ts: st.fence_ts,
            txn_records: st.txn_records,
        })
    }

    /// Answers once this replica has applied `index` and the store made it durable.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), KvError> {
        let mut applied = self.fsm().watch_applied();
        let wait = applied.wait_for(|i| *i >= index);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return Err(KvError::RangeNotFound { range_id: self.range_id() }),
            Err(_) => return Err(KvError::Unavailable(format!("r{} has not applied index {index} yet", self.range_id()))),
        }
        self.engine().syncer().sync().await.map_err(|e| KvError::Internal(e.to_string()))
    }

    /// Absorbs the frozen right neighbour `rhs` (module docs, step 3); returns the merged
    /// descriptor.
    pub async fn merge(&self, lhs_generation: u64, rhs: Subsumed) -> Result<RangeDescriptor, KvError> {
        if !self.group().is_leader() {
            return Err(self.not_leaseholder());
        }
        match self.propose_cmd(&RangeCommand::Merge { lhs_generation, rhs: Box::new(rhs) }).await? {
            ApplyResult::Merged(desc) => Ok(*desc),
            r => Err(self.apply_error(r)),
        }
    }

    /// Settles a merge of `lhs` at `lhs_generation` with the range starting at `rhs_start`:
    /// whether it happened (module docs).
    pub async fn resolve_merge(&self, lhs: RangeId, lhs_generation: u64, rhs_start: Vec<u8>) -> Result<bool, KvError> {
        if !self.group().is_leader() {
            return Err(self.not_leaseholder());
        }
        match self.propose_cmd(&RangeCommand::ResolveMerge { lhs, lhs_generation, rhs_start }).await? {
            ApplyResult::MergeOutcome(merged) => Ok(merged),
            r => Err(self.apply_error(r)),
        }
    }

    /// Makes this range's start (which must be `start_key`) an ordinary boundary, one the merge
    /// queue may merge away; returns the descriptor.
    pub async fn unsplit(&self, start_key: Vec<u8>) -> Result<RangeDescriptor, KvError> {
        if !self.group().is_leader() {
            return Err(self.not_leaseholder());
        }
        let desc = self.fsm().live_descriptor().ok_or(KvError::RangeNotFound { range_id: self.range_id() })?;
        if desc.start_key != start_key {
            return Err(KvError::KeyOutOfRange { range_id: self.range_id() });
        }
        if !desc.sticky {
            return Ok(desc);
        }
        let next = RangeDescriptor { sticky: false, generation: desc.generation + 1, ..desc };
        match self.propose_cmd(&RangeCommand::SetDescriptor(next.clone())).await? {
            ApplyResult::Ok => Ok(next),
            r => Err(self.apply_error(r)),
        }
    }

    /// Thaws this range after its merge into `lhs` was abandoned.
    pub async fn unfreeze(&self, lhs: RangeId, lhs_generation: u64) -> Result<(), KvError> {
        if !self.group().is_leader() {
            return Err(self.not_leaseholder());
        }
        match self.propose_cmd(&RangeCommand::Unfreeze { lhs, lhs_generation }).await? {
            ApplyResult::Ok => Ok(()),
            r => Err(self.apply_error(r)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsm::WriteCmd;
    use meridian_storage::mvcc;
    use meridian_types::kv::{Span, TxnMeta, TxnRecord, TxnStatus, Write};
    use meridian_types::{Hlc, Timestamp};
    use std::sync::{Arc, Mutex};

    fn apply(f: &RangeFsm, e: &Engine, index: u64, cmd: RangeCommand) -> ApplyResult {
        use meridian_raft_glue::Fsm;
        let mut b = Batch::new();
        let r = f.apply(e, &mut b, index, &postcard::to_stdvec(&cmd).unwrap());
        e.write(b).unwrap();
        f.applied(index);
        postcard::from_bytes(&r).unwrap()
    }

    fn desc(id: RangeId, s: &str, e: &str, generation: u64) -> RangeDescriptor {
        RangeDescriptor {
            range_id: id,
            start_key: s.as_bytes().to_vec(),
            end_key: e.as_bytes().to_vec(),
            replicas: vec![],
            generation,
            table_id: Some(5),
            sticky: false,
        }
    }

    fn write(k: &str, ts: u64) -> RangeCommand {
        RangeCommand::Write(WriteCmd {
            proposal_ts: Timestamp::new(ts, 0),
            read_ts: None,
            read_spans: vec![],
            writes: vec![Write::put(k.as_bytes().to_vec(), b"v".to_vec())],
        })
    }

    /// What the frozen range `r` hands over (as its leaseholder would), frozen at `index`, with
    /// a freeze timestamp of 50.
    fn subsumed(r: &RangeFsm, index: u64) -> Subsumed {
        let st = r.state();
        Subsumed {
            desc: st.desc.unwrap(),
            frozen_index: index,
            freeze_ts: Timestamp::new(50, 0),
            fence_ts: st.fence_ts,
            txn_records: st.txn_records,
        }
    }

    fn frozen(lhs_generation: u64) -> Frozen {
        Frozen { lhs: 7, lhs_start: b"a".to_vec(), lhs_generation }
    }

    #[test]
    fn a_frozen_range_refuses_everything_and_the_merged_range_takes_over_its_span() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let hlc = Arc::new(Hlc::system(500_000_000));
        let (l, r) = (RangeFsm::open(7, &e, hlc.clone()), RangeFsm::open(9, &e, hlc.clone()));
        let merged = Arc::new(Mutex::new(Vec::new()));
        let m2 = merged.clone();
        l.set_merge_hook(Box::new(move |gone, index| m2.lock().unwrap().push((gone, index))));
        assert_eq!(apply(&l, &e, 1, RangeCommand::SetDescriptor(desc(7, "a", "h", 3))), ApplyResult::Ok);
        assert_eq!(apply(&r, &e, 1, RangeCommand::SetDescriptor(desc(9, "h", "m", 4))), ApplyResult::Ok);
        assert!(matches!(apply(&r, &e, 2, write("k", 10)), ApplyResult::Committed(_)));
        // A transaction anchored in the right range keeps its record through the merge.
        let hb = RangeCommand::Heartbeat { txn_id: 42, expires_ms: 9_000 };
        assert!(matches!(apply(&r, &e, 3, hb), ApplyResult::Txn(_)));
        // Intents (here, a prepared transaction's read lock) block the freeze.
        let txn = TxnMeta { id: 1, anchor_key: b"i".to_vec(), expires_ms: u64::MAX };
        let read = WriteCmd { proposal_ts: Timestamp::new(11, 0), read_ts: None, read_spans: vec![Span::point(b"j")], writes: vec![] };
        assert!(matches!(apply(&r, &e, 4, RangeCommand::Prepare { txn, cmd: read }), ApplyResult::Prepared(_)));
        assert!(matches!(apply(&r, &e, 5, RangeCommand::Subsume(frozen(3))), ApplyResult::Busy(_)));
        let done = RangeCommand::Resolve { txn_id: 1, status: TxnStatus::Aborted, keys: vec![], forget_record: false };
        assert_eq!(apply(&r, &e, 6, done), ApplyResult::Ok);
        assert_eq!(apply(&r, &e, 7, RangeCommand::Subsume(frozen(3))), ApplyResult::Frozen(7));
        assert_eq!(r.frozen(), Some(frozen(3)));
        // Frozen: writes, fences, splits, descriptor changes and other merges are refused.
        assert!(matches!(apply(&r, &e, 8, write("k", 20)), ApplyResult::Busy(_)));
        assert!(matches!(apply(&r, &e, 9, RangeCommand::Fence { ts: Timestamp::new(30, 0) }), ApplyResult::Busy(_)));
        assert!(matches!(apply(&r, &e, 10, RangeCommand::SetDescriptor(desc(9, "h", "m", 5))), ApplyResult::Busy(_)));
        let other = Frozen { lhs: 8, ..frozen(3) };
        assert!(matches!(apply(&r, &e, 11, RangeCommand::Subsume(other)), ApplyResult::Busy(_)));
        assert_eq!(apply(&r, &e, 12, RangeCommand::Subsume(frozen(3))), ApplyResult::Frozen(12), "the same merge may freeze again");
        // The merge at a generation the left range no longer has is refused.
        let rhs = subsumed(&r, 12);
        let merge = |g| RangeCommand::Merge { lhs_generation: g, rhs: Box::new(rhs.clone()) };
        assert!(matches!(apply(&l, &e, 2, merge(2)), ApplyResult::Busy(_)));
        let ApplyResult::Merged(d) = apply(&l, &e, 3, merge(3)) else { panic!("not merged") };
        assert_eq!((d.start_key.as_slice(), d.end_key.as_slice(), d.generation), (&b"a"[..], &b"m"[..], 5));
        assert_eq!(l.descriptor(), Some(*d.clone()));
        assert_eq!(*merged.lock().unwrap(), vec![(9, 12)]);
        // The merged range serves the right range's keys, writes above every read the frozen
        // range served, and holds its transaction records.
        assert_eq!(l.txn_record(42), TxnRecord { status: TxnStatus::Pending, expires_ms: 9_000 });
        let ApplyResult::Committed(ts) = apply(&l, &e, 4, write("k", 10)) else { panic!("no write") };
        assert!(ts > Timestamp::new(50, 0), "{ts:?}");
        assert_eq!(mvcc::get(&e, b"k", Timestamp::MAX, None).unwrap(), Some(b"v".to_vec()));
        // The right range's replica here is tombstoned and its state gone, in the same batch.
        assert!(e.get(Cf::RaftMeta, &range_local_key(9, range_local::TOMBSTONE)).unwrap().is_some());
        assert!(e.get(Cf::RangeMeta, &range_local_key(9, range_local::RANGE_STATE)).unwrap().is_none());
        // Settling the merge afterwards finds that it happened.
        let resolve = RangeCommand::ResolveMerge { lhs: 7, lhs_generation: 3, rhs_start: b"h".to_vec() };
        assert_eq!(apply(&l, &e, 5, resolve), ApplyResult::MergeOutcome(true));
    }

    #[test]
    fn an_abandoned_merge_can_never_apply_and_the_right_range_thaws() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let hlc = Arc::new(Hlc::system(500_000_000));
        let (l, r) = (RangeFsm::open(7, &e, hlc.clone()), RangeFsm::open(9, &e, hlc));
        assert_eq!(apply(&l, &e, 1, RangeCommand::SetDescriptor(desc(7, "a", "h", 3))), ApplyResult::Ok);
        assert_eq!(apply(&r, &e, 1, RangeCommand::SetDescriptor(desc(9, "h", "m", 4))), ApplyResult::Ok);
        assert_eq!(apply(&r, &e, 2, RangeCommand::Subsume(frozen(3))), ApplyResult::Frozen(2));
        // The coordinator died. The right range's leaseholder settles it in the left's log.
        let resolve = RangeCommand::ResolveMerge { lhs: 7, lhs_generation: 3, rhs_start: b"h".to_vec() };
        assert_eq!(apply(&l, &e, 2, resolve), ApplyResult::MergeOutcome(false));
        assert_eq!(l.descriptor().unwrap().generation, 4, "the merge's generation is gone");
        let rhs = subsumed(&r, 2);
        assert!(matches!(apply(&l, &e, 3, RangeCommand::Merge { lhs_generation: 3, rhs: Box::new(rhs) }), ApplyResult::Busy(_)));
        assert_eq!(l.descriptor().unwrap().end_key, b"h".to_vec());
        // An unfreeze for another attempt changes nothing; the right one thaws the range.
        assert_eq!(apply(&r, &e, 3, RangeCommand::Unfreeze { lhs: 7, lhs_generation: 2 }), ApplyResult::Ok);
        assert!(r.frozen().is_some());
        assert_eq!(apply(&r, &e, 4, RangeCommand::Unfreeze { lhs: 7, lhs_generation: 3 }), ApplyResult::Ok);
        assert_eq!(r.frozen(), None);
        assert!(matches!(apply(&r, &e, 5, write("k", 10)), ApplyResult::Committed(_)));
        assert!(e.get(Cf::RaftMeta, &range_local_key(9, range_local::TOMBSTONE)).unwrap().is_none());
        // A range starting at a SPLIT AT boundary never freezes for a merge.
        let sticky = RangeDescriptor { sticky: true, ..desc(9, "h", "m", 5) };
        assert_eq!(apply(&r, &e, 6, RangeCommand::SetDescriptor(sticky)), ApplyResult::Ok);
        assert!(matches!(apply(&r, &e, 7, RangeCommand::Subsume(frozen(4))), ApplyResult::Busy(_)));
    }
}
