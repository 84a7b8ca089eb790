//! The KV requests a gateway sends to a range's leaseholder, and their answers.
//!
//! A transaction that touches one range is a sequence of `Read`s at one timestamp followed by
//! at most one `Write` carrying the spans it read: the leaseholder proposes it through Raft and
//! every replica, applying it in log order, checks that nothing was written in those spans after
//! the read timestamp (optimistic validation) before writing. Validation happens at apply, so it
//! is deterministic on every replica and the commit is serializable.

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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvRequest {
    Read(ReadRequest),
    Write(WriteRequest),
    /// Marks a range dropped (its table was dropped): from then on every replica refuses
    /// reads and writes with `RangeNotFound`, whatever a gateway's cached catalog says.
    MarkDropped {
        range_id: RangeId,
    },
}

impl KvRequest {
    pub fn range_id(&self) -> RangeId {
        match self {
            KvRequest::Read(r) => r.range_id,
            KvRequest::Write(w) => w.range_id,
            KvRequest::MarkDropped { range_id } => *range_id,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvResponse {
    Read(ReadResponse),
    Write(WriteResponse),
    Ok,
    Error(KvError),
}
