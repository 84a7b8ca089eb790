//! The KV requests a gateway sends to a range's leaseholder, and their answers.
//!
//! A transaction that touches one range is a sequence of `Read`s at one timestamp followed by
//! at most one `Write` carrying the spans it read: the leaseholder proposes it through Raft and
//! every replica, applying it in log order, checks that nothing was written in those spans after
//! the read timestamp (optimistic validation) before writing. Validation happens at apply, so it
//! is deterministic on every replica and the commit is serializable.
//!
//! A transaction that touches several ranges commits in two phases instead (see
//! `meridian_node::dist_txn`): a `Prepare` on every range it read or wrote validates its reads,
//! lays *write intents* on the keys it writes and *read locks* on the spans it read; an `EndTxn`
//! on its anchor range (the range of its first written key) records it committed (or aborted);
//! `Resolve` then turns intents into versions at the commit timestamp and releases the locks.

use crate::{KvError, RangeId, Timestamp};
use serde::{Deserialize, Serialize};

/// A half-open key span `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub start: Vec<u8>,
    pub end: Vec<u8>,
}

impl Span {
    pub fn new(start: Vec<u8>, end: Vec<u8>) -> Self {
        Span { start, end }
    }

    pub fn point(key: &[u8]) -> Self {
        Span { start: key.to_vec(), end: crate::keys::key_next(key) }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadOp {
    Get {
        key: Vec<u8>,
    },
    /// Up to `limit` newest-visible rows of `[start, end)` in key order (`0` = no limit).
    Scan {
        start: Vec<u8>,
        end: Vec<u8>,
        limit: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadResult {
    Get(Option<Vec<u8>>),
    /// Rows in key order; `resume` is where to continue when the limit cut the scan short.
    Scan {
        rows: Vec<(Vec<u8>, Vec<u8>)>,
        resume: Option<Vec<u8>>,
    },
}

/// A read of one range. With `ts: None` the leaseholder picks the timestamp (its clock, after it
/// knows it has applied everything committed), and the response says which one it picked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRequest {
    pub range_id: RangeId,
    pub ts: Option<Timestamp>,
    /// Values above `ts` but at or below this limit may have been written before the read began
    /// (clock offset between nodes): seeing one makes the read fail with `ReadUncertainty`.
    pub uncertainty_limit: Option<Timestamp>,
    pub ops: Vec<ReadOp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadResponse {
    pub ts: Timestamp,
    pub results: Vec<ReadResult>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    pub key: Vec<u8>,
    /// `None` deletes the key (writes a tombstone version).
    pub value: Option<Vec<u8>>,
    /// Write only if the key has no live value when the write applies; otherwise the whole
    /// request fails with `KvError::KeyExists` and changes nothing. An INSERT's primary-key
    /// check rides on its write this way instead of costing a read round trip first.
    pub absent: bool,
}

impl Write {
    pub fn put(key: Vec<u8>, value: Vec<u8>) -> Write {
        Write { key, value: Some(value), absent: false }
    }
}

/// The write half of a one-range transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteRequest {
    pub range_id: RangeId,
    /// The timestamp the transaction read at; `None` for blind writes.
    pub read_ts: Option<Timestamp>,
    /// Everything the transaction read in this range; must be unchanged since `read_ts`.
    pub read_spans: Vec<Span>,
    pub writes: Vec<Write>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteResponse {
    pub commit_ts: Timestamp,
}

/// Who holds a write intent or read lock: enough for anyone who meets it to find the
/// transaction's record and, if its coordinator is gone, abort it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMeta {
    pub id: u128,
    /// A key of the range that holds the transaction's record.
    pub anchor_key: Vec<u8>,
    /// Wall-clock milliseconds after which a transaction without a record may be aborted by
    /// anyone it blocks (its coordinator promised to have committed by then, or died).
    pub expires_ms: u64,
}

/// A provisional write of a transaction in its prepare phase, stored in place of a version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub txn: TxnMeta,
    /// The prepare timestamp: the commit timestamp will be at or above it.
    pub prepare_ts: Timestamp,
    /// `None`: the transaction deletes the key.
    pub value: Option<Vec<u8>>,
}

/// What a transaction record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnStatus {
    /// No record: the coordinator is still working (or died before its expiry).
    Pending,
    Committed(Timestamp),
    Aborted,
}

/// A transaction record, as its anchor range holds it: a `Pending` record exists only while its
/// coordinator heartbeats (`expires_ms` is when it stops counting as alive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRecord {
    pub status: TxnStatus,
    pub expires_ms: u64,
}

/// Phase one of a multi-range transaction on one range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrepareRequest {
    pub range_id: RangeId,
    pub txn: TxnMeta,
    pub read_ts: Option<Timestamp>,
    pub read_spans: Vec<Span>,
    pub writes: Vec<Write>,
}

/// Turns a finished transaction's intents on `keys` into versions (or removes them) and
/// releases its read locks on the range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveRequest {
    pub range_id: RangeId,
    pub txn_id: u128,
    /// `Committed(ts)` or `Aborted`.
    pub status: TxnStatus,
    pub keys: Vec<Vec<u8>>,
    /// Also forget the transaction's record (its anchor range, once every other range of the
    /// transaction is resolved).
    pub forget_record: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvRequest {
    Read(ReadRequest),
    Write(WriteRequest),
    /// Marks a range dropped (its table was dropped): from then on every replica refuses
    /// reads and writes with `RangeNotFound`, whatever a gateway's cached catalog says.
    MarkDropped {
        range_id: RangeId,
    },
    Prepare(PrepareRequest),
    Resolve(ResolveRequest),
    /// Writes the record of transaction `txn` on its anchor range: committed at `commit` or, with
    /// `None`, aborted. The first final record written wins; the answer is the record. An abort
    /// (from a transaction it blocked, whose clock says `now_ms`) is refused while a heartbeat
    /// keeps the record alive past `now_ms`.
    EndTxn {
        range_id: RangeId,
        txn_id: u128,
        commit: Option<Timestamp>,
        now_ms: u64,
    },
    /// The coordinator is alive until `expires_ms` (creates a pending record if none exists).
    Heartbeat {
        range_id: RangeId,
        txn_id: u128,
        expires_ms: u64,
    },
    /// A transaction's record (`Pending`, expired, when there is none).
    QueryTxn {
        range_id: RangeId,
        txn_id: u128,
    },
    /// The range's descriptor and size, from its leaseholder (`SHOW RANGES`).
    RangeStats {
        range_id: RangeId,
    },
    /// Raise the range's schema fence to a timestamp above everything it served: a write whose
    /// transaction read (or began) below it fails from then on (schema changes).
    Fence {
        range_id: RangeId,
    },
    /// Split the range at `split_key` (strictly inside it) into itself and `new_range_id`, whose
    /// replicas take ids from `replica_ids` (at least one per current replica).
    Split {
        range_id: RangeId,
        split_key: Vec<u8>,
        new_range_id: RangeId,
        replica_ids: Vec<crate::ReplicaId>,
        /// Asked for by `SPLIT AT`: never merged back automatically.
        sticky: bool,
    },
    /// Freeze the range for a merge into `lhs_range_id` (which ends where it starts, at
    /// generation `lhs_generation`, and starts at `lhs_start`): from then on it serves nothing
    /// until the merge completes or is abandoned. Answered with [`Subsumed`].
    Subsume {
        range_id: RangeId,
        lhs_range_id: RangeId,
        lhs_start: Vec<u8>,
        lhs_generation: u64,
    },
    /// Answers once this node's replica of the range has applied `index`, durably. Sent to each
    /// replica's node, not to the leaseholder.
    WaitApplied {
        range_id: RangeId,
        index: u64,
    },
    /// Absorb the frozen range on the right into this one (at generation `lhs_generation`).
    Merge {
        range_id: RangeId,
        lhs_generation: u64,
        rhs: Box<Subsumed>,
    },
    /// Settle a merge of `lhs_range_id` (at `lhs_generation`) with the range starting at
    /// `rhs_start`, sent to the range now holding `lhs_start`: it either happened (this range
    /// covers `rhs_start`) or never will (the left range's generation is raised past it).
    ResolveMerge {
        range_id: RangeId,
        lhs_range_id: RangeId,
        lhs_generation: u64,
        rhs_start: Vec<u8>,
    },
    /// Make the range's start, which must be `start_key`, an ordinary boundary (`UNSPLIT AT`);
    /// answered with the new descriptor.
    Unsplit {
        range_id: RangeId,
        start_key: Vec<u8>,
    },
    /// Thaw a range frozen for a merge that was abandoned.
    Unfreeze {
        range_id: RangeId,
        lhs_range_id: RangeId,
        lhs_generation: u64,
    },
}

/// What a range frozen for a merge hands to the range on its left.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subsumed {
    /// Its descriptor, with its Raft members as replicas.
    pub desc: crate::RangeDescriptor,
    /// The log index of the freeze: every replica must have applied it before the merge.
    pub frozen_index: u64,
    /// At or above every timestamp the range served a read at or committed a write at.
    pub freeze_ts: Timestamp,
    pub fence_ts: Timestamp,
    /// Records of transactions anchored there.
    pub txn_records: std::collections::BTreeMap<u128, TxnRecord>,
}

impl KvRequest {
    pub fn range_id(&self) -> RangeId {
        match self {
            KvRequest::Read(r) => r.range_id,
            KvRequest::Write(w) => w.range_id,
            KvRequest::MarkDropped { range_id } => *range_id,
            KvRequest::Prepare(p) => p.range_id,
            KvRequest::Resolve(r) => r.range_id,
            KvRequest::EndTxn { range_id, .. }
            | KvRequest::QueryTxn { range_id, .. }
            | KvRequest::Heartbeat { range_id, .. }
            | KvRequest::RangeStats { range_id }
            | KvRequest::Split { range_id, .. }
            | KvRequest::Subsume { range_id, .. }
            | KvRequest::WaitApplied { range_id, .. }
            | KvRequest::Merge { range_id, .. }
            | KvRequest::ResolveMerge { range_id, .. }
            | KvRequest::Unfreeze { range_id, .. }
            | KvRequest::Unsplit { range_id, .. }
            | KvRequest::Fence { range_id } => *range_id,
        }
    }

    /// Whether the request changes nothing, so it may be re-sent after a lost answer.
    pub fn is_read_only(&self) -> bool {
        matches!(self, KvRequest::Read(_) | KvRequest::QueryTxn { .. } | KvRequest::RangeStats { .. } | KvRequest::WaitApplied { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvResponse {
    Read(ReadResponse),
    Write(WriteResponse),
    Ok,
    Error(KvError),
    /// A prepare succeeded at this timestamp (the commit timestamp must be at or above it).
    Prepared(Timestamp),
    Txn(TxnRecord),
    /// The leaseholder's descriptor of its range and the bytes of every MVCC version it holds.
    RangeStats {
        desc: crate::RangeDescriptor,
        bytes: u64,
        /// Requests a second it served lately as leaseholder.
        qps: u64,
    },
    /// The range split: its new descriptor and the new range's.
    Split {
        left: crate::RangeDescriptor,
        right: crate::RangeDescriptor,
    },
    /// The range's fence is raised; its descriptor.
    Fenced {
        desc: crate::RangeDescriptor,
    },
    Subsumed(Box<Subsumed>),
    /// The merge happened: the merged range's descriptor.
    Merged {
        desc: crate::RangeDescriptor,
    },
    /// The range's descriptor after `Unsplit`.
    Unsplit {
        desc: crate::RangeDescriptor,
    },
    /// How a merge was settled (`ResolveMerge`).
    MergeOutcome {
        merged: bool,
    },
}
