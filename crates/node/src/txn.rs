//! A gateway transaction: the [`meridian_sql::TxnClient`] the SQL layer runs against.
//!
//! Reads go to leaseholders at one timestamp: the first read lets its leaseholder choose
//! (its clock after the read barrier), later reads use the same timestamp with an uncertainty
//! window of the maximum clock offset. Writes are buffered and overlaid on later reads of the
//! same transaction. When everything read and written lies in one range, `commit` sends the
//! buffer with every span read to that range, whose replicas validate the reads at apply time
//! (see `meridian_range`): one Raft proposal. Otherwise it commits in two phases across the
//! ranges (`dist_txn`). A read that meets another transaction's intent settles it first
//! (`dist_txn::push`) and reads again.
//!
//! Catalog operations (CREATE/DROP DATABASE/TABLE) are not part of the data transaction: each
//! runs as its own transaction on the system range and takes effect immediately.
//!
//! Schema lease: the transaction remembers the version of every table descriptor it used and
//! when it was fetched; at commit, one fetched [`SCHEMA_LEASE`] ago or more is re-read, and a
//! changed one fails the transaction with a retryable conflict. With the catalog cache's TTL
//! this bounds how long after a new descriptor version an older one can still be applied,
//! which `wait_for_schema_propagation` waits out ([`SCHEMA_WAIT`]); after it a schema change
//! raises the schema fence of every range of the table (`fence_table`), and each range refuses
//! at apply a write whose transaction began below its fence, so one prepared before a schema
//! change's wait and applied after it fails instead of landing late. Schema changes commit in
//! chunks with `commit_and_begin`; batched point reads (`get_many`) send one request per range.

use crate::admin::{self, AdminRequest, AdminResponse};
use crate::catalog_cache::{SCHEMA_LEASE, SCHEMA_WAIT};
use crate::dist_txn;
use crate::node::Node;
use crate::records::SysRecord;
use crate::scan;
use meridian_raft_glue::{Frame, Service, Transport};
use meridian_sql::index::table_of_key;
use meridian_sql::{DatabaseDesc, SqlError, TableDesc, TxnClient};
use meridian_types::keys;
use meridian_types::kv::{KvRequest, KvResponse, ReadOp, ReadRequest, ReadResult, Span, Write, WriteRequest};
use meridian_types::{KvError, RangeDescriptor, RangeId, ReplicaDescriptor, ReplicaKind, SYSTEM_RANGE_ID, Timestamp, ZoneConfig};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Most point reads sent to one range in one request by [`Txn::prefetch`].
const PREFETCH_BATCH: usize = 1000;

pub struct Txn {
    node: Arc<Node>,
    deadline: Instant,
    read_ts: Option<Timestamp>,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    reads: Vec<(RangeId, Span)>,
    /// Point reads already made: at the transaction's one read timestamp they cannot change, so
    /// a second read of a key (an upsert checks its key, then inserts, which checks again) is
    /// answered here instead of by another round trip.
    got: std::collections::HashMap<Vec<u8>, Option<Vec<u8>>>,
    /// Buffered writes conditional on their key holding no row at commit (`put_absent`), with
    /// the error to report if one does.
    absent: std::collections::HashMap<Vec<u8>, SqlError>,
    /// Descriptors of the ranges read, for a multi-range commit.
    descs: std::collections::HashMap<RangeId, RangeDescriptor>,
    /// Table descriptors used: (db, table) → (version, when the read that fetched it began).
    /// Checked against [`SCHEMA_LEASE`] at commit.
    schema: std::collections::HashMap<(String, String), (u64, std::time::Instant)>,
    /// The commit (or read) timestamp once finished.
    pub timestamp: Option<Timestamp>,
}

impl Txn {
    pub fn new(node: Arc<Node>, deadline: Instant, read_ts: Option<Timestamp>) -> Txn {
        Txn {
            node,
            deadline,
            read_ts,
            writes: BTreeMap::new(),
            reads: Vec::new(),
            got: Default::default(),
            absent: Default::default(),
            descs: Default::default(),
            schema: Default::default(),
            timestamp: None,
        }
    }

    fn uncertainty(&self) -> Option<Timestamp> {
        self.read_ts.map(|t| t.add_nanos(self.node.hlc.max_offset_ns()))
    }

    /// Sends `ops` to the range `desc` at the transaction's read timestamp (fixing it on the
    /// first read); one result per op.
    async fn send_read(&mut self, desc: &RangeDescriptor, ops: Vec<ReadOp>) -> Result<Vec<ReadResult>, KvError> {
        let n = ops.len();
        let req = KvRequest::Read(ReadRequest { range_id: desc.range_id, ts: self.read_ts, uncertainty_limit: self.uncertainty(), ops });
        match self.node.router.send(desc, req, self.deadline).await? {
            KvResponse::Read(r) => {
                if self.read_ts.is_none() {
                    self.read_ts = Some(r.ts);
                }
                self.node.hlc.update(r.ts);
                if r.results.len() != n {
                    return Err(KvError::Internal("short read".into()));
                }
                Ok(r.results)
            }
            _ => Err(KvError::Internal("unexpected response".into())),
        }
    }

    /// Reads through the router, re-resolving the range when it moved or split. A scan is cut at
    /// the end of the range holding `key` (the caller goes on from there).
    async fn read(&mut self, key: &[u8], op: ReadOp) -> Result<(RangeDescriptor, ReadResult), KvError> {
        loop {
            let desc = self.node.router.lookup(key, self.deadline).await?;
            let op = match &op {
                ReadOp::Scan { start, end, limit } if end.as_slice() > desc.end_key.as_slice() => {
                    ReadOp::Scan { start: start.clone(), end: desc.end_key.clone(), limit: *limit }
                }
                other => other.clone(),
            };
            match self.send_read(&desc, vec![op]).await {
                Ok(r) => {
                    let res = r.into_iter().next().ok_or_else(|| KvError::Internal("empty read".into()))?;
                    self.descs.entry(desc.range_id).or_insert_with(|| desc.clone());
                    return Ok((desc, res));
                }
                // The range changed (split) since the router's view: look it up again shortly
                // (a meta record may lag the split for a moment).
                Err(KvError::KeyOutOfRange { .. }) if Instant::now() < self.deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                // Another transaction's intent at or below the read: learn its outcome first.
                Err(KvError::WriteIntent { key, txn }) => dist_txn::push(&self.node, self.deadline, &key, &txn).await?,
                Err(e) => return Err(e),
            }
        }
    }

    fn used(&mut self, d: &TableDesc, fetched: std::time::Instant) {
        self.schema.insert((d.db.clone(), d.name.clone()), (d.version, fetched));
    }

    /// Forgets descriptors this transaction's own DDL replaced (they are not a stale view).
    fn forget(&mut self, db: &str, name: &str) {
        self.schema.remove(&(db.to_string(), name.to_string()));
    }

    /// Re-reads every descriptor used that was fetched [`SCHEMA_LEASE`] ago or more; a changed
    /// one fails the transaction with a retryable conflict (the retry sees the new schema).
    async fn check_schema(&mut self) -> Result<(), SqlError> {
        let stale: Vec<((String, String), u64)> =
            self.schema.iter().filter(|(_, (_, at))| at.elapsed() >= SCHEMA_LEASE).map(|(k, (v, _))| (k.clone(), *v)).collect();
        for ((db, name), version) in stale {
            let fetched = std::time::Instant::now();
            let cur: Option<TableDesc> = self.sys_get(keys::table_desc_key(&db, &name)).await?;
            if cur.map(|c| c.version) != Some(version) {
                self.node.catalog.clear();
                return Err(SqlError::Kv(KvError::WriteConflict(format!(
                    "the schema of table \"{name}\" changed while the transaction ran"
                ))));
            }
            self.schema.insert((db, name), (version, fetched));
        }
        Ok(())
    }

    /// Commits the buffered writes; returns the commit timestamp (or the read timestamp of a
    /// read-only transaction).
    pub async fn commit(&mut self) -> Result<Timestamp, SqlError> {
        self.check_schema().await?;
        if self.writes.is_empty() {
            let ts = self.read_ts.unwrap_or_else(|| self.node.hlc.now());
            self.timestamp = Some(ts);
            return Ok(ts);
        }
        let first = self.writes.keys().next().cloned().unwrap_or_default();
        let desc = self.node.router.lookup(&first, self.deadline).await?;
        // Every range checks its schema fence (`fence_table`) against the read timestamp at
        // apply: a transaction that began before a schema change's fence fails there (and the
        // request re-runs with the new schema). A blind transaction writing a table reads "now":
        // its descriptors were just checked to be fresh (`check_schema`).
        if self.read_ts.is_none() && self.writes.keys().any(|k| table_of_key(k).is_some()) {
            self.read_ts = Some(self.node.hlc.now());
        }
        let one_range = self.writes.keys().all(|k| desc.contains_key(k))
            && self.reads.iter().all(|(r, _)| *r == desc.range_id || *r == SYSTEM_RANGE_ID);
        let writes: Vec<Write> = std::mem::take(&mut self.writes)
            .into_iter()
            .map(|(key, value)| {
                let absent = self.absent.contains_key(&key);
                Write { key, value, absent }
            })
            .collect();
        let commit_ts = if one_range {
            // Fast path: one Raft proposal validates the reads and commits.
            let read_spans = self.reads.iter().filter(|(r, _)| *r == desc.range_id).map(|(_, s)| s.clone()).collect();
            let req = KvRequest::Write(WriteRequest { range_id: desc.range_id, read_ts: self.read_ts, read_spans, writes });
            match self.node.router.send(&desc, req, self.deadline).await {
                Ok(KvResponse::Write(w)) => w.commit_ts,
                Ok(_) => return Err(SqlError::Kv(KvError::Internal("unexpected response".into()))),
                Err(KvError::WriteIntent { key, txn }) => {
                    // Blocked by an unfinished transaction: settle it, then let the request retry.
                    let _ = dist_txn::push(&self.node, self.deadline, &key, &txn).await;
                    return Err(SqlError::Kv(KvError::WriteIntent { key, txn }));
                }
                Err(e) => return Err(dist_txn::to_sql(e, &mut self.absent)),
            }
        } else {
            let reads: Vec<(RangeId, Span)> = self.reads.iter().filter(|(r, _)| *r != SYSTEM_RANGE_ID).cloned().collect();
            let parts = dist_txn::participants(&self.node, self.deadline, writes, &reads, &self.descs).await?;
            dist_txn::commit(&self.node, self.deadline, self.read_ts, first, parts)
                .await
                .map_err(|e| dist_txn::to_sql(e, &mut self.absent))?
        };
        self.node.hlc.update(commit_ts);
        self.timestamp = Some(commit_ts);
        Ok(commit_ts)
    }

    // ---- catalog: one system-range transaction per operation ----

    async fn sys_get<T: SysRecord>(&self, key: Vec<u8>) -> Result<Option<T>, SqlError> {
        let mut t = Txn::new(self.node.clone(), self.deadline, None);
        match t.get(&key).await? {
            Some(b) => Ok(Some(T::decode_record(&b)?)),
            None => Ok(None),
        }
    }

    async fn sys_scan<T: SysRecord>(&self, start: Vec<u8>, end: Vec<u8>) -> Result<Vec<T>, SqlError> {
        let mut t = Txn::new(self.node.clone(), self.deadline, None);
        let rows = t.scan(&start, &end, 0).await?;
        rows.iter().map(|(_, v)| T::decode_record(v).map_err(SqlError::Kv)).collect()
    }

    /// Runs `f` as a system-range transaction, retrying on conflicts until the deadline.
    async fn sys_txn<F>(&self, mut f: F) -> Result<(), SqlError>
    where
        F: for<'t> FnMut(&'t mut Txn) -> futures::future::BoxFuture<'t, Result<(), SqlError>> + Send,
    {
        loop {
            let mut t = Txn::new(self.node.clone(), self.deadline, None);
            let res = match f(&mut t).await {
                Ok(()) => t.commit().await.map(|_| ()),
                Err(e) => Err(e),
            };
            match res {
                Err(SqlError::Kv(e)) if e.is_txn_retryable() && Instant::now() < self.deadline => {
                    continue;
                }
                other => return other,
            }
        }
    }
}

/// Allocates `n` consecutive ids from the named counter; returns the first.
pub async fn allocate_ids(node: &Arc<Node>, counter: &str, n: u64, deadline: Instant) -> Result<u64, SqlError> {
    let key = keys::counter_key(counter);
    loop {
        let mut t = Txn::new(node.clone(), deadline, None);
        let cur: u64 = match t.get(&key).await? {
            Some(b) => u64::decode_record(&b)?,
            None => 0,
        };
        t.put(key.clone(), (cur + n).encode_record());
        match t.commit().await {
            Ok(_) => return Ok(cur + 1),
            Err(SqlError::Kv(e)) if e.is_txn_retryable() && Instant::now() < deadline => continue,
            Err(e) => return Err(e),
        }
    }
}

impl TxnClient for Txn {
    async fn get_database(&mut self, name: &str) -> Result<Option<DatabaseDesc>, SqlError> {
        if self.node.catalog.has_database(name) {
            return Ok(Some(DatabaseDesc { name: name.to_string() }));
        }
        let d: Option<DatabaseDesc> = self.sys_get(keys::database_key(name)).await?;
        if d.is_some() {
            self.node.catalog.put_database(name);
        }
        Ok(d)
    }

    async fn create_database(&mut self, name: &str) -> Result<(), SqlError> {
        let key = keys::database_key(name);
        let desc = DatabaseDesc { name: name.to_string() };
        self.sys_txn(move |t| {
            let key = key.clone();
            let desc = desc.clone();
            Box::pin(async move {
                if t.get(&key).await?.is_some() {
                    return Err(SqlError::user("42P04", format!("database \"{}\" already exists", desc.name)));
                }
                t.put(key, desc.encode_record());
                Ok(())
            })
        })
        .await?;
        self.node.catalog.clear();
        Ok(())
    }

    async fn drop_database(&mut self, name: &str) -> Result<(), SqlError> {
        for t in self.list_tables(name).await? {
            self.drop_table(name, &t.name).await?;
        }
        let key = keys::database_key(name);
        self.sys_txn(move |t| {
            let key = key.clone();
            Box::pin(async move {
                t.delete(key);
                Ok(())
            })
        })
        .await?;
        self.node.catalog.clear();
        Ok(())
    }

    async fn list_databases(&mut self) -> Result<Vec<DatabaseDesc>, SqlError> {
        let (s, e) = keys::database_span();
        self.sys_scan(s, e).await
    }

    async fn get_table(&mut self, db: &str, name: &str) -> Result<Option<TableDesc>, SqlError> {
        if let Some((d, fetched)) = self.node.catalog.table(db, name) {
            self.used(&d, fetched);
            return Ok(Some(d));
        }
        let fetched = std::time::Instant::now();
        let d: Option<TableDesc> = self.sys_get(keys::table_desc_key(db, name)).await?;
        if let Some(d) = &d {
            self.node.catalog.put_table(d, fetched);
            self.used(d, fetched);
        }
        Ok(d)
    }

    async fn list_tables(&mut self, db: &str) -> Result<Vec<TableDesc>, SqlError> {
        let p = keys::table_desc_prefix(db);
        let end = keys::prefix_end(&p);
        self.sys_scan(p, end).await
    }

    async fn create_table(&mut self, mut desc: TableDesc) -> Result<TableDesc, SqlError> {
        let key = keys::table_desc_key(&desc.db, &desc.name);
        if self.sys_get::<TableDesc>(key.clone()).await?.is_some() {
            return Err(SqlError::user("42P07", format!("relation \"{}\" already exists", desc.name)));
        }
        let node = self.node.clone();
        let deadline = self.deadline;
        desc.id = allocate_ids(&node, "table", 1, deadline).await? + 99; // user tables start at 100
        let range_id = allocate_ids(&node, "range", 1, deadline).await?;
        // Up to three replicas on live nodes, this node first.
        let mut nodes = node.live_nodes().await;
        nodes.sort_by_key(|n| (*n != node.node_id(), *n));
        nodes.truncate(3);
        let first_replica = allocate_ids(&node, "replica", nodes.len() as u64, deadline).await?;
        let replicas: Vec<ReplicaDescriptor> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| ReplicaDescriptor { replica_id: first_replica + i as u64, node_id: *n, kind: ReplicaKind::Voter })
            .collect();
        let (start, end) = keys::table_span(desc.id);
        let rdesc = RangeDescriptor {
            range_id,
            start_key: start.clone(),
            end_key: end.clone(),
            replicas: replicas.clone(),
            generation: 1,
            table_id: Some(desc.id),
            // A table's first range starts at the table's boundary, which never goes away.
            sticky: true,
        };
        let members: Vec<_> = replicas.iter().map(|r| (r.replica_id, r.node_id)).collect();
        // Create the range first, then publish the descriptor: a table is never visible
        // without its range.
        let founder = replicas[0].clone();
        let req = AdminRequest::CreateRange { desc: rdesc.clone(), replica_id: founder.replica_id, members };
        node.admin_call(founder.node_id, req, Duration::from_secs(15)).await?;
        let meta_key = keys::meta_key(&end);
        let tdesc = desc.clone();
        self.sys_txn(move |t| {
            let (key, meta_key, tdesc, rdesc) = (key.clone(), meta_key.clone(), tdesc.clone(), rdesc.clone());
            Box::pin(async move {
                if t.get(&key).await?.is_some() {
                    return Err(SqlError::user("42P07", format!("relation \"{}\" already exists", tdesc.name)));
                }
                if t.get(&keys::database_key(&tdesc.db)).await?.is_none() {
                    return Err(SqlError::user("3D000", format!("database \"{}\" does not exist", tdesc.db)));
                }
                t.put(key, tdesc.encode_record());
                t.put(meta_key, rdesc.encode_record());
                // A new table takes its database's zone configuration.
                if let Some(zone) = t.get(&keys::database_zone_key(&tdesc.db)).await? {
                    t.put(keys::zone_key(tdesc.id), zone);
                }
                Ok(())
            })
        })
        .await?;
        node.router.evict_span(&start, &end);
        node.catalog.clear();
        Ok(desc)
    }

    async fn drop_table(&mut self, db: &str, name: &str) -> Result<(), SqlError> {
        self.forget(db, name);
        let key = keys::table_desc_key(db, name);
        let Some(desc) = self.sys_get::<TableDesc>(key.clone()).await? else {
            return Err(SqlError::user("42P01", format!("relation \"{name}\" does not exist")));
        };
        let (start, end) = keys::table_span(desc.id);
        // Every range of the table (it may have split), by its meta records.
        let metas = (keys::meta_key(&keys::key_next(&start)), keys::meta_key(&keys::key_next(&end)));
        let rdescs: Vec<RangeDescriptor> = self.sys_scan(metas.0.clone(), metas.1.clone()).await?;
        // First make every replica refuse the ranges, so no gateway with a cached descriptor can
        // write into the dropped table; then remove it from the catalog, with a marker that keeps
        // the ranges' meta records from being written again (crate::split).
        for rdesc in &rdescs {
            match self.node.router.send(rdesc, KvRequest::MarkDropped { range_id: rdesc.range_id }, self.deadline).await {
                Ok(_) | Err(KvError::RangeNotFound { .. }) => {}
                Err(e) => return Err(SqlError::Kv(e)),
            }
        }
        let table_id = desc.id;
        self.sys_txn(move |t| {
            let (key, metas) = (key.clone(), metas.clone());
            Box::pin(async move {
                t.delete(key);
                for (k, _) in t.scan(&metas.0, &metas.1, 0).await? {
                    t.delete(k);
                }
                t.put(keys::dropped_table_key(table_id), vec![1]);
                t.delete(keys::zone_key(table_id));
                Ok(())
            })
        })
        .await?;
        self.node.router.evict_span(&start, &end);
        self.node.catalog.clear();
        // Destroy the replicas (best effort: a node that is down keeps an orphan replica).
        let live = self.node.live_nodes().await;
        for rdesc in rdescs {
            let mut nodes: Vec<_> = rdesc.replicas.iter().map(|r| r.node_id).collect();
            for n in &live {
                if !nodes.contains(n) {
                    nodes.push(*n);
                }
            }
            for n in nodes {
                let _ = self.node.admin_call(n, AdminRequest::DestroyReplica { range_id: rdesc.range_id }, Duration::from_secs(5)).await;
            }
        }
        Ok(())
    }

    async fn update_table(&mut self, expected_version: u64, desc: TableDesc) -> Result<(), SqlError> {
        let key = keys::table_desc_key(&desc.db, &desc.name);
        self.forget(&desc.db, &desc.name);
        let res = self
            .sys_txn(move |t| {
                let (key, desc) = (key.clone(), desc.clone());
                Box::pin(async move {
                    let cur = match t.get(&key).await? {
                        Some(b) => TableDesc::decode_record(&b)?,
                        None => return Err(SqlError::user("42P01", format!("relation \"{}\" does not exist", desc.name))),
                    };
                    if cur.id != desc.id || cur.version != expected_version {
                        return Err(SqlError::user(
                            "40001",
                            format!("table \"{}\" was changed concurrently; retry the statement", desc.name),
                        ));
                    }
                    t.put(key, desc.encode_record());
                    Ok(())
                })
            })
            .await;
        // Also on failure: the next attempt must read the descriptor afresh.
        self.node.catalog.clear();
        res
    }

    async fn rename_table(&mut self, db: &str, old: &str, new: &str) -> Result<(), SqlError> {
        self.forget(db, old);
        let (old_key, new_key) = (keys::table_desc_key(db, old), keys::table_desc_key(db, new));
        let (old, new) = (old.to_string(), new.to_string());
        self.sys_txn(move |t| {
            let (old_key, new_key, old, new) = (old_key.clone(), new_key.clone(), old.clone(), new.clone());
            Box::pin(async move {
                let mut desc = match t.get(&old_key).await? {
                    Some(b) => TableDesc::decode_record(&b)?,
                    None => return Err(SqlError::user("42P01", format!("relation \"{old}\" does not exist"))),
                };
                if t.get(&new_key).await?.is_some() {
                    return Err(SqlError::user("42P07", format!("relation \"{new}\" already exists")));
                }
                desc.name = new;
                desc.version += 1;
                t.delete(old_key);
                t.put(new_key, desc.encode_record());
                Ok(())
            })
        })
        .await?;
        self.node.catalog.clear();
        Ok(())
    }

    fn unique_rowid(&mut self) -> i64 {
        self.node.unique_rowid()
    }

    async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, SqlError> {
        if let Some(v) = self.writes.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.got.get(key) {
            return Ok(v.clone());
        }
        let (desc, res) = self.read(key, ReadOp::Get { key: key.to_vec() }).await?;
        self.reads.push((desc.range_id, Span::point(key)));
        match res {
            ReadResult::Get(v) => {
                self.got.insert(key.to_vec(), v.clone());
                Ok(v)
            }
            _ => Err(SqlError::Kv(KvError::Internal("unexpected result".into()))),
        }
    }

    /// Reads the keys not yet read or written, up to [`PREFETCH_BATCH`] gets per request to each
    /// range, into the point-read cache (`got`) that `get` answers from.
    async fn prefetch(&mut self, keys: &[Vec<u8>]) -> Result<(), SqlError> {
        let mut todo: Vec<Vec<u8>> = keys.iter().filter(|k| !self.writes.contains_key(*k) && !self.got.contains_key(*k)).cloned().collect();
        todo.sort();
        todo.dedup();
        let mut by_range: BTreeMap<RangeId, (RangeDescriptor, Vec<Vec<u8>>)> = BTreeMap::new();
        for k in todo {
            let desc = self.node.router.lookup(&k, self.deadline).await?;
            by_range.entry(desc.range_id).or_insert_with(|| (desc, Vec::new())).1.push(k);
        }
        for (desc, keys) in by_range.into_values() {
            for chunk in keys.chunks(PREFETCH_BATCH) {
                let req = KvRequest::Read(ReadRequest {
                    range_id: desc.range_id,
                    ts: self.read_ts,
                    uncertainty_limit: self.uncertainty(),
                    ops: chunk.iter().map(|k| ReadOp::Get { key: k.clone() }).collect(),
                });
                let r = match self.node.router.send(&desc, req, self.deadline).await {
                    Ok(KvResponse::Read(r)) => r,
                    // The range moved: leave these keys to `get`, which re-resolves it.
                    Err(KvError::KeyOutOfRange { .. }) => continue,
                    // An unfinished transaction's intent: settle it and leave these keys to
                    // `get` (which reads again).
                    Err(KvError::WriteIntent { key, txn }) => {
                        dist_txn::push(&self.node, self.deadline, &key, &txn).await?;
                        continue;
                    }
                    Err(e) => return Err(SqlError::Kv(e)),
                    Ok(_) => return Err(SqlError::Kv(KvError::Internal("unexpected response".into()))),
                };
                if self.read_ts.is_none() {
                    self.read_ts = Some(r.ts);
                }
                self.node.hlc.update(r.ts);
                self.descs.entry(desc.range_id).or_insert_with(|| desc.clone());
                for (k, res) in chunk.iter().zip(r.results) {
                    let ReadResult::Get(v) = res else {
                        return Err(SqlError::Kv(KvError::Internal("unexpected result".into())));
                    };
                    self.reads.push((desc.range_id, Span::point(k)));
                    self.got.insert(k.clone(), v);
                }
            }
        }
        Ok(())
    }

    async fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, SqlError> {
        let buffered: Vec<_> = self.writes.range(start.to_vec()..end.to_vec()).map(|(k, v)| (k.clone(), v.clone())).collect();
        // With buffered writes in the span, read everything so deletions cannot starve the limit.
        let store_limit = if buffered.is_empty() { limit as u64 } else { 0 };
        let mut at = scan::ReadAt { node: self.node.clone(), deadline: self.deadline, ts: self.read_ts, uncertainty: self.uncertainty() };
        let mut pieces = Vec::new();
        if at.ts.is_none() {
            // The first range read chooses the transaction's timestamp.
            let (piece, ts) = scan::read_one(&at, start, end, store_limit).await?;
            self.read_ts = Some(ts);
            at.ts = Some(ts);
            at.uncertainty = self.uncertainty();
            pieces.push(piece);
        }
        let cursor = pieces.last().map_or_else(|| start.to_vec(), |p| p.read_to.clone());
        let got: u64 = pieces.iter().map(|p| p.rows.len() as u64).sum();
        let done = pieces.last().is_some_and(|p| p.desc.is_none()) || (store_limit != 0 && got >= store_limit);
        if !done && cursor.as_slice() < end {
            let more = if store_limit == 0 {
                scan::scan_parallel(&at, cursor, end).await?
            } else {
                scan::scan_seq(&at, cursor, end, store_limit - got).await?
            };
            pieces.extend(more);
        }
        let mut rows: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for piece in pieces {
            let Some(desc) = piece.desc else { continue };
            let mut read_to = piece.read_to;
            rows.extend(piece.rows);
            if store_limit != 0 && rows.len() as u64 >= store_limit {
                rows.truncate(store_limit as usize);
                // Only what was returned counts as read.
                if let Some((last, _)) = rows.last() {
                    read_to = keys::key_next(last);
                }
            }
            self.reads.push((desc.range_id, Span::new(piece.start, read_to)));
            self.descs.entry(desc.range_id).or_insert(desc);
            if store_limit != 0 && rows.len() as u64 >= store_limit {
                break;
            }
        }
        if buffered.is_empty() {
            return Ok(rows);
        }
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = rows.into_iter().collect();
        for (k, v) in buffered {
            match v {
                Some(v) => merged.insert(k, v),
                None => merged.remove(&k),
            };
        }
        let mut out: Vec<_> = merged.into_iter().collect();
        if limit != 0 {
            out.truncate(limit);
        }
        Ok(out)
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    /// Decided at once when this transaction already knows the key (it wrote or read it);
    /// otherwise deferred to commit, where the range checks it as it applies the write.
    async fn put_absent(&mut self, key: Vec<u8>, value: Vec<u8>, err: SqlError) -> Result<(), SqlError> {
        let known = match self.writes.get(&key) {
            Some(v) => Some(v.is_some()),
            None => self.got.get(&key).map(|v| v.is_some()),
        };
        match known {
            Some(true) => return Err(err),
            Some(false) => {}
            None => {
                self.absent.insert(key.clone(), err);
            }
        }
        self.writes.insert(key, Some(value));
        Ok(())
    }

    async fn get_many(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, SqlError> {
        let mut out: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let mut pending = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            match self.writes.get(k).or_else(|| self.got.get(k)) {
                Some(v) => out[i] = v.clone(),
                None => pending.push(i),
            }
        }
        // One request per range holding pending keys.
        while let Some(&first) = pending.first() {
            let desc = self.node.router.lookup(&keys[first], self.deadline).await?;
            let (mine, rest): (Vec<usize>, Vec<usize>) = pending.iter().partition(|&&i| desc.contains_key(&keys[i]));
            let ops = mine.iter().map(|&i| ReadOp::Get { key: keys[i].clone() }).collect();
            let results = match self.send_read(&desc, ops).await {
                Ok(r) => r,
                Err(KvError::KeyOutOfRange { .. }) if Instant::now() < self.deadline => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
                Err(KvError::WriteIntent { key, txn }) => {
                    dist_txn::push(&self.node, self.deadline, &key, &txn).await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            self.descs.entry(desc.range_id).or_insert_with(|| desc.clone());
            for (i, r) in mine.into_iter().zip(results) {
                let ReadResult::Get(v) = r else {
                    return Err(SqlError::Kv(KvError::Internal("unexpected result".into())));
                };
                self.reads.push((desc.range_id, Span::point(&keys[i])));
                self.got.insert(keys[i].clone(), v.clone());
                out[i] = v;
            }
            pending = rest;
        }
        Ok(out)
    }

    async fn commit_and_begin(&mut self) -> Result<(), SqlError> {
        let res = self.commit().await.map(|_| ());
        self.writes.clear();
        self.reads.clear();
        self.got.clear();
        self.absent.clear();
        self.descs.clear();
        self.read_ts = None;
        self.timestamp = None;
        res
    }

    async fn wait_for_schema_propagation(&mut self) -> Result<(), SqlError> {
        if Instant::now() + SCHEMA_WAIT + Duration::from_secs(1) > self.deadline {
            return Err(SqlError::user(
                "57014",
                format!(
                    "query canceled: the schema change needs more time than the request's timeout allows (each step waits {} ms); raise \"timeout\"",
                    SCHEMA_WAIT.as_millis()
                ),
            ));
        }
        self.node.catalog.clear();
        tokio::time::sleep(SCHEMA_WAIT).await;
        self.node.catalog.clear();
        Ok(())
    }

    async fn configure_zone(&mut self, db: &str, table: Option<&TableDesc>, change: ZoneConfig) -> Result<ZoneConfig, SqlError> {
        let mut targets = match table {
            Some(t) => vec![keys::zone_key(t.id)],
            None => vec![keys::database_zone_key(db)],
        };
        if table.is_none() {
            targets.extend(self.list_tables(db).await?.iter().map(|t| keys::zone_key(t.id)));
        }
        crate::range_ops::configure_zone(&self.node, self.deadline, targets, change).await
    }

    async fn fence_table(&mut self, table_id: u64) -> Result<(), SqlError> {
        self.commit_and_begin().await?;
        crate::range_ops::fence_table(&self.node, self.deadline, table_id).await
    }

    async fn split_at(&mut self, key: &[u8]) -> Result<(), SqlError> {
        crate::split::split_at(&self.node, key, true, self.deadline).await
    }

    async fn unsplit_at(&mut self, key: &[u8]) -> Result<(), SqlError> {
        crate::split::unsplit_at(&self.node, key, self.deadline).await
    }

    async fn ranges(&mut self, start: &[u8], end: &[u8]) -> Result<Vec<meridian_sql::RangeInfo>, SqlError> {
        crate::range_ops::ranges(&self.node, self.deadline, start, end).await
    }
}

/// Sends an admin request to `node` (locally without the network).
pub async fn admin_roundtrip(
    transport: &Arc<dyn Transport>,
    node: u64,
    req: &AdminRequest,
    timeout: Duration,
) -> Result<AdminResponse, KvError> {
    let frame = Frame { service: Service::Admin, range_id: 0, body: admin::encode(req) };
    let b = transport.call(node, frame, timeout).await.map_err(|e| KvError::Unavailable(e.to_string()))?;
    admin::decode(&b)
}
