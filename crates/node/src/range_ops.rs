//! Operations over every range of a key span, for the SQL layer's `TxnClient`: listing the
//! ranges (`SHOW RANGES`), raising the schema fence of a table's ranges (schema changes), and
//! writing zone configurations.
//!
//! Each walk goes range by range from the span's start, asking each range's leaseholder and
//! continuing from the end of the descriptor the range itself reports, so a meta record that lags
//! a split (see `split`) only costs a look-up again, never a range skipped or visited twice.
//! Not handled: walking ranges in parallel.

use crate::node::Node;
use crate::records::SysRecord;
use crate::txn::Txn;
use meridian_sql::{SqlError, TxnClient};
use meridian_types::keys;
use meridian_types::kv::{KvRequest, KvResponse};
use meridian_types::{KvError, ZoneConfig};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The ranges holding `[start, end)` in key order, as their leaseholders report them now.
pub async fn ranges(node: &Arc<Node>, deadline: Instant, start: &[u8], end: &[u8]) -> Result<Vec<meridian_sql::RangeInfo>, SqlError> {
    let localities: BTreeMap<u64, String> = node.router.nodes().iter().map(|n| (n.node_id, n.locality_string())).collect();
    let mut out = Vec::new();
    let mut cursor = start.to_vec();
    while cursor.as_slice() < end {
        let desc = node.router.lookup(&cursor, deadline).await?;
        let req = KvRequest::RangeStats { range_id: desc.range_id };
        let (leaseholder, desc, bytes) = match node.router.send_and_say_who(&desc, req, deadline).await {
            Ok((n, KvResponse::RangeStats { desc, bytes, .. })) => (n, desc, bytes),
            Ok((_, other)) => return Err(SqlError::Kv(KvError::Internal(format!("unexpected stats answer {other:?}")))),
            // The range moved or changed: look it up again.
            Err(KvError::KeyOutOfRange { .. } | KvError::RangeNotFound { .. }) if Instant::now() < deadline => continue,
            Err(e) => return Err(e.into()),
        };
        if !desc.contains_key(&cursor) {
            // The meta record was older than the range (a split whose record is not written
            // yet): look again shortly, the leaseholders correct it (crate::split).
            node.router.evict_span(&desc.start_key, &desc.end_key);
            pause(deadline).await?;
            continue;
        }
        let replicas = desc.replicas.iter().map(|r| r.node_id).collect();
        out.push(meridian_sql::RangeInfo {
            range_id: desc.range_id,
            start_key: desc.start_key.clone(),
            end_key: desc.end_key.clone(),
            size_bytes: bytes,
            leaseholder,
            replicas,
            localities: localities.clone(),
        });
        cursor = desc.end_key;
    }
    Ok(out)
}

/// Raises the schema fence of every range of table `table_id` (`RangeCommand::Fence`).
pub async fn fence_table(node: &Arc<Node>, deadline: Instant, table_id: u64) -> Result<(), SqlError> {
    let (start, end) = keys::table_span(table_id);
    let mut cursor = start;
    while cursor < end {
        let desc = node.router.lookup(&cursor, deadline).await?;
        match node.router.send(&desc, KvRequest::Fence { range_id: desc.range_id }, deadline).await {
            // The range's own descriptor says where the next one starts.
            Ok(KvResponse::Fenced { desc }) if desc.contains_key(&cursor) => cursor = desc.end_key,
            Ok(KvResponse::Fenced { desc }) => {
                node.router.evict_span(&desc.start_key, &desc.end_key);
                pause(deadline).await?;
            }
            Ok(other) => return Err(SqlError::Kv(KvError::Internal(format!("unexpected fence answer {other:?}")))),
            Err(KvError::KeyOutOfRange { .. } | KvError::RangeNotFound { .. }) => pause(deadline).await?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Applies `change` to the zone configuration record at each of `targets` (one transaction
/// each); returns the first target's configuration afterwards.
pub async fn configure_zone(
    node: &Arc<Node>,
    deadline: Instant,
    targets: Vec<Vec<u8>>,
    change: ZoneConfig,
) -> Result<ZoneConfig, SqlError> {
    let mut first = None;
    for key in targets {
        let merged = loop {
            let mut t = Txn::new(node.clone(), deadline, None);
            let cur = match t.get(&key).await? {
                Some(b) => ZoneConfig::decode_record(&b)?,
                None => ZoneConfig::default(),
            };
            let merged = meridian_sql::zone::merge_zone(cur, change)?;
            t.put(key.clone(), merged.encode_record());
            match t.commit().await {
                Ok(_) => break merged,
                Err(SqlError::Kv(e)) if e.is_txn_retryable() && Instant::now() < deadline => continue,
                Err(e) => return Err(e),
            }
        };
        first.get_or_insert(merged);
    }
    Ok(first.unwrap_or_default())
}

/// A short pause before looking a range up again, or a timeout past the deadline.
async fn pause(deadline: Instant) -> Result<(), SqlError> {
    let d = Duration::from_millis(50);
    if Instant::now() + d >= deadline {
        return Err(SqlError::Kv(KvError::Timeout));
    }
    tokio::time::sleep(d).await;
    Ok(())
}
