//! [`MemTxn`]: an in-memory [`TxnClient`] for tests (this crate's and other crates').
//!
//! Data is a `BTreeMap` written through immediately (no buffering, no rollback, no MVCC);
//! the catalog is a pair of maps. It counts `get`, `scan` and `prefetch` calls so tests can
//! assert how a statement was planned, and records schema-change steps (chunk commits,
//! propagation waits, with the descriptors at each wait). Not for production use.

use crate::catalog::{DatabaseDesc, TableDesc};
use crate::error::SqlError;
use crate::txn::TxnClient;
use meridian_types::keys;
use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct MemTxn {
    pub data: BTreeMap<Vec<u8>, Vec<u8>>,
    pub databases: BTreeMap<String, DatabaseDesc>,
    pub tables: BTreeMap<(String, String), TableDesc>,
    pub next_table_id: u64,
    /// Number of `get` calls so far.
    pub gets: usize,
    /// Number of `scan` calls so far.
    pub scans: usize,
    /// Counter behind `unique_rowid`.
    pub next_rowid: u64,
    /// `prefetch` calls and the keys they named (nothing is read ahead: reads are in memory).
    pub prefetches: usize,
    pub prefetched_keys: usize,
    /// Number of `commit_and_begin` calls (chunks committed by schema changes).
    pub commits: usize,
    /// Number of `wait_for_schema_propagation` calls.
    pub schema_waits: usize,
    /// Table descriptors as they were at each `wait_for_schema_propagation`, so tests can see
    /// the states a schema change stepped through.
    pub schema_history: Vec<TableDesc>,
    /// Range boundaries made by `split_at` (sorted): `ranges` reports the span cut at them.
    pub splits: std::collections::BTreeSet<Vec<u8>>,
    /// Split points made ordinary again by `unsplit_at`.
    pub unsplit: std::collections::BTreeSet<Vec<u8>>,
    /// Zone configurations by (table id, "") or (0, database).
    pub zones: BTreeMap<(u64, String), meridian_types::ZoneConfig>,
}

impl MemTxn {
    pub fn new() -> Self {
        MemTxn { next_table_id: 100, ..Default::default() }
    }

    /// A MemTxn with database `db` already created.
    pub fn with_database(db: &str) -> Self {
        let mut t = MemTxn::new();
        t.databases.insert(db.into(), DatabaseDesc { name: db.into() });
        t
    }

    fn clear_span(&mut self, id: u64) {
        let (start, end) = keys::table_span(id);
        let doomed: Vec<_> = self.data.range(start..end).map(|(k, _)| k.clone()).collect();
        for k in doomed {
            self.data.remove(&k);
        }
    }
}

impl TxnClient for MemTxn {
    async fn get_database(&mut self, name: &str) -> Result<Option<DatabaseDesc>, SqlError> {
        Ok(self.databases.get(name).cloned())
    }

    async fn create_database(&mut self, name: &str) -> Result<(), SqlError> {
        if self.databases.contains_key(name) {
            return Err(SqlError::user("42P04", format!("database \"{name}\" already exists")));
        }
        self.databases.insert(name.into(), DatabaseDesc { name: name.into() });
        Ok(())
    }

    async fn drop_database(&mut self, name: &str) -> Result<(), SqlError> {
        if self.databases.remove(name).is_none() {
            return Err(SqlError::user("3D000", format!("database \"{name}\" does not exist")));
        }
        let doomed: Vec<_> = self.tables.keys().filter(|(d, _)| d == name).cloned().collect();
        for k in doomed {
            if let Some(t) = self.tables.remove(&k) {
                self.clear_span(t.id);
            }
        }
        Ok(())
    }

    async fn list_databases(&mut self) -> Result<Vec<DatabaseDesc>, SqlError> {
        Ok(self.databases.values().cloned().collect())
    }

    async fn get_table(&mut self, db: &str, name: &str) -> Result<Option<TableDesc>, SqlError> {
        Ok(self.tables.get(&(db.to_string(), name.to_string())).cloned())
    }

    async fn list_tables(&mut self, db: &str) -> Result<Vec<TableDesc>, SqlError> {
        Ok(self.tables.values().filter(|t| t.db == db).cloned().collect())
    }

    async fn create_table(&mut self, mut desc: TableDesc) -> Result<TableDesc, SqlError> {
        let key = (desc.db.clone(), desc.name.clone());
        if self.tables.contains_key(&key) {
            return Err(SqlError::user("42P07", format!("relation \"{}\" already exists", desc.name)));
        }
        self.next_table_id += 1;
        desc.id = self.next_table_id;
        self.tables.insert(key, desc.clone());
        Ok(desc)
    }

    async fn drop_table(&mut self, db: &str, name: &str) -> Result<(), SqlError> {
        match self.tables.remove(&(db.to_string(), name.to_string())) {
            Some(t) => {
                self.clear_span(t.id);
                Ok(())
            }
            None => Err(SqlError::user("42P01", format!("relation \"{name}\" does not exist"))),
        }
    }

    async fn update_table(&mut self, expected_version: u64, desc: TableDesc) -> Result<(), SqlError> {
        let key = (desc.db.clone(), desc.name.clone());
        let Some(cur) = self.tables.get(&key) else {
            return Err(SqlError::user("42P01", format!("relation \"{}\" does not exist", desc.name)));
        };
        if cur.version != expected_version || desc.version != expected_version + 1 || cur.id != desc.id {
            return Err(SqlError::user("40001", "table descriptor changed concurrently"));
        }
        self.tables.insert(key, desc);
        Ok(())
    }

    async fn rename_table(&mut self, db: &str, old: &str, new: &str) -> Result<(), SqlError> {
        if self.tables.contains_key(&(db.to_string(), new.to_string())) {
            return Err(SqlError::user("42P07", format!("relation \"{new}\" already exists")));
        }
        let Some(mut t) = self.tables.remove(&(db.to_string(), old.to_string())) else {
            return Err(SqlError::user("42P01", format!("relation \"{old}\" does not exist")));
        };
        t.name = new.to_string();
        t.version += 1;
        self.tables.insert((db.to_string(), new.to_string()), t);
        Ok(())
    }

    fn unique_rowid(&mut self) -> i64 {
        // Bit reversal of a counter: injective below 2^63, positive, and scattered.
        self.next_rowid += 1;
        (self.next_rowid.reverse_bits() >> 1) as i64
    }

    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, SqlError> {
        self.gets += 1;
        Ok(self.data.get(key).cloned())
    }

    async fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, SqlError> {
        self.scans += 1;
        if start >= end {
            return Ok(Vec::new());
        }
        let it = self.data.range(start.to_vec()..end.to_vec()).map(|(k, v)| (k.clone(), v.clone()));
        Ok(if limit == 0 { it.collect() } else { it.take(limit).collect() })
    }

    async fn prefetch(&mut self, keys: &[Vec<u8>]) -> Result<(), SqlError> {
        self.prefetches += 1;
        self.prefetched_keys += keys.len();
        Ok(())
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.data.insert(key, value);
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.data.remove(&key);
    }

    async fn commit_and_begin(&mut self) -> Result<(), SqlError> {
        self.commits += 1;
        Ok(())
    }

    async fn wait_for_schema_propagation(&mut self) -> Result<(), SqlError> {
        self.schema_waits += 1;
        self.schema_history.extend(self.tables.values().cloned());
        Ok(())
    }

    async fn configure_zone(
        &mut self,
        db: &str,
        table: Option<&TableDesc>,
        change: meridian_types::ZoneConfig,
    ) -> Result<meridian_types::ZoneConfig, SqlError> {
        let key = table.map_or((0, db.to_string()), |t| (t.id, String::new()));
        let merged = crate::zone::merge_zone(self.zones.get(&key).copied().unwrap_or_default(), change)?;
        self.zones.insert(key, merged);
        Ok(merged)
    }

    async fn split_at(&mut self, key: &[u8]) -> Result<(), SqlError> {
        self.splits.insert(key.to_vec());
        Ok(())
    }

    async fn unsplit_at(&mut self, key: &[u8]) -> Result<(), SqlError> {
        if !self.splits.contains(key) {
            return Err(SqlError::user("22023", "not a range boundary"));
        }
        self.unsplit.insert(key.to_vec());
        Ok(())
    }

    /// The span cut at the split points, each piece a range on "node 1" (ids from 1 in key
    /// order); a range's size is the bytes of the keys and values in it.
    async fn ranges(&mut self, start: &[u8], end: &[u8]) -> Result<Vec<crate::RangeInfo>, SqlError> {
        let mut bounds = vec![start.to_vec()];
        bounds.extend(self.splits.range(start.to_vec()..end.to_vec()).filter(|k| k.as_slice() > start).cloned());
        bounds.push(end.to_vec());
        Ok(bounds
            .windows(2)
            .enumerate()
            .map(|(i, w)| crate::RangeInfo {
                range_id: i as u64 + 1,
                start_key: w[0].clone(),
                end_key: w[1].clone(),
                size_bytes: self.data.range(w[0].clone()..w[1].clone()).map(|(k, v)| (k.len() + v.len()) as u64).sum(),
                leaseholder: 1,
                replicas: vec![1],
                localities: [(1, "region=mem".to_string())].into(),
            })
            .collect())
    }
}
