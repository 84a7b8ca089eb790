//! Hosting many Raft groups on one node.
//!
//! The host owns the registry `range id -> Group`. A replica comes into being in one of four
//! ways: the node restarts and finds it in `raft_meta` (its replica id record); the range layer
//! founds a new range here ([`RaftHost::create_initialized`]: bootstrap, new table); a split
//! applied here writes its starting state; or a leader reaches this node with a message for a
//! replica id of a range the node does not host yet: the host then creates an empty replica
//! with that id, which gets its first state by snapshot ([`crate::initial`]). A destroyed
//! replica leaves a tombstone so late messages cannot resurrect it.
//!
//! Invariant: the spans of the initialized replicas on a node never overlap. A snapshot whose
//! span overlaps another replica here (a range split from one whose split this node has not
//! applied yet) is refused, and the leader retries later, unless every replica it overlaps is
//! frozen to merge into the snapshot's range: the snapshot proves the merge happened, and they
//! are destroyed first (keeping nothing: the snapshot brings the whole span). Snapshots are checked and installed
//! one at a time per node, so two cannot pass the check together.

use crate::group::Group;
use crate::log_store::LogStore;
use crate::network::{NetworkFactory, RaftMsg, RaftReply};
use crate::state_machine::{Fsm, StateMachine};
use crate::transport::{Frame, Transport};
use crate::types::{Raft, decode, encode};
use meridian_storage::{Batch, Cf, Engine, mvcc};
use meridian_types::keys::{range_local, range_local_key};
use meridian_types::{NodeId, RangeId, ReplicaId};
use openraft::{Config, SnapshotPolicy};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Raft timing shared by every group on the node.
#[derive(Clone, Copy, Debug)]
pub struct RaftTimings {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Log entries between snapshots; older entries are purged (a replica that falls further
    /// behind catches up by snapshot).
    pub snapshot_logs: u64,
}

impl Default for RaftTimings {
    fn default() -> Self {
        RaftTimings { heartbeat_ms: 200, election_min_ms: 1000, election_max_ms: 1400, snapshot_logs: 5000 }
    }
}

/// Builds the state machine of a range hosted on this node.
pub type FsmFactory = Arc<dyn Fn(RangeId, &Engine, &Arc<SpanClaims>) -> Arc<dyn Fsm> + Send + Sync>;

/// Spans taken by replicas whose starting state a split is writing but whose group has not
/// started yet (module docs). A split's apply claims the new range's span before the left-hand
/// side gives it up, and the claim ends once the new group is registered, so at every moment
/// some replica here or a claim covers every span a replica here holds.
#[derive(Default)]
pub struct SpanClaims(std::sync::Mutex<HashMap<RangeId, Span>>);

/// A span of user keys, `[start, end)`.
type Span = (Vec<u8>, Vec<u8>);

impl SpanClaims {
    /// A split being applied would create this node's replica of `range` with the span
    /// `[start, end)`: claims it and returns true, unless the node has (or had) a replica of
    /// `range` (one created by a message, or by this split before a crash). Atomic with
    /// [`SpanClaims::record_unclaimed`]: a message creating the replica at the same moment
    /// either comes first (and the split leaves the replica to a snapshot) or is refused.
    pub fn claim_new(&self, engine: &Engine, range: RangeId, start: Vec<u8>, end: Vec<u8>) -> std::io::Result<bool> {
        let mut claims = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for suffix in [range_local::REPLICA_ID, range_local::TOMBSTONE] {
            if engine.get(Cf::RaftMeta, &range_local_key(range, suffix))?.is_some() {
                return Ok(false);
            }
        }
        claims.insert(range, (start, end));
        Ok(true)
    }

    /// Records (visibly, not yet durably) this node's replica `replica_id` of `range` unless a
    /// split being applied claimed it (then returns `None`). Returns whether it wrote the record
    /// (false: one was there already).
    fn record_unclaimed(&self, engine: &Engine, range: RangeId, replica_id: ReplicaId) -> std::io::Result<Option<bool>> {
        let claims = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if claims.contains_key(&range) {
            return Ok(None);
        }
        let key = range_local_key(range, range_local::REPLICA_ID);
        if engine.get(Cf::RaftMeta, &key)?.is_some() {
            return Ok(Some(false));
        }
        let mut b = Batch::new();
        b.put(engine, Cf::RaftMeta, &key, &encode(&replica_id)?);
        engine.write(b)?;
        Ok(Some(true))
    }
}

pub struct RaftHost {
    engine: Engine,
    transport: Arc<dyn Transport>,
    timings: RaftTimings,
    factory: FsmFactory,
    groups: RwLock<HashMap<RangeId, Arc<Group>>>,
    claims: Arc<SpanClaims>,
    create_lock: tokio::sync::Mutex<()>,
    /// Held from a snapshot's overlap check until it is installed (module docs).
    snapshot_lock: tokio::sync::Mutex<()>,
    /// This node's id, for logs (0 until the node joins a cluster).
    node_id: std::sync::atomic::AtomicU64,
}

impl RaftHost {
    pub fn new(engine: Engine, transport: Arc<dyn Transport>, timings: RaftTimings, factory: FsmFactory) -> Arc<RaftHost> {
        Arc::new(RaftHost {
            engine,
            transport,
            timings,
            factory,
            groups: RwLock::new(HashMap::new()),
            claims: Arc::default(),
            create_lock: tokio::sync::Mutex::new(()),
            snapshot_lock: tokio::sync::Mutex::new(()),
            node_id: Default::default(),
        })
    }

    pub fn set_node_id(&self, id: NodeId) {
        self.node_id.store(id, std::sync::atomic::Ordering::Relaxed);
    }

    fn node_id(&self) -> NodeId {
        self.node_id.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    pub fn group(&self, range: RangeId) -> Option<Arc<Group>> {
        self.groups.read().unwrap_or_else(|e| e.into_inner()).get(&range).cloned()
    }

    /// The groups this node leads now, in no particular order: one pass over the registry,
    /// for the node's once-a-second queues (cheaper than [`RaftHost::groups`] and a lookup each).
    pub fn leaders(&self) -> Vec<Arc<Group>> {
        self.groups.read().unwrap_or_else(|e| e.into_inner()).values().filter(|g| g.is_leader()).cloned().collect()
    }

    pub fn groups(&self) -> Vec<Arc<Group>> {
        let mut v: Vec<_> = self.groups.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        v.sort_by_key(|g| g.range_id);
        v
    }

    /// Restarts every replica recorded in the store (after a process restart).
    pub async fn start_existing(&self) -> std::io::Result<usize> {
        let mut found = Vec::new();
        for item in self.engine.iter(Cf::RaftMeta, &[], &[0xff; 10]) {
            let (k, v) = item?;
            if k.len() == 9 && k[8] == range_local::REPLICA_ID {
                let range = u64::from_be_bytes(k[..8].try_into().unwrap_or_default());
                if !self.is_tombstoned(range)? {
                    found.push((range, decode::<ReplicaId>(&v)?));
                }
            }
        }
        for (range, replica) in &found {
            self.ensure_group(*range, *replica).await?;
        }
        Ok(found.len())
    }

    fn is_tombstoned(&self, range: RangeId) -> std::io::Result<bool> {
        Ok(self.engine.get(Cf::RaftMeta, &range_local_key(range, range_local::TOMBSTONE))?.is_some())
    }

    /// Returns the group of `range`, creating replica `replica_id` here if the node has none.
    pub async fn ensure_group(&self, range: RangeId, replica_id: ReplicaId) -> std::io::Result<Arc<Group>> {
        if let Some(g) = self.group(range) {
            return Ok(g);
        }
        let _g = self.create_lock.lock().await;
        if let Some(g) = self.group(range) {
            return Ok(g);
        }
        if self.is_tombstoned(range)? {
            return Err(std::io::Error::other(format!("range r{range} was removed from this node")));
        }
        // Record the replica durably before it can vote or accept entries, unless a split
        // being applied here is creating it (its starting state is on the way).
        let key = range_local_key(range, range_local::REPLICA_ID);
        let Some(wrote) = self.claims.record_unclaimed(&self.engine, range, replica_id)? else {
            return Err(std::io::Error::other(format!("range r{range} is being created here by a split")));
        };
        let recorded = self.engine.get(Cf::RaftMeta, &key)?.unwrap_or_default();
        if wrote {
            // Written visibly above (atomically with the claims); now made durable.
            let mut b = Batch::new();
            b.put(&self.engine, Cf::RaftMeta, &key, &recorded);
            self.engine.write_durable(b).await?;
        }
        let replica_id = decode::<ReplicaId>(&recorded)?;
        self.start_group(range, replica_id).await
    }

    /// Starts this node's replica of `range` whose starting state a split applied here wrote
    /// (the split's claim on its span ends once it runs).
    pub async fn start_split_replica(&self, range: RangeId) -> std::io::Result<Arc<Group>> {
        if let Some(g) = self.group(range) {
            return Ok(g);
        }
        let _g = self.create_lock.lock().await;
        if let Some(g) = self.group(range) {
            return Ok(g);
        }
        let Some(recorded) = self.engine.get(Cf::RaftMeta, &range_local_key(range, range_local::REPLICA_ID))? else {
            return Err(std::io::Error::other(format!("no replica of r{range} recorded here")));
        };
        self.start_group(range, decode::<ReplicaId>(&recorded)?).await
    }

    /// Founds this node's replica `replica_id` of the new range `range` with `members` and the
    /// range layer's starting `range_state` ([`crate::initial`]), and starts it. If the node
    /// already has a replica of `range` (a retried creation), that one is returned as it is.
    pub async fn create_initialized(
        &self,
        range: RangeId,
        replica_id: ReplicaId,
        members: &[crate::initial::InitialMember],
        range_state: &[u8],
    ) -> std::io::Result<Arc<Group>> {
        if let Some(g) = self.group(range) {
            return Ok(g);
        }
        let _g = self.create_lock.lock().await;
        if let Some(g) = self.group(range) {
            return Ok(g);
        }
        if self.is_tombstoned(range)? {
            return Err(std::io::Error::other(format!("range r{range} was removed from this node")));
        }
        let mut b = Batch::new();
        crate::initial::write_initial_state(&self.engine, &mut b, range, replica_id, members, range_state)?;
        self.engine.write_durable(b).await?;
        let replica = self.engine.get(Cf::RaftMeta, &range_local_key(range, range_local::REPLICA_ID))?.map(|v| decode::<ReplicaId>(&v));
        self.start_group(range, replica.transpose()?.unwrap_or(replica_id)).await
    }

    /// Starts the group of this node's replica (its replica id is recorded; create lock held).
    async fn start_group(&self, range: RangeId, replica_id: ReplicaId) -> std::io::Result<Arc<Group>> {
        let config = Config {
            cluster_name: format!("r{range}"),
            heartbeat_interval: self.timings.heartbeat_ms,
            election_timeout_min: self.timings.election_min_ms,
            election_timeout_max: self.timings.election_max_ms,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.timings.snapshot_logs),
            max_in_snapshot_log_to_keep: self.timings.snapshot_logs / 5,
            purge_batch_size: 1,
            enable_pre_vote: Some(true),
            // A replica whose store was wiped comes back with an empty log under its old id; the
            // leader must accept that its log went backwards and send a snapshot (openraft
            // otherwise asserts, in debug builds, that follower logs never revert).
            allow_log_reversion: Some(true),
            ..Default::default()
        };
        let config = Arc::new(config.validate().map_err(|e| std::io::Error::other(e.to_string()))?);
        let fsm = (self.factory)(range, &self.engine, &self.claims);
        let log = LogStore::new(self.engine.clone(), range);
        let sm = StateMachine::new(self.engine.clone(), range, fsm.clone());
        let net = NetworkFactory { range_id: range, transport: self.transport.clone() };
        let raft = Raft::new(replica_id, config, net, log.clone(), sm).await.map_err(|e| std::io::Error::other(e.to_string()))?;
        let group = Arc::new(Group { range_id: range, replica_id, raft, fsm, log, quiet: Default::default() });
        self.groups.write().unwrap_or_else(|e| e.into_inner()).insert(range, group.clone());
        // The group's own span now covers what a split claimed for it.
        self.claims.0.lock().unwrap_or_else(|e| e.into_inner()).remove(&range);
        tracing::info!(node = self.node_id(), range, replica = replica_id, "replica started");
        Ok(group)
    }

    /// Stops and deletes this node's replica of `range`, leaving a tombstone.
    pub async fn destroy(&self, range: RangeId) -> std::io::Result<()> {
        self.destroy_replica(range, false).await
    }

    /// Stops and deletes this node's replica of `range`, which merged into the range on its
    /// left: its data stays, the left range holds it now. Leaves a tombstone.
    pub async fn destroy_merged(&self, range: RangeId) -> std::io::Result<()> {
        self.destroy_replica(range, true).await
    }

    async fn destroy_replica(&self, range: RangeId, keep_data: bool) -> std::io::Result<()> {
        let g = self.groups.write().unwrap_or_else(|e| e.into_inner()).remove(&range);
        let mut b = Batch::new();
        if let Some(g) = &g {
            g.shutdown().await;
            g.log.clear(&mut b)?;
            if let Some((s, e)) = g.fsm.span().filter(|_| !keep_data) {
                let (lo, hi) = mvcc::data_bounds(&s, &e);
                b.delete_span(&self.engine, Cf::Data, &lo, &hi).map_err(std::io::Error::other)?;
            }
        }
        for s in [range_local::APPLIED, range_local::MEMBERSHIP, range_local::RANGE_STATE] {
            b.delete(&self.engine, Cf::RangeMeta, &range_local_key(range, s));
        }
        b.put(&self.engine, Cf::RaftMeta, &range_local_key(range, range_local::TOMBSTONE), &[1]);
        self.engine.write_durable(b).await?;
        tracing::info!(node = self.node_id(), range, "replica destroyed");
        Ok(())
    }

    /// The replicas here that a snapshot of `range` over `[start, end)` overlaps, if all of them
    /// are frozen to merge into `range`: the snapshot proves that merge happened (only a merge
    /// gives `range` their span), so they are replaced. `Err` names another replica in the way.
    fn merged_away(&self, range: RangeId, start: &[u8], end: &[u8]) -> Result<Vec<RangeId>, RangeId> {
        let overlaps = |s: &[u8], e: &[u8]| s < end && start < e;
        let mut found = Vec::new();
        // The claims are read after the spans, with the registry still locked: a split claims
        // its new range's span before the old range gives it up (so one or the other is seen),
        // and a claim ends only after its group is registered, which waits for this lock. Lock
        // order: registry, then a replica's state (span), and the claims alone, never while a
        // replica's state is locked here (a split's apply takes the claims under it).
        let groups = self.groups.read().unwrap_or_else(|e| e.into_inner());
        for (id, g) in groups.iter().filter(|(id, _)| **id != range) {
            if g.fsm.span().is_some_and(|(s, e)| overlaps(&s, &e)) {
                if g.fsm.frozen_for() != Some(range) {
                    return Err(*id);
                }
                found.push(*id);
            }
        }
        let claims = self.claims.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(other) = claims.iter().find_map(|(id, (s, e))| (*id != range && overlaps(s, e)).then_some(*id)) {
            return Err(other);
        }
        Ok(found)
    }

    /// Whether a split applied here is about to start this node's replica of `range`.
    fn claimed(&self, range: RangeId) -> bool {
        self.claims.0.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&range)
    }

    /// Waits (briefly) for this node's replica of `range` that a split applied here is
    /// starting.
    async fn started_soon(&self, range: RangeId) -> Option<Arc<Group>> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        while tokio::time::Instant::now() < deadline && self.claimed(range) {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        self.group(range)
    }

    /// Stops every group (clean shutdown).
    pub async fn shutdown(&self) {
        for g in self.groups() {
            g.shutdown().await;
        }
    }

    /// Serves a Raft message from a peer.
    pub async fn handle(&self, _from: NodeId, frame: Frame) -> Vec<u8> {
        let reply = match decode::<RaftMsg>(&frame.body) {
            Ok(msg) => self.dispatch(frame.range_id, msg).await,
            Err(e) => RaftReply::Error(format!("bad raft message: {e}")),
        };
        encode(&reply).unwrap_or_default()
    }

    async fn dispatch(&self, range: RangeId, msg: RaftMsg) -> RaftReply {
        if let RaftMsg::Quiesce { to, leader, term, last } = msg {
            return self.handle_quiesce(self.group(range), to, leader, term, last);
        }
        let to = msg.target();
        let group = match self.group(range) {
            Some(g) => g,
            // The split that creates it here is being applied: its state is on the way, and it
            // starts within moments (answering "no replica" instead would fail the new range's
            // first election, which then waits a whole election timeout to retry).
            None if self.claimed(range) => match self.started_soon(range).await {
                Some(g) => g,
                None => return RaftReply::NoReplica,
            },
            None => match self.ensure_group(range, to).await {
                Ok(g) => g,
                Err(_) => return RaftReply::NoReplica,
            },
        };
        if group.replica_id != to {
            return RaftReply::NoReplica;
        }
        let reply = self.deliver(&group, msg).await;
        // Any message but `Quiesce` wakes the replica, once handled (an append has renewed its
        // leader's lease by then: no election follows).
        group.wake();
        reply
    }

    async fn deliver(&self, group: &Group, msg: RaftMsg) -> RaftReply {
        let range = group.range_id;
        let err = |e: &dyn std::fmt::Display| RaftReply::Error(e.to_string());
        match msg {
            RaftMsg::Append { req, .. } => group.raft.append_entries(req).await.map(RaftReply::Append).unwrap_or_else(|e| err(&e)),
            RaftMsg::Vote { req, .. } => group.raft.vote(req).await.map(RaftReply::Vote).unwrap_or_else(|e| err(&e)),
            RaftMsg::PreVote { req, .. } => group.raft.pre_vote(req).await.map(RaftReply::Vote).unwrap_or_else(|e| err(&e)),
            RaftMsg::Snapshot { vote, meta, data, .. } => {
                let _one_at_a_time = self.snapshot_lock.lock().await;
                let span = crate::state_machine::snapshot_span(&data);
                match span.map(|(s, e)| self.merged_away(range, &s, &e)).unwrap_or(Ok(vec![])) {
                    // Another replica here still holds part of the span: a split this node has
                    // not applied yet (crate::initial). The leader retries later.
                    Err(other) => {
                        return RaftReply::Error(format!("snapshot of r{range} overlaps r{other} on this node; retry after it splits"));
                    }
                    Ok(merged) => {
                        for gone in merged {
                            tracing::info!(
                                node = self.node_id(),
                                range,
                                merged = gone,
                                "a snapshot replaces a replica merged into its range"
                            );
                            if let Err(e) = self.destroy_merged(gone).await {
                                return err(&e);
                            }
                        }
                    }
                }
                let snap = openraft::alias::SnapshotOf::<crate::types::TypeConfig, Vec<u8>> { meta, snapshot: data };
                group.raft.install_full_snapshot(vote, snap).await.map(RaftReply::Snapshot).unwrap_or_else(|e| err(&e))
            }
            RaftMsg::TransferLeader { req, .. } => {
                group.raft.handle_transfer_leader(req).await.map(RaftReply::TransferLeader).unwrap_or_else(|e| err(&e))
            }
            RaftMsg::Quiesce { .. } => RaftReply::Quiesced(false), // answered in `dispatch`
        }
    }
}
