//! Unit tests of the range state machine (`crate::fsm`).
use super::*;
use meridian_types::kv::Span;

fn desc() -> RangeDescriptor {
    RangeDescriptor {
        range_id: 7,
        start_key: b"a".to_vec(),
        end_key: b"m".to_vec(),
        replicas: vec![],
        generation: 1,
        table_id: None,
        sticky: false,
    }
}

fn apply(f: &RangeFsm, e: &Engine, cmd: RangeCommand) -> ApplyResult {
    let mut b = Batch::new();
    let r = f.apply(e, &mut b, 1, &postcard::to_stdvec(&cmd).unwrap());
    e.write(b).unwrap();
    postcard::from_bytes(&r).unwrap()
}

fn w(k: &str, v: &str) -> Write {
    Write::put(k.as_bytes().to_vec(), v.as_bytes().to_vec())
}

#[test]
fn validation_rejects_stale_reads_and_orders_commits() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path()).unwrap();
    let hlc = Arc::new(Hlc::system(500_000_000));
    let f = RangeFsm::open(7, &e, hlc.clone());
    assert_eq!(
        apply(
            &f,
            &e,
            RangeCommand::Write(WriteCmd {
                proposal_ts: Timestamp::new(5, 0),
                read_ts: None,
                read_spans: vec![],
                writes: vec![w("b", "1")]
            })
        ),
        ApplyResult::OutOfRange,
        "no descriptor yet"
    );
    assert_eq!(apply(&f, &e, RangeCommand::SetDescriptor(desc())), ApplyResult::Ok);
    let t1 = match apply(
        &f,
        &e,
        RangeCommand::Write(WriteCmd { proposal_ts: Timestamp::new(10, 0), read_ts: None, read_spans: vec![], writes: vec![w("b", "1")] }),
    ) {
        ApplyResult::Committed(t) => t,
        r => panic!("{r:?}"),
    };
    // A transaction that read "b" before t1 conflicts.
    let stale = RangeCommand::Write(WriteCmd {
        proposal_ts: Timestamp::new(11, 0),
        read_ts: Some(Timestamp::new(9, 0)),
        read_spans: vec![Span::point(b"b")],
        writes: vec![w("c", "x")],
    });
    assert_eq!(apply(&f, &e, stale), ApplyResult::Conflict(t1));
    assert_eq!(mvcc::get(&e, b"c", Timestamp::MAX, None).unwrap(), None, "rejected write changed nothing");
    // One that read a different key, or read after t1, commits above both.
    let ok = RangeCommand::Write(WriteCmd {
        proposal_ts: Timestamp::new(3, 0),
        read_ts: Some(Timestamp::new(9, 0)),
        read_spans: vec![Span::point(b"d")],
        writes: vec![w("d", "y")],
    });
    let t2 = match apply(&f, &e, ok) {
        ApplyResult::Committed(t) => t,
        r => panic!("{r:?}"),
    };
    assert!(t2 > t1, "commit timestamps increase in log order even if proposed lower");
    assert_eq!(
        apply(&f, &e, RangeCommand::Write(WriteCmd { proposal_ts: t2, read_ts: None, read_spans: vec![], writes: vec![w("z", "1")] })),
        ApplyResult::OutOfRange
    );
    // State survives a reload (restart).
    let f2 = RangeFsm::open(7, &e, hlc);
    assert_eq!(f2.state().last_write_ts, t2);
    assert_eq!(f2.descriptor(), Some(desc()));
}

#[test]
fn validation_sees_writes_of_earlier_entries_in_the_same_unwritten_batch() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path()).unwrap();
    let f = RangeFsm::open(7, &e, Arc::new(Hlc::system(500_000_000)));
    assert_eq!(apply(&f, &e, RangeCommand::SetDescriptor(desc())), ApplyResult::Ok);
    f.applied(1);
    // Two entries applied into one batch, as the state machine does under load.
    let mut b = Batch::new();
    let first =
        RangeCommand::Write(WriteCmd { proposal_ts: Timestamp::new(10, 0), read_ts: None, read_spans: vec![], writes: vec![w("b", "1")] });
    let r1: ApplyResult = postcard::from_bytes(&f.apply(&e, &mut b, 2, &postcard::to_stdvec(&first).unwrap())).unwrap();
    let ApplyResult::Committed(t1) = r1 else { panic!("{r1:?}") };
    let second = RangeCommand::Write(WriteCmd {
        proposal_ts: Timestamp::new(11, 0),
        read_ts: Some(Timestamp::new(9, 0)),
        read_spans: vec![Span::point(b"b")],
        writes: vec![w("c", "x")],
    });
    let r2: ApplyResult = postcard::from_bytes(&f.apply(&e, &mut b, 3, &postcard::to_stdvec(&second).unwrap())).unwrap();
    assert_eq!(r2, ApplyResult::Conflict(t1), "the read of b is stale although b is not in the engine yet");
    e.write(b).unwrap();
    f.applied(3);
    assert_eq!(mvcc::get(&e, b"c", Timestamp::MAX, None).unwrap(), None);
    assert_eq!(mvcc::get(&e, b"b", Timestamp::MAX, None).unwrap(), Some(b"1".to_vec()));
}
#[test]
fn a_write_conditional_on_absence_fails_whole_when_the_key_is_live() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path()).unwrap();
    let f = RangeFsm::open(7, &e, Arc::new(Hlc::system(500_000_000)));
    assert_eq!(apply(&f, &e, RangeCommand::SetDescriptor(desc())), ApplyResult::Ok);
    f.applied(1);
    let absent = |k: &str, v: &str| Write { absent: true, ..w(k, v) };
    let cmd = |writes: Vec<Write>| {
        RangeCommand::Write(WriteCmd { proposal_ts: Timestamp::new(10, 0), read_ts: None, read_spans: vec![], writes })
    };
    assert!(matches!(apply(&f, &e, cmd(vec![absent("b", "1")])), ApplyResult::Committed(_)));
    f.applied(2);
    // b is live: the command fails and its other write does not happen.
    assert_eq!(apply(&f, &e, cmd(vec![absent("b", "2"), w("c", "x")])), ApplyResult::KeyExists(b"b".to_vec()));
    assert_eq!(mvcc::get(&e, b"c", Timestamp::MAX, None).unwrap(), None);
    assert_eq!(mvcc::get(&e, b"b", Timestamp::MAX, None).unwrap(), Some(b"1".to_vec()));
    // Within one unflushed batch: a delete makes the key absent again, a put makes it live.
    let mut b = Batch::new();
    let del = RangeCommand::Write(WriteCmd {
        proposal_ts: Timestamp::new(20, 0),
        read_ts: None,
        read_spans: vec![],
        writes: vec![Write { key: b"b".to_vec(), value: None, absent: false }, w("d", "1")],
    });
    let r: ApplyResult = postcard::from_bytes(&f.apply(&e, &mut b, 3, &postcard::to_stdvec(&del).unwrap())).unwrap();
    assert!(matches!(r, ApplyResult::Committed(_)));
    let r: ApplyResult =
        postcard::from_bytes(&f.apply(&e, &mut b, 4, &postcard::to_stdvec(&cmd(vec![absent("d", "2")])).unwrap())).unwrap();
    assert_eq!(r, ApplyResult::KeyExists(b"d".to_vec()), "d is live in the unflushed batch");
    let r: ApplyResult =
        postcard::from_bytes(&f.apply(&e, &mut b, 5, &postcard::to_stdvec(&cmd(vec![absent("b", "3")])).unwrap())).unwrap();
    assert!(matches!(r, ApplyResult::Committed(_)), "b was deleted in the unflushed batch: {r:?}");
    e.write(b).unwrap();
    f.applied(5);
    assert_eq!(mvcc::get(&e, b"b", Timestamp::MAX, None).unwrap(), Some(b"3".to_vec()));
}
fn txn(id: u128) -> TxnMeta {
    TxnMeta { id, anchor_key: b"b".to_vec(), expires_ms: 0 }
}

fn prepare(f: &RangeFsm, e: &Engine, id: u128, read: Option<(u64, &str)>, writes: Vec<Write>) -> ApplyResult {
    let (read_ts, read_spans) = match read {
        Some((t, k)) => (Some(Timestamp::new(t, 0)), vec![Span::point(k.as_bytes())]),
        None => (None, vec![]),
    };
    apply(f, e, RangeCommand::Prepare { txn: txn(id), cmd: WriteCmd { proposal_ts: Timestamp::new(100, 0), read_ts, read_spans, writes } })
}

#[test]
fn prepared_intents_and_read_locks_block_others_until_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path()).unwrap();
    let f = RangeFsm::open(7, &e, Arc::new(Hlc::system(500_000_000)));
    assert_eq!(apply(&f, &e, RangeCommand::SetDescriptor(desc())), ApplyResult::Ok);
    // Transaction 1 read "c" and writes "b".
    let ApplyResult::Prepared(p1) = prepare(&f, &e, 1, Some((50, "c")), vec![w("b", "1")]) else { panic!() };
    assert_eq!(f.state().intents, 1);
    assert_eq!(mvcc::get(&e, b"b", Timestamp::new(40, 0), None).unwrap(), None, "intent above the read is invisible");
    assert!(matches!(mvcc::get(&e, b"b", Timestamp::MAX, None), Err(mvcc::MvccError::Intent(..))));
    // Others may not write b (intent), write c (read lock), or read b (intent in a read span).
    let write = |k: &str, read: Option<&str>| {
        RangeCommand::Write(WriteCmd {
            proposal_ts: Timestamp::new(200, 0),
            read_ts: read.map(|_| Timestamp::new(150, 0)),
            read_spans: read.map(|k| vec![Span::point(k.as_bytes())]).unwrap_or_default(),
            writes: vec![w(k, "x")],
        })
    };
    assert_eq!(apply(&f, &e, write("b", None)), ApplyResult::IntentConflict(b"b".to_vec(), txn(1)));
    assert_eq!(apply(&f, &e, write("c", None)), ApplyResult::IntentConflict(b"c".to_vec(), txn(1)));
    assert_eq!(apply(&f, &e, write("d", Some("b"))), ApplyResult::IntentConflict(b"b".to_vec(), txn(1)));
    assert!(matches!(prepare(&f, &e, 2, None, vec![w("b", "2")]), ApplyResult::IntentConflict(..)));
    assert!(matches!(apply(&f, &e, write("d", None)), ApplyResult::Committed(_)), "unrelated keys are free");
    // The record: the first one written wins.
    let commit = Timestamp::new(p1.wall_ns + 1000, 0);
    let rec = |status| ApplyResult::Txn(TxnRecord { status, expires_ms: 0 });
    assert_eq!(apply(&f, &e, RangeCommand::EndTxn { txn_id: 1, commit: Some(commit), now_ms: 0 }), rec(TxnStatus::Committed(commit)));
    assert_eq!(apply(&f, &e, RangeCommand::EndTxn { txn_id: 1, commit: None, now_ms: 0 }), rec(TxnStatus::Committed(commit)));
    assert_eq!(f.txn_record(1).status, TxnStatus::Committed(commit));
    let resolve = RangeCommand::Resolve { txn_id: 1, status: TxnStatus::Committed(commit), keys: vec![b"b".to_vec()], forget_record: true };
    assert_eq!(apply(&f, &e, resolve.clone()), ApplyResult::Ok);
    assert_eq!(apply(&f, &e, resolve), ApplyResult::Ok, "resolving twice changes nothing");
    let st = f.state();
    assert_eq!((st.intents, st.read_locks.len(), st.txn_records.len()), (0, 0, 0));
    assert_eq!(mvcc::get(&e, b"b", commit, None).unwrap(), Some(b"1".to_vec()));
    assert_eq!(mvcc::get(&e, b"b", Timestamp::new(commit.wall_ns - 1, 0), None).unwrap(), None);
    assert!(matches!(apply(&f, &e, write("c", None)), ApplyResult::Committed(t) if t > commit));
    // An aborted transaction leaves nothing.
    assert!(matches!(prepare(&f, &e, 3, None, vec![w("e", "3")]), ApplyResult::Prepared(_)));
    // A heartbeat keeps the record alive: an abort by someone whose clock is earlier than
    // its expiry is refused; a later one wins, and a commit after it learns so.
    let hb = |ms| RangeCommand::Heartbeat { txn_id: 3, expires_ms: ms };
    let pending = |ms| ApplyResult::Txn(TxnRecord { status: TxnStatus::Pending, expires_ms: ms });
    assert_eq!(apply(&f, &e, hb(5_000)), pending(5_000));
    assert_eq!(apply(&f, &e, hb(4_000)), pending(5_000), "expiry never moves back");
    assert_eq!(apply(&f, &e, RangeCommand::EndTxn { txn_id: 3, commit: None, now_ms: 4_999 }), pending(5_000));
    let aborted = ApplyResult::Txn(TxnRecord { status: TxnStatus::Aborted, expires_ms: 5_000 });
    assert_eq!(apply(&f, &e, RangeCommand::EndTxn { txn_id: 3, commit: None, now_ms: 5_001 }), aborted);
    assert_eq!(apply(&f, &e, RangeCommand::EndTxn { txn_id: 3, commit: Some(commit), now_ms: 0 }), aborted);
    assert_eq!(apply(&f, &e, hb(9_000)), aborted, "a final record is not revived by a heartbeat");
    let abort = RangeCommand::Resolve { txn_id: 3, status: TxnStatus::Aborted, keys: vec![b"e".to_vec()], forget_record: false };
    assert_eq!(apply(&f, &e, abort), ApplyResult::Ok);
    assert_eq!(mvcc::get(&e, b"e", Timestamp::MAX, None).unwrap(), None);
    assert_eq!(f.state().intents, 0);
    // State survives a reload.
    let f2 = RangeFsm::open(7, &e, Arc::new(Hlc::system(500_000_000)));
    assert_eq!(f2.txn_record(3).status, TxnStatus::Aborted);
}
