//! One replicated range: the state machine every replica applies ([`fsm`]), the leaseholder's
//! request evaluation ([`replica`]), and the node's set of replicas answering KV requests
//! ([`store`]), splitting a range in two ([`split`]) and merging two into one ([`merge`]).
//!
//! The path of a one-range transaction: the gateway reads at a timestamp chosen by the
//! leaseholder ([`replica::Replica::read`]: read barrier through Raft, timestamp-cache bump, wait
//! for in-flight writes at or below the read timestamp, MVCC read); then sends its writes with
//! the spans it read ([`replica::Replica::write`]: proposal timestamp above the timestamp cache,
//! proposed through Raft); every replica applies it in log order ([`fsm::RangeFsm`]): validates
//! that nothing in the read spans changed since the read timestamp, picks the commit timestamp,
//! writes the MVCC versions. Validation at apply makes the commit serializable and
//! deterministic on every replica.
//!
//! Leases: the leaseholder is the Raft leader, and openraft's leader lease (no other leader can
//! be elected while it holds) makes its local reads linearizable; when the lease is not known to
//! be valid, the read barrier falls back to a quorum round (read index).
//!
//! Not handled yet: closed timestamps and follower reads, MVCC garbage collection.

pub mod fsm;
pub mod merge;
pub mod replica;
pub mod split;
pub mod store;

pub use fsm::{RangeCommand, RangeFsm};
pub use replica::Replica;
pub use split::SplitCmd;
pub use store::Store;
