//! Reads of a key span that may cover many ranges, for [`crate::txn::Txn`].
//!
//! A span is cut at range boundaries into pieces, one per range, each read from that range's
//! leaseholder. [`scan_parallel`] sends up to [`PARALLEL_SCANS`] pieces at once and returns them
//! in key order; [`scan_seq`] goes one range after another and can stop at a row limit.
//!
//! Invariants:
//! - Every piece is read at the one timestamp given, so the pieces together are one consistent
//!   snapshot, however many ranges they span and in whatever order they answer.
//! - The pieces tile the span read: each starts where the one before it ended (a range that
//!   split or moved meanwhile is looked up again and read on from the same key).
//! - A piece that meets another transaction's intent settles it (`dist_txn::push`) and is read
//!   again; nothing is returned from a read that met an intent.
//!
//! Not handled: a limited scan is never parallel (it may stop in its first range, and reading
//! ahead would waste work on every page of a paginated read).

use crate::dist_txn;
use crate::node::Node;
use futures::StreamExt;
use meridian_types::keys::{self, KEY_MAX};
use meridian_types::kv::{KvRequest, KvResponse, ReadOp, ReadRequest, ReadResult};
use meridian_types::{KvError, RangeDescriptor, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Most ranges of one scan read at once.
pub const PARALLEL_SCANS: usize = 32;

pub type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// What was read from one range: rows of `[start, read_to)`.
pub struct Piece {
    /// The range read, or `None` past the end of the last range (nothing to read there).
    pub desc: Option<RangeDescriptor>,
    pub start: Vec<u8>,
    /// Where reading stopped: the end of the range or of the span, or the key after the last row
    /// when the limit stopped it.
    pub read_to: Vec<u8>,
    pub rows: Rows,
}

/// The fixed parameters of one transaction's reads.
#[derive(Clone)]
pub struct ReadAt {
    pub node: Arc<Node>,
    pub deadline: Instant,
    /// `None` lets the first leaseholder choose; the timestamp it chose comes back with the piece.
    pub ts: Option<Timestamp>,
    pub uncertainty: Option<Timestamp>,
}

/// Reads the range holding `start`, up to `end` or that range's end, at most `limit` rows (0: all).
/// Returns the piece and the timestamp it was read at.
pub async fn read_one(at: &ReadAt, start: &[u8], end: &[u8], limit: u64) -> Result<(Piece, Timestamp), KvError> {
    let node = &at.node;
    loop {
        let desc = match node.router.lookup(start, at.deadline).await {
            Ok(d) => d,
            // A scan past the end of the last range simply ends.
            Err(KvError::RangeNotFound { range_id: 0 }) if start > [keys::TABLE_PREFIX].as_slice() => {
                let piece = Piece { desc: None, start: start.to_vec(), read_to: KEY_MAX.to_vec(), rows: vec![] };
                return Ok((piece, at.ts.unwrap_or_else(|| node.hlc.now())));
            }
            Err(e) => return Err(e),
        };
        let span_end = end.min(desc.end_key.as_slice()).to_vec();
        let op = ReadOp::Scan { start: start.to_vec(), end: span_end.clone(), limit };
        let req = KvRequest::Read(ReadRequest { range_id: desc.range_id, ts: at.ts, uncertainty_limit: at.uncertainty, ops: vec![op] });
        match node.router.send(&desc, req, at.deadline).await {
            Ok(KvResponse::Read(r)) => {
                node.hlc.update(r.ts);
                let Some(ReadResult::Scan { rows, resume }) = r.results.into_iter().next() else {
                    return Err(KvError::Internal("unexpected read result".into()));
                };
                let read_to = resume.unwrap_or(span_end);
                return Ok((Piece { desc: Some(desc), start: start.to_vec(), read_to, rows }, r.ts));
            }
            Ok(_) => return Err(KvError::Internal("unexpected response".into())),
            // The range changed (split) since the router's view: look it up again shortly (a
            // meta record may lag the split for a moment).
            Err(KvError::KeyOutOfRange { .. }) if Instant::now() < at.deadline => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // Another transaction's intent at or below the read: learn its outcome first.
            Err(KvError::WriteIntent { key, txn }) => dist_txn::push(node, at.deadline, &key, &txn).await?,
            Err(e) => return Err(e),
        }
    }
}

/// Reads `[start, end)` range after range, stopping once `limit` rows were read (0: no limit).
/// The timestamp must be fixed (`at.ts`), or the caller must use [`read_one`] first.
pub async fn scan_seq(at: &ReadAt, start: Vec<u8>, end: &[u8], limit: u64) -> Result<Vec<Piece>, KvError> {
    let mut pieces = Vec::new();
    let mut cursor = start;
    let mut got = 0u64;
    while cursor.as_slice() < end {
        let page = if limit == 0 { 0 } else { limit - got };
        let (piece, _) = read_one(at, &cursor, end, page).await?;
        got += piece.rows.len() as u64;
        cursor = piece.read_to.clone();
        let past_last = piece.desc.is_none();
        pieces.push(piece);
        if past_last || (limit != 0 && got >= limit) {
            break;
        }
    }
    Ok(pieces)
}

/// Reads all of `[start, end)` at `at.ts` (which must be set), up to [`PARALLEL_SCANS`] ranges
/// at once; the pieces come back in key order.
pub async fn scan_parallel(at: &ReadAt, start: Vec<u8>, end: &[u8]) -> Result<Vec<Piece>, KvError> {
    debug_assert!(at.ts.is_some(), "a parallel scan needs a fixed timestamp");
    // Cut the span at the boundaries of the ranges the router knows (its cache, filled a batch
    // of descriptors at a time). A boundary that moved is handled inside each piece.
    let mut cuts: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut cursor = start;
    while cursor.as_slice() < end {
        let piece_end = match at.node.router.lookup(&cursor, at.deadline).await {
            Ok(d) => end.min(d.end_key.as_slice()).to_vec(),
            Err(KvError::RangeNotFound { range_id: 0 }) => end.to_vec(),
            Err(e) => return Err(e),
        };
        cuts.push((std::mem::replace(&mut cursor, piece_end.clone()), piece_end));
    }
    let mut out = Vec::with_capacity(cuts.len());
    let mut results = futures::stream::iter(cuts).map(|(s, e)| async move { scan_seq(at, s, &e, 0).await }).buffered(PARALLEL_SCANS);
    while let Some(pieces) = results.next().await {
        out.extend(pieces?);
    }
    Ok(out)
}
