//! The replicate queue: each leaseholder keeps the ranges it leads at three voters (or as many
//! as there are live nodes), replacing replicas on dead nodes, and publishes each new replica set
//! in the range's descriptor and meta record.

use crate::node::Node;
use crate::records::SysRecord;
use crate::txn::{Txn, allocate_ids};
use meridian_sql::{SqlError, TxnClient};
use meridian_types::{KvError, NodeId, SYSTEM_RANGE_ID, keys};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// The live nodes and the dead nodes, as the replicate queue saw them.
pub(crate) type ClusterShape = (Vec<NodeId>, Vec<NodeId>);

/// How often the replicate queue looks at quiesced ranges even if the cluster did not change.
const FULL_PASS: Duration = Duration::from_secs(30);

impl Node {
    /// Brings every range this node leads up to three voters (or as many nodes as are live).
    /// A quiesced range's membership has not changed since it quiesced, so it is looked at only
    /// when the cluster changed (live or dead nodes) since the last full pass, or every
    /// [`FULL_PASS`] anyway (a change that failed meanwhile is retried then).
    pub(crate) async fn replicate_queue(&self, led: &[Arc<meridian_range::Replica>], live: &[NodeId]) {
        let dead: Vec<NodeId> = self.router.nodes().iter().map(|n| n.node_id).filter(|n| self.is_dead(*n)).collect();
        let cluster = (live.to_vec(), dead);
        let full = {
            let mut last = self.replicate_pass.lock().unwrap_or_else(|e| e.into_inner());
            let full = last.as_ref().is_none_or(|(c, at)| *c != cluster || at.elapsed() >= FULL_PASS);
            if full {
                *last = Some((cluster, Instant::now()));
            }
            full
        };
        // A range changed in this pass may need another change (one replica is added a tick),
        // even once quiesced: the next pass is then a full one.
        let mut changed = false;
        // A range frozen for a merge keeps its replicas until the merge is settled
        // (meridian_range::merge).
        for r in led.iter().filter(|r| (full || !r.group().is_quiesced()) && r.fsm().frozen().is_none()) {
            let st = r.group().status();
            let desired = meridian_placement::desired_voters(live.len());
            let kept_voters = st.members.iter().filter(|m| m.voter && !self.is_dead(m.node_id)).count();
            if kept_voters >= desired {
                // Enough replicas elsewhere: drop the ones on dead nodes.
                for m in st.members.iter().filter(|m| self.is_dead(m.node_id)) {
                    tracing::info!(
                        node = self.node_id(),
                        range = st.range_id,
                        replica = m.replica_id,
                        target = m.node_id,
                        "removing replica on dead node"
                    );
                    match tokio::time::timeout(Duration::from_secs(10), r.group().remove_member(m.replica_id)).await {
                        Ok(Ok(())) => {
                            changed = true;
                            let _ = self.publish_replicas(r).await;
                        }
                        other => {
                            tracing::warn!(range = st.range_id, result = ?other.map(|r| r.err()), "removing replica failed")
                        }
                    }
                }
                continue;
            }
            let known = self.router.nodes();
            let cand = |id: NodeId| meridian_placement::Candidate {
                node_id: id,
                locality: known.iter().find(|n| n.node_id == id).map(|n| n.locality.clone()).unwrap_or_default(),
                replica_count: 0,
            };
            let existing: Vec<_> = st.members.iter().map(|m| cand(m.node_id)).collect();
            let candidates: Vec<_> = live.iter().map(|n| cand(*n)).collect();
            let Some(target) = meridian_placement::choose_new_replica(&existing, &candidates) else {
                continue;
            };
            let Some(me) = self.self_arc() else { return };
            let deadline = Instant::now() + Duration::from_secs(30);
            let Ok(replica_id) = allocate_ids(&me, "replica", 1, deadline).await else {
                continue;
            };
            tracing::info!(node = self.node_id(), range = st.range_id, replica = replica_id, target, "adding replica");
            match tokio::time::timeout(Duration::from_secs(30), r.group().add_voter(replica_id, target)).await {
                Ok(Ok(())) => {
                    changed = true;
                    if let Err(e) = self.publish_replicas(r).await {
                        tracing::warn!(range = st.range_id, error = %e, "could not publish new replica set");
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(range = st.range_id, error = %e, "adding replica failed")
                }
                Err(_) => tracing::warn!(range = st.range_id, "adding replica timed out"),
            }
        }
        if changed {
            *self.replicate_pass.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// Writes the range's current Raft membership into its descriptor and meta record.
    async fn publish_replicas(&self, r: &meridian_range::Replica) -> Result<(), SqlError> {
        let Some(mut desc) = r.fsm().descriptor() else {
            return Ok(());
        };
        desc.replicas = r.members();
        desc.generation += 1;
        r.set_descriptor(desc.clone()).await?;
        let me = self.self_arc().ok_or_else(|| SqlError::Kv(KvError::Unavailable("stopping".into())))?;
        let mut t = Txn::new(me, Instant::now() + Duration::from_secs(5), None);
        let key = keys::meta_key(&desc.end_key);
        // A dropped table's meta record is gone: do not resurrect it.
        if desc.range_id == SYSTEM_RANGE_ID || t.get(&key).await?.is_some() {
            t.put(key, desc.encode_record());
            t.commit().await?;
        }
        Ok(())
    }
}
