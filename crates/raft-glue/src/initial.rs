//! The starting Raft state of a new range: one created by CREATE TABLE (or the cluster's
//! bootstrap), or by a split.
//!
//! Every replica of a range gets its first state from here or from a snapshot, never by
//! applying the range's log from its beginning. The founding replicas of a range (the founder
//! of a new table's range; every replica of a range created by a split, written by the split's
//! apply in the same batch as the left-hand side's new descriptor) start with an applied log
//! id at [`INITIAL_INDEX`], the range's membership and its range state (descriptor included), as
//! if a snapshot at that index had been installed. The group then elects a leader and appends
//! from index 11. Any other replica (created by a message from the leader: its node had not
//! applied the split yet, was down at creation, or was added later) is empty and is sent a
//! snapshot, since no replica holds log entries up to index 10.
//!
//! Why: a replica's apply reads the store (a conditional write checks whether its key is live),
//! so each key of a node must belong to at most one replica's span at a time. Spans only ever
//! grow by a snapshot install, which the host refuses while it would overlap another replica
//! (see [`crate::RaftHost`]). An empty replica that applied its log from index 1 would instead
//! claim its span (its first descriptor) at some unchecked moment, possibly after a snapshot of
//! a range split from it had already put newer data in that span on this node.
//!
//! Invariants:
//! - Every founding replica starts from the same log id (term 0, node 0, index 10) and
//!   membership, so any of them may be elected and none is ahead of another.
//! - The state is written only where no replica of the range exists yet (no replica id, no
//!   tombstone): re-applying a split after a crash, retrying a creation, or applying a split on
//!   a node that already received a replica of the new range by message changes nothing.

use crate::types::{TypeConfig, encode};
use meridian_storage::{Batch, Cf, Engine};
use meridian_types::keys::{range_local, range_local_key};
use meridian_types::{NodeId, RangeId, ReplicaId};
use openraft::alias::{LeaderIdOf, LogIdOf, StoredMembershipOf};
use openraft::vote::RaftLeaderIdExt;
use openraft::{LogId, Membership};
use std::collections::{BTreeMap, BTreeSet};
use std::io;

/// The log index every range starts at.
pub const INITIAL_INDEX: u64 = 10;

/// A member of a new range: replica id, node, voter (else non-voter).
pub type InitialMember = (ReplicaId, NodeId, bool);

/// Adds to `batch` the starting state of this node's replica `replica_id` of the new range
/// `range` (module docs). Returns false, writing nothing, if the node already has (or had) a
/// replica of `range`.
pub fn write_initial_state(
    engine: &Engine,
    batch: &mut Batch,
    range: RangeId,
    replica_id: ReplicaId,
    members: &[InitialMember],
    range_state: &[u8],
) -> io::Result<bool> {
    for (cf, suffix) in [(Cf::RaftMeta, range_local::REPLICA_ID), (Cf::RaftMeta, range_local::TOMBSTONE)] {
        if engine.get(cf, &range_local_key(range, suffix))?.is_some() {
            return Ok(false);
        }
    }
    let log_id: LogIdOf<TypeConfig> = LogId::new(LeaderIdOf::<TypeConfig>::new_committed(0, 0), INITIAL_INDEX);
    let voters: BTreeSet<u64> = members.iter().filter(|m| m.2).map(|m| m.0).collect();
    let nodes: BTreeMap<u64, crate::ReplicaNode> = members.iter().map(|m| (m.0, crate::ReplicaNode { node_id: m.1 })).collect();
    let membership = Membership::new(vec![voters], nodes).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let stored = StoredMembershipOf::<TypeConfig>::new(Some(log_id), membership);
    let key = |suffix| range_local_key(range, suffix);
    batch.put(engine, Cf::RaftMeta, &key(range_local::REPLICA_ID), &encode(&replica_id)?);
    batch.put(engine, Cf::RaftMeta, &key(range_local::LAST_PURGED), &encode(&log_id)?);
    batch.put(engine, Cf::RangeMeta, &key(range_local::APPLIED), &encode(&Some(log_id))?);
    batch.put(engine, Cf::RangeMeta, &key(range_local::MEMBERSHIP), &encode(&stored)?);
    batch.put(engine, Cf::RangeMeta, &key(range_local::RANGE_STATE), range_state);
    Ok(true)
}
