//! The RocksDB wrapper: column families, write batches, reads and iteration.

use crate::{Result, StorageError, Syncer};
use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions};
use std::path::Path;
use std::sync::Arc;

/// The column families of a node's store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cf {
    RaftLog,
    RaftMeta,
    RangeMeta,
    Data,
}

impl Cf {
    const ALL: [Cf; 4] = [Cf::RaftLog, Cf::RaftMeta, Cf::RangeMeta, Cf::Data];

    fn name(self) -> &'static str {
        match self {
            Cf::RaftLog => "raft_log",
            Cf::RaftMeta => "raft_meta",
            Cf::RangeMeta => "range_meta",
            Cf::Data => "data",
        }
    }
}

fn rocks(e: rocksdb::Error) -> StorageError {
    StorageError::Rocks(e.into_string())
}

/// A node's store. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    db: Arc<DB>,
    syncer: Arc<Syncer>,
}

/// An atomic group of writes across column families.
#[derive(Default)]
pub struct Batch {
    inner: WriteBatch,
    ops: usize,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.ops
    }
    pub fn is_empty(&self) -> bool {
        self.ops == 0
    }
    pub fn put(&mut self, engine: &Engine, cf: Cf, key: &[u8], value: &[u8]) {
        self.inner.put_cf(engine.cf(cf), key, value);
        self.ops += 1;
    }
    pub fn delete(&mut self, engine: &Engine, cf: Cf, key: &[u8]) {
        self.inner.delete_cf(engine.cf(cf), key);
        self.ops += 1;
    }
    /// Deletes every key in `[start, end)` of `cf` with one range tombstone. For large spans;
    /// see [`Batch::delete_span`] for why not for small ones.
    pub fn delete_range(&mut self, engine: &Engine, cf: Cf, start: &[u8], end: &[u8]) {
        self.inner.delete_range_cf(engine.cf(cf), start, end);
        self.ops += 1;
    }

    /// Deletes every key now in `[start, end)` of `cf`: one point delete each when there are at
    /// most [`POINT_DELETES_MAX`], else one range tombstone. RocksDB re-fragments every range
    /// tombstone in a memtable on each new iterator of its column family, so one tombstone per
    /// Raft group (each log truncation, purge or snapshot) made every read cost O(groups), and
    /// splits slowed down as ranges grew (a node with 7,000 ranges spent half its CPU there).
    pub fn delete_span(&mut self, engine: &Engine, cf: Cf, start: &[u8], end: &[u8]) -> Result<()> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(end.to_vec());
        let mut it = engine.db.raw_iterator_cf_opt(engine.cf(cf), ro);
        it.seek(start);
        let mut keys = Vec::new();
        while let Some(k) = it.key() {
            if keys.len() == POINT_DELETES_MAX {
                self.delete_range(engine, cf, start, end);
                return Ok(());
            }
            keys.push(k.to_vec());
            it.next();
        }
        it.status().map_err(rocks)?;
        for k in keys {
            self.delete(engine, cf, &k);
        }
        Ok(())
    }
}

/// Most keys [`Batch::delete_span`] deletes one by one before it uses a range tombstone.
pub const POINT_DELETES_MAX: usize = 10_000;

impl Engine {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Engine> {
        std::fs::create_dir_all(dir)?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_bytes_per_sync(1 << 20);
        opts.set_keep_log_file_num(4);
        let cfs = Cf::ALL.iter().map(|cf| {
            let mut o = Options::default();
            o.set_write_buffer_size(32 << 20);
            if *cf == Cf::Data {
                o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            }
            ColumnFamilyDescriptor::new(cf.name(), o)
        });
        let db = DB::open_cf_descriptors(&opts, dir, cfs).map_err(rocks)?;
        let db = Arc::new(db);
        let syncer = Arc::new(Syncer::start(db.clone()));
        Ok(Engine { db, syncer })
    }

    fn cf(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        // Every family is created at open, so the handle always exists.
        self.db.cf_handle(cf.name()).expect("column family created at open")
    }

    pub fn syncer(&self) -> &Syncer {
        &self.syncer
    }

    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(cf), key).map_err(rocks)
    }

    /// Writes `batch` without waiting for fsync: readable at once, durable after the next sync.
    pub fn write(&self, batch: Batch) -> Result<()> {
        let mut wo = WriteOptions::default();
        wo.set_sync(false);
        self.db.write_opt(batch.inner, &wo).map_err(rocks)
    }

    /// Writes `batch` and waits until it is durable (group-committed with every other waiter).
    pub async fn write_durable(&self, batch: Batch) -> Result<()> {
        self.write(batch)?;
        self.syncer.sync().await
    }

    /// Blocking variant of [`Engine::write_durable`] for non-async callers.
    pub fn write_durable_blocking(&self, batch: Batch) -> Result<()> {
        self.write(batch)?;
        self.db.flush_wal(true).map_err(rocks)
    }

    /// Key/value pairs of `cf` in `[start, end)` in key order, at most `limit` (0 = all).
    pub fn scan(&self, cf: Cf, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for item in self.iter(cf, start, end) {
            out.push(item?);
            if limit != 0 && out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// A forward iterator over `[start, end)` of `cf`. The iterator reads one consistent view.
    pub fn iter<'a>(&'a self, cf: Cf, start: &[u8], end: &[u8]) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + 'a {
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(end.to_vec());
        self.db
            .iterator_cf_opt(self.cf(cf), ro, IteratorMode::From(start, Direction::Forward))
            .map(|r| r.map(|(k, v)| (k.into_vec(), v.into_vec())).map_err(rocks))
    }

    /// The last key/value of `cf` in `[start, end)`.
    pub fn last_in(&self, cf: Cf, start: &[u8], end: &[u8]) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(start.to_vec());
        ro.set_iterate_upper_bound(end.to_vec());
        let mut it = self.db.iterator_cf_opt(self.cf(cf), ro, IteratorMode::End);
        match it.next() {
            None => Ok(None),
            Some(r) => r.map(|(k, v)| Some((k.into_vec(), v.into_vec()))).map_err(rocks),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn durable_write_is_readable_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let e = Engine::open(dir.path()).unwrap();
            let mut b = Batch::new();
            b.put(&e, Cf::Data, b"k1", b"v1");
            b.put(&e, Cf::RaftLog, b"k2", b"v2");
            e.write_durable(b).await.unwrap();
        }
        let e = Engine::open(dir.path()).unwrap();
        assert_eq!(e.get(Cf::Data, b"k1").unwrap(), Some(b"v1".to_vec()));
        assert_eq!(e.get(Cf::RaftLog, b"k2").unwrap(), Some(b"v2".to_vec()));
        assert_eq!(e.get(Cf::Data, b"k2").unwrap(), None, "families are separate");
        let mut b = Batch::new();
        b.put(&e, Cf::Data, b"a", b"1");
        b.put(&e, Cf::Data, b"b", b"2");
        b.put(&e, Cf::Data, b"c", b"3");
        e.write(b).unwrap();
        let rows = e.scan(Cf::Data, b"a", b"c", 0).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(e.last_in(Cf::Data, b"a", b"k").unwrap().unwrap().0, b"c".to_vec());
    }

    #[test]
    fn delete_span_uses_point_deletes_for_few_keys_and_a_tombstone_for_many() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let key = |p: u8, i: usize| [&[p][..], &(i as u32).to_be_bytes()].concat();
        let mut b = Batch::new();
        for i in 0..3 {
            b.put(&e, Cf::RaftLog, &key(1, i), b"x");
        }
        for i in 0..=POINT_DELETES_MAX {
            b.put(&e, Cf::RaftLog, &key(2, i), b"x");
        }
        b.put(&e, Cf::RaftLog, &key(3, 0), b"kept");
        e.write(b).unwrap();
        let mut few = Batch::new();
        few.delete_span(&e, Cf::RaftLog, &key(1, 0), &key(2, 0)).unwrap();
        assert_eq!(few.len(), 3, "one point delete per key");
        let mut many = Batch::new();
        many.delete_span(&e, Cf::RaftLog, &key(2, 0), &key(3, 0)).unwrap();
        assert_eq!(many.len(), 1, "one range tombstone");
        e.write(few).unwrap();
        e.write(many).unwrap();
        assert_eq!(e.scan(Cf::RaftLog, &key(1, 0), &key(4, 0), 0).unwrap(), vec![(key(3, 0), b"kept".to_vec())]);
    }
}
