//! Multi-range Raft scenarios on the simulated transport: several nodes in one process, each
//! with its own RocksDB store, messages delivered in-process with partitions and crashes
//! injected by the test. Each test names the behaviour it shows.
//!
//! Determinism: the network, the partitions and the crashes are fully controlled by the test,
//! and every assertion is about outcomes (who may commit, what is applied), never timing. The
//! schedule itself is not replayable: openraft draws election timeouts from its own RNG and the
//! WAL fsyncs run on a real thread, so each test waits for outcomes with generous deadlines.

use futures::future::BoxFuture;
use meridian_raft_glue::{Frame, Handler, RaftTimings, Service, SimNetwork};
use meridian_range::Store;
use meridian_storage::{Cf, Engine, mvcc};
use meridian_types::keys::raft_log_key;
use meridian_types::kv::{KvRequest, KvResponse, ReadOp, ReadRequest, ReadResult, Write, WriteRequest};
use meridian_types::{Hlc, KvError, RangeDescriptor, Timestamp};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

struct StoreHandler(Arc<Store>);

impl Handler for StoreHandler {
    fn handle(&self, from: u64, frame: Frame) -> BoxFuture<'static, Vec<u8>> {
        let s = self.0.clone();
        Box::pin(async move {
            match frame.service {
                Service::Raft => s.host().handle(from, frame).await,
                _ => {
                    let req: KvRequest = postcard::from_bytes(&frame.body).unwrap();
                    postcard::to_stdvec(&s.handle_kv(req).await).unwrap()
                }
            }
        })
    }
}

fn timings(snapshot_logs: u64) -> RaftTimings {
    RaftTimings { heartbeat_ms: 50, election_min_ms: 300, election_max_ms: 600, snapshot_logs }
}

struct Cluster {
    net: Arc<SimNetwork>,
    _dir: tempfile::TempDir,
    root: PathBuf,
    stores: Vec<Option<Arc<Store>>>,
    snapshot_logs: u64,
}

impl Cluster {
    async fn new(n: usize, snapshot_logs: u64) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let mut c = Cluster { net: SimNetwork::new(), _dir: dir, root, stores: vec![], snapshot_logs };
        for id in 1..=n as u64 {
            let s = c.open(id, &c.root.join(format!("n{id}"))).await;
            c.stores.push(Some(s));
        }
        c
    }

    async fn open(&self, id: u64, path: &Path) -> Arc<Store> {
        let engine = Engine::open(path).unwrap();
        let store = Store::new(engine, Arc::new(self.net.endpoint(id)), timings(self.snapshot_logs), Arc::new(Hlc::system(500_000_000)));
        store.host().start_existing().await.unwrap();
        self.net.register(id, Arc::new(StoreHandler(store.clone())));
        store
    }

    fn store(&self, id: u64) -> &Arc<Store> {
        self.stores[id as usize - 1].as_ref().unwrap()
    }

    async fn create_range(&self, range_id: u64, founder: u64, nodes: &[u64]) {
        let members: Vec<(u64, u64)> = nodes.iter().map(|n| (range_id * 100 + n, *n)).collect();
        let desc = RangeDescriptor {
            range_id,
            start_key: vec![range_id as u8],
            end_key: vec![range_id as u8 + 1],
            replicas: vec![],
            generation: 1,
            table_id: None,
            sticky: false,
        };
        self.store(founder).create_range(desc, range_id * 100 + founder, &members).await.unwrap();
    }

    fn leader(&self, range: u64) -> Option<u64> {
        self.stores
            .iter()
            .enumerate()
            .find(|(_, s)| s.as_ref().is_some_and(|s| s.replica(range).is_some_and(|r| r.group().is_leader())))
            .map(|(i, _)| i as u64 + 1)
    }

    /// Writes through whichever node leads, retrying until `timeout`.
    async fn write(&self, range: u64, key: &[u8], val: &[u8], timeout: Duration) -> Result<Timestamp, KvError> {
        let deadline = Instant::now() + timeout;
        let mut last = KvError::Unavailable("no leader".into());
        while Instant::now() < deadline {
            if let Some(l) = self.leader(range) {
                let req = KvRequest::Write(WriteRequest {
                    range_id: range,
                    read_ts: None,
                    read_spans: vec![],
                    writes: vec![Write::put(key.to_vec(), val.to_vec())],
                });
                match tokio::time::timeout(Duration::from_millis(500), self.store(l).handle_kv(req)).await {
                    Ok(KvResponse::Write(w)) => return Ok(w.commit_ts),
                    Ok(KvResponse::Error(e)) => last = e,
                    Ok(_) => unreachable!(),
                    Err(_) => last = KvError::Timeout,
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(last)
    }

    async fn read_at(&self, node: u64, range: u64, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let req = KvRequest::Read(ReadRequest {
            range_id: range,
            ts: None,
            uncertainty_limit: None,
            ops: vec![ReadOp::Get { key: key.to_vec() }],
        });
        match tokio::time::timeout(Duration::from_secs(2), self.store(node).handle_kv(req)).await.map_err(|_| KvError::Timeout)? {
            KvResponse::Read(r) => match r.results.into_iter().next() {
                Some(ReadResult::Get(v)) => Ok(v),
                _ => Err(KvError::Internal("bad result".into())),
            },
            KvResponse::Error(e) => Err(e),
            _ => Err(KvError::Internal("bad response".into())),
        }
    }

    /// Waits until node `node`'s store holds `val` for `key` (its replica applied the write).
    async fn wait_applied(&self, node: u64, key: &[u8], val: &[u8], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if mvcc::get(self.store(node).engine(), key, Timestamp::MAX, None).ok().flatten().as_deref() == Some(val) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    async fn crash(&mut self, id: u64) {
        self.net.stop(id);
        if let Some(s) = self.stores[id as usize - 1].take() {
            s.host().shutdown().await;
        }
        // Let the replica tasks finish dropping their store handles.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ranges_replicate_and_serve_linearizable_reads() {
    let c = Cluster::new(3, 5000).await;
    c.create_range(10, 1, &[1, 2, 3]).await;
    c.create_range(11, 2, &[1, 2, 3]).await;
    c.write(10, b"\x0aa", b"x", Duration::from_secs(10)).await.unwrap();
    c.write(11, b"\x0bb", b"y", Duration::from_secs(10)).await.unwrap();
    for n in 1..=3 {
        assert!(c.wait_applied(n, b"\x0aa", b"x", Duration::from_secs(5)).await, "n{n} applied r10");
        assert!(c.wait_applied(n, b"\x0bb", b"y", Duration::from_secs(5)).await, "n{n} applied r11");
    }
    let l = c.leader(10).unwrap();
    assert_eq!(c.read_at(l, 10, b"\x0aa").await.unwrap(), Some(b"x".to_vec()));
    let follower = (1..=3).find(|n| *n != l).unwrap();
    assert!(
        matches!(c.read_at(follower, 10, b"\x0aa").await, Err(KvError::NotLeaseholder { leaseholder: Some(x), .. }) if x == l),
        "followers redirect to the leaseholder"
    );
    // A key outside the range's span is refused, not written.
    let req = KvRequest::Write(WriteRequest {
        range_id: 10,
        read_ts: None,
        read_spans: vec![],
        writes: vec![Write::put(b"\x0bzz".to_vec(), b"no".to_vec())],
    });
    assert!(matches!(c.store(l).handle_kv(req).await, KvResponse::Error(KvError::KeyOutOfRange { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_leader_loses_writes_majority_elects_and_heal_catches_up() {
    let c = Cluster::new(3, 5000).await;
    c.create_range(10, 1, &[1, 2, 3]).await;
    c.write(10, b"\x0ak", b"v1", Duration::from_secs(10)).await.unwrap();
    let old = c.leader(10).unwrap();
    c.net.partition(&[old], &[1, 2, 3]);
    // The isolated leader cannot commit.
    let req = KvRequest::Write(WriteRequest {
        range_id: 10,
        read_ts: None,
        read_spans: vec![],
        writes: vec![Write::put(b"\x0ak".to_vec(), b"lost".to_vec())],
    });
    let isolated = tokio::time::timeout(Duration::from_secs(2), c.store(old).handle_kv(req)).await;
    assert!(!matches!(isolated, Ok(KvResponse::Write(_))), "a minority leader must not acknowledge a write");
    // The majority elects a new leader and accepts writes.
    let deadline = Instant::now() + Duration::from_secs(10);
    let new = loop {
        let others: Vec<u64> = (1..=3).filter(|n| *n != old).collect();
        if let Some(n) = others.iter().find(|n| c.store(**n).replica(10).unwrap().group().is_leader()) {
            break *n;
        }
        assert!(Instant::now() < deadline, "no new leader");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let req = KvRequest::Write(WriteRequest {
        range_id: 10,
        read_ts: None,
        read_spans: vec![],
        writes: vec![Write::put(b"\x0ak".to_vec(), b"v2".to_vec())],
    });
    assert!(matches!(c.store(new).handle_kv(req).await, KvResponse::Write(_)));
    // The old leader cannot serve a stale read.
    assert!(c.read_at(old, 10, b"\x0ak").await.is_err(), "isolated old leader must not serve reads");
    c.net.heal();
    assert!(c.wait_applied(old, b"\x0ak", b"v2", Duration::from_secs(10)).await, "healed node catches up");
    assert_eq!(c.read_at(new, 10, b"\x0ak").await.unwrap(), Some(b"v2".to_vec()));
    assert!(
        mvcc::scan(c.store(old).engine(), b"\x0a", b"\x0b", Timestamp::MAX, None, 0).unwrap().0.iter().all(|(_, v)| v != b"lost"),
        "the unacknowledged write never applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_recovers_its_replicas_from_the_store() {
    let mut c = Cluster::new(3, 5000).await;
    // Three ranges founded on different nodes: node 3 likely leads one of them when it dies.
    for (range, founder) in [(10u64, 1u64), (11, 2), (12, 3)] {
        c.create_range(range, founder, &[1, 2, 3]).await;
        c.write(range, &[range as u8, 1], b"before", Duration::from_secs(10)).await.unwrap();
        assert!(c.wait_applied(3, &[range as u8, 1], b"before", Duration::from_secs(5)).await);
    }
    c.crash(3).await;
    for range in 10u64..=12 {
        c.write(range, &[range as u8, 2], b"while-down", Duration::from_secs(10)).await.unwrap();
    }
    let s = c.open(3, &c.root.join("n3")).await;
    c.stores[2] = Some(s);
    for range in 10u64..=12 {
        assert!(c.store(3).replica(range).is_some(), "r{range} restarted from the store, no re-creation");
        let key = [range as u8, 2];
        assert!(c.wait_applied(3, &key, b"while-down", Duration::from_secs(10)).await, "r{range}: restarted node catches up from the log");
        assert_eq!(mvcc::get(c.store(3).engine(), &[range as u8, 1], Timestamp::MAX, None).unwrap(), Some(b"before".to_vec()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_of_one_node_moves_every_range_it_led_and_heal_converges_all() {
    let c = Cluster::new(3, 5000).await;
    for (range, founder) in [(10u64, 1u64), (11, 2), (12, 3), (13, 1)] {
        c.create_range(range, founder, &[1, 2, 3]).await;
        c.write(range, &[range as u8, 0], b"v1", Duration::from_secs(10)).await.unwrap();
    }
    // Cut off the node leading the most ranges.
    let leads = |n: u64| (10u64..=13).filter(|r| c.leader(*r) == Some(n)).count();
    let cut = (1..=3).max_by_key(|n| leads(*n)).unwrap();
    assert!(leads(cut) > 0);
    c.net.partition(&[cut], &[1, 2, 3]);
    // Every range commits on the majority side, led from there, while the cut-off node
    // acknowledges nothing.
    for range in 10u64..=13 {
        let key = [range as u8, 0];
        let req = KvRequest::Write(WriteRequest {
            range_id: range,
            read_ts: None,
            read_spans: vec![],
            writes: vec![Write::put(key.to_vec(), b"lost".to_vec())],
        });
        let isolated = tokio::time::timeout(Duration::from_millis(1500), c.store(cut).handle_kv(req)).await;
        assert!(!matches!(isolated, Ok(KvResponse::Write(_))), "r{range}: the cut-off node acknowledged a write");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let majority: Vec<u64> = (1..=3).filter(|n| *n != cut).collect();
            if let Some(l) = majority.iter().copied().find(|n| c.store(*n).replica(range).unwrap().group().is_leader()) {
                let req = KvRequest::Write(WriteRequest {
                    range_id: range,
                    read_ts: None,
                    read_spans: vec![],
                    writes: vec![Write::put(key.to_vec(), b"v2".to_vec())],
                });
                if matches!(c.store(l).handle_kv(req).await, KvResponse::Write(_)) {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "r{range}: the majority never committed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    c.net.heal();
    for range in 10u64..=13 {
        let key = [range as u8, 0];
        for n in 1..=3 {
            assert!(c.wait_applied(n, &key, b"v2", Duration::from_secs(15)).await, "r{range} converged on n{n}");
        }
        let l = c.leader(range).expect("a leader after healing");
        assert_eq!(c.read_at(l, range, &key).await.unwrap(), Some(b"v2".to_vec()));
    }
    let lost = mvcc::scan(c.store(cut).engine(), &[10], &[14], Timestamp::MAX, None, 0).unwrap().0;
    assert!(lost.iter().all(|(_, v)| v != b"lost"), "no unacknowledged write applied anywhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacement_replica_catches_up_by_snapshot_after_log_purge() {
    let mut c = Cluster::new(4, 20).await;
    c.create_range(10, 1, &[1, 2, 3]).await;
    for i in 0..120u32 {
        c.write(10, &[10, (i >> 8) as u8, i as u8], format!("v{i}").as_bytes(), Duration::from_secs(10)).await.unwrap();
    }
    let l = c.leader(10).unwrap();
    // Wait for the leader to purge its early log.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.store(l).engine().scan(Cf::RaftLog, &raft_log_key(10, 0), &raft_log_key(10, 5), 0).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "leader never purged its log");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Node 3 dies for good; node 4 replaces it and can only catch up by snapshot.
    let dead = (1..=3).find(|n| *n != l).unwrap();
    c.crash(dead).await;
    let g = c.store(l).replica(10).unwrap().group().clone();
    tokio::time::timeout(Duration::from_secs(20), g.add_voter(1004, 4)).await.unwrap().unwrap();
    tokio::time::timeout(Duration::from_secs(10), g.remove_member(1000 + dead)).await.unwrap().unwrap();
    for i in [0u32, 57, 119] {
        assert!(
            c.wait_applied(4, &[10, (i >> 8) as u8, i as u8], format!("v{i}").as_bytes(), Duration::from_secs(10)).await,
            "key {i} on n4"
        );
    }
    // And the group keeps committing with the new member.
    c.write(10, b"\x0afin", b"ok", Duration::from_secs(10)).await.unwrap();
    assert!(c.wait_applied(4, b"\x0afin", b"ok", Duration::from_secs(10)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_starts_the_new_range_everywhere_even_on_a_node_cut_off_during_it() {
    let c = Cluster::new(3, 5000).await;
    c.create_range(10, 1, &[1, 2, 3]).await;
    for i in 0..20u8 {
        c.write(10, &[10, i], b"v1", Duration::from_secs(10)).await.unwrap();
    }
    for n in 1..=3 {
        assert!(c.wait_applied(n, &[10, 19], b"v1", Duration::from_secs(5)).await);
    }
    let l = c.leader(10).unwrap();
    let cut = (1..=3).find(|n| *n != l).unwrap();
    c.net.partition(&[cut], &[1, 2, 3]);
    let (left, right) = c.store(l).replica(10).unwrap().split(vec![10, 10], 20, &[201, 202, 203, 204], false).await.unwrap();
    assert_eq!((left.end_key.clone(), right.start_key.clone(), right.end_key.clone()), (vec![10, 10], vec![10, 10], vec![11]));
    // The new range elects a leader on the connected side, serves the keys it inherited and
    // takes writes; the old range refuses them.
    c.write(20, &[10, 15], b"v2", Duration::from_secs(15)).await.unwrap();
    let l20 = c.leader(20).expect("range 20 has a leader");
    assert_ne!(l20, cut);
    assert_eq!(c.read_at(l20, 20, &[10, 12]).await.unwrap(), Some(b"v1".to_vec()));
    let req = KvRequest::Write(WriteRequest {
        range_id: 10,
        read_ts: None,
        read_spans: vec![],
        writes: vec![Write::put(vec![10, 16], b"no".to_vec())],
    });
    let l10 = c.leader(10).unwrap();
    assert!(matches!(c.store(l10).handle_kv(req).await, KvResponse::Error(KvError::KeyOutOfRange { .. })));
    c.write(10, &[10, 3], b"left", Duration::from_secs(10)).await.unwrap();
    assert!(c.store(cut).replica(20).is_none(), "the cut-off node has not applied the split");
    // Healed, the cut-off node applies the split, starts its replica of the new range from it
    // and catches up on both ranges.
    c.net.heal();
    assert!(c.wait_applied(cut, &[10, 15], b"v2", Duration::from_secs(20)).await, "the new range caught up on n{cut}");
    assert!(c.wait_applied(cut, &[10, 3], b"left", Duration::from_secs(20)).await, "the old range caught up on n{cut}");
    assert_eq!(c.store(cut).replica(10).unwrap().fsm().descriptor(), Some(left));
    // (A snapshot's data is visible in the store a moment before the replica has loaded it.)
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.store(cut).replica(20).unwrap().fsm().descriptor().map(|d| d.start_key) != Some(vec![10, 10]) {
        assert!(Instant::now() < deadline, "n{cut}'s replica of range 20 never loaded its descriptor");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        mvcc::get(c.store(cut).engine(), &[10, 16], Timestamp::MAX, None).unwrap(),
        Some(b"v1".to_vec()),
        "the refused write never applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_missed_a_range_and_its_split_gets_both_whole_in_any_order() {
    // The bug this guards against: a node whose replica of a range was created empty used to
    // apply that range's log from index 1. If a snapshot of a range split from it arrived first,
    // the old range's INSERT (a write conditional on its keys being absent) found the newer
    // rows of the snapshot, failed on that node alone, and the node's replica kept none of the
    // rows, silently, until it became leaseholder. Now every replica gets its first state from
    // a snapshot (or its range's creation or split), so the order of arrival does not matter.
    let c = Cluster::new(3, 5000).await;
    c.net.partition(&[3], &[1, 2, 3]);
    c.create_range(10, 1, &[1, 2, 3]).await;
    let l10 = c.leader(10).unwrap();
    let rows: Vec<Write> = (0..20u8).map(|i| Write { absent: true, ..Write::put(vec![10, i], b"v1".to_vec()) }).collect();
    let req = KvRequest::Write(WriteRequest { range_id: 10, read_ts: None, read_spans: vec![], writes: rows });
    assert!(matches!(c.store(l10).handle_kv(req).await, KvResponse::Write(_)));
    c.store(l10).replica(10).unwrap().split(vec![10, 10], 20, &[201, 202, 203, 204], false).await.unwrap();
    // The new range leads from the other connected node, and only that node reaches node 3 at
    // first: node 3 hears of the new range before the old one.
    let other = if l10 == 1 { 2 } else { 1 };
    let deadline = Instant::now() + Duration::from_secs(15);
    while c.leader(20) != Some(other) {
        assert!(Instant::now() < deadline, "range 20 never moved to n{other}");
        if let (Some(l), Some(r)) = (c.leader(20), c.store(other).replica(20)) {
            let _ = c.store(l).replica(20).unwrap().group().transfer_leader(r.group().replica_id()).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.net.heal_link(3, other);
    c.net.cut_link(3, l10);
    assert!(c.wait_applied(3, &[10, 15], b"v1", Duration::from_secs(20)).await, "the new range reached n3");
    c.net.heal();
    let left = c.store(l10).replica(10).unwrap().fsm().descriptor();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.store(3).replica(10).and_then(|r| r.fsm().descriptor()) != left {
        assert!(Instant::now() < deadline, "the old range never caught up on n3");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..20u8 {
        assert_eq!(mvcc::get(c.store(3).engine(), &[10, i], Timestamp::MAX, None).unwrap(), Some(b"v1".to_vec()), "row {i} on n3");
    }
}

/// Runs every node's quiescence pass until every replica of `range` has stopped ticking.
async fn quiesce_all(c: &Cluster, range: u64, nodes: &[u64]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        for n in nodes {
            let leaders = c.store(*n).host().leaders();
            c.store(*n).host().quiesce_idle(&leaders).await;
        }
        if nodes.iter().all(|n| c.store(*n).replica(range).is_some_and(|r| r.group().is_quiesced())) {
            return;
        }
        assert!(Instant::now() < deadline, "r{range} never quiesced on {nodes:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_range_quiesces_wakes_for_a_write_and_elects_once_liveness_wakes_it() {
    let mut c = Cluster::new(3, 5000).await;
    c.create_range(10, 1, &[1, 2, 3]).await;
    c.write(10, &[10, 1], b"v1", Duration::from_secs(10)).await.unwrap();
    quiesce_all(&c, 10, &[1, 2, 3]).await;
    // Quiesced: no heartbeats, no elections, for many election timeouts.
    let l = c.leader(10).unwrap();
    let term = c.store(l).replica(10).unwrap().group().current_term();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(c.leader(10), Some(l));
    for n in 1..=3 {
        let g = c.store(n).replica(10).unwrap().group().clone();
        assert!(g.is_quiesced() && g.current_term() == term, "n{n} stayed quiet");
    }
    // A write wakes the leader, and its entry wakes the followers.
    c.write(10, &[10, 2], b"v2", Duration::from_secs(5)).await.unwrap();
    for n in 1..=3 {
        assert!(c.wait_applied(n, &[10, 2], b"v2", Duration::from_secs(5)).await, "n{n} applied the write");
        assert!(!c.store(n).replica(10).unwrap().group().is_quiesced(), "n{n} woke");
    }
    // Quiesce again, then the leader's node dies. The followers, not ticking, do not notice...
    quiesce_all(&c, 10, &[1, 2, 3]).await;
    let l = c.leader(10).unwrap();
    c.crash(l).await;
    let alive: Vec<u64> = (1..=3).filter(|n| *n != l).collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(alive.iter().all(|n| !c.store(*n).replica(10).unwrap().group().is_leader()), "no election while quiesced");
    // ...until node liveness wakes the ranges the dead node led: they elect and take writes.
    let woken = Instant::now();
    for n in &alive {
        assert_eq!(c.store(*n).host().wake_followers_of(l), 1, "n{n} had one range led from n{l}");
    }
    c.write(10, &[10, 3], b"v3", Duration::from_secs(10)).await.unwrap();
    let took = woken.elapsed();
    assert!(alive.contains(&c.leader(10).unwrap()));
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_reaches_a_node_cut_off_during_it_by_snapshot_over_its_frozen_replica() {
    // A merge's steps driven by hand (the node layer's merge queue does the same): range 20 is
    // split from 10, frozen, applied everywhere, then one node is cut off before range 10
    // absorbs it. Range 10 moves on past its log; healed, the cut-off node gets a snapshot of
    // the merged range 10, which overlaps its frozen replica of 20: that replica is replaced,
    // and the node serves the whole merged span with every write of both ranges.
    use meridian_range::merge::Frozen;
    let c = Cluster::new(3, 20).await;
    c.create_range(10, 1, &[1, 2, 3]).await;
    for i in 0..20u8 {
        c.write(10, &[10, i], b"v1", Duration::from_secs(10)).await.unwrap();
    }
    let l = c.leader(10).unwrap();
    c.store(l).replica(10).unwrap().split(vec![10, 10], 20, &[201, 202, 203, 204], false).await.unwrap();
    c.write(20, &[10, 15], b"v2", Duration::from_secs(15)).await.unwrap();
    // Freeze 20 for a merge into 10, and wait until every replica applied the freeze.
    let l10 = c.leader(10).unwrap();
    let left = c.store(l10).replica(10).unwrap().fsm().descriptor().unwrap();
    let l20 = c.leader(20).unwrap();
    let frozen = Frozen { lhs: 10, lhs_start: left.start_key.clone(), lhs_generation: left.generation };
    let rhs = c.store(l20).replica(20).unwrap().subsume(frozen).await.unwrap();
    let write = |k: u8| {
        KvRequest::Write(WriteRequest {
            range_id: 20,
            read_ts: None,
            read_spans: vec![],
            writes: vec![Write::put(vec![10, k], b"x".to_vec())],
        })
    };
    assert!(matches!(c.store(l20).handle_kv(write(16)).await, KvResponse::Error(KvError::Unavailable(_))), "frozen");
    for n in 1..=3 {
        c.store(n).replica(20).unwrap().wait_applied(rhs.frozen_index, Duration::from_secs(10)).await.unwrap();
    }
    let cut = (1..=3).find(|n| *n != l10).unwrap();
    c.net.partition(&[cut], &[1, 2, 3]);
    let merged = c.store(l10).replica(10).unwrap().merge(left.generation, rhs).await.unwrap();
    assert_eq!((merged.start_key.clone(), merged.end_key.clone()), (left.start_key.clone(), vec![11]));
    // The merged range serves the right range's keys; the right range is gone where it applied.
    c.write(10, &[10, 17], b"merged", Duration::from_secs(10)).await.unwrap();
    assert_eq!(c.read_at(c.leader(10).unwrap(), 10, &[10, 15]).await.unwrap(), Some(b"v2".to_vec()));
    // Past the log the cut-off node would need: it can only catch up by snapshot.
    let merge_index = c.store(l10).replica(10).unwrap().group().status().last_applied.unwrap();
    for i in 0..60u8 {
        c.write(10, &[10, 100 + i % 50], &[i], Duration::from_secs(10)).await.unwrap();
    }
    let l10 = c.leader(10).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.store(l10).engine().scan(Cf::RaftLog, &raft_log_key(10, 0), &raft_log_key(10, merge_index + 1), 0).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the leader never purged the merge from its log");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(c.store(cut).replica(20).unwrap().fsm().frozen().is_some(), "n{cut} still has the frozen replica");
    assert_eq!(c.store(cut).replica(10).unwrap().fsm().descriptor().unwrap().end_key, vec![10, 10], "n{cut} missed the merge");
    c.net.heal();
    assert!(c.wait_applied(cut, &[10, 17], b"merged", Duration::from_secs(20)).await, "n{cut} caught up by snapshot");
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.store(cut).replica(20).is_some() || c.store(cut).replica(10).unwrap().fsm().descriptor().map(|d| d.end_key) != Some(vec![11]) {
        assert!(Instant::now() < deadline, "n{cut} never replaced its frozen replica of range 20");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (k, v) in [(3u8, &b"v1"[..]), (15, b"v2"), (17, b"merged")] {
        assert_eq!(mvcc::get(c.store(cut).engine(), &[10, k], Timestamp::MAX, None).unwrap().as_deref(), Some(v), "key {k} on n{cut}");
    }
    // A request for the merged-away range is sent back to look the key up again.
    let n = (1..=3).find(|n| *n != cut).unwrap();
    assert!(matches!(c.store(n).handle_kv(write(16)).await, KvResponse::Error(KvError::KeyOutOfRange { .. })));
}
