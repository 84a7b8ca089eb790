//! The boundary between SQL and storage: [`TxnClient`], implemented by the node crate (and by
//! [`crate::testing::MemTxn`] for tests).
//!
//! Invariants: catalog calls take effect immediately (outside the data transaction); data reads
//! see the transaction's own earlier buffered writes. The trait is used generically, never as dyn.
//! Schema changes that touch data (CREATE/DROP INDEX) commit in chunks through
//! [`TxnClient::commit_and_begin`] and step descriptor versions apart with
//! [`TxnClient::wait_for_schema_propagation`].

use crate::catalog::{DatabaseDesc, TableDesc};
use crate::error::SqlError;
use std::future::Future;

pub trait TxnClient: Send {
    // --- catalog (executed immediately by the implementation, not part of the data txn) ---
    fn get_database(&mut self, name: &str) -> impl Future<Output = Result<Option<DatabaseDesc>, SqlError>> + Send;
    /// Errors with 42P04 if it exists.
    fn create_database(&mut self, name: &str) -> impl Future<Output = Result<(), SqlError>> + Send;
    /// Drops the database and every table in it.
    fn drop_database(&mut self, name: &str) -> impl Future<Output = Result<(), SqlError>> + Send;
    fn list_databases(&mut self) -> impl Future<Output = Result<Vec<DatabaseDesc>, SqlError>> + Send;
    fn get_table(&mut self, db: &str, name: &str) -> impl Future<Output = Result<Option<TableDesc>, SqlError>> + Send;
    fn list_tables(&mut self, db: &str) -> impl Future<Output = Result<Vec<TableDesc>, SqlError>> + Send;
    /// The implementation allocates `desc.id` (ignores the passed one), creates the table's range,
    /// stores the descriptor and returns it. Errors with 42P07 if it exists.
    fn create_table(&mut self, desc: TableDesc) -> impl Future<Output = Result<TableDesc, SqlError>> + Send;
    fn drop_table(&mut self, db: &str, name: &str) -> impl Future<Output = Result<(), SqlError>> + Send;
    /// Replaces a table's descriptor (ALTER TABLE ...). The stored descriptor must still have
    /// version `expected_version`; `desc.version` must be expected_version + 1. Errors: 42P01 if the
    /// table is gone, 40001 if the version changed meanwhile.
    fn update_table(&mut self, expected_version: u64, desc: TableDesc) -> impl Future<Output = Result<(), SqlError>> + Send;
    /// ALTER TABLE old RENAME TO new. 42P07 if `new` exists, 42P01 if `old` does not.
    fn rename_table(&mut self, db: &str, old: &str, new: &str) -> impl Future<Output = Result<(), SqlError>> + Send;
    /// A cluster-unique 64-bit id for SERIAL columns and unique_rowid(): positive, never repeated,
    /// and deliberately not monotonic (so inserts do not all land at the end of the key space).
    fn unique_rowid(&mut self) -> i64;
    // --- data, transactional ---
    fn get(&mut self, key: &[u8]) -> impl Future<Output = Result<Option<Vec<u8>>, SqlError>> + Send;
    /// Rows of [start, end) in key order, at most `limit` (0 = no limit).
    #[allow(clippy::type_complexity)]
    fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> impl Future<Output = Result<Vec<(Vec<u8>, Vec<u8>)>, SqlError>> + Send;
    /// A hint that `keys` are about to be read with [`TxnClient::get`] (the conflict checks of a
    /// multi-row INSERT): an implementation may read them now, in few round trips, and answer
    /// those `get`s from what it read. Reading them is optional; the default does nothing.
    fn prefetch(&mut self, keys: &[Vec<u8>]) -> impl Future<Output = Result<(), SqlError>> + Send {
        let _ = keys;
        async { Ok(()) }
    }
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>);
    fn delete(&mut self, key: Vec<u8>);
    /// Writes `key` only if it holds no row; otherwise the transaction fails with `err` (an
    /// INSERT's 23505). The check may happen now (this default: a read, then a put) or be
    /// deferred to commit, where the range evaluates it atomically with the write and the
    /// transaction saves a round trip; either way a failed check writes nothing. A deferred
    /// failure surfaces from the commit, after later statements of the same request ran.
    fn put_absent(&mut self, key: Vec<u8>, value: Vec<u8>, err: SqlError) -> impl Future<Output = Result<(), SqlError>> + Send {
        async move {
            if self.get(&key).await?.is_some() {
                return Err(err);
            }
            self.put(key, value);
            Ok(())
        }
    }
    /// Reads several keys (results in the same order); implementations batch them (the node
    /// sends one request per range).
    fn get_many(&mut self, keys: &[Vec<u8>]) -> impl Future<Output = Result<Vec<Option<Vec<u8>>>, SqlError>> + Send {
        async move {
            let mut out = Vec::with_capacity(keys.len());
            for k in keys {
                out.push(self.get(k).await?);
            }
            Ok(out)
        }
    }
    // --- schema changes ---
    /// Commits the data writes buffered so far as one transaction and continues in a new one
    /// (fresh read timestamp, nothing read or written yet). Schema changes use it to backfill
    /// and clean up in chunks. On error (e.g. a retryable conflict) nothing of the buffered
    /// writes was applied and the new transaction has begun all the same.
    fn commit_and_begin(&mut self) -> impl Future<Output = Result<(), SqlError>> + Send;
    /// Returns once no transaction anywhere can still commit (or finish reading) with a table
    /// descriptor older than the ones stored now: every gateway's cached copy has expired and
    /// transactions that used an older one are refused at commit. Called by schema changes
    /// between descriptor versions, so at most two adjacent versions are ever in use.
    fn wait_for_schema_propagation(&mut self) -> impl Future<Output = Result<(), SqlError>> + Send;
    /// Raises the schema fence of table `table_id` (after committing what is buffered, like
    /// [`TxnClient::commit_and_begin`]): from now on no transaction that began before may write
    /// the table; its commit fails with a retryable conflict. The default writes the table's
    /// fence key (`index::schema_fence_key`), which an implementation must then validate as read
    /// by every writer of the table; the node instead fences every range of the table, which
    /// checks it at apply.
    fn fence_table(&mut self, table_id: u64) -> impl Future<Output = Result<(), SqlError>> + Send {
        async move {
            self.put(crate::index::schema_fence_key(table_id), Vec::new());
            self.commit_and_begin().await
        }
    }
    // --- ranges ---
    /// Splits the range holding `key` so that a range starts at `key` (nothing if one does);
    /// takes effect at once, outside the transaction. The default says there are no ranges.
    fn split_at(&mut self, key: &[u8]) -> impl Future<Output = Result<(), SqlError>> + Send {
        let _ = key;
        async { Err(SqlError::user(crate::error::codes::UNSUPPORTED, "this store has no ranges to split")) }
    }
    /// Makes the range boundary at `key` an ordinary one, which the merge queue may merge away
    /// (`UNSPLIT AT`); an error if no range starts at `key`.
    fn unsplit_at(&mut self, key: &[u8]) -> impl Future<Output = Result<(), SqlError>> + Send {
        let _ = key;
        async { Err(SqlError::user(crate::error::codes::UNSUPPORTED, "this store has no ranges to unsplit")) }
    }
    /// Applies `change` (its set fields) to the zone configuration of `table`, or of database
    /// `db` and every table in it when `table` is None; returns the table's (or database's)
    /// configuration. Validate with [`crate::zone::merge_zone`]. Takes effect at once.
    fn configure_zone(
        &mut self,
        db: &str,
        table: Option<&crate::TableDesc>,
        change: meridian_types::ZoneConfig,
    ) -> impl Future<Output = Result<meridian_types::ZoneConfig, SqlError>> + Send {
        let _ = (db, table, change);
        async { Err(SqlError::user(crate::error::codes::UNSUPPORTED, "this store has no zone configurations")) }
    }
    // --- introspection ---
    /// The ranges holding `[start, end)`, in key order, as their leaseholders see them now (not
    /// part of the transaction). The default says the implementation has no ranges.
    fn ranges(&mut self, start: &[u8], end: &[u8]) -> impl Future<Output = Result<Vec<RangeInfo>, SqlError>> + Send {
        let _ = (start, end);
        async { Err(SqlError::user(crate::error::codes::UNSUPPORTED, "this store has no ranges to show")) }
    }
}

/// One range, as `SHOW RANGES` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeInfo {
    pub range_id: u64,
    pub start_key: Vec<u8>,
    pub end_key: Vec<u8>,
    /// MVCC bytes (every version and intent) in the range, counted by its leaseholder.
    pub size_bytes: u64,
    pub leaseholder: u64,
    /// Node ids of the replicas, voters and non-voters, in descriptor order.
    pub replicas: Vec<u64>,
    /// `region=..,zone=..` of a node, by node id (those known to the gateway).
    pub localities: std::collections::BTreeMap<u64, String>,
}
