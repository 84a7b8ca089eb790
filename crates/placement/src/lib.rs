//! Placement decisions as pure functions: where a range's replicas should go.
//!
//! Today: how many voters a range wants, and which node gets the next replica — the live node
//! without one whose locality differs most from the existing replicas' (a different region
//! beats a different zone beats the same zone), ties broken by fewest replicas then lowest id.
//! This keeps the three voters of the default `ZONE` survival goal in three different zones
//! whenever the cluster has them.
//!
//! Not yet: survival goals and zone configs (voters/non-voters per region, lease preferences),
//! rebalancing, and replacing replicas of dead nodes. Those build on the same inputs.

use meridian_types::NodeId;

/// Voters per range under the default survival goal.
pub const DEFAULT_VOTERS: usize = 3;

/// A node as placement sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub node_id: NodeId,
    /// Locality tiers in order (e.g. region, zone).
    pub locality: Vec<(String, String)>,
    /// Replicas the node holds now.
    pub replica_count: usize,
}

/// How many voters a range should have given the number of live nodes.
pub fn desired_voters(live_nodes: usize) -> usize {
    DEFAULT_VOTERS.min(live_nodes)
}

/// Number of leading locality tiers two nodes share (0 = different regions).
fn shared_tiers(a: &[(String, String)], b: &[(String, String)]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The best node for one more replica of a range whose replicas are on `existing`, among live
/// `candidates`; `None` when every candidate already has one.
pub fn choose_new_replica(existing: &[Candidate], candidates: &[Candidate]) -> Option<NodeId> {
    candidates
        .iter()
        .filter(|c| !existing.iter().any(|e| e.node_id == c.node_id))
        .min_by_key(|c| {
            // Score: the closest existing replica (most shared tiers) should be as far as possible.
            let closeness = existing.iter().map(|e| shared_tiers(&e.locality, &c.locality)).max().unwrap_or(0);
            (closeness, c.replica_count, c.node_id)
        })
        .map(|c| c.node_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: NodeId, region: &str, zone: &str, count: usize) -> Candidate {
        Candidate { node_id: id, locality: vec![("region".into(), region.into()), ("zone".into(), zone.into())], replica_count: count }
    }

    #[test]
    fn prefers_new_zone_then_new_region() {
        let existing = [c(1, "us", "us-a", 5)];
        let cands = [c(1, "us", "us-a", 5), c(2, "us", "us-a", 0), c(3, "us", "us-b", 9)];
        assert_eq!(choose_new_replica(&existing, &cands), Some(3), "different zone beats fewer replicas");
        let cands = [c(2, "us", "us-b", 0), c(3, "eu", "eu-a", 9)];
        assert_eq!(choose_new_replica(&existing, &cands), Some(3), "different region beats different zone");
    }

    #[test]
    fn ties_go_to_least_loaded_then_lowest_id() {
        let existing = [c(1, "us", "us-a", 0)];
        let cands = [c(4, "us", "us-b", 2), c(3, "us", "us-c", 1), c(2, "us", "us-d", 1)];
        assert_eq!(choose_new_replica(&existing, &cands), Some(2));
    }

    #[test]
    fn nothing_when_all_have_replicas() {
        let existing = [c(1, "us", "us-a", 0), c(2, "us", "us-b", 0)];
        assert_eq!(choose_new_replica(&existing, &existing), None);
        assert_eq!(desired_voters(1), 1);
        assert_eq!(desired_voters(7), 3);
    }
}
