//! The KV layer's errors, classified by what the caller must do.
//!
//! - Routing errors (`NotLeaseholder`, `RangeNotFound`, `KeyOutOfRange`) are handled by the
//!   gateway's router: refresh its cache and retry, invisibly to the client.
//! - `WriteConflict` and `ReadUncertainty` are retryable transaction errors: the gateway retries
//!   the whole transaction while nothing has been returned, then reports SQLSTATE 40001.
//! - `Unavailable` and `Timeout` reach the client (503 / 57014) once the deadline passes;
//!   `Ambiguous` (40003) when a write's outcome cannot be known.
//! - `Internal` is a bug or a storage failure: logged, reported as 500 (XX000), never client-caused.

use crate::{NodeId, RangeId, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum KvError {
    #[error("range r{range_id}: not the leaseholder (leaseholder hint: {leaseholder:?})")]
    NotLeaseholder { range_id: RangeId, leaseholder: Option<NodeId> },
    #[error("range r{range_id} not found on this node")]
    RangeNotFound { range_id: RangeId },
    #[error("key outside the span of range r{range_id}")]
    KeyOutOfRange { range_id: RangeId },
    #[error("transaction conflict: {0}")]
    WriteConflict(String),
    #[error("read uncertainty: a value at {ts} may have been written before the read")]
    ReadUncertainty { ts: Timestamp },
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("deadline exceeded")]
    Timeout,
    /// A write was sent but its outcome is unknown (the leaseholder died or stopped answering):
    /// it may or may not have committed.
    #[error("result is ambiguous: {0}")]
    Ambiguous(String),
    /// The request met a write intent or read lock of another, unfinished transaction. The
    /// gateway resolves it (waits for, or aborts, that transaction) and retries.
    #[error("conflict with the unfinished transaction {:032x}", txn.id)]
    WriteIntent { key: Vec<u8>, txn: crate::kv::TxnMeta },
    /// A multi-range transaction's record was aborted (by a transaction it blocked).
    #[error("transaction aborted: {0}")]
    TxnAborted(String),
    /// A write conditional on its key being absent found a live value there.
    #[error("key already exists")]
    KeyExists { key: Vec<u8> },
    #[error("internal error: {0}")]
    Internal(String),
}

impl KvError {
    /// Whether the router should refresh its view of the range and try again.
    pub fn is_routing(&self) -> bool {
        matches!(self, KvError::NotLeaseholder { .. } | KvError::RangeNotFound { .. } | KvError::KeyOutOfRange { .. })
    }

    /// Whether the whole transaction may be retried from scratch.
    pub fn is_txn_retryable(&self) -> bool {
        matches!(self, KvError::WriteConflict(_) | KvError::ReadUncertainty { .. } | KvError::WriteIntent { .. } | KvError::TxnAborted(_))
    }
}
