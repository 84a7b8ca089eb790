//! The Raft state machine of one range: applies committed commands through [`Fsm`] and makes
//! snapshots of the range's span.
//!
//! Invariants:
//! - Each applied entry's data writes, the applied log id and (for membership entries) the
//!   membership go to RocksDB in one batch, so after a crash the state machine is exactly some
//!   prefix of the log. Batches are written unsynced: the entries themselves are durable in the
//!   log (synced before they were committed), and a lost apply is redone on restart.
//! - A snapshot is read from one RocksDB view: the applied log id, membership, range state and
//!   every MVCC version in the span, so its metadata matches its data exactly.
//! - Installing a snapshot replaces the span's data and the range state in one durable batch.

use crate::types::{CommandResult, TypeConfig, decode, encode};
use futures::{Stream, TryStreamExt};
use meridian_storage::{Batch, Cf, Engine, mvcc};
use meridian_types::RangeId;
use meridian_types::keys::{range_local, range_local_key};
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use serde::{Deserialize, Serialize};
use std::io;
use std::sync::Arc;

/// The range-level state machine, implemented by the `range` crate.
pub trait Fsm: Send + Sync + 'static {
    /// Applies the committed command `cmd` at log `index`, adding its writes to `batch`.
    /// Must be deterministic: every replica gets the same result from the same state.
    /// Several entries may be applied into one batch before it is written: writes of earlier
    /// entries of the batch are not in `engine` yet, and the implementation must take them into
    /// account (until [`Fsm::applied`] says the batch is written).
    fn apply(&self, engine: &Engine, batch: &mut Batch, index: u64, cmd: &[u8]) -> Vec<u8>;
    /// Called once the batch holding the entries up to `index` is written (visible in the engine).
    fn applied(&self, index: u64);
    /// The span of user keys this range holds (`None` before the range knows its descriptor).
    fn span(&self) -> Option<(Vec<u8>, Vec<u8>)>;
    /// Reloads in-memory state after a snapshot replaced the stored state.
    fn reload(&self, engine: &Engine);
    /// The range this one is frozen to merge into, if any: a snapshot of that range covering
    /// this one's span proves the merge happened, and replaces this replica.
    fn frozen_for(&self) -> Option<RangeId> {
        None
    }
}

/// The span a snapshot's data covers (decoded from the front of the payload only).
pub(crate) fn snapshot_span(data: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    postcard::take_from_bytes::<Option<(Vec<u8>, Vec<u8>)>>(data).ok().and_then(|(span, _)| span)
}

/// What a snapshot carries besides its metadata. `span` must stay the first field
/// ([`snapshot_span`]).
#[derive(Serialize, Deserialize)]
struct SnapshotPayload {
    span: Option<(Vec<u8>, Vec<u8>)>,
    range_state: Option<Vec<u8>>,
    /// Raw `data` family entries (MVCC key, MVCC value) of the span.
    data: Vec<(Vec<u8>, Vec<u8>)>,
}

pub struct StateMachine {
    engine: Engine,
    range_id: RangeId,
    fsm: Arc<dyn Fsm>,
    /// The first `get_current_snapshot` call is openraft's start-up load, which only uses the
    /// metadata: answer it without copying the range's data.
    loaded: bool,
}

type LogId = LogIdOf<TypeConfig>;
type Membership = StoredMembershipOf<TypeConfig>;

impl StateMachine {
    pub fn new(engine: Engine, range_id: RangeId, fsm: Arc<dyn Fsm>) -> Self {
        StateMachine { engine, range_id, fsm, loaded: false }
    }

    fn key(&self, suffix: u8) -> [u8; 9] {
        range_local_key(self.range_id, suffix)
    }

    fn read_applied(&self) -> io::Result<(Option<LogId>, Membership)> {
        let applied = match self.engine.get(Cf::RangeMeta, &self.key(range_local::APPLIED))? {
            Some(b) => decode(&b)?,
            None => None,
        };
        let membership = match self.engine.get(Cf::RangeMeta, &self.key(range_local::MEMBERSHIP))? {
            Some(b) => decode(&b)?,
            None => Membership::default(),
        };
        Ok((applied, membership))
    }

    /// Builds a full snapshot (metadata and data) from the current stored state.
    fn build_full(&self) -> io::Result<SnapshotOf<TypeConfig, Vec<u8>>> {
        let (applied, membership) = self.read_applied()?;
        let span = self.fsm.span();
        let mut data = Vec::new();
        if let Some((s, e)) = &span {
            let (lo, hi) = mvcc::data_bounds(s, e);
            data = self.engine.scan(Cf::Data, &lo, &hi, 0)?;
        }
        let range_state = self.engine.get(Cf::RangeMeta, &self.key(range_local::RANGE_STATE))?;
        let bytes = encode(&SnapshotPayload { span, range_state, data })?;
        Ok(SnapshotOf::<TypeConfig, Vec<u8>> { meta: self.meta(applied, membership), snapshot: bytes })
    }

    fn meta(&self, applied: Option<LogId>, membership: Membership) -> SnapshotMetaOf<TypeConfig> {
        SnapshotMetaOf::<TypeConfig> { last_log_id: applied, last_membership: membership }
    }
}

/// Most entries applied into one RocksDB batch.
const MAX_APPLY_BATCH: usize = 256;

type Reply = (Option<openraft::storage::ApplyResponder<TypeConfig>>, Vec<u8>);

impl StateMachine {
    /// Writes the applied entries' batch with the applied log id, then answers their proposers.
    fn flush(&self, batch: &mut Batch, last: Option<LogId>, replies: &mut Vec<Reply>) -> io::Result<()> {
        let Some(last) = last else { return Ok(()) };
        if replies.is_empty() {
            return Ok(());
        }
        let index = last.index();
        batch.put(&self.engine, Cf::RangeMeta, &self.key(range_local::APPLIED), &encode(&Some(last))?);
        self.engine.write(std::mem::take(batch))?;
        self.fsm.applied(index);
        for (responder, result) in replies.drain(..) {
            if let Some(r) = responder {
                r.send(CommandResult(result));
            }
        }
        Ok(())
    }
}

/// Builds snapshot *metadata* only: openraft uses a built snapshot just to know how far the log
/// may be purged; the data is read fresh from the store when a snapshot is actually sent.
pub struct MetaSnapshotBuilder {
    meta: SnapshotMetaOf<TypeConfig>,
}

impl RaftSnapshotBuilder<TypeConfig> for MetaSnapshotBuilder {
    type SnapshotData = Vec<u8>;
    async fn build_snapshot(&mut self) -> io::Result<SnapshotOf<TypeConfig, Vec<u8>>> {
        Ok(SnapshotOf::<TypeConfig, Vec<u8>> { meta: self.meta.clone(), snapshot: Vec::new() })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = MetaSnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, Membership)> {
        self.read_applied()
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + OptionalSend,
    {
        // Entries handed over together are applied into one RocksDB batch (bounded by
        // MAX_APPLY_BATCH), written once; replies go out only after that write.
        let mut batch = Batch::new();
        let mut last: Option<LogId> = None;
        let mut replies = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            let log_id = entry.log_id();
            let index = log_id.index();
            let result = match &entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(cmd) => self.fsm.apply(&self.engine, &mut batch, index, &cmd.0),
                EntryPayload::Membership(m) => {
                    let stored = Membership::new(Some(log_id), m.clone());
                    batch.put(&self.engine, Cf::RangeMeta, &self.key(range_local::MEMBERSHIP), &encode(&stored)?);
                    Vec::new()
                }
            };
            last = Some(log_id);
            replies.push((responder, result));
            if replies.len() >= MAX_APPLY_BATCH {
                self.flush(&mut batch, last, &mut replies)?;
            }
        }
        self.flush(&mut batch, last, &mut replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let (applied, membership) = self.read_applied().unwrap_or((None, Membership::default()));
        MetaSnapshotBuilder { meta: self.meta(applied, membership) }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMetaOf<TypeConfig>, snapshot: Vec<u8>) -> io::Result<()> {
        let payload: SnapshotPayload = decode(&snapshot)?;
        tracing::debug!(range = self.range_id, old_span = ?self.fsm.span(), span = ?payload.span, keys = payload.data.len(), "installing snapshot");
        let mut batch = Batch::new();
        // Drop whatever this replica held before: its old span and the snapshot's span.
        for (s, e) in self.fsm.span().into_iter().chain(payload.span.clone()) {
            let (lo, hi) = mvcc::data_bounds(&s, &e);
            batch.delete_span(&self.engine, Cf::Data, &lo, &hi).map_err(io::Error::other)?;
        }
        for (k, v) in &payload.data {
            batch.put(&self.engine, Cf::Data, k, v);
        }
        match &payload.range_state {
            Some(st) => batch.put(&self.engine, Cf::RangeMeta, &self.key(range_local::RANGE_STATE), st),
            None => batch.delete(&self.engine, Cf::RangeMeta, &self.key(range_local::RANGE_STATE)),
        }
        batch.put(&self.engine, Cf::RangeMeta, &self.key(range_local::APPLIED), &encode(&meta.last_log_id)?);
        batch.put(&self.engine, Cf::RangeMeta, &self.key(range_local::MEMBERSHIP), &encode(&meta.last_membership)?);
        self.engine.write_durable(batch).await?;
        self.fsm.reload(&self.engine);
        tracing::info!(range = self.range_id, keys = payload.data.len(), "installed snapshot");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<SnapshotOf<TypeConfig, Vec<u8>>>> {
        let (applied, membership) = self.read_applied()?;
        let first_call = !std::mem::replace(&mut self.loaded, true);
        if applied.is_none() {
            return Ok(None);
        }
        if first_call {
            return Ok(Some(SnapshotOf::<TypeConfig, Vec<u8>> { meta: self.meta(applied, membership), snapshot: Vec::new() }));
        }
        self.build_full().map(Some)
    }
}
