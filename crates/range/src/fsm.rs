//! The range state machine: deterministic application of committed range commands.
//!
//! State (`range_meta` family, key `range_id | 's'`, written with every change): the range
//! descriptor and the highest commit timestamp applied. Invariants:
//! - Commit timestamps of applied writes strictly increase in log order, and every one is above
//!   the transaction's read timestamp.
//! - A write whose read spans hold a version newer than its read timestamp is rejected
//!   (`Conflict`), on every replica alike, and changes nothing.
//! - Keys outside the descriptor's span are never written.
//! - A write conditional on its key being absent (`Write::absent`) that finds a live value
//!   fails the whole command (`KeyExists`), which changes nothing.

use meridian_raft_glue::Fsm;
use meridian_storage::{Batch, Cf, Engine, mvcc};
use meridian_types::keys::{range_local, range_local_key};
use meridian_types::kv::{Span, Write};
use meridian_types::{Hlc, RangeDescriptor, RangeId, Timestamp};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

/// A command replicated through a range's Raft log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum RangeCommand {
    /// Sets the range's descriptor (first command of every new range).
    SetDescriptor(RangeDescriptor),
    /// The write half of a one-range transaction.
    Write(WriteCmd),
    /// The range's table was dropped: refuse everything from now on.
    MarkDropped,
}

/// A one-range transaction's writes, with what it read and when.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WriteCmd {
    /// The leaseholder's timestamp for the write: above every read it served.
    pub proposal_ts: Timestamp,
    pub read_ts: Option<Timestamp>,
    pub read_spans: Vec<Span>,
    pub writes: Vec<Write>,
}

/// What applying a command produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyResult {
    Ok,
    Committed(Timestamp),
    Conflict(Timestamp),
    /// A write conditional on absence found this key live.
    KeyExists(Vec<u8>),
    OutOfRange,
    Dropped,
    Invalid(String),
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RangeState {
    pub desc: Option<RangeDescriptor>,
    pub last_write_ts: Timestamp,
    /// Set when the range's table is dropped; the range then serves nothing.
    pub dropped: bool,
}

pub struct RangeFsm {
    range_id: RangeId,
    hlc: Arc<Hlc>,
    state: RwLock<RangeState>,
    /// Keys written (with their commit timestamps, and whether the write deleted) by entries
    /// applied into the batch that is not written to the engine yet: validation must see them
    /// (see `Fsm::apply`).
    unflushed: std::sync::Mutex<Vec<(Vec<u8>, Timestamp, bool)>>,
    /// The last applied log index, for waiters.
    applied: watch::Sender<u64>,
}

impl RangeFsm {
    pub fn open(range_id: RangeId, engine: &Engine, hlc: Arc<Hlc>) -> Arc<RangeFsm> {
        let fsm = Arc::new(RangeFsm {
            range_id,
            hlc,
            state: RwLock::new(RangeState::default()),
            unflushed: Default::default(),
            applied: watch::channel(0).0,
        });
        fsm.reload(engine);
        fsm
    }

    pub fn state(&self) -> RangeState {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn descriptor(&self) -> Option<RangeDescriptor> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).desc.clone()
    }

    pub fn watch_applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    fn apply_write(&self, engine: &Engine, batch: &mut Batch, st: &mut RangeState, cmd: &WriteCmd) -> ApplyResult {
        let WriteCmd { proposal_ts, read_ts, read_spans, writes } = cmd;
        let (proposal_ts, read_ts) = (*proposal_ts, *read_ts);
        if st.dropped {
            return ApplyResult::Dropped;
        }
        let Some(desc) = &st.desc else {
            return ApplyResult::OutOfRange;
        };
        if writes.iter().any(|w| !desc.contains_key(&w.key)) || read_spans.iter().any(|s| !desc.contains_span(&s.start, &s.end)) {
            return ApplyResult::OutOfRange;
        }
        if let Some(rts) = read_ts {
            // Fast path: nothing at all was written in this range after the read.
            if st.last_write_ts > rts {
                let unflushed = self.unflushed.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((_, ts, _)) =
                    unflushed.iter().find(|(k, ts, _)| *ts > rts && read_spans.iter().any(|s| *k >= s.start && *k < s.end))
                {
                    return ApplyResult::Conflict(*ts);
                }
                drop(unflushed);
                for s in read_spans {
                    match mvcc::newer_version_in_span(engine, &s.start, &s.end, rts) {
                        Ok(Some(ts)) => return ApplyResult::Conflict(ts),
                        Ok(None) => {}
                        // A storage read failure here must not let replicas diverge: stop.
                        Err(e) => panic!("r{}: storage failure during apply: {e}", self.range_id),
                    }
                }
            }
        }
        for w in writes.iter().filter(|w| w.absent) {
            if self.is_live(engine, &w.key) {
                return ApplyResult::KeyExists(w.key.clone());
            }
        }
        let mut commit_ts = proposal_ts.max(st.last_write_ts.next());
        if let Some(rts) = read_ts {
            commit_ts = commit_ts.max(rts.next());
        }
        let mut unflushed = self.unflushed.lock().unwrap_or_else(|e| e.into_inner());
        for w in writes {
            mvcc::put(batch, engine, &w.key, commit_ts, w.value.as_deref());
            unflushed.push((w.key.clone(), commit_ts, w.value.is_none()));
        }
        st.last_write_ts = commit_ts;
        self.hlc.forward(commit_ts);
        ApplyResult::Committed(commit_ts)
    }
}

impl RangeFsm {
    /// Whether `key` holds a live value, counting writes applied but not yet flushed.
    fn is_live(&self, engine: &Engine, key: &[u8]) -> bool {
        let unflushed = self.unflushed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, deleted)) = unflushed.iter().rev().find(|(k, _, _)| k == key) {
            return !deleted;
        }
        drop(unflushed);
        match mvcc::get(engine, key, Timestamp::MAX, None) {
            Ok(v) => v.is_some(),
            // A storage read failure here must not let replicas diverge: stop.
            Err(e) => panic!("r{}: storage failure during apply: {e:?}", self.range_id),
        }
    }
}

fn persist(engine: &Engine, batch: &mut Batch, range: RangeId, st: &RangeState) {
    let bytes = postcard::to_stdvec(st).unwrap_or_default();
    batch.put(engine, Cf::RangeMeta, &range_local_key(range, range_local::RANGE_STATE), &bytes);
}

impl Fsm for RangeFsm {
    fn apply(&self, engine: &Engine, batch: &mut Batch, _index: u64, cmd: &[u8]) -> Vec<u8> {
        let result = match postcard::from_bytes::<RangeCommand>(cmd) {
            Err(e) => ApplyResult::Invalid(e.to_string()),
            Ok(cmd) => {
                let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
                let mut next = st.clone();
                let r = match &cmd {
                    RangeCommand::SetDescriptor(d) => {
                        if d.range_id == self.range_id {
                            next.desc = Some(d.clone());
                            ApplyResult::Ok
                        } else {
                            ApplyResult::Invalid("descriptor of another range".into())
                        }
                    }
                    RangeCommand::Write(w) => self.apply_write(engine, batch, &mut next, w),
                    RangeCommand::MarkDropped => {
                        next.dropped = true;
                        ApplyResult::Ok
                    }
                };
                if matches!(r, ApplyResult::Ok | ApplyResult::Committed(_)) {
                    persist(engine, batch, self.range_id, &next);
                    *st = next;
                }
                r
            }
        };
        postcard::to_stdvec(&result).unwrap_or_default()
    }

    fn applied(&self, index: u64) {
        self.unflushed.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.applied.send_replace(index);
    }

    fn span(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        self.descriptor().map(|d| (d.start_key, d.end_key))
    }

    fn reload(&self, engine: &Engine) {
        let st = engine
            .get(Cf::RangeMeta, &range_local_key(self.range_id, range_local::RANGE_STATE))
            .ok()
            .flatten()
            .and_then(|b| postcard::from_bytes::<RangeState>(&b).ok())
            .unwrap_or_default();
        self.hlc.forward(st.last_write_ts);
        self.unflushed.lock().unwrap_or_else(|e| e.into_inner()).clear();
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = st;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_types::kv::Span;

    fn desc() -> RangeDescriptor {
        RangeDescriptor { range_id: 7, start_key: b"a".to_vec(), end_key: b"m".to_vec(), replicas: vec![], generation: 1, table_id: None }
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
            RangeCommand::Write(WriteCmd {
                proposal_ts: Timestamp::new(10, 0),
                read_ts: None,
                read_spans: vec![],
                writes: vec![w("b", "1")],
            }),
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
        let first = RangeCommand::Write(WriteCmd {
            proposal_ts: Timestamp::new(10, 0),
            read_ts: None,
            read_spans: vec![],
            writes: vec![w("b", "1")],
        });
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
}
