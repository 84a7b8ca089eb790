//! A gateway's cache of catalog descriptors, so a statement does not read the system range for
//! every table it names.
//!
//! Safety does not rest on the cache being fresh: a table's rows are keyed by its id, a dropped
//! table's range is first marked dropped through Raft (every replica then refuses it with
//! `RangeNotFound`), and a gateway that meets `RangeNotFound` forgets its cache and retries the
//! request. So a stale entry can cost one retry, never a write into a dropped table.
//!
//! Entries expire after [`CACHE_TTL`]: a schema change made through another gateway (a new
//! column, a new table under a dropped name) is seen here within that time. DDL through this
//! gateway clears the cache at once.

use meridian_sql::TableDesc;
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// How long a cached descriptor is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct CatalogCache {
    tables: RwLock<HashMap<(String, String), (TableDesc, Instant)>>,
    databases: RwLock<HashMap<String, Instant>>,
}

impl CatalogCache {
    pub fn table(&self, db: &str, name: &str) -> Option<TableDesc> {
        let t = self.tables.read().unwrap_or_else(|e| e.into_inner());
        t.get(&(db.to_string(), name.to_string())).filter(|(_, at)| at.elapsed() < CACHE_TTL).map(|(d, _)| d.clone())
    }

    pub fn put_table(&self, desc: &TableDesc) {
        self.tables.write().unwrap_or_else(|e| e.into_inner()).insert((desc.db.clone(), desc.name.clone()), (desc.clone(), Instant::now()));
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
