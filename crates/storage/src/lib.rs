//! The storage engine: one RocksDB per node, a few column families, group-committed fsync, and
//! MVCC reads and writes over the replicated keyspace.
//!
//! Column families (never one per range; per-range data is prefixed by the range id):
//! - `raft_log`: Raft entries, key `range_id | index` (big-endian).
//! - `raft_meta`: vote, last purged log id, committed id, replica id, tombstone: unreplicated.
//! - `range_meta`: applied log id, membership and range state, written atomically with the data
//!   each applied entry changes.
//! - `data`: MVCC versions of replicated keys (see [`mvcc`]).
//!
//! Durability: writes go to RocksDB unsynced (so they are readable at once) and durability is
//! obtained through the node-wide [`Syncer`], which does one WAL fsync for everything pending and
//! then completes every waiter. All column families share the WAL, so one fsync covers the Raft
//! log and the state machine of every range, and the WAL order makes the state machine a prefix
//! of the synced log after a crash. RocksDB types never leave this crate.

pub mod engine;
pub mod mvcc;
pub mod syncer;

pub use engine::{Batch, Cf, Engine};
pub use syncer::Syncer;

/// A storage failure. Always fatal for the operation; the caller decides whether the replica can
/// go on.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("rocksdb: {0}")]
    Rocks(String),
    #[error("corrupt value: {0}")]
    Corrupt(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl From<StorageError> for std::io::Error {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Io(e) => e,
            other => std::io::Error::other(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, StorageError>;
