//! The Raft glue: everything openraft, and nothing above it sees an openraft type.
//!
//! - [`types`]: the openraft type configuration. The Raft member id is the *replica* id (fresh per
//!   replica, never reused); the member's node is recorded in [`ReplicaNode`].
//! - [`log_store`]: the Raft log and vote of every range in one RocksDB (`raft_log`, `raft_meta`),
//!   appended unsynced and made durable by the node-wide group-commit syncer.
//! - [`state_machine`]: applies committed commands through the [`Fsm`] trait the `range` crate
//!   implements, writing the data and the applied log id in one batch; builds and installs
//!   snapshots of a range's span.
//! - [`transport`]: one multiplexed connection per pair of nodes carrying every range's messages
//!   (tagged by range id) and the KV/admin RPCs of the layers above; a simulated transport with
//!   partitions for deterministic tests; optional injected latency per peer.
//! - [`host`]: hosts many groups on one node: creates replicas on demand when a leader reaches
//!   them, routes incoming Raft messages, restarts groups from the store after a restart.
//! - [`group`]: the narrow API the layers above use: propose, linearizable-read barrier,
//!   leadership, membership changes, status.
//!
//! - [`initial`]: the starting state of a new range (created, or split from another); a replica
//!   never applies its range's log from the beginning.
//!
//! - [`quiesce`]: idle groups stop ticking and wake on activity, messages or node liveness.
//!
//! Not handled yet: chunked snapshot streaming (a snapshot travels as one
//! frame), replica garbage collection after removal.

pub mod group;
pub mod host;
pub mod initial;
pub mod log_store;
pub mod network;
pub mod quiesce;
pub mod state_machine;
pub mod transport;
pub mod types;

pub use group::{Group, GroupStatus, MemberInfo, ProposeError};
pub use host::{FsmFactory, RaftHost, RaftTimings, SpanClaims};
pub use state_machine::Fsm;
pub use transport::{Frame, Handler, NetError, Service, SimNetwork, TcpTransport, Transport};
pub use types::ReplicaNode;
