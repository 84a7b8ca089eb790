//! Splitting ranges from a gateway, and keeping meta records true to the ranges.
//!
//! [`split_at`] asks the leaseholder of the range holding a key to split there (the split itself
//! is a Raft command of that range: `meridian_range::split`), then records both resulting
//! descriptors in the meta records. Meta records are a routing index whose truth is each range's
//! own descriptor, so they are written with [`ensure_meta`] (a record is replaced only by a
//! descriptor of a higher generation: every range that comes to end at a key descends from the
//! ones that ended there before and has a higher generation), and each leaseholder re-checks the
//! record of every range it leads whenever that range's generation changes
//! ([`MetaUpkeep`]). A crash between a split and its meta records, at any point, therefore heals
//! within about a second of a leaseholder being up; until then a gateway that routes by the old
//! record is answered `KeyOutOfRange` and looks the key up again.
//!
//! A dropped table's ranges never get meta records back: DROP TABLE writes a marker
//! (`keys::dropped_table_key`) in the transaction that deletes them, and [`ensure_meta`] reads it
//! in its own.
//!
//! [`SplitQueue`]: each leaseholder splits the ranges it leads that outgrew their table's
//! `range_max_bytes` (zone configuration), at the key that halves their bytes, and those that
//! served more than `--split-qps` requests a second at two looks in a row (a second apart), at
//! the median of a sample of the keys their requests touched (so each side gets about half the
//! load; the new range elects its own leader, usually elsewhere). A range is
//! measured (a scan) when first seen and then whenever an eighth of `range_max_bytes` was
//! written through this leaseholder since, so idle ranges cost nothing and busy ones a scan per
//! eighth of their size.

use crate::node::Node;
use crate::records::SysRecord;
use crate::txn::{Txn, allocate_ids};
use meridian_sql::{SqlError, TxnClient};
use meridian_types::keys;
use meridian_types::kv::{KvRequest, KvResponse};
use meridian_types::{KvError, RangeDescriptor, RangeId, SYSTEM_RANGE_ID, ZoneConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Replica ids handed to a split: more than a range ever has replicas (unused ones are skipped;
/// ids are never reused anyway).
const SPLIT_REPLICA_IDS: u64 = 7;

/// Splits the range holding `key` so that a range starts exactly at `key` (nothing to do if one
/// already does); `sticky` (a `SPLIT AT`) keeps the merge queue from merging it back. Retries while the range is busy with unfinished transactions or moving, until
/// `deadline`.
pub async fn split_at(node: &Arc<Node>, key: &[u8], sticky: bool, deadline: Instant) -> Result<(), SqlError> {
    let mut pause = Duration::from_millis(20);
    loop {
        let desc = node.router.lookup(key, deadline).await?;
        if desc.start_key == key {
            return Ok(());
        }
        // Ids and meta records are system-range transactions: one that meets a moment of
        // unavailability (an ambiguous commit, a leader change) is retried like the split
        // itself, since both are idempotent (a lost id is never reused; meta records go by
        // generation), rather than failing a long SPLIT AT halfway.
        let ids = async {
            let new_range_id = allocate_ids(node, "range", 1, deadline).await?;
            let first = allocate_ids(node, "replica", SPLIT_REPLICA_IDS, deadline).await?;
            Ok::<_, SqlError>((new_range_id, first))
        };
        let (new_range_id, first) = match ids.await {
            Ok(ids) => ids,
            Err(e) if transient(&e) && Instant::now() + pause < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
                continue;
            }
            Err(e) => return Err(e),
        };
        let req = KvRequest::Split {
            range_id: desc.range_id,
            split_key: key.to_vec(),
            new_range_id,
            replica_ids: (first..first + SPLIT_REPLICA_IDS).collect(),
            sticky,
        };
        let res = node.router.send(&desc, req, deadline).await;
        match res {
            Ok(KvResponse::Split { left, right }) => {
                tracing::info!(node = node.node_id(), range = left.range_id, new_range = right.range_id, "split");
                node.router.evict_span(&left.start_key, &right.end_key);
                for desc in [&left, &right] {
                    loop {
                        match ensure_meta(node, desc, deadline).await {
                            Ok(_) => break,
                            Err(e) if transient(&e) && Instant::now() + pause < deadline => {
                                tokio::time::sleep(pause).await;
                                pause = (pause * 2).min(Duration::from_millis(500));
                            }
                            // Meta upkeep by the leaseholders heals a record left stale.
                            Err(e) => return Err(e),
                        }
                    }
                }
                node.router.evict_span(&left.start_key, &right.end_key);
                return Ok(());
            }
            Ok(other) => return Err(SqlError::Kv(KvError::Internal(format!("unexpected split answer {other:?}")))),
            // The range changed under us, or may have split (an ambiguous answer): look again.
            Err(KvError::KeyOutOfRange { .. } | KvError::RangeNotFound { .. } | KvError::Ambiguous(_)) => {
                node.router.evict_span(&desc.start_key, &desc.end_key);
            }
            // Busy with unfinished transactions, or electing: wait a little.
            Err(KvError::Unavailable(_)) => {}
            Err(e) => return Err(e.into()),
        }
        if Instant::now() + pause >= deadline {
            return Err(SqlError::Kv(KvError::Timeout));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Makes the boundary at `key` an ordinary one (`UNSPLIT AT`): the merge queue may then merge
/// the range starting there into the one before it. An error (22023) if no range starts there.
pub async fn unsplit_at(node: &Arc<Node>, key: &[u8], deadline: Instant) -> Result<(), SqlError> {
    loop {
        let desc = node.router.lookup(key, deadline).await?;
        if desc.start_key != key {
            return Err(SqlError::user("22023", "UNSPLIT AT: no range starts at this key"));
        }
        match node.router.send(&desc, KvRequest::Unsplit { range_id: desc.range_id, start_key: key.to_vec() }, deadline).await {
            Ok(KvResponse::Unsplit { desc }) => {
                ensure_meta(node, &desc, deadline).await?;
                node.router.evict_span(&desc.start_key, &desc.end_key);
                return Ok(());
            }
            Ok(other) => return Err(SqlError::Kv(KvError::Internal(format!("unexpected unsplit answer {other:?}")))),
            Err(KvError::KeyOutOfRange { .. } | KvError::RangeNotFound { .. }) if Instant::now() < deadline => {
                node.router.evict_span(&desc.start_key, &desc.end_key);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A failure of a system-range transaction that a retry may not meet.
fn transient(e: &SqlError) -> bool {
    matches!(
        e,
        SqlError::Kv(KvError::Ambiguous(_) | KvError::Unavailable(_) | KvError::NotLeaseholder { .. } | KvError::RangeNotFound { .. })
    ) || matches!(e, SqlError::Kv(k) if k.is_txn_retryable())
}

/// Makes the meta record at `desc.end_key` hold `desc`, unless it holds a newer descriptor or
/// the range's table was dropped, and deletes the records of older ranges that ended inside
/// `desc`'s span (ranges it absorbed by merges). Returns whether the record now holds `desc`'s
/// generation or a newer one.
pub async fn ensure_meta(node: &Arc<Node>, desc: &RangeDescriptor, deadline: Instant) -> Result<bool, SqlError> {
    if desc.range_id == SYSTEM_RANGE_ID {
        return Ok(true);
    }
    let key = keys::meta_key(&desc.end_key);
    loop {
        let mut t = Txn::new(node.clone(), deadline, None);
        if let Some(table) = desc.table_id
            && t.get(&keys::dropped_table_key(table)).await?.is_some()
        {
            return Ok(false);
        }
        let stored = match t.get(&key).await? {
            Some(b) => Some(RangeDescriptor::decode_record(&b)?),
            None => None,
        };
        // A record holding `desc` was written with the deletions below, in one transaction.
        if stored.as_ref().is_some_and(|s| s.generation > desc.generation || s == desc) {
            return Ok(true);
        }
        // Records ending strictly inside the span: ranges merged into this one, unless one is
        // newer (then `desc` is stale: it split again since).
        let mut inner_start = keys::meta_key(&desc.start_key);
        inner_start.push(0);
        let mut absorbed = Vec::new();
        for (k, v) in t.scan(&inner_start, &key, 0).await? {
            if RangeDescriptor::decode_record(&v)?.generation > desc.generation {
                return Ok(true);
            }
            absorbed.push(k);
        }
        for k in absorbed {
            t.delete(k);
        }
        t.put(key.clone(), desc.encode_record());
        match t.commit().await {
            Ok(_) => return Ok(true),
            Err(SqlError::Kv(e)) if e.is_txn_retryable() && Instant::now() < deadline => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The generation of each led range whose meta record was last found true, so the leaseholder
/// checks a record only when its range changed (or after a restart).
#[derive(Default)]
pub struct MetaUpkeep {
    checked: Mutex<HashMap<RangeId, u64>>,
}

impl MetaUpkeep {
    /// Checks the meta record of each range this node leads whose descriptor changed since.
    pub async fn run(&self, node: &Arc<Node>, led: &[Arc<meridian_range::Replica>]) {
        for r in led {
            let Some((generation, _)) = r.fsm().live_generation() else { continue };
            let seen = self.checked.lock().unwrap_or_else(|e| e.into_inner()).get(&r.group().range_id()).copied();
            if seen == Some(generation) {
                continue;
            }
            let Some(desc) = r.fsm().live_descriptor() else { continue };
            let deadline = Instant::now() + Duration::from_secs(5);
            match ensure_meta(node, &desc, deadline).await {
                Ok(_) => {
                    self.checked.lock().unwrap_or_else(|e| e.into_inner()).insert(desc.range_id, desc.generation);
                }
                Err(e) => tracing::debug!(range = desc.range_id, error = %e, "meta record check failed; retrying later"),
            }
        }
    }
}

/// Splits led ranges that outgrew `range_max_bytes`, or whose load is over `--split-qps`
/// (module docs).
#[derive(Default)]
pub struct SplitQueue {
    /// Per range: bytes written through this leaseholder when it was last measured.
    measured: Mutex<HashMap<RangeId, u64>>,
    /// Per range: requests served when last looked at, when, and whether it was over the QPS
    /// threshold then.
    load: Mutex<HashMap<RangeId, (u64, Instant, bool)>>,
    /// Zone configurations by table, with when they were read (re-read every 10 s).
    zones: Mutex<HashMap<u64, (Instant, ZoneConfig)>>,
}

impl SplitQueue {
    /// The zone configuration of `table` (cached for 10 s).
    pub async fn zone(&self, node: &Arc<Node>, table: u64) -> ZoneConfig {
        if let Some((at, z)) = self.zones.lock().unwrap_or_else(|e| e.into_inner()).get(&table)
            && at.elapsed() < Duration::from_secs(10)
        {
            return *z;
        }
        let mut t = Txn::new(node.clone(), Instant::now() + Duration::from_secs(5), None);
        let z = match t.get(&keys::zone_key(table)).await {
            Ok(Some(b)) => ZoneConfig::decode_record(&b).unwrap_or_default(),
            _ => ZoneConfig::default(),
        };
        self.zones.lock().unwrap_or_else(|e| e.into_inner()).insert(table, (Instant::now(), z));
        z
    }

    /// Whether `r` served more than `threshold` requests a second since the last look, and did
    /// at the look before too (a sustained load, not a burst).
    fn hot(&self, r: &meridian_range::Replica, threshold: u64) -> bool {
        let (now, served) = (Instant::now(), r.requests_served());
        let mut load = self.load.lock().unwrap_or_else(|e| e.into_inner());
        let range = r.group().range_id();
        let (last, at, was_hot) = load.get(&range).copied().unwrap_or((served, now, false));
        let secs = now.duration_since(at).as_secs_f64();
        let hot = secs > 0.5 && served.saturating_sub(last) as f64 / secs > threshold as f64;
        load.insert(range, (served, now, hot));
        hot && was_hot
    }

    pub async fn run(&self, node: &Arc<Node>, led: &[Arc<meridian_range::Replica>]) {
        for r in led {
            let Some((_, Some(table))) = r.fsm().live_generation() else { continue };
            let range_id = r.group().range_id();
            if r.fsm().frozen().is_some() {
                continue; // being merged (crate::merge)
            }
            if node.cfg.split_qps > 0
                && self.hot(r, node.cfg.split_qps)
                && let Some(key) = r.load_split_key()
            {
                tracing::info!(node = node.node_id(), range = range_id, qps_over = node.cfg.split_qps, "splitting a range by load");
                match split_at(node, &key, false, Instant::now() + Duration::from_secs(10)).await {
                    Ok(()) => {
                        self.load.lock().unwrap_or_else(|e| e.into_inner()).remove(&range_id);
                        continue;
                    }
                    Err(e) => tracing::info!(range = range_id, error = %e, "load split failed; retrying later"),
                }
            }
            let max = self.zone(node, table).await.range_max_bytes();
            let written = r.written_bytes();
            let last = self.measured.lock().unwrap_or_else(|e| e.into_inner()).get(&range_id).copied();
            if last.is_some_and(|l| written.saturating_sub(l) < (max / 8).max(16 << 10)) {
                continue;
            }
            self.measured.lock().unwrap_or_else(|e| e.into_inner()).insert(range_id, written);
            let Ok((size, Some(middle))) = r.size_and_middle().await else { continue };
            if size <= max {
                continue;
            }
            tracing::info!(node = node.node_id(), range = range_id, size, max, "splitting a range over range_max_bytes");
            if let Err(e) = split_at(node, &middle, false, Instant::now() + Duration::from_secs(10)).await {
                tracing::info!(range = range_id, error = %e, "size split failed; retrying later");
            }
            // Measure again next time: after a split each half may still be too big (a range
            // that grew by more than twice the limit at once), after a failure it still is.
            self.measured.lock().unwrap_or_else(|e| e.into_inner()).remove(&range_id);
        }
    }
}
