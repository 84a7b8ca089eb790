//! A gateway's cache of catalog descriptors, so a statement does not read the system range for
//! every table it names.
//!
//! Safety does not rest on the cache being fresh: a table's rows are keyed by its id, a dropped
//! table's range is first marked dropped through Raft (every replica then refuses it with
//! `RangeNotFound`), and a gateway that meets `RangeNotFound` forgets its cache and retries the
//! request. So a stale entry can cost one retry, never a write into a dropped table.
//!
//! Entries expire [`CACHE_TTL`] after the read that fetched them began: a schema change made
//! through another gateway (a new column, a new table under a dropped name) is seen here within
//! that time. DDL through this gateway clears the cache at once.
//!
//! Schema changes that must not overlap more than two descriptor versions (CREATE/DROP INDEX)
//! rest on a time bound built on this: a transaction commits (or returns what it read) only if
//! every descriptor it used was fetched less than [`SCHEMA_LEASE`] ago, or is re-read and found
//! unchanged (see `txn.rs`); so [`SCHEMA_WAIT`] after a new version is stored, no transaction
//! can still be applying an older one, given commits apply within the margin.

use meridian_sql::TableDesc;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// How long a cached descriptor is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(2);
/// How old the descriptors a transaction used may be when it commits without re-reading them.
pub const SCHEMA_LEASE: Duration = CACHE_TTL;
/// How long a schema change waits after storing a descriptor version before relying on no older
/// version being in use: the lease plus a margin for a commit already sent to be applied.
pub const SCHEMA_WAIT: Duration = Duration::from_millis(SCHEMA_LEASE.as_millis() as u64 + 500);

#[derive(Default)]
pub struct CatalogCache {
    tables: RwLock<HashMap<(String, String), (TableDesc, Instant)>>,
    databases: RwLock<HashMap<String, Instant>>,
}

impl CatalogCache {
    /// A cached descriptor with the instant the read that fetched it began.
    pub fn table(&self, db: &str, name: &str) -> Option<(TableDesc, Instant)> {
        let t = self.tables.read().unwrap_or_else(|e| e.into_inner());
        t.get(&(db.to_string(), name.to_string())).filter(|(_, at)| at.elapsed() < CACHE_TTL).cloned()
    }

    /// Caches a descriptor read by a read that began at `fetched`.
    pub fn put_table(&self, desc: &TableDesc, fetched: Instant) {
        self.tables.write().unwrap_or_else(|e| e.into_inner()).insert((desc.db.clone(), desc.name.clone()), (desc.clone(), fetched));
    }

    pub fn has_database(&self, db: &str) -> bool {
        self.databases.read().unwrap_or_else(|e| e.into_inner()).get(db).is_some_and(|at| at.elapsed() < CACHE_TTL)
    }

    pub fn put_database(&self, db: &str) {
        self.databases.write().unwrap_or_else(|e| e.into_inner()).insert(db.to_string(), Instant::now());
    }

    /// Forgets everything (after DDL here, or when a replica says a range is gone).
    pub fn clear(&self) {
        self.tables.write().unwrap_or_else(|e| e.into_inner()).clear();
        self.databases.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
