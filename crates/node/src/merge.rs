//! The merge queue: each leaseholder merges small, cold ranges it leads with the range on their
//! right, and settles merges whose coordinator died.
//!
//! A led range L is a candidate once its descriptor stayed the same for `--merge-delay` (so a
//! range fresh from a split is left alone) and, while load splits are on, it served fewer than
//! half of `--split-qps` requests a second (so a load split is undone only after the load is
//! gone). Then L merges with its right neighbour R when:
//! - R belongs to the same table and does not start at a `SPLIT AT` boundary (`sticky`) or a
//!   table boundary;
//! - L holds less than its table's `range_min_bytes`, and both together less than
//!   `range_max_bytes` (the merged range must not split again at once);
//! - R is cold too, and its replicas are on the same nodes as L's, with the same kinds.
//!
//! The merge itself (`meridian_range::merge`): freeze R (`Subsume`), wait until every replica of
//! R applied the freeze durably (`WaitApplied`, to each replica's node), then `Merge` on L at
//! the generation L had when it began. Any failure after the freeze abandons the merge the way
//! a dead coordinator's is abandoned: `ResolveMerge` on L, then `Unfreeze` R unless the merge
//! happened. A range found frozen for longer than [`SETTLE_AFTER`] by its leaseholder is
//! settled the same way. Afterwards the merged range's meta record replaces both old ones
//! (`split::ensure_meta` also deletes the records of ranges it absorbed).
//!
//! Cost when idle: a structural refusal (sticky neighbour, other table, replicas elsewhere) is
//! remembered until either range changes, and a size is measured (a scan) only when the range
//! took writes since and was under the minimum when last measured (MVCC bytes only grow while
//! there is no MVCC garbage collection), so ten thousand cold ranges cost map look-ups, not scans
//! or RPCs.
//!
//! Not handled: relocating R's replicas to L's nodes (such pairs are skipped).

use crate::node::Node;
use crate::split::SplitQueue;
use meridian_raft_glue::{Frame, Service, Transport};
use meridian_range::Replica;
use meridian_range::merge::Frozen;
use meridian_types::kv::{KvRequest, KvResponse, Subsumed};
use meridian_types::{KvError, NodeId, RangeDescriptor, RangeId, ReplicaKind};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long a range may stay frozen for a merge before its leaseholder settles the merge.
pub const SETTLE_AFTER: Duration = Duration::from_secs(5);

/// What the queue remembers about a led range.
#[derive(Clone, Default)]
struct Seen {
    /// The range's generation, and since when this leaseholder has seen it unchanged.
    generation: u64,
    since: Option<Instant>,
    /// When it was last considered.
    checked: Option<Instant>,
    /// (right neighbour, its generation) found unsuitable, and when: skipped while both stay
    /// the same, for a while ([`refusal_ttl`]: the neighbour's descriptor came from the range
    /// cache, which may be stale, e.g. after an `UNSPLIT AT` through another gateway).
    refused: Option<(RangeId, u64, Instant)>,
    /// Bytes written through this leaseholder and the range's size when last measured.
    measured: Option<(u64, u64)>,
}

#[derive(Default)]
pub struct MergeQueue {
    seen: Mutex<HashMap<RangeId, Seen>>,
    /// Frozen ranges led here: for which merge (left range, its generation), and since when.
    frozen: Mutex<HashMap<RangeId, (RangeId, u64, Instant)>>,
}

impl MergeQueue {
    pub async fn run(&self, node: &Arc<Node>, led: &[Arc<Replica>], zones: &SplitQueue) {
        let now = Instant::now();
        for r in led {
            let range = r.group().range_id();
            if let Some(f) = r.fsm().frozen() {
                let since = {
                    let mut frozen = self.frozen.lock().unwrap_or_else(|e| e.into_inner());
                    let e = frozen.entry(range).or_insert((f.lhs, f.lhs_generation, now));
                    if (e.0, e.1) != (f.lhs, f.lhs_generation) {
                        *e = (f.lhs, f.lhs_generation, now); // another merge froze it since
                    }
                    e.2
                };
                if now.duration_since(since) >= SETTLE_AFTER && settle(node, r, &f).await {
                    self.frozen.lock().unwrap_or_else(|e| e.into_inner()).remove(&range);
                }
                continue;
            }
            {
                // Thawed (or never frozen): a later freeze starts its own clock.
                let mut frozen = self.frozen.lock().unwrap_or_else(|e| e.into_inner());
                if !frozen.is_empty() {
                    frozen.remove(&range);
                }
            }
            if node.cfg.merge_delay.is_zero() {
                continue;
            }
            let Some((generation, Some(table))) = r.fsm().live_generation() else { continue };
            let mut s = {
                let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
                let s = seen.entry(range).or_default();
                if s.generation != generation || s.since.is_none() {
                    *s = Seen { generation, since: Some(now), ..Seen::default() };
                }
                s.clone()
            };
            let delay = node.cfg.merge_delay;
            if s.since.is_some_and(|t| now.duration_since(t) < delay) || s.checked.is_some_and(|t| now.duration_since(t) < delay) {
                continue;
            }
            s.checked = Some(now);
            self.consider(node, r, &mut s, table, zones).await;
            if let Some(e) = self.seen.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&range)
                && e.generation == s.generation
            {
                *e = s;
            }
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() > 2 * led.len() + 64 {
            let led: BTreeSet<RangeId> = led.iter().map(|r| r.group().range_id()).collect();
            seen.retain(|k, _| led.contains(k));
        }
    }

    async fn consider(&self, node: &Arc<Node>, l: &Arc<Replica>, s: &mut Seen, table: u64, zones: &SplitQueue) {
        let Some(ldesc) = l.fsm().live_descriptor() else { return };
        let cold = |qps: u64| node.cfg.split_qps == 0 || qps < node.cfg.split_qps / 2;
        if !cold(l.qps()) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        if let Some((_, _, at)) = s.refused
            && at.elapsed() >= refusal_ttl(node.cfg.merge_delay)
        {
            // Look the neighbour up afresh (a meta read brings 64 descriptors into the cache).
            node.router.evict_span(&ldesc.end_key, &meridian_types::keys::key_next(&ldesc.end_key));
            s.refused = None;
        }
        let Ok(rdesc) = node.router.lookup(&ldesc.end_key, deadline).await else { return };
        if s.refused.is_some_and(|(id, generation, _)| (id, generation) == (rdesc.range_id, rdesc.generation)) {
            return;
        }
        if rdesc.start_key != ldesc.end_key {
            // A cached descriptor older than this range's last merge: look again next time.
            node.router.evict_span(&rdesc.start_key, &rdesc.end_key);
            return;
        }
        if rdesc.table_id != Some(table) || rdesc.sticky {
            s.refused = Some((rdesc.range_id, rdesc.generation, Instant::now()));
            return;
        }
        let zone = zones.zone(node, table).await;
        let written = l.written_bytes();
        let lsize = match s.measured {
            // Without MVCC garbage collection a range's bytes never shrink (until it splits,
            // which starts its record afresh): once over the minimum, it stays over.
            Some((w, size)) if w == written || size >= zone.range_min_bytes() => size,
            _ => match l.stats().await {
                Ok((_, size)) => {
                    s.measured = Some((written, size));
                    size
                }
                Err(_) => return,
            },
        };
        if lsize >= zone.range_min_bytes() {
            return;
        }
        let (rdesc, rsize, rqps) = match node.router.send(&rdesc, KvRequest::RangeStats { range_id: rdesc.range_id }, deadline).await {
            Ok(KvResponse::RangeStats { desc, bytes, qps }) => (desc, bytes, qps),
            _ => return,
        };
        if lsize + rsize >= zone.range_max_bytes() || !cold(rqps) || !cold(l.qps() + rqps) {
            return;
        }
        if same_nodes(&l.members()) != same_nodes(&rdesc.replicas) {
            tracing::debug!(range = ldesc.range_id, right = rdesc.range_id, "not merging: replicas on different nodes");
            s.refused = Some((rdesc.range_id, rdesc.generation, Instant::now()));
            return;
        }
        match merge(node, l, &ldesc, &rdesc, deadline).await {
            Ok(merged) => {
                tracing::info!(node = node.node_id(), range = merged.range_id, absorbed = rdesc.range_id, lsize, rsize, "merged ranges");
            }
            Err(e) => tracing::info!(range = ldesc.range_id, right = rdesc.range_id, error = %e, "merge failed; retrying later"),
        }
    }
}

/// A replica set as the nodes it is on and whether each replica votes.
fn same_nodes(replicas: &[meridian_types::ReplicaDescriptor]) -> BTreeSet<(NodeId, bool)> {
    replicas.iter().map(|r| (r.node_id, r.kind == ReplicaKind::Voter)).collect()
}

/// How long a refusal based on a cached descriptor stands: ten merge delays, within [5 s, 5 min].
fn refusal_ttl(merge_delay: Duration) -> Duration {
    (merge_delay * 10).clamp(Duration::from_secs(5), Duration::from_secs(300))
}

/// Merges `l` (led here, at `ldesc`) with its right neighbour `rdesc` (module docs). Returns the
/// merged descriptor.
pub async fn merge(
    node: &Arc<Node>,
    l: &Arc<Replica>,
    ldesc: &RangeDescriptor,
    rdesc: &RangeDescriptor,
    deadline: Instant,
) -> Result<RangeDescriptor, KvError> {
    let frozen = Frozen { lhs: ldesc.range_id, lhs_start: ldesc.start_key.clone(), lhs_generation: ldesc.generation };
    let req = KvRequest::Subsume {
        range_id: rdesc.range_id,
        lhs_range_id: frozen.lhs,
        lhs_start: frozen.lhs_start.clone(),
        lhs_generation: frozen.lhs_generation,
    };
    let rhs: Subsumed = match node.router.send(rdesc, req, deadline).await? {
        KvResponse::Subsumed(s) => *s,
        other => return Err(KvError::Internal(format!("unexpected subsume answer {other:?}"))),
    };
    let result = async {
        // The replica sets may have changed since the queue compared them.
        if same_nodes(&l.members()) != same_nodes(&rhs.desc.replicas) {
            return Err(KvError::Unavailable("the ranges' replicas are no longer on the same nodes".into()));
        }
        // Every replica of the right range must hold all its data durably before the merge.
        let waits = rhs.desc.replicas.iter().map(|rep| wait_applied(node, rep.node_id, rhs.desc.range_id, rhs.frozen_index));
        for r in futures::future::join_all(waits).await {
            r?;
        }
        l.merge(ldesc.generation, rhs.clone()).await
    }
    .await;
    let merged = match result {
        Ok(merged) => merged,
        Err(e) => {
            // Abandon it, unless it happened after all (an answer lost on the way).
            let rstart = rhs.desc.start_key.clone();
            if let Ok(false) = resolve(node, &frozen, &rstart, deadline).await {
                let req =
                    KvRequest::Unfreeze { range_id: rhs.desc.range_id, lhs_range_id: frozen.lhs, lhs_generation: frozen.lhs_generation };
                let _ = node.router.send(&rhs.desc, req, deadline).await;
            }
            return Err(e);
        }
    };
    node.router.evict_span(&merged.start_key, &merged.end_key);
    if let Err(e) = crate::split::ensure_meta(node, &merged, deadline).await {
        // Meta upkeep by the leaseholder heals it within a second or so.
        tracing::debug!(range = merged.range_id, error = %e, "meta record of a merged range not written yet");
    }
    node.router.evict_span(&merged.start_key, &merged.end_key);
    Ok(merged)
}

/// Asks `node`'s replica of `range` to answer once it applied `index` durably.
async fn wait_applied(node: &Arc<Node>, target: NodeId, range: RangeId, index: u64) -> Result<(), KvError> {
    let req = KvRequest::WaitApplied { range_id: range, index };
    let res = if target == node.node_id() {
        node.store.handle_kv(req).await
    } else {
        let frame = Frame { service: Service::Kv, range_id: range, body: crate::admin::encode(&req) };
        let bytes = node
            .transport
            .call(target, frame, Duration::from_secs(6))
            .await
            .map_err(|e| KvError::Unavailable(format!("n{target} did not confirm r{range}'s freeze: {e}")))?;
        crate::admin::decode::<KvResponse>(&bytes)?
    };
    match res {
        KvResponse::Ok => Ok(()),
        KvResponse::Error(e) => Err(e),
        other => Err(KvError::Internal(format!("unexpected answer {other:?}"))),
    }
}

/// Settles the merge `frozen` of the range starting at `rhs_start` in the left range's log:
/// true if it happened, false if it never will.
async fn resolve(node: &Arc<Node>, frozen: &Frozen, rhs_start: &[u8], deadline: Instant) -> Result<bool, KvError> {
    loop {
        let holder = node.router.lookup(&frozen.lhs_start, deadline).await?;
        let req = KvRequest::ResolveMerge {
            range_id: holder.range_id,
            lhs_range_id: frozen.lhs,
            lhs_generation: frozen.lhs_generation,
            rhs_start: rhs_start.to_vec(),
        };
        match node.router.send(&holder, req, deadline).await {
            Ok(KvResponse::MergeOutcome { merged }) => return Ok(merged),
            Ok(other) => return Err(KvError::Internal(format!("unexpected answer {other:?}"))),
            Err(KvError::KeyOutOfRange { .. } | KvError::RangeNotFound { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Settles the merge that froze `r` (led here); true once it is settled.
async fn settle(node: &Arc<Node>, r: &Arc<Replica>, frozen: &Frozen) -> bool {
    let Some(desc) = r.fsm().descriptor() else { return false };
    let deadline = Instant::now() + Duration::from_secs(10);
    match resolve(node, frozen, &desc.start_key, deadline).await {
        // It happened: this replica goes once this node's replica of the left range applies it.
        Ok(true) => true,
        Ok(false) => {
            let ok = r.unfreeze(frozen.lhs, frozen.lhs_generation).await.is_ok();
            tracing::info!(
                node = node.node_id(),
                range = desc.range_id,
                lhs = frozen.lhs,
                thawed = ok,
                "abandoned a merge whose coordinator went away"
            );
            ok
        }
        Err(e) => {
            tracing::debug!(range = desc.range_id, error = %e, "could not settle a merge yet");
            false
        }
    }
}
