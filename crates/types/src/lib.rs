//! Meridian's shared vocabulary: ids, the order-preserving key encoding and the typed map of the
//! keyspace, hybrid-logical-clock timestamps, range descriptors, the KV request/response messages
//! exchanged between gateways and leaseholders, and the error classes every layer speaks.
//!
//! Invariants:
//! - Nothing here does I/O; everything is deterministic and cheap to test.
//! - Every key Meridian stores is built by [`keys`]; nobody assembles key bytes by hand elsewhere.
//! - Errors say what the caller must do (retry, return to the user, or stop): see [`KvError`].

pub mod desc;
pub mod error;
pub mod hlc;
pub mod keys;
pub mod kv;

pub use desc::{NodeDescriptor, RangeDescriptor, ReplicaDescriptor, ReplicaKind, ZoneConfig};
pub use error::KvError;
pub use hlc::{Clock, Hlc, SystemClock, Timestamp};

/// A node (one `meridian start` process), allocated by the cluster on join; never reused.
pub type NodeId = u64;
/// A range (one Raft group), allocated from a cluster-wide counter; never reused.
pub type RangeId = u64;
/// One replica of one range; the Raft member id. Fresh for every replica, never reused, so a
/// re-added replica can never replay an old configuration (see openraft's FAQ on id reuse).
pub type ReplicaId = u64;
/// The system range: meta records, catalog, node records and id counters.
pub const SYSTEM_RANGE_ID: RangeId = 1;
