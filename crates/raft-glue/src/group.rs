//! One range's Raft group as the layers above see it: propose a command, wait for a
//! linearizable-read barrier, ask who leads, change membership, read status. openraft's types
//! and errors are translated here and go no further.

use crate::log_store::LogStore;
use crate::state_machine::Fsm;
use crate::types::{Command, Raft, ReplicaNode};
use meridian_types::{NodeId, RangeId, ReplicaId};
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::{ChangeMembers, ReadPolicy};
use std::collections::BTreeSet;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This replica does not lead; `leader` is the node that does, when known.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("raft stopped: {0}")]
    Fatal(String),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberInfo {
    pub replica_id: ReplicaId,
    pub node_id: NodeId,
    pub voter: bool,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GroupStatus {
    pub range_id: RangeId,
    pub replica_id: ReplicaId,
    pub is_leader: bool,
    pub leader_replica: Option<ReplicaId>,
    pub leader_node: Option<NodeId>,
    pub term: u64,
    pub last_applied: Option<u64>,
    pub members: Vec<MemberInfo>,
    /// The group stopped ticking (`crate::quiesce`).
    pub quiesced: bool,
}

pub struct Group {
    pub(crate) range_id: RangeId,
    pub(crate) replica_id: ReplicaId,
    pub(crate) raft: Raft,
    pub(crate) fsm: Arc<dyn Fsm>,
    pub(crate) log: LogStore,
    pub(crate) quiet: crate::quiesce::Quiet,
}

fn leader_node_of(e: &openraft::error::ForwardToLeader<crate::types::TypeConfig>) -> Option<NodeId> {
    e.leader_node.as_ref().map(|n| n.node_id)
}

impl Group {
    pub fn range_id(&self) -> RangeId {
        self.range_id
    }

    pub fn replica_id(&self) -> ReplicaId {
        self.replica_id
    }

    pub fn fsm(&self) -> &Arc<dyn Fsm> {
        &self.fsm
    }

    /// Replicates `cmd` and returns what applying it produced. Waits until it is applied here.
    /// Callers bound the wait: without a quorum this does not return.
    /// A quiesced leader's lease has lapsed (no heartbeats): it renews it with one quorum round
    /// (read index) before proposing, rather than refusing the proposal.
    pub async fn propose(&self, cmd: Vec<u8>) -> Result<Vec<u8>, ProposeError> {
        if self.touch() && self.raft.is_leader() {
            // On failure (or no quorum within a second) the write below reports why.
            let renew = self.raft.ensure_linearizable(ReadPolicy::ReadIndex);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), renew).await;
        }
        match self.raft.client_write(Command(cmd)).await {
            Ok(resp) => Ok(resp.data.0),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => Err(ProposeError::NotLeader { leader: leader_node_of(&f) }),
            Err(RaftError::APIError(e)) => Err(ProposeError::Unavailable(e.to_string())),
            Err(RaftError::Fatal(f)) => Err(ProposeError::Fatal(f.to_string())),
        }
    }

    /// Returns once this replica is the leader and has applied everything committed before the
    /// call: reads served after it are linearizable. Uses the leader lease when it is valid (no
    /// round trip) and falls back to a quorum round (read index) when it is not.
    pub async fn read_barrier(&self) -> Result<(), ProposeError> {
        self.touch();
        let map = |e: RaftError<crate::types::TypeConfig, LinearizableReadError<crate::types::TypeConfig>>| match e {
            RaftError::APIError(LinearizableReadError::ForwardToLeader(f)) => ProposeError::NotLeader { leader: leader_node_of(&f) },
            RaftError::APIError(e) => ProposeError::Unavailable(e.to_string()),
            RaftError::Fatal(f) => ProposeError::Fatal(f.to_string()),
        };
        match self.raft.ensure_linearizable(ReadPolicy::LeaseRead).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) if f.leader_id.is_some() && !self.raft.is_leader() => {
                Err(ProposeError::NotLeader { leader: leader_node_of(&f) })
            }
            Err(_) => self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await.map(|_| ()).map_err(map),
        }
    }

    /// The current Raft term as this replica knows it.
    pub fn current_term(&self) -> u64 {
        self.raft.metrics().borrow_watched().current_term
    }

    pub fn is_leader(&self) -> bool {
        self.raft.is_leader()
    }

    pub fn status(&self) -> GroupStatus {
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let members: Vec<MemberInfo> =
            membership.nodes().map(|(id, n)| MemberInfo { replica_id: *id, node_id: n.node_id, voter: voters.contains(id) }).collect();
        let leader_node = m.current_leader.and_then(|l| members.iter().find(|x| x.replica_id == l).map(|x| x.node_id));
        GroupStatus {
            range_id: self.range_id,
            replica_id: self.replica_id,
            is_leader: m.current_leader == Some(self.replica_id) && m.state.is_leader(),
            leader_replica: m.current_leader,
            leader_node,
            term: m.current_term,
            last_applied: m.last_applied.map(|l| l.index),
            members,
            quiesced: self.is_quiesced(),
        }
    }

    /// Adds a replica on `node` as a learner, waits for it to catch up, then promotes it.
    pub async fn add_voter(&self, replica_id: ReplicaId, node_id: NodeId) -> Result<(), ProposeError> {
        self.touch();
        let map = |e: RaftError<crate::types::TypeConfig, ClientWriteError<crate::types::TypeConfig>>| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ProposeError::NotLeader { leader: leader_node_of(&f) },
            RaftError::APIError(e) => ProposeError::Unavailable(e.to_string()),
            RaftError::Fatal(f) => ProposeError::Fatal(f.to_string()),
        };
        self.raft.add_learner(replica_id, ReplicaNode { node_id }, true).await.map_err(map)?;
        self.raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([replica_id])), false).await.map_err(map)?;
        Ok(())
    }

    /// Removes a replica from the group entirely.
    pub async fn remove_member(&self, replica_id: ReplicaId) -> Result<(), ProposeError> {
        self.touch();
        let map =
            |e: RaftError<crate::types::TypeConfig, ClientWriteError<crate::types::TypeConfig>>| ProposeError::Unavailable(e.to_string());
        let ids = BTreeSet::from([replica_id]);
        if self.status().members.iter().any(|m| m.replica_id == replica_id && m.voter) {
            self.raft.change_membership(ChangeMembers::RemoveVoters(ids.clone()), false).await.map_err(map)?;
        }
        self.raft.change_membership(ChangeMembers::RemoveNodes(ids), false).await.map_err(map)?;
        Ok(())
    }

    /// Whether this leader's log is all replicated to `replica_id`. Hand leadership only to
    /// such a replica: openraft's leader stops proposing and heartbeating as soon as it starts a
    /// transfer, and a target whose log is behind ignores it, so the range has no leader until
    /// elections sort it out (seconds).
    pub fn caught_up(&self, replica_id: ReplicaId) -> bool {
        let m = self.raft.metrics().borrow_watched().clone();
        let matched = m.replication.as_ref().and_then(|r| r.get(&replica_id).cloned().flatten()).map(|l| l.index);
        m.last_log_index.is_some() && matched == m.last_log_index
    }

    /// Asks the leader to hand leadership to `replica_id` (see [`Group::caught_up`]).
    pub async fn transfer_leader(&self, replica_id: ReplicaId) -> Result<(), ProposeError> {
        self.touch();
        self.raft.trigger().transfer_leader(replica_id).await.map_err(|e| ProposeError::Fatal(e.to_string()))
    }

    /// Starts an election now (used when the caller knows the leader is gone).
    pub async fn campaign(&self) {
        self.touch();
        let _ = self.raft.trigger().elect(true).await;
    }

    pub(crate) async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }
}
