//! Node-to-node admin RPCs (service `Admin` on the shared transport): cluster bootstrap, joining,
//! node info, liveness pings, creating and destroying replicas. Encoded with postcard.

use meridian_types::{KvError, NodeDescriptor, NodeId, RangeDescriptor, ReplicaId};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AdminRequest {
    /// `meridian init`: make this node the first node of a new cluster.
    Bootstrap,
    /// A new node asks to join; the receiver allocates its id.
    Join { addr: String, http_addr: String, locality: Vec<(String, String)> },
    /// Who are you, and which nodes do you know?
    NodeInfo,
    /// Liveness probe; answered with the node's lease count.
    Ping,
    /// Create this node's replica of a new range and found its group with `members`.
    CreateRange { desc: RangeDescriptor, replica_id: ReplicaId, members: Vec<(ReplicaId, NodeId)> },
    /// Destroy this node's replica of a range (table dropped).
    DestroyReplica { range_id: u64 },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AdminResponse {
    Ok,
    Joined {
        cluster_id: String,
        node_id: NodeId,
        nodes: Vec<NodeDescriptor>,
    },
    Info {
        cluster_id: Option<String>,
        node_id: NodeId,
        nodes: Vec<NodeDescriptor>,
    },
    Error {
        message: String,
        kv: Option<KvError>,
    },
    /// The answer to `Ping`: how many ranges the node holds leases for (lease balancing), and
    /// whether it is draining (shedding its leases before it stops: give it none).
    Pong {
        leases: u64,
        draining: bool,
    },
}

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_stdvec(v).unwrap_or_default()
}

pub fn decode<T: for<'a> Deserialize<'a>>(b: &[u8]) -> Result<T, KvError> {
    postcard::from_bytes(b).map_err(|e| KvError::Internal(format!("bad message: {e}")))
}
