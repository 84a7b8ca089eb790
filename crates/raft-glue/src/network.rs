//! openraft's network for one range, over the node's shared [`Transport`]: every message is a
//! [`Frame`] tagged with the range id and the target replica id.

use crate::transport::{Frame, Service, Transport};
use crate::types::{ReplicaNode, TypeConfig, decode, encode};
use futures::Future;
use meridian_types::{NodeId, RangeId, ReplicaId};
use openraft::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, v2::RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::raft::{TransferLeaderRequest, TransferLeaderResponse};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A Raft message to one replica of a range.
#[derive(Serialize, Deserialize)]
pub(crate) enum RaftMsg {
    Append {
        to: ReplicaId,
        req: AppendEntriesRequest<TypeConfig>,
    },
    Vote {
        to: ReplicaId,
        req: VoteRequest<TypeConfig>,
    },
    PreVote {
        to: ReplicaId,
        req: VoteRequest<TypeConfig>,
    },
    Snapshot {
        to: ReplicaId,
        vote: VoteOf<TypeConfig>,
        meta: SnapshotMetaOf<TypeConfig>,
        data: Vec<u8>,
    },
    TransferLeader {
        to: ReplicaId,
        req: TransferLeaderRequest<TypeConfig>,
    },
    /// Not openraft's: the leader asks an idle follower to stop ticking (`crate::quiesce`).
    Quiesce {
        to: ReplicaId,
        leader: ReplicaId,
        term: u64,
        last: u64,
    },
}

impl RaftMsg {
    pub(crate) fn target(&self) -> ReplicaId {
        match self {
            RaftMsg::Append { to, .. }
            | RaftMsg::Vote { to, .. }
            | RaftMsg::PreVote { to, .. }
            | RaftMsg::Snapshot { to, .. }
            | RaftMsg::TransferLeader { to, .. }
            | RaftMsg::Quiesce { to, .. } => *to,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) enum RaftReply {
    Append(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    Snapshot(SnapshotResponse<TypeConfig>),
    TransferLeader(TransferLeaderResponse<TypeConfig>),
    /// The answer to `Quiesce`: whether the follower stopped ticking.
    Quiesced(bool),
    /// The target replica does not exist there (destroyed, or the range is unknown).
    NoReplica,
    Error(String),
}

pub struct NetworkFactory {
    pub(crate) range_id: RangeId,
    pub(crate) transport: Arc<dyn Transport>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;
    async fn new_client(&mut self, target: ReplicaId, node: &ReplicaNode) -> Network {
        Network { range_id: self.range_id, to: target, node: node.node_id, transport: self.transport.clone() }
    }
}

pub struct Network {
    range_id: RangeId,
    to: ReplicaId,
    node: NodeId,
    transport: Arc<dyn Transport>,
}

fn unreachable(msg: impl ToString) -> RPCError<TypeConfig> {
    RPCError::Unreachable(Unreachable::from_string(msg))
}

impl Network {
    async fn send(&self, msg: RaftMsg, option: &RPCOption) -> Result<RaftReply, RPCError<TypeConfig>> {
        let body = encode(&msg).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        // openraft gives an append one heartbeat interval; a large one (a big transaction's
        // entry) needs time to travel and be made durable, or it would time out and be re-sent
        // forever: 1 ms more per KiB.
        let ttl = option.soft_ttl() + std::time::Duration::from_millis((body.len() / 1024) as u64);
        let frame = Frame { service: Service::Raft, range_id: self.range_id, body };
        let reply = self.transport.call(self.node, frame, ttl).await.map_err(unreachable)?;
        let reply: RaftReply = decode(&reply).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        match reply {
            RaftReply::NoReplica => Err(unreachable(format!("replica {} of r{} not on n{}", self.to, self.range_id, self.node))),
            RaftReply::Error(e) => Err(unreachable(e)),
            r => Ok(r),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for Network {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        req: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.send(RaftMsg::Append { to: self.to, req }, &option).await? {
            RaftReply::Append(r) => Ok(r),
            _ => Err(unreachable("unexpected reply")),
        }
    }

    async fn vote(&mut self, req: VoteRequest<TypeConfig>, option: RPCOption) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.send(RaftMsg::Vote { to: self.to, req }, &option).await? {
            RaftReply::Vote(r) => Ok(r),
            _ => Err(unreachable("unexpected reply")),
        }
    }

    async fn pre_vote(
        &mut self,
        req: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.send(RaftMsg::PreVote { to: self.to, req }, &option).await? {
            RaftReply::Vote(r) => Ok(r),
            _ => Err(unreachable("unexpected reply")),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<TypeConfig>,
        snapshot: SnapshotOf<TypeConfig, Vec<u8>>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let msg = RaftMsg::Snapshot { to: self.to, vote, meta: snapshot.meta, data: snapshot.snapshot };
        // Snapshots may be large: give them far more time than a heartbeat.
        let opt = RPCOption::new(option.hard_ttl().max(std::time::Duration::from_secs(60)));
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            r = self.send(msg, &opt) => match r {
                Ok(RaftReply::Snapshot(r)) => Ok(r),
                Ok(_) => Err(StreamingError::Unreachable(Unreachable::from_string("unexpected reply"))),
                Err(RPCError::Unreachable(u)) => Err(StreamingError::Unreachable(u)),
                Err(e) => Err(StreamingError::Network(NetworkError::from_string(e))),
            }
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.send(RaftMsg::TransferLeader { to: self.to, req }, &option).await? {
            RaftReply::TransferLeader(r) => Ok(r),
            _ => Err(unreachable("unexpected reply")),
        }
    }
}
