//! Splitting a range in two at a key: the split command, applied by every replica of the range.
//!
//! The leaseholder proposes [`SplitCmd`] through the range's Raft log. Applying it (all in the
//! apply batch, so all or nothing): the range keeps `[start, split_key)` under a new generation,
//! and the replica writes the starting state of its own replica of the new range
//! `[split_key, end)` (`meridian_raft_glue::initial`), whose range state is a copy of this one's
//! over the new span: the same last write timestamp and schema fence, and the transaction records (pushers find a
//! record by its anchor key, which may now lie on either side; the copy on the side that does
//! not hold the anchor is never consulted). Once the batch is written the store starts the new
//! replica (the hook set with [`RangeFsm::set_split_hook`]).
//!
//! Invariants:
//! - Deterministic: the outcome depends only on the replicated state and the command. A split
//!   is refused (`Busy`) while the range holds write intents or read locks of unfinished
//!   transactions, which would otherwise have to be divided between the two ranges; the
//!   splitter retries once they are resolved.
//! - The new range's replicas sit on the nodes of this range's replicas at proposal time
//!   (`replicas`, by this range's replica id). A replica added after the proposal gets no
//!   replica of the new range from the split; the new range's replicate queue adds one.
//! - The data does not move: both ranges' keys are already in this node's store.
//!
//! Not handled: re-homing intents and read locks (see `Busy`). Merges: `crate::merge`.

use crate::fsm::{ApplyResult, RangeFsm, RangeState};
use meridian_raft_glue::initial::{InitialMember, write_initial_state};
use meridian_storage::{Batch, Cf, Engine};
use meridian_types::keys::{range_local, range_local_key};
use meridian_types::{NodeId, RangeDescriptor, RangeId, ReplicaDescriptor, ReplicaId, ReplicaKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Split the range at `split_key` (strictly inside its span) into itself and `new_range_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitCmd {
    pub split_key: Vec<u8>,
    pub new_range_id: RangeId,
    /// For each replica of this range at proposal time (by replica id): the new range's
    /// replica beside it (replica id, node, voter).
    pub replicas: BTreeMap<ReplicaId, (ReplicaId, NodeId, bool)>,
    /// Asked for by `SPLIT AT`: the new range is never merged back automatically
    /// ([`RangeDescriptor::sticky`]).
    pub sticky: bool,
}

impl RangeFsm {
    pub(crate) fn apply_split(&self, engine: &Engine, batch: &mut Batch, st: &mut RangeState, cmd: &SplitCmd) -> ApplyResult {
        if st.dropped {
            return ApplyResult::Dropped;
        }
        let Some(desc) = st.desc.clone() else { return ApplyResult::OutOfRange };
        if cmd.split_key <= desc.start_key || cmd.split_key >= desc.end_key {
            return ApplyResult::OutOfRange;
        }
        if st.intents > 0 || !st.read_locks.is_empty() {
            return ApplyResult::Busy("the range holds intents or read locks of unfinished transactions".into());
        }
        let members: Vec<InitialMember> = cmd.replicas.values().copied().collect();
        let generation = desc.generation + 1;
        let right = RangeDescriptor {
            range_id: cmd.new_range_id,
            start_key: cmd.split_key.clone(),
            end_key: desc.end_key.clone(),
            replicas: members
                .iter()
                .map(|(replica_id, node_id, voter)| ReplicaDescriptor {
                    replica_id: *replica_id,
                    node_id: *node_id,
                    kind: if *voter { ReplicaKind::Voter } else { ReplicaKind::NonVoter },
                })
                .collect(),
            generation,
            table_id: desc.table_id,
            sticky: cmd.sticky,
        };
        let left = RangeDescriptor { end_key: cmd.split_key.clone(), generation, ..desc };
        // This node's replica of the new range, if the split gives it one.
        let here = engine
            .get(Cf::RaftMeta, &range_local_key(self.range_id(), range_local::REPLICA_ID))
            .ok()
            .flatten()
            .and_then(|b| postcard::from_bytes::<ReplicaId>(&b).ok())
            .and_then(|me| cmd.replicas.get(&me))
            .map(|m| m.0);
        // Claimed before this range gives the span up (below): no snapshot of another range
        // may land in it, and no message may create the replica meanwhile.
        if let Some(replica_id) = here
            && self.claim_new_replica(engine, cmd.new_range_id, right.start_key.clone(), right.end_key.clone())
        {
            let right_state = RangeState {
                desc: Some(right.clone()),
                last_write_ts: st.last_write_ts,
                fence_ts: st.fence_ts,
                txn_records: st.txn_records.clone(),
                ..RangeState::default()
            };
            let bytes = postcard::to_stdvec(&right_state).unwrap_or_default();
            match write_initial_state(engine, batch, cmd.new_range_id, replica_id, &members, &bytes) {
                Ok(true) => self.note_split(cmd.new_range_id, replica_id),
                Ok(false) => {} // a replica of the new range is already here (by snapshot, or a replay)
                Err(e) => crate::fsm::storage_failure(self.range_id(), e),
            }
        }
        st.desc = Some(left.clone());
        ApplyResult::Split(Box::new((left, right)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsm::RangeCommand;
    use meridian_storage::mvcc;
    use meridian_types::kv::{Span, TxnMeta, Write};
    use meridian_types::{Hlc, Timestamp};
    use std::sync::{Arc, Mutex};

    fn apply(f: &RangeFsm, e: &Engine, cmd: RangeCommand) -> ApplyResult {
        use meridian_raft_glue::Fsm;
        let mut b = Batch::new();
        let r = f.apply(e, &mut b, 1, &postcard::to_stdvec(&cmd).unwrap());
        e.write(b).unwrap();
        f.applied(1);
        postcard::from_bytes(&r).unwrap()
    }

    fn write(k: &str) -> RangeCommand {
        RangeCommand::Write(crate::fsm::WriteCmd {
            proposal_ts: Timestamp::new(1, 0),
            read_ts: None,
            read_spans: vec![],
            writes: vec![Write::put(k.as_bytes().to_vec(), b"v".to_vec())],
        })
    }

    #[test]
    fn a_split_shrinks_the_range_and_prepares_the_new_one_here() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let f = RangeFsm::open(7, &e, Arc::new(Hlc::system(500_000_000)));
        let started = Arc::new(Mutex::new(Vec::new()));
        let s2 = started.clone();
        f.set_split_hook(Box::new(move |r, rep, from| s2.lock().unwrap().push((r, rep, from))));
        let desc = RangeDescriptor {
            range_id: 7,
            start_key: b"a".to_vec(),
            end_key: b"m".to_vec(),
            replicas: vec![],
            generation: 3,
            table_id: Some(5),
            sticky: false,
        };
        assert_eq!(apply(&f, &e, RangeCommand::SetDescriptor(desc.clone())), ApplyResult::Ok);
        assert!(matches!(apply(&f, &e, write("c")), ApplyResult::Committed(_)));
        assert!(matches!(apply(&f, &e, write("k")), ApplyResult::Committed(_)));
        // This node hosts replica 71 of range 7.
        let mut b = Batch::new();
        b.put(&e, Cf::RaftMeta, &range_local_key(7, range_local::REPLICA_ID), &postcard::to_stdvec(&71u64).unwrap());
        e.write(b).unwrap();
        let cmd = |key: &str| {
            RangeCommand::Split(SplitCmd {
                split_key: key.as_bytes().to_vec(),
                new_range_id: 9,
                replicas: [(71, (91, 1, true)), (72, (92, 2, true)), (73, (93, 3, false))].into(),
                sticky: true,
            })
        };
        // Only strictly inside the span.
        assert_eq!(apply(&f, &e, cmd("a")), ApplyResult::OutOfRange);
        assert_eq!(apply(&f, &e, cmd("z")), ApplyResult::OutOfRange);
        let (left, right) = match apply(&f, &e, cmd("h")) {
            ApplyResult::Split(d) => *d,
            other => panic!("{other:?}"),
        };
        assert_eq!((left.start_key.as_slice(), left.end_key.as_slice(), left.generation), (&b"a"[..], &b"h"[..], 4));
        assert_eq!((right.range_id, right.start_key.as_slice(), right.end_key.as_slice(), right.generation), (9, &b"h"[..], &b"m"[..], 4));
        assert_eq!(right.table_id, Some(5));
        assert!(right.sticky && !left.sticky, "a SPLIT AT boundary is sticky; the left side keeps its own");
        assert_eq!(right.replicas.iter().map(|r| (r.replica_id, r.node_id)).collect::<Vec<_>>(), vec![(91, 1), (92, 2), (93, 3)]);
        assert_eq!(right.replicas[2].kind, ReplicaKind::NonVoter);
        assert_eq!(f.descriptor(), Some(left.clone()));
        // The left side refuses the right side's keys from now on; the data stays in the store.
        assert_eq!(apply(&f, &e, write("k")), ApplyResult::OutOfRange);
        assert_eq!(mvcc::get(&e, b"k", Timestamp::MAX, None).unwrap(), Some(b"v".to_vec()));
        // This node's replica of the new range: replica 91, started once the batch was written.
        assert_eq!(*started.lock().unwrap(), vec![(9, 91, 7)]);
        let rid = e.get(Cf::RaftMeta, &range_local_key(9, range_local::REPLICA_ID)).unwrap().unwrap();
        assert_eq!(postcard::from_bytes::<u64>(&rid).unwrap(), 91);
        let rs = e.get(Cf::RangeMeta, &range_local_key(9, range_local::RANGE_STATE)).unwrap().unwrap();
        let rs: RangeState = postcard::from_bytes(&rs).unwrap();
        assert_eq!(rs.desc, Some(right.clone()));
        assert_eq!(rs.last_write_ts, f.state().last_write_ts, "the new range's writes go above the old ones");
        // Replaying the split (a crash before the apply was durable) changes nothing here.
        let f9 = RangeFsm::open(9, &e, Arc::new(Hlc::system(500_000_000)));
        assert_eq!(f9.descriptor(), Some(right));
        // A range holding an unfinished transaction's intents does not split.
        let txn = TxnMeta { id: 1, anchor_key: b"b".to_vec(), expires_ms: u64::MAX };
        let prepare = RangeCommand::Prepare {
            txn,
            cmd: crate::fsm::WriteCmd {
                proposal_ts: Timestamp::new(2, 0),
                read_ts: None,
                read_spans: vec![Span::point(b"d")],
                writes: vec![],
            },
        };
        assert!(matches!(apply(&f, &e, prepare), ApplyResult::Prepared(_)));
        assert!(matches!(apply(&f, &e, cmd("c")), ApplyResult::Busy(_)), "read locks block a split");
        assert_eq!(f.descriptor(), Some(left.clone()));
        // A descriptor made before the split cannot undo it.
        let stale = RangeDescriptor { generation: 9, ..desc };
        assert!(matches!(apply(&f, &e, RangeCommand::SetDescriptor(stale)), ApplyResult::Busy(_)));
        assert_eq!(apply(&f, &e, RangeCommand::SetDescriptor(left.clone())), ApplyResult::Ok, "the same one again is fine");
    }

    #[test]
    fn a_fence_refuses_writes_of_transactions_that_began_before_it_and_splits_keep_it() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let f = RangeFsm::open(7, &e, Arc::new(Hlc::system(500_000_000)));
        let desc = RangeDescriptor {
            range_id: 7,
            start_key: b"a".to_vec(),
            end_key: b"m".to_vec(),
            replicas: vec![],
            generation: 1,
            table_id: Some(5),
            sticky: false,
        };
        assert_eq!(apply(&f, &e, RangeCommand::SetDescriptor(desc)), ApplyResult::Ok);
        let fence = Timestamp::new(1_000, 0);
        assert_eq!(apply(&f, &e, RangeCommand::Fence { ts: fence }), ApplyResult::Ok);
        let w = |read: u64| {
            RangeCommand::Write(crate::fsm::WriteCmd {
                proposal_ts: Timestamp::new(2_000, 0),
                read_ts: Some(Timestamp::new(read, 0)),
                read_spans: vec![],
                writes: vec![Write::put(b"c".to_vec(), b"v".to_vec())],
            })
        };
        assert_eq!(apply(&f, &e, w(999)), ApplyResult::Conflict(fence), "began before the fence");
        assert!(matches!(apply(&f, &e, w(1_000)), ApplyResult::Committed(_)), "began at or after it");
        assert_eq!(apply(&f, &e, RangeCommand::Fence { ts: Timestamp::new(500, 0) }), ApplyResult::Ok);
        assert_eq!(f.state().fence_ts, fence, "a fence never moves back");
        // Both halves of a split keep the fence.
        let mut b = Batch::new();
        b.put(&e, Cf::RaftMeta, &range_local_key(7, range_local::REPLICA_ID), &postcard::to_stdvec(&71u64).unwrap());
        e.write(b).unwrap();
        let split = SplitCmd { split_key: b"h".to_vec(), new_range_id: 9, replicas: [(71, (91, 1, true))].into(), sticky: false };
        assert!(matches!(apply(&f, &e, RangeCommand::Split(split)), ApplyResult::Split(_)));
        let right = RangeFsm::open(9, &e, Arc::new(Hlc::system(500_000_000)));
        assert_eq!(right.state().fence_ts, fence);
    }
}
