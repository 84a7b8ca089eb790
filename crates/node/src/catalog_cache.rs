//! A gateway's cache of catalog descriptors, so a statement does not read the system range for
//! every table it names.
//!
//! Safety does not rest on the cache being fresh: a table's rows are keyed by its id, a dropped
//! table's range is first marked dropped through Raft (every replica then refuses it with
//! `RangeNotFound`), and a gateway that meets `RangeNotFound` forgets its cache and retries the
//! request. So a stale entry can cost one retry, never a write into a dropped table.

use meridian_sql::TableDesc;
use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

#[derive(Default)]
pub struct CatalogCache {
    tables: RwLock<HashMap<(String, String), TableDesc>>,
    databases: RwLock<HashSet<String>>,
}

impl CatalogCache {
    pub fn table(&self, db: &str, name: &str) -> Option<TableDesc> {
        self.tables.read().unwrap_or_else(|e| e.into_inner()).get(&(db.to_string(), name.to_string())).cloned()
    }

    pub fn put_table(&self, desc: &TableDesc) {
        self.tables.write().unwrap_or_else(|e| e.into_inner()).insert((desc.db.clone(), desc.name.clone()), desc.clone());
    }

    pub fn has_database(&self, db: &str) -> bool {
        self.databases.read().unwrap_or_else(|e| e.into_inner()).contains(db)
    }

    pub fn put_database(&self, db: &str) {
        self.databases.write().unwrap_or_else(|e| e.into_inner()).insert(db.to_string());
    }

    /// Forgets everything (after DDL here, or when a replica says a range is gone).
    pub fn clear(&self) {
        self.tables.write().unwrap_or_else(|e| e.into_inner()).clear();
        self.databases.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
