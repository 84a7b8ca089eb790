//! A Meridian node: its store, transport, router and membership in the cluster.
//!
//! Life of a node:
//! 1. `start` opens the store. If the store knows its cluster and node id, the node restarts its
//!    replicas and serves at once (no `init`). Otherwise it waits until `meridian init` bootstraps
//!    it as node 1, or until one of its `--join` peers admits it (the peer allocates a node id in
//!    the system range and returns the known nodes).
//! 2. While running, a background loop every second: learns node addresses from the system
//!    range (and from its join peers if it knows none), records its own address and locality
//!    there, and, for each range it leads with fewer than three voters, adds a replica on a live
//!    node that has none (learner first, promoted once caught up) and publishes the new replica
//!    set in the range's meta record.
//!
//! The node's identity (`cluster_id`, `node_id`) is stored in the `raft_meta` family under a
//! fixed key and written durably before the node takes part in anything.

use crate::admin::{self, AdminRequest, AdminResponse};
use crate::records::SysRecord;
use crate::router::{Router, system_descriptor};
use crate::txn::{Txn, admin_roundtrip, allocate_ids};
use futures::future::BoxFuture;
use meridian_raft_glue::{Frame, Handler, RaftTimings, Service, TcpTransport, Transport};
use meridian_range::Store;
use meridian_sql::{SqlError, TxnClient};
use meridian_storage::{Batch, Cf, Engine};
use meridian_types::keys;
use meridian_types::kv::KvRequest;
use meridian_types::{Hlc, KvError, NodeDescriptor, NodeId, RangeDescriptor, ReplicaDescriptor, ReplicaKind, SYSTEM_RANGE_ID};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// Key of the node identity record in `raft_meta` (never collides: range-local keys are 9 bytes).
const IDENT_KEY: &[u8] = b"\xffnode-ident";

/// How long a peer must fail every ping before the ranges here that quiesced under its leaders
/// wake and elect (two failed pings in a row, one a second): a single miss under load must not
/// set off elections across thousands of ranges.
const WAKE_AFTER: Duration = Duration::from_millis(900);

/// Most leases one node hands off in one background tick (one a second) to balance leases.
const MAX_LEASE_TRANSFERS: u64 = 64;

#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub store: PathBuf,
    pub listen_addr: String,
    pub http_addr: String,
    pub join: Vec<String>,
    pub locality: Vec<(String, String)>,
    pub max_offset_ms: u64,
    pub raft: RaftTimings,
    pub max_body_bytes: usize,
    pub default_timeout: Duration,
    pub dead_after: Duration,
    /// How long a stopping node may spend handing its leases to others (`drain`).
    pub drain_timeout: Duration,
    /// A range serving more requests a second than this (as measured by its leaseholder, for
    /// two seconds running) splits where its load divides; 0 turns load splits off.
    pub split_qps: u64,
    /// How long a small range must stay unchanged and cold before it merges with its right
    /// neighbour (`merge`); zero turns merges off.
    pub merge_delay: Duration,
    /// Bounds on what one statement may return or buffer.
    pub exec: meridian_sql::ExecOptions,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Ident {
    cluster_id: String,
    node_id: NodeId,
    /// Nodes known at the last save, so a restarted node can reach its peers.
    nodes: Vec<NodeDescriptor>,
}

pub struct Node {
    pub cfg: NodeConfig,
    pub engine: Engine,
    pub transport: Arc<TcpTransport>,
    pub store: Arc<Store>,
    pub router: Router,
    pub hlc: Arc<Hlc>,
    pub catalog: crate::catalog_cache::CatalogCache,
    ident: RwLock<Option<Ident>>,
    stopping: AtomicBool,
    me: std::sync::Weak<Node>,
    /// The last microsecond handed out by [`Node::unique_rowid`].
    rowid_micros: std::sync::atomic::AtomicU64,
    /// When each unresponsive node was first seen unresponsive.
    unresponsive_since: std::sync::Mutex<std::collections::HashMap<NodeId, Instant>>,
    /// Request counters shown by `/metrics`.
    pub metrics: RequestMetrics,
    /// Keeps the meta records of the ranges this node leads true (`split`).
    meta_upkeep: crate::split::MetaUpkeep,
    /// Set once a stop began: the node hands its leases to others first (`drain`).
    draining: AtomicBool,
    /// Lease counts of peers that are not draining, from their answers to pings, and when they
    /// were heard.
    peer_leases: std::sync::Mutex<std::collections::HashMap<NodeId, (u64, Instant)>>,
    /// Splits the ranges this node leads once they outgrow their zone's `range_max_bytes`.
    split_queue: crate::split::SplitQueue,
    merge_queue: crate::merge::MergeQueue,
    /// How many ranges this node led at its last background tick (answers to pings).
    leases_held: std::sync::atomic::AtomicU64,
    /// The cluster (live nodes, dead nodes) at the replicate queue's last full pass, and when.
    pub(crate) replicate_pass: std::sync::Mutex<Option<(crate::replicate::ClusterShape, Instant)>>,
}

/// Counters of the SQL requests this node served as a gateway.
#[derive(Default)]
pub struct RequestMetrics {
    /// Requests run (each a transaction).
    pub requests: std::sync::atomic::AtomicU64,
    /// Attempts that failed with a retryable conflict (40001 class) and were run again.
    pub restarts: std::sync::atomic::AtomicU64,
    /// Requests answered 40001 after the gateway's retries ran out.
    pub conflicts: std::sync::atomic::AtomicU64,
}

fn dyn_transport(t: &Arc<TcpTransport>) -> Arc<dyn Transport> {
    Arc::new(t.clone())
}

impl Node {
    /// Opens the store and binds the node-to-node listener. Returns once the node is reachable.
    pub async fn start(cfg: NodeConfig) -> anyhow_like::Result<Arc<Node>> {
        let engine = Engine::open(&cfg.store)?;
        let transport = TcpTransport::new();
        let hlc = Arc::new(Hlc::system(cfg.max_offset_ms * 1_000_000));
        let store = Store::new(engine.clone(), dyn_transport(&transport), cfg.raft, hlc.clone());
        let router = Router::new(store.clone(), dyn_transport(&transport));
        let ident: Option<Ident> = match engine.get(Cf::RaftMeta, IDENT_KEY)? {
            Some(b) => Some(postcard::from_bytes(&b).map_err(|e| anyhow_like::Error(format!("corrupt node identity: {e}")))?),
            None => None,
        };
        let node = Arc::new_cyclic(|me| Node {
            cfg: cfg.clone(),
            engine,
            transport: transport.clone(),
            store,
            router,
            hlc,
            catalog: Default::default(),
            ident: RwLock::new(None),
            stopping: AtomicBool::new(false),
            me: me.clone(),
            unresponsive_since: Default::default(),
            rowid_micros: Default::default(),
            metrics: Default::default(),
            meta_upkeep: Default::default(),
            peer_leases: Default::default(),
            draining: AtomicBool::new(false),
            split_queue: Default::default(),
            merge_queue: Default::default(),
            leases_held: Default::default(),
            replicate_pass: Default::default(),
        });
        transport.set_handler(Arc::new(NodeHandler(Arc::downgrade(&node))));
        let listener = tokio::net::TcpListener::bind(&cfg.listen_addr)
            .await
            .map_err(|e| anyhow_like::Error(format!("cannot listen on {}: {e}", cfg.listen_addr)))?;
        // Every stored replica is started before the node serves peers: the host's check that
        // a snapshot overlaps no replica here must see them all.
        if let Some(id) = ident {
            node.adopt_identity(id.clone());
            let n = node.store.host().start_existing().await?;
            tracing::info!(node = id.node_id, replicas = n, "node restarted from its store");
        }
        transport.serve(listener);
        let bg = node.clone();
        tokio::spawn(async move { bg.background().await });
        Ok(node)
    }

    fn adopt_identity(&self, id: Ident) {
        self.transport.set_node_id(id.node_id);
        self.router.set_node_id(id.node_id);
        self.store.host().set_node_id(id.node_id);
        self.learn_nodes(&id.nodes);
        *self.ident.write().unwrap_or_else(|e| e.into_inner()) = Some(id);
    }

    fn learn_nodes(&self, nodes: &[NodeDescriptor]) {
        for n in nodes {
            if n.node_id != self.node_id() {
                self.transport.set_addr(n.node_id, n.addr.clone());
            }
        }
        self.router.set_nodes(nodes);
    }

    async fn save_identity(&self, id: &Ident) -> Result<(), KvError> {
        let mut b = Batch::new();
        b.put(&self.engine, Cf::RaftMeta, IDENT_KEY, &admin::encode(id));
        self.engine.write_durable(b).await.map_err(|e| KvError::Internal(e.to_string()))
    }

    pub fn node_id(&self) -> NodeId {
        self.ident.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(|i| i.node_id).unwrap_or(0)
    }

    pub fn cluster_id(&self) -> Option<String> {
        self.ident.read().unwrap_or_else(|e| e.into_inner()).as_ref().map(|i| i.cluster_id.clone())
    }

    pub fn descriptor(&self) -> NodeDescriptor {
        NodeDescriptor {
            node_id: self.node_id(),
            addr: self.cfg.listen_addr.clone(),
            http_addr: self.cfg.http_addr.clone(),
            locality: self.cfg.locality.clone(),
        }
    }

    /// A cluster-unique, positive, deliberately non-monotonic id (SERIAL, `unique_rowid()`).
    ///
    /// `micros since 2025 << 12 | node id (12 bits)` is unique: microseconds are strictly
    /// increasing per node (a counter that never goes back) and node ids are never reused. Its
    /// 63 bits are then reversed, a bijection, so consecutive ids land far apart in the key space
    /// instead of piling onto the end of one range.
    pub fn unique_rowid(&self) -> i64 {
        const EPOCH_2025_MICROS: u64 = 1_735_689_600_000_000;
        let now = (self.hlc.physical_now().wall_ns / 1000).saturating_sub(EPOCH_2025_MICROS);
        let step = |last: u64| Some(now.max(last + 1));
        let prev = self.rowid_micros.fetch_update(Ordering::SeqCst, Ordering::SeqCst, step).unwrap_or_default();
        rowid(now.max(prev + 1), self.node_id())
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub(crate) fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Live peers that take leases (not draining, heard from in the last 3 s), with their counts.
    pub(crate) fn lease_takers(&self, live: &[NodeId]) -> Vec<(NodeId, u64)> {
        let known = self.peer_leases.lock().unwrap_or_else(|e| e.into_inner());
        live.iter()
            .filter(|n| **n != self.node_id())
            .filter_map(|n| known.get(n).filter(|(_, at)| at.elapsed() < Duration::from_secs(3)).map(|(c, _)| (*n, *c)))
            .collect()
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Whether this node can serve SQL: it belongs to a cluster and the system range answers.
    pub async fn ready(&self) -> bool {
        if self.node_id() == 0 || self.is_stopping() {
            return false;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let req = KvRequest::Read(meridian_types::kv::ReadRequest {
            range_id: SYSTEM_RANGE_ID,
            ts: None,
            uncertainty_limit: None,
            ops: vec![meridian_types::kv::ReadOp::Get { key: keys::cluster_key() }],
        });
        self.router.send(&system_descriptor(), req, deadline).await.is_ok()
    }

    /// Stops serving: replicas shut down, the store closes when the last handle goes.
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.store.host().shutdown().await;
    }

    pub async fn admin_call(&self, node: NodeId, req: AdminRequest, timeout: Duration) -> Result<(), SqlError> {
        let resp = if node == self.node_id() {
            self.handle_admin(0, req).await
        } else {
            admin_roundtrip(&dyn_transport(&self.transport), node, &req, timeout).await?
        };
        match resp {
            AdminResponse::Error { kv: Some(e), .. } => Err(SqlError::Kv(e)),
            AdminResponse::Error { message, .. } => Err(SqlError::Kv(KvError::Unavailable(message))),
            _ => Ok(()),
        }
    }

    /// Nodes that answer a ping now (this node included).
    pub async fn live_nodes(&self) -> Vec<NodeId> {
        let mut live = vec![self.node_id()];
        let t = dyn_transport(&self.transport);
        let pings = self.router.nodes().into_iter().filter(|n| n.node_id != self.node_id()).map(|n| {
            let t = t.clone();
            async move {
                admin_roundtrip(&t, n.node_id, &AdminRequest::Ping, Duration::from_millis(500)).await.ok().map(|r| (n.node_id, r))
            }
        });
        for (id, resp) in futures::future::join_all(pings).await.into_iter().flatten() {
            live.push(id);
            if let AdminResponse::Pong { leases, draining } = resp {
                // A draining peer takes no leases: it is left out of the counts balancing reads.
                let mut known = self.peer_leases.lock().unwrap_or_else(|e| e.into_inner());
                if draining {
                    known.remove(&id);
                } else {
                    known.insert(id, (leases, Instant::now()));
                }
            }
        }
        let now = Instant::now();
        let mut since = self.unresponsive_since.lock().unwrap_or_else(|e| e.into_inner());
        for n in self.router.nodes() {
            if live.contains(&n.node_id) {
                since.remove(&n.node_id);
            } else {
                since.entry(n.node_id).or_insert(now);
            }
        }
        live
    }

    /// Whether `node` has been unresponsive for longer than `dead_after` (as last measured by
    /// [`Node::live_nodes`]).
    pub fn is_dead(&self, node: NodeId) -> bool {
        self.unresponsive_for(node, self.cfg.dead_after)
    }

    /// Whether `node` has failed every ping for at least `d` (as last measured by
    /// [`Node::live_nodes`]; `d` of zero: failed the last one).
    fn unresponsive_for(&self, node: NodeId, d: Duration) -> bool {
        self.unresponsive_since.lock().unwrap_or_else(|e| e.into_inner()).get(&node).is_some_and(|t| t.elapsed() >= d)
    }

    // ---- cluster lifecycle ----

    async fn bootstrap(&self) -> Result<(), String> {
        if self.cluster_id().is_some() {
            return Err("cluster has already been initialized".into());
        }
        // Refuse if any join peer already belongs to a cluster.
        for addr in self.join_peers() {
            if let Some((Some(c), _)) = self.node_info(addr).await {
                return Err(format!("node at {addr} already belongs to cluster {c}"));
            }
        }
        let cluster_id = format!("{:032x}", rand::random::<u128>());
        let me = NodeDescriptor { node_id: 1, ..self.descriptor() };
        let id = Ident { cluster_id: cluster_id.clone(), node_id: 1, nodes: vec![me.clone()] };
        self.save_identity(&id).await.map_err(|e| e.to_string())?;
        self.adopt_identity(id);
        let (s, e) = keys::system_span();
        let desc = RangeDescriptor {
            range_id: SYSTEM_RANGE_ID,
            start_key: s,
            end_key: e.clone(),
            replicas: vec![ReplicaDescriptor { replica_id: 1, node_id: 1, kind: ReplicaKind::Voter }],
            generation: 1,
            table_id: None,
            sticky: true,
        };
        self.store.create_range(desc.clone(), 1, &[(1, 1)]).await.map_err(|e| e.to_string())?;
        let me_arc = self.self_arc().ok_or("node stopping")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut t = Txn::new(me_arc, deadline, None);
        t.put(keys::cluster_key(), cluster_id.encode_record());
        for (name, v) in [("node", 1u64), ("range", 1), ("replica", 1), ("table", 0)] {
            t.put(keys::counter_key(name), v.encode_record());
        }
        t.put(keys::node_key(1), me.encode_record());
        t.put(keys::meta_key(&e), desc.encode_record());
        t.commit().await.map_err(|e| e.to_string())?;
        tracing::info!(node = 1, cluster = %cluster_id, "cluster bootstrapped");
        Ok(())
    }

    pub(crate) fn self_arc(&self) -> Option<Arc<Node>> {
        self.me.upgrade()
    }

    async fn admit(&self, addr: String, http_addr: String, locality: Vec<(String, String)>) -> Result<AdminResponse, KvError> {
        let cluster_id = self.cluster_id().ok_or_else(|| KvError::Unavailable("this node has not joined a cluster yet".into()))?;
        let me = self.self_arc().ok_or_else(|| KvError::Unavailable("node stopping".into()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        // A node restarted on a wiped store joins again under a new id; ids are never reused.
        let node_id = allocate_ids(&me, "node", 1, deadline).await.map_err(sql_to_kv)?;
        let desc = NodeDescriptor { node_id, addr, http_addr, locality };
        let mut t = Txn::new(me.clone(), deadline, None);
        t.put(keys::node_key(node_id), desc.encode_record());
        t.commit().await.map_err(sql_to_kv)?;
        self.learn_nodes(std::slice::from_ref(&desc));
        let mut nodes = self.router.nodes();
        if !nodes.iter().any(|n| n.node_id == self.node_id()) {
            nodes.push(self.descriptor());
        }
        tracing::info!(node = self.node_id(), admitted = node_id, "node admitted");
        Ok(AdminResponse::Joined { cluster_id, node_id, nodes })
    }

    async fn try_join(&self) {
        for addr in self.join_peers() {
            let req = AdminRequest::Join {
                addr: self.cfg.listen_addr.clone(),
                http_addr: self.cfg.http_addr.clone(),
                locality: self.cfg.locality.clone(),
            };
            let frame = Frame { service: Service::Admin, range_id: 0, body: admin::encode(&req) };
            let Ok(b) = self.transport.call_addr(addr, frame, Duration::from_secs(12)).await else {
                continue;
            };
            if let Ok(AdminResponse::Joined { cluster_id, node_id, nodes }) = admin::decode(&b) {
                let id = Ident { cluster_id, node_id, nodes };
                if self.save_identity(&id).await.is_ok() && self.cluster_id().is_none() {
                    tracing::info!(node = node_id, via = %addr, "joined cluster");
                    self.adopt_identity(id);
                    return;
                }
            }
        }
    }

    async fn background(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(1000));
        let mut announced = false;
        loop {
            tick.tick().await;
            if self.is_stopping() {
                return;
            }
            if self.cluster_id().is_none() {
                self.try_join().await;
                continue;
            }
            if self.router.nodes().len() <= 1 {
                self.discover_from_peers().await;
            }
            if let Err(e) = self.refresh_nodes(&mut announced).await {
                tracing::debug!(error = %e, "node refresh failed");
            }
            // One round of pings a tick: it also brings the peers' lease counts.
            let live = self.live_nodes().await;
            // Node liveness: replicas here that quiesced under a leader on a node that stopped
            // answering tick again, and elect a new leader (raft-glue `quiesce`).
            // One missed ping is not enough: an overloaded peer (or this node) can miss one, and
            // waking its ranges would only add elections to the load.
            for n in self.router.nodes().iter().filter(|n| self.unresponsive_for(n.node_id, WAKE_AFTER)) {
                let woken = self.store.host().wake_followers_of(n.node_id);
                if woken > 0 {
                    tracing::info!(node = self.node_id(), peer = n.node_id, woken, "woke ranges led by an unresponsive node");
                }
            }
            // The ranges this node leads, looked up once a tick for quiescence and every queue
            // below (one pass over the registry: at 10,000 replicas these walks were most of an
            // idle node's CPU).
            let leaders = self.store.host().leaders();
            self.store.host().quiesce_idle(&leaders).await;
            let led = self.store.replicas_of(&leaders);
            self.leases_held.store(led.len() as u64, std::sync::atomic::Ordering::Relaxed);
            self.replicate_queue(&led, &live).await;
            self.balance_leases(&led, &live).await;
            if let Some(me) = self.self_arc() {
                self.meta_upkeep.run(&me, &led).await;
                self.split_queue.run(&me, &led).await;
                self.merge_queue.run(&me, &led, &self.split_queue).await;
            }
        }
    }

    /// The `--join` addresses other than our own.
    fn join_peers(&self) -> impl Iterator<Item = &String> {
        self.cfg.join.iter().filter(|a| **a != self.cfg.listen_addr)
    }

    /// Asks the node at `addr` for its cluster id and the nodes it knows.
    async fn node_info(&self, addr: &str) -> Option<(Option<String>, Vec<NodeDescriptor>)> {
        let frame = Frame { service: Service::Admin, range_id: 0, body: admin::encode(&AdminRequest::NodeInfo) };
        let b = self.transport.call_addr(addr, frame, Duration::from_secs(1)).await.ok()?;
        match admin::decode(&b) {
            Ok(AdminResponse::Info { cluster_id, nodes, .. }) => Some((cluster_id, nodes)),
            _ => None,
        }
    }

    async fn discover_from_peers(&self) {
        for addr in self.join_peers() {
            if let Some((_, nodes)) = self.node_info(addr).await {
                self.learn_nodes(&nodes);
            }
        }
    }

    async fn refresh_nodes(&self, announced: &mut bool) -> Result<(), SqlError> {
        let me = self.self_arc().ok_or_else(|| SqlError::Kv(KvError::Unavailable("stopping".into())))?;
        let deadline = Instant::now() + Duration::from_secs(3);
        let (s, e) = keys::node_span();
        let mut t = Txn::new(me.clone(), deadline, None);
        let rows = t.scan(&s, &e, 0).await?;
        let nodes: Vec<NodeDescriptor> = rows.iter().filter_map(|(_, v)| NodeDescriptor::decode_record(v).ok()).collect();
        self.learn_nodes(&nodes);
        if !*announced {
            // Record our current address and locality (they may change across restarts).
            let mine = nodes.iter().find(|n| n.node_id == self.node_id());
            if mine != Some(&self.descriptor()) {
                let mut t = Txn::new(me.clone(), deadline, None);
                t.put(keys::node_key(self.node_id()), self.descriptor().encode_record());
                t.commit().await?;
            }
            *announced = true;
        }
        let known = self.router.nodes();
        let id = { self.ident.read().unwrap_or_else(|e| e.into_inner()).clone() };
        if let Some(mut id) = id
            && id.nodes != known
        {
            id.nodes = known;
            let _ = self.save_identity(&id).await;
            *self.ident.write().unwrap_or_else(|e| e.into_inner()) = Some(id);
        }
        Ok(())
    }

    /// Lease counts of every node this one heard from in the last few seconds (its peers' from
    /// their answers to pings), itself included.
    pub fn lease_counts(&self) -> std::collections::BTreeMap<NodeId, u64> {
        let mut out: std::collections::BTreeMap<NodeId, u64> = self
            .peer_leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, (_, at))| at.elapsed() < Duration::from_secs(5))
            .map(|(n, (c, _))| (*n, *c))
            .collect();
        out.insert(self.node_id(), self.leaseholder_count() as u64);
        out
    }

    /// How many ranges this node holds the lease (leadership) of, as of its last background
    /// tick (a second at most).
    pub fn leaseholder_count(&self) -> usize {
        self.leases_held.load(std::sync::atomic::Ordering::Relaxed) as usize
    }

    /// Spreads leases: a node holding more than its share (the cluster's leases over its live
    /// nodes, rounded up) and at least two more than the least-loaded live node hands leases to
    /// the least-loaded nodes, half its surplus a second (1 to [`MAX_LEASE_TRANSFERS`]), each for
    /// a range with a voter there (a Raft leader transfer: the new leaseholder's term is new, so
    /// its timestamp cache starts above anything served before).
    async fn balance_leases(&self, led: &[Arc<meridian_range::Replica>], live: &[NodeId]) {
        if self.is_draining() {
            return; // `drain` hands every lease off
        }
        let peers = self.lease_takers(live);
        if peers.len() + 1 < live.len() || peers.is_empty() {
            return; // not every live node's count is known (or some drain)
        }
        let mut mine = led.len() as u64;
        let total = mine + peers.iter().map(|p| p.1).sum::<u64>();
        let share = total.div_ceil(live.len() as u64);
        // Half the surplus a tick (at most MAX_LEASE_TRANSFERS): converges in a few ticks after
        // splits left one node leading hundreds of ranges, without overshooting when several
        // nodes shed leases at once from counts a tick old.
        let budget = (mine.saturating_sub(share) / 2).clamp(1, MAX_LEASE_TRANSFERS);
        let mut counts = peers;
        let mut moved = 0;
        for r in led {
            let Some(least) = counts.iter_mut().min_by_key(|p| p.1) else { return };
            if moved >= budget || mine <= share || mine < least.1 + 2 {
                break;
            }
            let st = r.group().status();
            if let Some(m) = st.members.iter().find(|m| m.node_id == least.0 && m.voter && r.group().caught_up(m.replica_id)) {
                tracing::debug!(
                    node = self.node_id(),
                    range = st.range_id,
                    target = least.0,
                    mine,
                    least = least.1,
                    "transferring a lease to balance"
                );
                let _ = r.group().transfer_leader(m.replica_id).await;
                least.1 += 1;
                mine -= 1;
                moved += 1;
            }
        }
        if moved > 0 {
            tracing::info!(node = self.node_id(), moved, left = mine, share, "transferred leases to balance");
        }
    }

    async fn handle_admin(&self, _from: NodeId, req: AdminRequest) -> AdminResponse {
        let err = |e: KvError| AdminResponse::Error { message: e.to_string(), kv: Some(e) };
        match req {
            AdminRequest::Bootstrap => match self.bootstrap().await {
                Ok(()) => AdminResponse::Ok,
                Err(m) => AdminResponse::Error { message: m, kv: None },
            },
            AdminRequest::Join { addr, http_addr, locality } => self.admit(addr, http_addr, locality).await.unwrap_or_else(err),
            AdminRequest::NodeInfo => {
                AdminResponse::Info { cluster_id: self.cluster_id(), node_id: self.node_id(), nodes: self.router.nodes() }
            }
            AdminRequest::Ping => AdminResponse::Pong { leases: self.leaseholder_count() as u64, draining: self.is_draining() },
            AdminRequest::CreateRange { desc, replica_id, members } => match self.store.create_range(desc, replica_id, &members).await {
                Ok(_) => AdminResponse::Ok,
                Err(e) => err(e),
            },
            AdminRequest::DestroyReplica { range_id } => match self.store.destroy(range_id).await {
                Ok(()) => AdminResponse::Ok,
                Err(e) => err(KvError::Internal(e.to_string())),
            },
        }
    }
}

/// The id for microsecond `micros` on node `node` (see [`Node::unique_rowid`]).
fn rowid(micros: u64, node: NodeId) -> i64 {
    let raw = ((micros & ((1 << 51) - 1)) << 12) | (node & 0xfff);
    // Reverse the low 63 bits: a bijection that keeps ids positive and spreads neighbours.
    (raw.reverse_bits() >> 1) as i64
}

fn sql_to_kv(e: SqlError) -> KvError {
    match e {
        SqlError::Kv(k) => k,
        other => KvError::Internal(other.to_string()),
    }
}

/// Dispatches frames from peers to the Raft host, the store or the admin handler.
struct NodeHandler(std::sync::Weak<Node>);

impl Handler for NodeHandler {
    fn handle(&self, from: NodeId, frame: Frame) -> BoxFuture<'static, Vec<u8>> {
        let node = self.0.upgrade();
        Box::pin(async move {
            let Some(node) = node else { return Vec::new() };
            match frame.service {
                Service::Raft => node.store.host().handle(from, frame).await,
                Service::Kv => {
                    let resp = match admin::decode::<KvRequest>(&frame.body) {
                        Ok(req) => node.store.handle_kv(req).await,
                        Err(e) => meridian_types::kv::KvResponse::Error(e),
                    };
                    admin::encode(&resp)
                }
                Service::Admin => {
                    let resp = match admin::decode::<AdminRequest>(&frame.body) {
                        Ok(req) => node.handle_admin(from, req).await,
                        Err(e) => AdminResponse::Error { message: e.to_string(), kv: None },
                    };
                    admin::encode(&resp)
                }
            }
        })
    }
}

/// A tiny error type for start-up failures, printed to the operator.
pub mod anyhow_like {
    #[derive(Debug)]
    pub struct Error(pub String);
    impl std::fmt::Display for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Error {}
    impl From<meridian_storage::StorageError> for Error {
        fn from(e: meridian_storage::StorageError) -> Self {
            Error(e.to_string())
        }
    }
    impl From<std::io::Error> for Error {
        fn from(e: std::io::Error) -> Self {
            Error(e.to_string())
        }
    }
    pub type Result<T> = std::result::Result<T, Error>;
}

impl Node {
    /// Bootstraps this node as the first node of a new cluster (the demo's `init`).
    pub async fn bootstrap_for_demo(&self) -> Result<(), String> {
        self.bootstrap().await
    }
}

#[cfg(test)]
mod tests {
    use super::rowid;
    use std::collections::HashSet;

    #[test]
    fn rowids_are_unique_positive_and_spread() {
        let mut seen = HashSet::new();
        let mut prev = 0;
        let mut descents = 0;
        for node in 1..=3 {
            for micros in 1_000_000..1_002_000u64 {
                let id = rowid(micros, node);
                assert!(id > 0);
                assert!(seen.insert(id), "duplicate id");
                if id < prev {
                    descents += 1;
                }
                prev = id;
            }
        }
        assert!(descents > 1000, "consecutive ids must not be monotonic ({descents} descents)");
    }
}
