//! Draining: before a node stops (SIGTERM, Ctrl-C), it hands the lease of every range it leads
//! to a voter on another live node, so clients see at most a redirect, not a failover.
//!
//! Sequence: the node marks itself draining (its pings answer so, and other nodes' lease
//! balancing then gives it no lease and leaves it out of their share), then, every
//! [`ROUND`], transfers each range it still leads to the live non-draining node holding the
//! fewest leases that has a voter of that range (a Raft leader transfer), until it leads none or
//! the drain timeout passes. HTTP keeps serving meanwhile: requests for the moved ranges are
//! redirected by `NotLeaseholder` answers like after any lease transfer. Only then does the
//! HTTP server stop taking requests and the node stop.
//!
//! Not handled: a range with no voter on another live node keeps its lease (it fails over when
//! the node is gone, as after a crash); a draining node's replicas may still win an election
//! that another failure causes meanwhile, and leases won that way are shed in the next round.

use crate::node::Node;
use meridian_types::NodeId;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a drain waits between transfer rounds.
const ROUND: Duration = Duration::from_millis(250);

/// Moves the leases of `node` to other nodes; returns how many it still held when it gave up
/// (0: drained), after `timeout` at most.
pub async fn drain(node: &Arc<Node>, timeout: Duration) -> usize {
    node.set_draining();
    let began = Instant::now();
    let deadline = began + timeout;
    let mut transfers = 0usize;
    loop {
        let led = node.store.replicas_of(&node.store.host().leaders());
        if led.is_empty() {
            tracing::info!(node = node.node_id(), transfers, took_ms = began.elapsed().as_millis() as u64, "drained: no leases left");
            return 0;
        }
        if Instant::now() >= deadline {
            tracing::warn!(node = node.node_id(), left = led.len(), transfers, "drain timed out with leases left");
            return led.len();
        }
        let live = node.live_nodes().await;
        let mut counts: HashMap<NodeId, u64> = node.lease_takers(&live).into_iter().collect();
        let mut this_round = 0;
        for r in &led {
            let st = r.group().status();
            let target = st
                .members
                .iter()
                .filter(|m| m.voter && r.group().caught_up(m.replica_id))
                .filter_map(|m| counts.get(&m.node_id).map(|c| (*c, m.node_id, m.replica_id)))
                .min();
            if let Some((_, target, replica)) = target {
                tracing::debug!(node = node.node_id(), range = st.range_id, target, "draining a lease");
                if r.group().transfer_leader(replica).await.is_ok() {
                    transfers += 1;
                    this_round += 1;
                    *counts.entry(target).or_default() += 1;
                }
            }
        }
        if this_round == 0 {
            // No live node to hand any of these to (alone, or no voters elsewhere): waiting
            // would not help.
            tracing::warn!(node = node.node_id(), left = led.len(), "drain: no other live node can take these leases");
            return led.len();
        }
        tokio::time::sleep(ROUND.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}
