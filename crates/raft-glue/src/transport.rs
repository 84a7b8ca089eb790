//! Node-to-node messaging: request/response frames multiplexed over one connection per pair of
//! nodes, carrying every range's Raft traffic (tagged by range id) and the KV and admin RPCs of
//! the layers above.
//!
//! Wire format: `u32 length | postcard(Wire)`. The first frame on a connection is a hello naming
//! the dialing node and the node it means to reach. Each side keeps at most one live connection
//! per peer and uses it in both directions; two simultaneous dials can briefly leave two, which
//! is harmless.
//!
//! Invariant: a connection meant for node `n` is accepted only by the process that is node `n`.
//! A process restarted at the same address on a wiped store has no node id (or, once it joins,
//! a new one), so it refuses connections meant for its former self: it can never answer Raft
//! messages as the old node's replicas with an empty log and no vote (which could elect a leader
//! without committed entries). The old node simply looks dead and its replicas are replaced.
//! Only calls to an address whose node is unknown (joining, `init`) name no target.
//!
//! The read loop never awaits a handler: each incoming request runs in its own task and its
//! response is queued on the writer, so a slow range cannot stall the others. A request carries
//! how long its caller waits; one that waited longer than that before its task ran is dropped
//! unanswered (its caller has given up), so an overloaded node sheds stale work, chiefly
//! heartbeats, instead of answering everything too late. The writer drains
//! everything queued into one buffered write (one syscall for many messages under load).
//!
//! WAN latency is simulated here: [`TcpTransport::set_delay`] delays every frame sent to a peer.
//! [`SimNetwork`] is an in-process transport for tests, with partitions and stopped nodes.

use futures::future::BoxFuture;
use meridian_types::{NodeId, RangeId};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// Which layer a frame is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Service {
    Raft,
    Kv,
    Admin,
}

/// A request to a peer node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Frame {
    pub service: Service,
    pub range_id: RangeId,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    #[error("node n{0} unreachable: {1}")]
    Unreachable(NodeId, String),
    #[error("no address known for node n{0}")]
    UnknownNode(NodeId),
    #[error("timed out waiting for n{0}")]
    Timeout(NodeId),
}

/// Serves requests arriving from peers.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, from: NodeId, frame: Frame) -> BoxFuture<'static, Vec<u8>>;
}

/// Sends requests to peers.
pub trait Transport: Send + Sync + 'static {
    fn call(&self, to: NodeId, frame: Frame, timeout: Duration) -> BoxFuture<'static, Result<Vec<u8>, NetError>>;
}

/// Largest frame accepted from the wire (a snapshot travels as one frame).
const MAX_FRAME_BYTES: usize = 512 << 20;
/// Bound of each connection's outgoing queue, in messages.
const WRITE_QUEUE: usize = 4096;

#[derive(Serialize, Deserialize)]
enum Wire {
    /// `to` is the node the dialer means to reach, 0 when it does not know (join, init).
    Hello {
        node_id: NodeId,
        to: NodeId,
    },
    Request {
        id: u64,
        /// How long the caller waits for the answer (ms, saturated); see [`Wire`] handling.
        ttl_ms: u32,
        frame: Frame,
    },
    Response {
        id: u64,
        body: Vec<u8>,
    },
}

struct Conn {
    peer: NodeId,
    tx: mpsc::Sender<Vec<u8>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>,
    closed: AtomicBool,
}

impl Conn {
    fn fail_all(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// The real transport: TCP on the node's listen address.
pub struct TcpTransport {
    node_id: AtomicU64,
    addrs: RwLock<HashMap<NodeId, String>>,
    conns: Mutex<HashMap<NodeId, Arc<Conn>>>,
    handler: OnceLock<Arc<dyn Handler>>,
    next_id: AtomicU64,
    delays: RwLock<HashMap<NodeId, Duration>>,
    dial_lock: tokio::sync::Mutex<()>,
}

fn encode_wire(w: &Wire) -> Vec<u8> {
    let body = postcard::to_stdvec(w).unwrap_or_default();
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

async fn read_wire(r: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Wire> {
    let len = r.read_u32().await? as usize;
    if len > MAX_FRAME_BYTES {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "frame too large"));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    postcard::from_bytes(&buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

impl TcpTransport {
    pub fn new() -> Arc<TcpTransport> {
        Arc::new(TcpTransport {
            node_id: AtomicU64::new(0),
            addrs: RwLock::new(HashMap::new()),
            conns: Mutex::new(HashMap::new()),
            handler: OnceLock::new(),
            next_id: AtomicU64::new(1),
            delays: RwLock::new(HashMap::new()),
            dial_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn set_node_id(&self, id: NodeId) {
        self.node_id.store(id, Ordering::SeqCst);
    }

    pub fn set_handler(&self, h: Arc<dyn Handler>) {
        let _ = self.handler.set(h);
    }

    pub fn set_addr(&self, node: NodeId, addr: String) {
        let mut a = self.addrs.write().unwrap_or_else(|e| e.into_inner());
        if a.get(&node) != Some(&addr) {
            a.insert(node, addr);
        }
    }

    pub fn addr_of(&self, node: NodeId) -> Option<String> {
        self.addrs.read().unwrap_or_else(|e| e.into_inner()).get(&node).cloned()
    }

    /// Simulated one-way network latency for everything sent to `peer`.
    pub fn set_delay(&self, peer: NodeId, d: Duration) {
        self.delays.write().unwrap_or_else(|e| e.into_inner()).insert(peer, d);
    }

    /// Accepts peers on `listener` until the process ends.
    pub fn serve(self: &Arc<Self>, listener: TcpListener) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let me = me.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let (mut rd, wr) = stream.into_split();
                    let peer = match tokio::time::timeout(Duration::from_secs(5), read_wire(&mut rd)).await {
                        Ok(Ok(Wire::Hello { node_id, to })) if me.accepts(to) => node_id,
                        Ok(Ok(Wire::Hello { node_id, to })) => {
                            tracing::debug!(from = node_id, to, "refused a connection meant for another node");
                            return;
                        }
                        _ => return,
                    };
                    me.attach(peer, rd, wr, true);
                });
            }
        });
    }

    /// Whether a connection meant for node `to` may be served here (module docs).
    fn accepts(&self, to: NodeId) -> bool {
        to == 0 || to == self.node_id.load(Ordering::SeqCst)
    }

    fn attach(
        self: &Arc<Self>,
        peer: NodeId,
        mut rd: tokio::net::tcp::OwnedReadHalf,
        wr: tokio::net::tcp::OwnedWriteHalf,
        inbound: bool,
    ) -> Arc<Conn> {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        let conn = Arc::new(Conn { peer, tx, pending: Mutex::new(HashMap::new()), closed: AtomicBool::new(false) });
        if peer != 0 {
            let mut conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
            let keep_old = inbound && conns.get(&peer).is_some_and(|c| !c.closed.load(Ordering::SeqCst));
            if !keep_old {
                conns.insert(peer, conn.clone());
            }
        }
        // Writer: drain everything queued into one buffered write.
        let delay = self.delays.read().unwrap_or_else(|e| e.into_inner()).get(&peer).copied();
        let wconn = conn.clone();
        tokio::spawn(async move {
            let mut w = BufWriter::with_capacity(64 << 10, wr);
            while let Some(first) = rx.recv().await {
                if let Some(d) = delay {
                    tokio::time::sleep(d).await;
                }
                let mut ok = w.write_all(&first).await.is_ok();
                while ok {
                    match rx.try_recv() {
                        Ok(more) => ok = w.write_all(&more).await.is_ok(),
                        Err(_) => break,
                    }
                }
                if !ok || w.flush().await.is_err() {
                    break;
                }
            }
            wconn.fail_all();
        });
        // Reader: responses complete waiters; requests run in their own tasks.
        let me = self.clone();
        let rconn = conn.clone();
        tokio::spawn(async move {
            while let Ok(w) = read_wire(&mut rd).await {
                match w {
                    Wire::Response { id, body } => {
                        let waiter = rconn.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                        if let Some(tx) = waiter {
                            let _ = tx.send(body);
                        }
                    }
                    Wire::Request { id, ttl_ms, frame } => {
                        let Some(h) = me.handler.get().cloned() else {
                            continue;
                        };
                        let c = rconn.clone();
                        let arrived = std::time::Instant::now();
                        tokio::spawn(async move {
                            // Load shedding: a request that waited here longer than its caller
                            // waits for the answer has been given up on; handling it would only
                            // delay the fresh ones (under overload, stale heartbeats would keep
                            // every answer late). The caller's clock started earlier, so it has
                            // certainly timed out.
                            if arrived.elapsed() >= Duration::from_millis(u64::from(ttl_ms)) {
                                tracing::debug!(peer = c.peer, "dropped a request its caller gave up on");
                                return;
                            }
                            let body = h.handle(c.peer, frame).await;
                            let _ = c.tx.send(encode_wire(&Wire::Response { id, body })).await;
                        });
                    }
                    Wire::Hello { .. } => {}
                }
            }
            rconn.fail_all();
            let mut conns = me.conns.lock().unwrap_or_else(|e| e.into_inner());
            if conns.get(&rconn.peer).is_some_and(|c| Arc::ptr_eq(c, &rconn)) {
                conns.remove(&rconn.peer);
            }
        });
        conn
    }

    async fn dial(self: &Arc<Self>, addr: &str, peer: NodeId) -> Result<Arc<Conn>, NetError> {
        let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
            .await
            .map_err(|_| NetError::Unreachable(peer, "connect timed out".into()))?
            .map_err(|e| NetError::Unreachable(peer, e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (rd, mut wr) = stream.into_split();
        let hello = encode_wire(&Wire::Hello { node_id: self.node_id.load(Ordering::SeqCst), to: peer });
        wr.write_all(&hello).await.map_err(|e| NetError::Unreachable(peer, e.to_string()))?;
        Ok(self.attach(peer, rd, wr, false))
    }

    async fn conn_to(self: &Arc<Self>, peer: NodeId) -> Result<Arc<Conn>, NetError> {
        let live =
            |me: &Self| me.conns.lock().unwrap_or_else(|e| e.into_inner()).get(&peer).filter(|c| !c.closed.load(Ordering::SeqCst)).cloned();
        if let Some(c) = live(self) {
            return Ok(c);
        }
        let _g = self.dial_lock.lock().await;
        if let Some(c) = live(self) {
            return Ok(c);
        }
        let addr = self.addr_of(peer).ok_or(NetError::UnknownNode(peer))?;
        self.dial(&addr, peer).await
    }

    async fn roundtrip(conn: Arc<Conn>, id: u64, frame: Frame, timeout: Duration) -> Result<Vec<u8>, NetError> {
        let (tx, rx) = oneshot::channel();
        conn.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        let peer = conn.peer;
        let ttl_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        if conn.tx.send(encode_wire(&Wire::Request { id, ttl_ms, frame })).await.is_err() {
            return Err(NetError::Unreachable(peer, "connection closed".into()));
        }
        let res = tokio::time::timeout(timeout, rx).await;
        conn.pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        match res {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(_)) => Err(NetError::Unreachable(peer, "connection lost".into())),
            Err(_) => Err(NetError::Timeout(peer)),
        }
    }

    /// One request to an address whose node id is not known (joining a cluster).
    pub async fn call_addr(self: &Arc<Self>, addr: &str, frame: Frame, timeout: Duration) -> Result<Vec<u8>, NetError> {
        let conn = self.dial(addr, 0).await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let res = Self::roundtrip(conn.clone(), id, frame, timeout).await;
        conn.fail_all();
        res
    }
}

impl Transport for Arc<TcpTransport> {
    fn call(&self, to: NodeId, frame: Frame, timeout: Duration) -> BoxFuture<'static, Result<Vec<u8>, NetError>> {
        let me = self.clone();
        Box::pin(async move {
            let conn = tokio::time::timeout(timeout, me.conn_to(to)).await.map_err(|_| NetError::Timeout(to))??;
            let id = me.next_id.fetch_add(1, Ordering::Relaxed);
            TcpTransport::roundtrip(conn, id, frame, timeout).await
        })
    }
}

/// An in-process network for tests: nodes register handlers; links can be cut.
#[derive(Default)]
pub struct SimNetwork {
    handlers: RwLock<HashMap<NodeId, Arc<dyn Handler>>>,
    /// Cut links, both directions stored.
    cut: RwLock<HashSet<(NodeId, NodeId)>>,
    down: RwLock<HashSet<NodeId>>,
}

impl SimNetwork {
    pub fn new() -> Arc<SimNetwork> {
        Arc::new(SimNetwork::default())
    }

    pub fn register(&self, node: NodeId, h: Arc<dyn Handler>) {
        self.handlers.write().unwrap_or_else(|e| e.into_inner()).insert(node, h);
        self.down.write().unwrap_or_else(|e| e.into_inner()).remove(&node);
    }

    /// Stops delivering to and from `node` (a crashed process).
    pub fn stop(&self, node: NodeId) {
        self.down.write().unwrap_or_else(|e| e.into_inner()).insert(node);
        self.handlers.write().unwrap_or_else(|e| e.into_inner()).remove(&node);
    }

    /// Separates `group` from every other node.
    pub fn partition(&self, group: &[NodeId], all: &[NodeId]) {
        let mut cut = self.cut.write().unwrap_or_else(|e| e.into_inner());
        for a in group {
            for b in all.iter().filter(|b| !group.contains(b)) {
                cut.insert((*a, *b));
                cut.insert((*b, *a));
            }
        }
    }

    /// Cuts the link between `a` and `b` (both directions).
    pub fn cut_link(&self, a: NodeId, b: NodeId) {
        let mut cut = self.cut.write().unwrap_or_else(|e| e.into_inner());
        cut.insert((a, b));
        cut.insert((b, a));
    }

    /// Restores the link between `a` and `b`.
    pub fn heal_link(&self, a: NodeId, b: NodeId) {
        let mut cut = self.cut.write().unwrap_or_else(|e| e.into_inner());
        cut.remove(&(a, b));
        cut.remove(&(b, a));
    }

    pub fn heal(&self) {
        self.cut.write().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// A transport endpoint for `node`.
    pub fn endpoint(self: &Arc<Self>, node: NodeId) -> SimTransport {
        SimTransport { net: self.clone(), me: node }
    }
}

#[derive(Clone)]
pub struct SimTransport {
    net: Arc<SimNetwork>,
    me: NodeId,
}

impl Transport for SimTransport {
    fn call(&self, to: NodeId, frame: Frame, timeout: Duration) -> BoxFuture<'static, Result<Vec<u8>, NetError>> {
        let net = self.net.clone();
        let me = self.me;
        Box::pin(async move {
            let blocked = net.cut.read().unwrap_or_else(|e| e.into_inner()).contains(&(me, to))
                || net.down.read().unwrap_or_else(|e| e.into_inner()).contains(&me);
            let h = net.handlers.read().unwrap_or_else(|e| e.into_inner()).get(&to).cloned();
            match (blocked, h) {
                (false, Some(h)) => {
                    let fut = tokio::spawn(h.handle(me, frame));
                    match tokio::time::timeout(timeout, fut).await {
                        Ok(Ok(b)) => Ok(b),
                        Ok(Err(e)) => Err(NetError::Unreachable(to, e.to_string())),
                        Err(_) => Err(NetError::Timeout(to)),
                    }
                }
                _ => {
                    // An unreachable peer looks like a timeout, as on a real network, but
                    // without burning the whole budget in tests.
                    tokio::time::sleep(timeout.min(Duration::from_millis(50))).await;
                    Err(NetError::Unreachable(to, "simulated partition".into()))
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers every request with the serving node's id.
    struct WhoAmI(NodeId);

    impl Handler for WhoAmI {
        fn handle(&self, _from: NodeId, _frame: Frame) -> BoxFuture<'static, Vec<u8>> {
            let id = self.0;
            Box::pin(async move { id.to_be_bytes().to_vec() })
        }
    }

    async fn node(id: NodeId) -> (Arc<TcpTransport>, String) {
        let t = TcpTransport::new();
        t.set_node_id(id);
        t.set_handler(Arc::new(WhoAmI(id)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        t.serve(listener);
        (t, addr)
    }

    fn frame() -> Frame {
        Frame { service: Service::Admin, range_id: 0, body: Vec::new() }
    }

    #[tokio::test]
    async fn a_connection_is_served_only_by_the_node_it_was_meant_for() {
        let (a, _) = node(1).await;
        let (_b, b_addr) = node(2).await;
        a.set_addr(2, b_addr.clone());
        let t = Duration::from_secs(2);
        assert_eq!(a.call(2, frame(), t).await.unwrap(), 2u64.to_be_bytes());
        // A process at the address of node 3 that is not node 3 (its store was wiped: no id
        // yet, or a new one) refuses what is meant for node 3.
        let (wiped, wiped_addr) = node(0).await;
        a.set_addr(3, wiped_addr.clone());
        assert!(matches!(a.call(3, frame(), t).await, Err(NetError::Unreachable(3, _))));
        wiped.set_node_id(4);
        assert!(matches!(a.call(3, frame(), t).await, Err(NetError::Unreachable(3, _))));
        // Calls that name no node (join, init) reach whoever is there.
        assert_eq!(a.call_addr(&wiped_addr, frame(), t).await.unwrap(), 0u64.to_be_bytes());
        a.set_addr(4, wiped_addr);
        assert_eq!(a.call(4, frame(), t).await.unwrap(), 0u64.to_be_bytes());
    }
}
