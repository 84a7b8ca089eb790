//! Quiescence: an idle range's group stops ticking, so ten thousand idle ranges cost nothing.
//!
//! A group ticks (openraft's timer: the leader's heartbeats, the followers' election timeouts)
//! only while it has something to do. [`RaftHost::quiesce_idle`], run about once a second by the
//! node, looks at every group this node leads: one with no proposal, read or membership change
//! since the previous look, whose log is committed, applied and matched by every member, asks each
//! follower to quiesce (`RaftMsg::Quiesce`, carrying the leader, term and last log index). A
//! follower agrees only if it has that same leader, term and last log index and has applied it
//! all; it then stops ticking. Once every follower agreed, the leader stops ticking too.
//!
//! Waking:
//! - the leader wakes on any proposal, read barrier, membership change or leadership transfer
//!   ([`Group::touch`]); the entry it appends reaches the followers, which wake on it;
//! - a follower wakes on any Raft message for it other than `Quiesce`, after handling it (so an
//!   append first renews its leader's lease and no election follows);
//! - node liveness: when a peer stops answering pings, the node calls
//!   [`RaftHost::wake_followers_of`], which wakes every quiesced replica here whose leader is on
//!   that node. They tick again, find their leader's lease long expired and elect a new leader,
//!   as when a ticking leader dies.
//!
//! Invariants:
//! - Quiescing never changes Raft state: it only stops and starts the timer, so safety is
//!   openraft's. A follower that wrongly stays quiesced costs liveness only (no election), which
//!   liveness waking bounds; a follower woken needlessly may start an election, which is safe.
//! - A leader quiesces only when every member agreed, so a lagging or partitioned follower keeps
//!   the leader ticking until it has caught up.
//! - Leader leases: openraft's lease comes from quorum acknowledgements, which stop with
//!   heartbeats, so a quiesced leader's lease lapses and its first read after waking does a
//!   quorum round (read index); no stale read is possible.
//!
//! Not handled: a follower quiesced while its leader is alive but cut off from it alone (pings
//! between the two nodes fail too, so liveness wakes it and it may take over leadership).

use crate::group::Group;
use crate::host::RaftHost;
use crate::network::{RaftMsg, RaftReply};
use crate::transport::{Frame, Service};
use crate::types::{decode, encode};
use meridian_types::{NodeId, ReplicaId};
use openraft::async_runtime::WatchReceiver;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Looks without activity before a leader tries to quiesce its group.
const IDLE_LOOKS: u64 = 2;

/// What a leader ready to quiesce asks of its followers (replica, node).
struct QuiesceAsk {
    followers: Vec<(ReplicaId, NodeId)>,
    term: u64,
    last: u64,
}

/// A group's quiescence state.
#[derive(Default)]
pub(crate) struct Quiet {
    quiesced: AtomicBool,
    /// Serializes quiescing and waking (the timer switch must end in the state of the flag).
    switch: std::sync::Mutex<()>,
    /// Bumped by every proposal, read barrier and membership change.
    activity: AtomicU64,
    /// The leader's last look: the activity count it saw, and how many looks in a row saw it.
    seen: AtomicU64,
    idle_looks: AtomicU64,
}

impl Group {
    /// Notes activity (a proposal, a read, a membership change) and wakes the group.
    /// Notes activity; returns whether it woke the group.
    pub(crate) fn touch(&self) -> bool {
        // SeqCst pairs with `quiesce`: either it sees this activity and gives up, or this sees
        // its flag and wakes the group once it is done.
        self.quiet.activity.fetch_add(1, Ordering::SeqCst);
        self.wake()
    }

    /// Starts the group ticking again if it was quiesced; returns whether it was.
    pub fn wake(&self) -> bool {
        if !self.quiet.quiesced.load(Ordering::SeqCst) {
            return false;
        }
        let _s = self.quiet.switch.lock().unwrap_or_else(|e| e.into_inner());
        let woke = self.quiet.quiesced.swap(false, Ordering::SeqCst);
        if woke {
            self.raft.runtime_config().tick(true);
        }
        woke
    }

    /// Stops the group ticking, unless (`expect`) activity was noted since the leader's look.
    fn quiesce(&self, expect: Option<u64>) -> bool {
        let _s = self.quiet.switch.lock().unwrap_or_else(|e| e.into_inner());
        self.quiet.quiesced.store(true, Ordering::SeqCst);
        if expect.is_some_and(|a| self.quiet.activity.load(Ordering::SeqCst) != a) {
            self.quiet.quiesced.store(false, Ordering::SeqCst);
            return false;
        }
        self.raft.runtime_config().tick(false);
        true
    }

    /// Whether the group has stopped ticking.
    pub fn is_quiesced(&self) -> bool {
        self.quiet.quiesced.load(Ordering::Acquire)
    }

    /// Whether this replica leads a group with nothing in flight that has been idle for
    /// [`IDLE_LOOKS`] looks; returns the followers to ask, with the leader's term and last index.
    fn ready_to_quiesce(&self) -> Option<QuiesceAsk> {
        let activity = self.quiet.activity.load(Ordering::SeqCst);
        if self.quiet.seen.swap(activity, Ordering::Relaxed) != activity {
            self.quiet.idle_looks.store(0, Ordering::Relaxed);
            return None;
        }
        if self.quiet.idle_looks.fetch_add(1, Ordering::Relaxed) + 1 < IDLE_LOOKS {
            return None;
        }
        let m = self.raft.metrics().borrow_watched().clone();
        if !m.state.is_leader() || m.current_leader != Some(self.replica_id) {
            return None;
        }
        let last = m.last_log_index?;
        let membership = m.membership_config.membership();
        if m.last_applied.map(|l| l.index) != Some(last) || membership.get_joint_config().len() != 1 {
            return None;
        }
        let matched = m.replication.as_ref()?;
        let mut followers = Vec::new();
        for (id, node) in membership.nodes() {
            if matched.get(id).cloned().flatten().map(|l| l.index) != Some(last) {
                return None;
            }
            if *id != self.replica_id {
                followers.push((*id, node.node_id));
            }
        }
        Some(QuiesceAsk { followers, term: m.current_term, last })
    }

    /// A leader's request to quiesce (module docs): agreed if this replica follows `leader` in
    /// `term` and has appended and applied up to `last`.
    fn agree_to_quiesce(&self, leader: ReplicaId, term: u64, last: u64) -> bool {
        let m = self.raft.metrics().borrow_watched().clone();
        let agreed = m.current_leader == Some(leader)
            && m.current_term == term
            && !m.state.is_leader()
            && m.last_log_index == Some(last)
            && m.last_applied.map(|l| l.index) == Some(last);
        agreed && self.quiesce(None)
    }
}

impl RaftHost {
    /// Quiesces the idle groups among `leaders` (groups this node leads: [`RaftHost::leaders`];
    /// module docs). Returns how many it quiesced.
    pub async fn quiesce_idle(&self, leaders: &[std::sync::Arc<Group>]) -> usize {
        let candidates: Vec<_> = leaders
            .iter()
            .filter(|g| !g.is_quiesced() && g.is_leader())
            .cloned()
            .filter_map(|g| g.ready_to_quiesce().map(|r| (g, r)))
            .collect();
        let asks = candidates.into_iter().map(|(g, QuiesceAsk { followers, term, last })| async move {
            let asks = followers.into_iter().map(|(to, node)| {
                let msg = RaftMsg::Quiesce { to, leader: g.replica_id, term, last };
                let body = encode(&msg).unwrap_or_default();
                let frame = Frame { service: Service::Raft, range_id: g.range_id, body };
                let transport = self.transport().clone();
                async move {
                    let reply = transport.call(node, frame, Duration::from_millis(500)).await.ok()?;
                    matches!(decode::<RaftReply>(&reply).ok()?, RaftReply::Quiesced(true)).then_some(())
                }
            });
            let agreed = futures::future::join_all(asks).await.iter().all(Option::is_some);
            // Activity meanwhile (a proposal raced the asks) keeps the group awake; the
            // followers that agreed wake on its entries.
            agreed && g.quiesce(Some(g.quiet.seen.load(Ordering::Relaxed)))
        });
        futures::future::join_all(asks).await.into_iter().filter(|q| *q).count()
    }

    /// Wakes every quiesced replica here whose leader is on `node` (it stopped answering).
    pub fn wake_followers_of(&self, node: NodeId) -> usize {
        let mut woken = 0;
        for g in self.groups().into_iter().filter(|g| g.is_quiesced()) {
            if g.status().leader_node == Some(node) {
                g.wake();
                woken += 1;
            }
        }
        woken
    }

    /// Serves a leader's `Quiesce` request for this node's replica of a range.
    pub(crate) fn handle_quiesce(
        &self,
        group: Option<std::sync::Arc<Group>>,
        to: ReplicaId,
        leader: ReplicaId,
        term: u64,
        last: u64,
    ) -> RaftReply {
        let agreed = group.is_some_and(|g| g.replica_id == to && g.agree_to_quiesce(leader, term, last));
        RaftReply::Quiesced(agreed)
    }
}
