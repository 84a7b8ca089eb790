//! Group commit: one WAL fsync for every write pending across all ranges of the node.
//!
//! Callers write their batches unsynced, then either await [`Syncer::sync`] or hand a callback to
//! [`Syncer::sync_then`]. A dedicated thread takes everything queued, performs a single
//! `FlushWAL(sync)`, then completes all of it. Under load one fsync covers many appends (Raft
//! entries of many ranges, votes, applied state); idle, a lone write pays one fsync.
//!
//! Invariant: a waiter is completed only by an fsync that started after its write, so every
//! completion means "your write is on disk".

use crate::{Result, StorageError};
use rocksdb::DB;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

type Callback = Box<dyn FnOnce(std::io::Result<()>) + Send>;

pub struct Syncer {
    tx: Option<mpsc::Sender<Callback>>,
    fsyncs: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Syncer {
    /// Stops the thread and waits for it, so the store is closed when the engine is gone.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Syncer {
    pub(crate) fn start(db: Arc<DB>) -> Syncer {
        let (tx, rx) = mpsc::channel::<Callback>();
        let fsyncs = Arc::new(AtomicU64::new(0));
        let counter = fsyncs.clone();
        let thread = std::thread::Builder::new()
            .name("wal-syncer".into())
            .spawn(move || {
                // Ends when every sender (the Engine clones) is gone.
                while let Ok(first) = rx.recv() {
                    let mut pending = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        pending.push(more);
                    }
                    let res = db.flush_wal(true);
                    counter.fetch_add(1, Ordering::Relaxed);
                    for cb in pending {
                        cb(res.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string())));
                    }
                }
            })
            .expect("spawn wal-syncer thread");
        Syncer { tx: Some(tx), fsyncs, thread: Some(thread) }
    }

    /// Calls `cb` once everything written before this call is durable.
    pub fn sync_then(&self, cb: impl FnOnce(std::io::Result<()>) + Send + 'static) {
        let Some(tx) = &self.tx else {
            return cb(Err(std::io::Error::other("syncer stopped")));
        };
        if let Err(mpsc::SendError(cb)) = tx.send(Box::new(cb)) {
            cb(Err(std::io::Error::other("syncer stopped")));
        }
    }

    /// Waits until everything written before this call is durable.
    pub async fn sync(&self) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.sync_then(move |r| {
            let _ = tx.send(r);
        });
        match rx.await {
            Ok(r) => r.map_err(StorageError::Io),
            Err(_) => Err(StorageError::Rocks("syncer stopped".into())),
        }
    }

    /// Number of fsyncs done so far (for metrics and benchmarks).
    pub fn fsync_count(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }
}
