//! Descriptors: what a range covers and where its replicas are; what a node is and where it lives.

use crate::{NodeId, RangeId, ReplicaId};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaKind {
    Voter,
    NonVoter,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaDescriptor {
    pub replica_id: ReplicaId,
    pub node_id: NodeId,
    pub kind: ReplicaKind,
}

/// A range: the half-open key span `[start_key, end_key)` and its replicas. `generation` grows
/// with every change of span or replica set, so a cache can tell which of two copies is newer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeDescriptor {
    pub range_id: RangeId,
    pub start_key: Vec<u8>,
    pub end_key: Vec<u8>,
    pub replicas: Vec<ReplicaDescriptor>,
    pub generation: u64,
    /// The table whose rows this range holds, if it is a table range.
    pub table_id: Option<u64>,
    /// The range starts where a `SPLIT AT` asked: the merge queue never merges it into the range
    /// on its left (automatic splits leave this false).
    pub sticky: bool,
}

impl RangeDescriptor {
    pub fn contains_key(&self, key: &[u8]) -> bool {
        key >= self.start_key.as_slice() && key < self.end_key.as_slice()
    }

    /// Whether `[start, end)` lies entirely inside this range.
    pub fn contains_span(&self, start: &[u8], end: &[u8]) -> bool {
        start >= self.start_key.as_slice() && end <= self.end_key.as_slice() && start <= end
    }

    pub fn replica_on(&self, node: NodeId) -> Option<&ReplicaDescriptor> {
        self.replicas.iter().find(|r| r.node_id == node)
    }

    pub fn voters(&self) -> impl Iterator<Item = &ReplicaDescriptor> {
        self.replicas.iter().filter(|r| r.kind == ReplicaKind::Voter)
    }
}

/// A node as the cluster knows it: stored in the system range, shown in `/v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDescriptor {
    pub node_id: NodeId,
    /// The node-to-node (Raft and KV) address.
    pub addr: String,
    /// The SQL/HTTP address.
    pub http_addr: String,
    /// `key=value` pairs in order, e.g. region then zone.
    pub locality: Vec<(String, String)>,
}

impl NodeDescriptor {
    pub fn locality_string(&self) -> String {
        self.locality.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_containment_is_half_open() {
        let d = RangeDescriptor {
            range_id: 2,
            start_key: vec![5],
            end_key: vec![9],
            replicas: vec![],
            generation: 0,
            table_id: None,
            sticky: false,
        };
        assert!(d.contains_key(&[5]) && d.contains_key(&[8, 255]) && !d.contains_key(&[9]));
        assert!(d.contains_span(&[5], &[9]) && !d.contains_span(&[4], &[6]) && !d.contains_span(&[6], &[10]));
    }
}

/// Zone configuration of a table's ranges (`ALTER TABLE|DATABASE ... CONFIGURE ZONE USING ...`);
/// unset fields take the defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneConfig {
    /// A range larger than this splits (CockroachDB's default: 512 MiB).
    pub range_max_bytes: Option<u64>,
    /// A cold range smaller than this merges with the range on its right (merge queue).
    pub range_min_bytes: Option<u64>,
}

impl ZoneConfig {
    pub const DEFAULT_RANGE_MAX_BYTES: u64 = 512 << 20;
    pub const DEFAULT_RANGE_MIN_BYTES: u64 = 128 << 20;
    /// The smallest `range_max_bytes` accepted (CockroachDB's minimum).
    pub const MIN_RANGE_MAX_BYTES: u64 = 64 << 10;

    pub fn range_max_bytes(&self) -> u64 {
        self.range_max_bytes.unwrap_or(Self::DEFAULT_RANGE_MAX_BYTES)
    }

    /// Unset: the default, or a quarter of `range_max_bytes` when that is smaller.
    pub fn range_min_bytes(&self) -> u64 {
        self.range_min_bytes.unwrap_or(Self::DEFAULT_RANGE_MIN_BYTES.min(self.range_max_bytes() / 4))
    }
}
