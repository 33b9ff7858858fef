//! Durable state: sled is the source of truth, written by one group-commit writer.
//!
//! Activity actors hand their encoded mutations to `Store::commit`; the writer thread
//! applies everything that arrived within the commit window as one atomic
//! `sled::Batch`, calls `flush()` once, then acknowledges every job of the window. One
//! writer because concurrent sled flushes deadlock or crawl (sled #1308); group commit
//! so that durability costs one fsync per window, not per request.

pub mod codec;
pub mod layout;
pub mod recovery;
pub mod sink;
mod writer;

pub use codec::KvOp;
pub use recovery::LoadedActivity;

use crate::domain::ids::ActivityId;
use layout::{OUTBOX_PREFIX, SCHEMA_KEY, SCHEMA_VERSION};
use sink::OrderRecord;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O failed: {0}")]
    Io(#[from] sled::Error),
    #[error("the store at {path} is corrupt: {detail}; refusing to start (restore a backup or move the directory away)")]
    Corrupt { path: String, detail: String },
    #[error("the store at {path} has schema version {found}, newer than this binary's {supported}; refusing to start")]
    NewerSchema {
        path: String,
        found: u32,
        supported: u32,
    },
    #[error("the store cannot write")]
    Unavailable,
}

/// Group commit tuning.
#[derive(Debug, Clone, Copy)]
pub struct CommitSettings {
    /// How long the writer waits for more jobs after the first of a window; zero
    /// flushes every job on its own (one fsync per request).
    pub window: Duration,
    /// A window closes early once it holds this many jobs.
    pub max_batch: usize,
    /// Jobs that may wait for the writer before committers block.
    pub queue: usize,
}

pub type CommitAck = oneshot::Receiver<Result<(), StoreError>>;

struct Job {
    ops: Vec<KvOp>,
    ack: Option<oneshot::Sender<Result<(), StoreError>>>,
}

struct Inner {
    /// Taken out at shutdown so the database (and its file lock) is released even
    /// while actors still hold `Store` clones.
    db: std::sync::RwLock<Option<sled::Db>>,
    path: String,
    tx: Mutex<Option<SyncSender<Job>>>,
    healthy: AtomicBool,
    outbox_len: AtomicU64,
    outbox_notify: tokio::sync::Notify,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Cheap to clone; all clones share one database and one writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Opens (or creates) the store, checks its schema, and starts the writer.
    pub fn open(path: &Path, settings: CommitSettings) -> Result<Store, StoreError> {
        let path_s = path.display().to_string();
        let db = sled::Config::new().path(path).open()?;
        check_schema(&db, &path_s)?;
        let outbox_len = db.scan_prefix(OUTBOX_PREFIX).count() as u64;
        let next_outbox = db
            .scan_prefix(OUTBOX_PREFIX)
            .next_back()
            .transpose()?
            .and_then(|(k, _)| layout::parse_outbox_seq(&k))
            .map_or(0, |s| s + 1);
        let (tx, rx) = sync_channel(settings.queue.max(1));
        let writer_db = db.clone();
        let inner = Arc::new(Inner {
            db: std::sync::RwLock::new(Some(db)),
            path: path_s,
            tx: Mutex::new(Some(tx)),
            healthy: AtomicBool::new(true),
            outbox_len: AtomicU64::new(outbox_len),
            outbox_notify: tokio::sync::Notify::new(),
            writer: Mutex::new(None),
        });
        let w = Arc::clone(&inner);
        let handle = std::thread::Builder::new()
            .name("sluice-store-writer".into())
            .spawn(move || writer::run(w, writer_db, rx, settings, next_outbox))
            .map_err(|e| StoreError::Corrupt {
                path: inner.path.clone(),
                detail: format!("cannot start the writer thread: {e}"),
            })?;
        *inner.writer.lock().expect("writer lock is never poisoned") = Some(handle);
        Ok(Store { inner })
    }

    /// Queues a commit; the receiver resolves once it is durable. A full writer queue
    /// blocks the caller briefly (backpressure; decisions already made are never
    /// dropped); a broken writer fails at once with `Unavailable`.
    pub fn commit(&self, ops: Vec<KvOp>) -> Result<CommitAck, StoreError> {
        if !self.is_healthy() {
            return Err(StoreError::Unavailable);
        }
        let (ack, rx) = oneshot::channel();
        let guard = self.inner.tx.lock().expect("sender lock is never poisoned");
        let tx = guard.as_ref().ok_or(StoreError::Unavailable)?;
        let tx = tx.clone();
        drop(guard);
        tx.send(Job {
            ops,
            ack: Some(ack),
        })
        .map_err(|_| StoreError::Unavailable)?;
        Ok(rx)
    }

    pub fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Acquire)
    }

    /// Writes and flushes a probe key through the writer: proves the store can write.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let rx = self.commit(vec![KvOp::Put(b"meta/probe".to_vec(), b"1".to_vec())])?;
        rx.await.map_err(|_| StoreError::Unavailable)?
    }

    fn with_db<T>(
        &self,
        f: impl FnOnce(&sled::Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let guard = self.inner.db.read().expect("db lock is never poisoned");
        f(guard.as_ref().ok_or(StoreError::Unavailable)?)
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_db(|db| Ok(db.get(key)?.map(|v| v.to_vec())))
    }

    /// Loads every activity for recovery; any undecodable entry stops start-up.
    pub fn load_activities(&self) -> Result<Vec<LoadedActivity>, StoreError> {
        self.with_db(|db| recovery::load(db, &self.inner.path))
    }

    /// Loads one activity (cluster adoption), if the store has its record.
    pub fn load_activity(&self, id: &ActivityId) -> Result<Option<LoadedActivity>, StoreError> {
        let prefix = layout::activity_key(id, "");
        self.with_db(|db| recovery::load_prefix(db, &self.inner.path, &prefix))
            .map(|mut v| v.pop())
    }

    pub fn outbox_len(&self) -> u64 {
        self.inner.outbox_len.load(Ordering::Relaxed)
    }

    /// Wakes when new outbox entries were committed.
    pub async fn outbox_changed(&self) {
        self.inner.outbox_notify.notified().await;
    }

    /// The oldest `limit` outbox entries, in commit order.
    pub fn outbox_batch(&self, limit: usize) -> Result<Vec<(Vec<u8>, OrderRecord)>, StoreError> {
        self.with_db(|db| {
            let mut out = Vec::with_capacity(limit);
            for kv in db.scan_prefix(OUTBOX_PREFIX).take(limit) {
                let (k, v) = kv?;
                let rec = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                    path: self.inner.path.clone(),
                    detail: format!("outbox entry {}: {e}", String::from_utf8_lossy(&k)),
                })?;
                out.push((k.to_vec(), rec));
            }
            Ok(out)
        })
    }

    /// Drops entries the sink confirmed. Not flushed here: the next commit flushes
    /// it, and a replay after a crash is harmless because sink writes are idempotent.
    pub fn outbox_remove(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for k in keys {
            batch.remove(k.as_slice());
        }
        self.with_db(|db| Ok(db.apply_batch(batch)?))?;
        self.inner
            .outbox_len
            .fetch_sub(keys.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Stops the writer after it committed everything queued, then flushes.
    pub fn shutdown(&self) {
        self.inner
            .tx
            .lock()
            .expect("sender lock is never poisoned")
            .take();
        if let Some(h) = self
            .inner
            .writer
            .lock()
            .expect("writer lock is never poisoned")
            .take()
        {
            let _ = h.join();
        }
        if let Some(db) = self
            .inner
            .db
            .write()
            .expect("db lock is never poisoned")
            .take()
        {
            let _ = db.flush();
        }
    }
}

fn check_schema(db: &sled::Db, path: &str) -> Result<(), StoreError> {
    match db.get(SCHEMA_KEY)? {
        Some(v) => {
            let found: u32 = std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| StoreError::Corrupt {
                    path: path.into(),
                    detail: "unreadable schema version".into(),
                })?;
            if found > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    path: path.into(),
                    found,
                    supported: SCHEMA_VERSION,
                });
            }
            Ok(())
        }
        None if db.is_empty() => {
            db.insert(SCHEMA_KEY, SCHEMA_VERSION.to_string().as_bytes())?;
            db.flush()?;
            Ok(())
        }
        None => Err(StoreError::Corrupt {
            path: path.into(),
            detail: "data without a schema version".into(),
        }),
    }
}
