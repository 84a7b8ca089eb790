//! The node's replicas: builds each range's state machine for the Raft host, keeps the
//! leaseholder-side [`Replica`] of every hosted range, and answers KV requests.

use crate::fsm::{RangeFsm, RangeState};
use crate::replica::Replica;
use meridian_raft_glue::{FsmFactory, RaftHost, RaftTimings, SpanClaims, Transport};
use meridian_storage::Engine;
use meridian_types::kv::{KvRequest, KvResponse};
use meridian_types::{Hlc, KvError, NodeId, RangeDescriptor, RangeId, ReplicaId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

pub struct Store {
    host: Arc<RaftHost>,
    hlc: Arc<Hlc>,
    engine: Engine,
    fsms: Arc<RwLock<HashMap<RangeId, Arc<RangeFsm>>>>,
    replicas: Arc<RwLock<HashMap<RangeId, Arc<Replica>>>>,
    /// Ranges whose replica here merged into the range on their left (since this process
    /// started): a request for one is answered `KeyOutOfRange`, so the gateway looks again.
    merged: Arc<RwLock<HashSet<RangeId>>>,
}

impl Store {
    pub fn new(engine: Engine, transport: Arc<dyn Transport>, timings: RaftTimings, hlc: Arc<Hlc>) -> Arc<Store> {
        let fsms: Arc<RwLock<HashMap<RangeId, Arc<RangeFsm>>>> = Arc::default();
        let reg = fsms.clone();
        let fhlc = hlc.clone();
        // Replicas of ranges created by splits applied here, to start (crate::split).
        let (split_tx, mut split_rx) = tokio::sync::mpsc::unbounded_channel::<(RangeId, ReplicaId, RangeId)>();
        // Replicas of ranges merged into others by merges applied here, to stop (crate::merge).
        let (merge_tx, mut merge_rx) = tokio::sync::mpsc::unbounded_channel::<(RangeId, u64)>();
        let factory: FsmFactory = Arc::new(move |range, engine: &Engine, claims: &Arc<SpanClaims>| {
            let fsm = RangeFsm::open(range, engine, fhlc.clone());
            fsm.set_span_claims(claims.clone());
            let tx = split_tx.clone();
            fsm.set_split_hook(Box::new(move |r, replica, from| {
                let _ = tx.send((r, replica, from));
            }));
            let tx = merge_tx.clone();
            fsm.set_merge_hook(Box::new(move |gone, index| {
                let _ = tx.send((gone, index));
            }));
            reg.write().unwrap_or_else(|e| e.into_inner()).insert(range, fsm.clone());
            fsm
        });
        let host = RaftHost::new(engine.clone(), transport, timings, factory);
        let starter = Arc::downgrade(&host);
        tokio::spawn(async move {
            while let Some((range, replica, from)) = split_rx.recv().await {
                let Some(host) = starter.upgrade() else { return };
                match host.start_split_replica(range).await {
                    Ok(g) => {
                        tracing::info!(range, replica, "started the replica of a range created by a split");
                        // Where the old range's leader is, the new range campaigns at once
                        // rather than after an election timeout (requests are waiting for it).
                        if host.group(from).is_some_and(|f| f.is_leader()) {
                            g.campaign().await;
                        }
                    }
                    Err(e) => tracing::warn!(range, replica, error = %e, "could not start the replica of a split"),
                }
            }
        });
        let replicas: Arc<RwLock<HashMap<RangeId, Arc<Replica>>>> = Arc::default();
        let merged: Arc<RwLock<HashSet<RangeId>>> = Arc::default();
        // Weak handles only: the store's replicas hold the engine, which must close with it.
        let (stopper, fsms2, replicas2, merged2) =
            (Arc::downgrade(&host), Arc::downgrade(&fsms), Arc::downgrade(&replicas), Arc::downgrade(&merged));
        tokio::spawn(async move {
            while let Some((gone, frozen_index)) = merge_rx.recv().await {
                let (Some(host), Some(fsms), Some(replicas), Some(merged)) =
                    (stopper.upgrade(), fsms2.upgrade(), replicas2.upgrade(), merged2.upgrade())
                else {
                    return;
                };
                merged.write().unwrap_or_else(|e| e.into_inner()).insert(gone);
                let applied = host.group(gone).and_then(|g| g.status().last_applied);
                if applied.is_none_or(|a| a < frozen_index) {
                    // The merge queue waits for every replica to apply the freeze first; this
                    // means a replica changed under a merge (crate::merge, "Not handled").
                    tracing::error!(range = gone, ?applied, frozen_index, "a merged range's replica here had not applied its freeze");
                }
                replicas.write().unwrap_or_else(|e| e.into_inner()).remove(&gone);
                fsms.write().unwrap_or_else(|e| e.into_inner()).remove(&gone);
                drop((replicas, fsms, merged));
                match host.destroy_merged(gone).await {
                    Ok(()) => tracing::info!(range = gone, "stopped the replica of a range merged into its left neighbour"),
                    Err(e) => tracing::warn!(range = gone, error = %e, "could not stop the replica of a merged range"),
                }
            }
        });
        Arc::new(Store { host, hlc, engine, fsms, replicas, merged })
    }

    pub fn host(&self) -> &Arc<RaftHost> {
        &self.host
    }

    pub fn hlc(&self) -> &Arc<Hlc> {
        &self.hlc
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The leaseholder-side handle of a hosted range.
    pub fn replica(&self, range: RangeId) -> Option<Arc<Replica>> {
        self.replica_of(self.host.group(range)?)
    }

    fn replica_of(&self, group: Arc<meridian_raft_glue::Group>) -> Option<Arc<Replica>> {
        let range = group.range_id();
        if let Some(r) = self.replicas.read().unwrap_or_else(|e| e.into_inner()).get(&range)
            && Arc::ptr_eq(r.group(), &group)
        {
            return Some(r.clone());
        }
        let fsm = self.fsms.read().unwrap_or_else(|e| e.into_inner()).get(&range)?.clone();
        let r = Arc::new(Replica::new(group, fsm, self.hlc.clone(), self.engine.clone()));
        self.replicas.write().unwrap_or_else(|e| e.into_inner()).insert(range, r.clone());
        Some(r)
    }

    /// Destroys this node's replica of `range` (its table was dropped, or it moved away).
    pub async fn destroy(&self, range: RangeId) -> std::io::Result<()> {
        self.replicas.write().unwrap_or_else(|e| e.into_inner()).remove(&range);
        self.fsms.write().unwrap_or_else(|e| e.into_inner()).remove(&range);
        self.host.destroy(range).await
    }

    /// The leaseholder-side handles of `groups` (hosted here).
    pub fn replicas_of(&self, groups: &[Arc<meridian_raft_glue::Group>]) -> Vec<Arc<Replica>> {
        let mut out = Vec::with_capacity(groups.len());
        let mut missing = Vec::new();
        {
            let known = self.replicas.read().unwrap_or_else(|e| e.into_inner());
            for g in groups {
                match known.get(&g.range_id()) {
                    Some(r) if Arc::ptr_eq(r.group(), g) => out.push(r.clone()),
                    _ => missing.push(g.clone()),
                }
            }
        }
        out.extend(missing.into_iter().filter_map(|g| self.replica_of(g)));
        out
    }

    pub fn replicas(&self) -> Vec<Arc<Replica>> {
        self.host.groups().iter().filter_map(|g| self.replica(g.range_id())).collect()
    }

    /// Founds a new range here: this node's replica `replica_id` starts with the descriptor and
    /// the voters `members` (`meridian_raft_glue::initial`); the other members' replicas are
    /// created by the leader's messages and get their state by snapshot. Returns once the range
    /// commits through a leader.
    pub async fn create_range(
        &self,
        desc: RangeDescriptor,
        replica_id: ReplicaId,
        members: &[(ReplicaId, NodeId)],
    ) -> Result<Arc<Replica>, KvError> {
        let range = desc.range_id;
        let state = RangeState { desc: Some(desc.clone()), ..RangeState::default() };
        let state = postcard::to_stdvec(&state).map_err(|e| KvError::Internal(e.to_string()))?;
        let members: Vec<_> = members.iter().map(|(r, n)| (*r, *n, true)).collect();
        let group =
            self.host.create_initialized(range, replica_id, &members, &state).await.map_err(|e| KvError::Internal(e.to_string()))?;
        let replica = self.replica(range).ok_or(KvError::RangeNotFound { range_id: range })?;
        group.campaign().await;
        // Wait until the group has a leader that commits: proposing the descriptor it already
        // holds changes nothing.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match replica.set_descriptor(desc.clone()).await {
                Ok(()) => return Ok(replica),
                Err(e) if tokio::time::Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    /// Serves a KV request addressed to a range on this node.
    pub async fn handle_kv(&self, req: KvRequest) -> KvResponse {
        let range_id = req.range_id();
        let Some(replica) = self.replica(range_id) else {
            if self.merged.read().unwrap_or_else(|e| e.into_inner()).contains(&range_id) {
                return KvResponse::Error(KvError::KeyOutOfRange { range_id });
            }
            tracing::debug!(range = range_id, group = self.host.group(range_id).is_some(), "no replica of the range here");
            return KvResponse::Error(KvError::RangeNotFound { range_id });
        };
        let res = match req {
            KvRequest::Read(r) => replica.read(&r).await.map(KvResponse::Read),
            KvRequest::Write(w) => replica.write(w).await.map(KvResponse::Write),
            KvRequest::MarkDropped { .. } => replica.mark_dropped().await.map(|()| KvResponse::Ok),
            KvRequest::Prepare(p) => replica.prepare(p).await.map(KvResponse::Prepared),
            KvRequest::Resolve(r) => replica.resolve(r).await.map(|()| KvResponse::Ok),
            KvRequest::EndTxn { txn_id, commit, now_ms, .. } => replica.end_txn(txn_id, commit, now_ms).await.map(KvResponse::Txn),
            KvRequest::Heartbeat { txn_id, expires_ms, .. } => replica.heartbeat(txn_id, expires_ms).await.map(KvResponse::Txn),
            KvRequest::QueryTxn { txn_id, .. } => replica.query_txn(txn_id).await.map(KvResponse::Txn),
            KvRequest::RangeStats { .. } => {
                replica.stats().await.map(|(desc, bytes)| KvResponse::RangeStats { desc, bytes, qps: replica.qps() })
            }
            KvRequest::Fence { .. } => replica.fence().await.map(|desc| KvResponse::Fenced { desc }),
            KvRequest::Split { split_key, new_range_id, replica_ids, sticky, .. } => {
                replica.split(split_key, new_range_id, &replica_ids, sticky).await.map(|(left, right)| KvResponse::Split { left, right })
            }
            KvRequest::Subsume { lhs_range_id, lhs_start, lhs_generation, .. } => {
                let frozen = crate::merge::Frozen { lhs: lhs_range_id, lhs_start, lhs_generation };
                replica.subsume(frozen).await.map(|s| KvResponse::Subsumed(Box::new(s)))
            }
            KvRequest::WaitApplied { index, .. } => {
                replica.wait_applied(index, std::time::Duration::from_secs(5)).await.map(|()| KvResponse::Ok)
            }
            KvRequest::Merge { lhs_generation, rhs, .. } => {
                replica.merge(lhs_generation, *rhs).await.map(|desc| KvResponse::Merged { desc })
            }
            KvRequest::ResolveMerge { lhs_range_id, lhs_generation, rhs_start, .. } => {
                replica.resolve_merge(lhs_range_id, lhs_generation, rhs_start).await.map(|merged| KvResponse::MergeOutcome { merged })
            }
            KvRequest::Unsplit { start_key, .. } => replica.unsplit(start_key).await.map(|desc| KvResponse::Unsplit { desc }),
            KvRequest::Unfreeze { lhs_range_id, lhs_generation, .. } => {
                replica.unfreeze(lhs_range_id, lhs_generation).await.map(|()| KvResponse::Ok)
            }
        };
        res.unwrap_or_else(KvResponse::Error)
    }
}
