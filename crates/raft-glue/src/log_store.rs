//! The Raft log and vote of one range, stored in the node's RocksDB.
//!
//! Keys: `raft_log` = `range_id | index`, value = encoded entry; `raft_meta` = `range_id | 'v'`
//! (vote), `'p'` (last purged log id), `'c'` (committed log id).
//!
//! Durability: `append` writes unsynced (entries are readable when it returns, as openraft
//! requires) and hands the flush callback to the group-commit syncer, which completes it after
//! the WAL fsync that covers it. `save_vote` waits for the same syncer before returning.
//! Truncation and purge need no fsync: a lost truncation is redone by the leader, and entries at
//! or below the persisted last-purged id are ignored on restart.

use crate::types::{TypeConfig, decode, encode};
use meridian_storage::{Batch, Cf, Engine};
use meridian_types::RangeId;
use meridian_types::keys::{raft_log_key, range_local, range_local_key};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

type Entry = openraft::alias::EntryOf<TypeConfig>;
type LogId = openraft::alias::LogIdOf<TypeConfig>;
type Vote = openraft::alias::VoteOf<TypeConfig>;

#[derive(Clone)]
pub struct LogStore {
    engine: Engine,
    range_id: RangeId,
}

impl LogStore {
    pub fn new(engine: Engine, range_id: RangeId) -> Self {
        LogStore { engine, range_id }
    }

    fn meta<T: for<'a> serde::Deserialize<'a>>(&self, suffix: u8) -> io::Result<Option<T>> {
        match self.engine.get(Cf::RaftMeta, &range_local_key(self.range_id, suffix))? {
            Some(b) => Ok(Some(decode(&b)?)),
            None => Ok(None),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, batch: &mut Batch, suffix: u8, v: &T) -> io::Result<()> {
        batch.put(&self.engine, Cf::RaftMeta, &range_local_key(self.range_id, suffix), &encode(v)?);
        Ok(())
    }

    /// Removes every log entry and Raft meta record of this range (replica destroyed).
    pub fn clear(&self, batch: &mut Batch) -> io::Result<()> {
        // Point deletes, never range tombstones, in the log (`Batch::delete_span`).
        batch
            .delete_span(&self.engine, Cf::RaftLog, &raft_log_key(self.range_id, 0), &raft_log_key(self.range_id + 1, 0))
            .map_err(io::Error::other)?;
        for s in [range_local::VOTE, range_local::LAST_PURGED, range_local::COMMITTED] {
            batch.delete(&self.engine, Cf::RaftMeta, &range_local_key(self.range_id, s));
        }
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(&mut self, range: RB) -> io::Result<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => x + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(x) => raft_log_key(self.range_id, x + 1),
            Bound::Excluded(x) => raft_log_key(self.range_id, *x),
            Bound::Unbounded => raft_log_key(self.range_id + 1, 0),
        };
        let mut out = Vec::new();
        for item in self.engine.iter(Cf::RaftLog, &raft_log_key(self.range_id, start), &end) {
            let (_, v) = item?;
            out.push(decode::<Entry>(&v)?);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        self.meta(range_local::VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> io::Result<LogState<TypeConfig>> {
        let last_purged: Option<LogId> = self.meta(range_local::LAST_PURGED)?;
        let last = self.engine.last_in(Cf::RaftLog, &raft_log_key(self.range_id, 0), &raft_log_key(self.range_id + 1, 0))?;
        let last_log_id = match last {
            Some((_, v)) => Some(decode::<Entry>(&v)?.log_id()),
            None => last_purged,
        };
        Ok(LogState { last_purged_log_id: last_purged, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        let mut b = Batch::new();
        self.put_meta(&mut b, range_local::VOTE, vote)?;
        self.engine.write_durable(b).await?;
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        let mut b = Batch::new();
        self.put_meta(&mut b, range_local::COMMITTED, &committed)?;
        self.engine.write(b)?;
        Ok(())
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self.meta::<Option<LogId>>(range_local::COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut b = Batch::new();
        for e in entries {
            b.put(&self.engine, Cf::RaftLog, &raft_log_key(self.range_id, e.index()), &encode(&e)?);
        }
        self.engine.write(b)?;
        self.engine.syncer().sync_then(move |res| callback.io_completed(res));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let from = last_log_id.map(|l| l.index() + 1).unwrap_or(0);
        let mut b = Batch::new();
        b.delete_span(&self.engine, Cf::RaftLog, &raft_log_key(self.range_id, from), &raft_log_key(self.range_id + 1, 0))
            .map_err(io::Error::other)?;
        self.engine.write(b)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> io::Result<()> {
        let mut b = Batch::new();
        self.put_meta(&mut b, range_local::LAST_PURGED, &log_id)?;
        b.delete_span(&self.engine, Cf::RaftLog, &raft_log_key(self.range_id, 0), &raft_log_key(self.range_id, log_id.index() + 1))
            .map_err(io::Error::other)?;
        self.engine.write(b)?;
        Ok(())
    }
}
