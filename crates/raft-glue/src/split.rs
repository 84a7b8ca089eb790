//! The starting Raft state of a range created by a split.
//!
//! A split is a command in the left-hand range's log. Every replica that applies it writes, in
//! the same batch as the left-hand side's new descriptor, the starting state of its own replica
//! of the new right-hand range: its replica id, and an applied log id at
//! [`SPLIT_INITIAL_INDEX`] with the new range's membership, as if a snapshot at that index had
//! been installed (the data is already in the store: the right-hand span was the left-hand
//! range's until the split). The right-hand group then starts from that state on every node,
//! elects a leader and appends from index 11; a replica that has no such state (its node had not
//! applied the split yet, or was added later) is sent a snapshot, since no replica holds log
//! entries up to index 10.
//!
//! Invariants:
//! - Every replica of the new range starts from the same log id (term 0, node 0, index 10) and
//!   membership, so any of them may be elected and none is ahead of another.
//! - The state is written only where no replica of the new range exists yet (no replica id, no
//!   tombstone): re-applying the split after a crash, or applying it on a node that already
//!   received a replica of the new range by snapshot, changes nothing.
//! - A snapshot whose span overlaps another replica on the node is refused by the host (see
//!   [`crate::RaftHost`]): a node whose left-hand replica has not applied the split must not take
//!   the right-hand span from under it.

use crate::types::{TypeConfig, encode};
use meridian_storage::{Batch, Cf, Engine};
use meridian_types::keys::{range_local, range_local_key};
use meridian_types::{NodeId, RangeId, ReplicaId};
use openraft::alias::{LeaderIdOf, LogIdOf, StoredMembershipOf};
use openraft::vote::RaftLeaderIdExt;
use openraft::{LogId, Membership};
use std::collections::{BTreeMap, BTreeSet};
use std::io;

/// The log index a range created by a split starts at.
pub const SPLIT_INITIAL_INDEX: u64 = 10;

/// A member of a new range: replica id, node, voter (else non-voter).
pub type InitialMember = (ReplicaId, NodeId, bool);

/// Adds to `batch` the starting state of this node's replica `replica_id` of the new range
/// `range` (module docs). Returns false, writing nothing, if the node already has (or had) a
/// replica of `range`.
pub fn write_split_initial_state(
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
    let log_id: LogIdOf<TypeConfig> = LogId::new(LeaderIdOf::<TypeConfig>::new_committed(0, 0), SPLIT_INITIAL_INDEX);
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
