//! Durable state: sled holds it, a journal makes each commit durable, and one
//! group-commit writer writes both.
//!
//! Activity actors hand their encoded mutations to `Store::commit`; the writer thread
//! appends everything that arrived within the commit window to the journal as one
//! frame, `fdatasync`s it, applies it to sled (in memory) as one atomic `sled::Batch`,
//! then acknowledges every job of the window. sled is flushed by a background
//! checkpoint, which then drops the journal it covers (see `journal`). One writer and
//! one flusher because concurrent sled flushes deadlock or crawl (sled #1308); group
//! commit so that durability costs one fsync per window, not per request.
//!
//! A journal write that fails (a full disk, a failed `fdatasync`) stops every
//! acknowledgement until the writer has sealed the segment and written what was
//! decided meanwhile to a new one (`writer`); a failure sled reports stops writes
//! until a restart. `docs/durability.md` has the whole model.

pub mod accounts;
pub mod audit;
pub mod codec;
mod faults;
mod journal;
pub mod layout;
mod memtable;
pub mod recovery;
pub mod signing_keys;
pub mod sink;
pub mod target;
pub mod webhooks;
mod writer;

pub use codec::KvOp;
pub use faults::Faults;
pub use recovery::LoadedActivity;
pub use target::{CommitFailure, CommitTarget, OnDurable};

use crate::domain::ids::ActivityId;
use layout::{ACTIVITY_PREFIX, OUTBOX_PREFIX, SCHEMA_KEY, SCHEMA_VERSION};
use sink::OrderRecord;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
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
    #[error("journal I/O failed: {0}")]
    Journal(String),
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
    /// How often sled is flushed (and the journal it covers deleted) while commits
    /// flow: bounds the journal replayed at start-up.
    pub checkpoint: Duration,
}

pub type CommitAck = oneshot::Receiver<Result<(), StoreError>>;

/// Run by the writer thread with a commit's outcome, right after its window.
pub type Then = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

struct Job {
    ops: Vec<KvOp>,
    ack: Option<oneshot::Sender<Result<(), StoreError>>>,
    then: Option<Then>,
}

impl Job {
    fn finish(self, result: Result<(), StoreError>) {
        if let Some(then) = self.then {
            then(match &result {
                Ok(()) => Ok(()),
                Err(_) => Err(StoreError::Unavailable),
            });
        }
        if let Some(ack) = self.ack {
            let _ = ack.send(result);
        }
    }
}

/// How long `shutdown` waits for sled's file lock to be let go, and how often it looks.
const LOCK_RELEASE_WAIT: Duration = Duration::from_secs(5);
const LOCK_RELEASE_POLL: Duration = Duration::from_millis(2);

/// `Inner::state`: commits are acknowledged.
const WRITABLE: u8 = 0;
/// A journal write failed: nothing is acknowledged until the writer has re-established
/// a known-good journal; commits still reach it (their writes are kept for that).
const RECOVERING: u8 = 1;
/// sled failed (it refuses every later write itself): writes stop until a restart.
const FAILED: u8 = 2;

struct Inner {
    /// Taken out at shutdown so the database (and its file lock) is released even
    /// while actors still hold `Store` clones.
    db: std::sync::RwLock<Option<sled::Db>>,
    path: String,
    tx: Mutex<Option<SyncSender<Job>>>,
    /// `WRITABLE`, `RECOVERING` or `FAILED`.
    state: AtomicU8,
    faults: Arc<Faults>,
    /// Committed writes sled does not have yet (see `memtable`).
    mem: memtable::Memtable,
    outbox_len: AtomicU64,
    /// Bytes of journal frames sled does not hold yet: what a restart would replay.
    journal_bytes: AtomicU64,
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
        // No background flush: the checkpoint thread is sled's only flusher.
        let db = sled::Config::new().path(path).flush_every_ms(None).open()?;
        check_schema(&db, &path_s)?;
        let journal_dir = path.join("journal");
        let faults = Arc::new(Faults::default());
        let journal = journal::Journal::create(
            &journal_dir,
            journal::replay(&db, &journal_dir)?,
            Arc::clone(&faults),
        )?;
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
            state: AtomicU8::new(WRITABLE),
            faults,
            mem: memtable::Memtable::default(),
            outbox_len: AtomicU64::new(outbox_len),
            journal_bytes: AtomicU64::new(0),
            outbox_notify: tokio::sync::Notify::new(),
            writer: Mutex::new(None),
        });
        let w = Arc::clone(&inner);
        let handle = std::thread::Builder::new()
            .name("sluice-store-writer".into())
            .spawn(move || {
                writer::run(
                    w,
                    writer_db,
                    rx,
                    settings,
                    next_outbox,
                    journal,
                    journal_dir,
                )
            })
            .map_err(|e| StoreError::Corrupt {
                path: inner.path.clone(),
                detail: format!("cannot start the writer thread: {e}"),
            })?;
        *inner.writer.lock().expect("writer lock is never poisoned") = Some(handle);
        Ok(Store { inner })
    }

    /// Queues a commit; the receiver resolves once it is durable. A full writer queue
    /// blocks the caller briefly (backpressure; decisions already made are never
    /// dropped); a failed store refuses at once with `Unavailable`.
    pub fn commit(&self, ops: Vec<KvOp>) -> Result<CommitAck, StoreError> {
        if self.has_failed() {
            return Err(StoreError::Unavailable);
        }
        let (ack, rx) = oneshot::channel();
        self.commit_to(ops, ack);
        Ok(rx)
    }

    /// Queues a commit and runs `then` on the writer thread with its outcome: replies
    /// sent from there wake their callers directly, not through the actor's thread. A
    /// broken writer runs it at once with `Unavailable`.
    pub fn commit_then(&self, ops: Vec<KvOp>, then: Then) {
        self.send_job(Job {
            ops,
            ack: None,
            then: Some(then),
        });
    }

    fn commit_to(&self, ops: Vec<KvOp>, ack: oneshot::Sender<Result<(), StoreError>>) {
        self.send_job(Job {
            ops,
            ack: Some(ack),
            then: None,
        });
    }

    fn send_job(&self, job: Job) {
        if self.has_failed() {
            return job.finish(Err(StoreError::Unavailable));
        }
        let guard = self.inner.tx.lock().expect("sender lock is never poisoned");
        let Some(tx) = guard.as_ref().cloned() else {
            return job.finish(Err(StoreError::Unavailable));
        };
        drop(guard);
        if let Err(std::sync::mpsc::SendError(job)) = tx.send(job) {
            job.finish(Err(StoreError::Unavailable));
        }
    }

    /// The audit of an activity's pre-queue shuffle (JSON), if it shuffled one.
    pub fn shuffle_audit(&self, id: &ActivityId) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(&layout::activity_key(id, "shuffle"))
    }

    /// Commits are being acknowledged (not recovering from a journal failure, not
    /// failed).
    pub fn is_healthy(&self) -> bool {
        self.inner.state.load(Ordering::Acquire) == WRITABLE
    }

    fn has_failed(&self) -> bool {
        self.inner.state.load(Ordering::Acquire) == FAILED
    }

    /// Test hooks (a failing `fdatasync`).
    #[doc(hidden)]
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Writes and flushes a probe key through the writer: proves the store can write.
    /// While it recovers from a journal failure, a probe also makes the writer try to
    /// re-establish the journal (at most every `writer::RETRY`).
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
        if let Some(latest) = self.inner.mem.get(key) {
            return Ok(latest);
        }
        self.with_db(|db| Ok(db.get(key)?.map(|v| v.to_vec())))
    }

    /// Everything under `prefix`, in key order, at most `limit`.
    fn scan(&self, prefix: &[u8], limit: usize) -> Result<memtable::Entries, StoreError> {
        self.with_db(|db| self.inner.mem.scan(db, prefix, limit))
    }

    /// Loads every activity for recovery; any undecodable entry stops start-up.
    pub fn load_activities(&self) -> Result<Vec<LoadedActivity>, StoreError> {
        recovery::load(self.scan(ACTIVITY_PREFIX, usize::MAX)?, &self.inner.path)
    }

    /// Loads one activity (cluster adoption), if the store has its record.
    pub fn load_activity(&self, id: &ActivityId) -> Result<Option<LoadedActivity>, StoreError> {
        let prefix = layout::activity_key(id, "");
        recovery::load(self.scan(&prefix, usize::MAX)?, &self.inner.path).map(|mut v| v.pop())
    }

    pub fn outbox_len(&self) -> u64 {
        self.inner.outbox_len.load(Ordering::Relaxed)
    }

    /// Bytes of journal frames a checkpoint has not yet put into sled: what a restart
    /// now would replay. Zero on a quiet store once its checkpoint interval passed.
    pub fn journal_bytes(&self) -> u64 {
        self.inner.journal_bytes.load(Ordering::Relaxed)
    }

    /// Wakes when new outbox entries were committed.
    pub async fn outbox_changed(&self) {
        self.inner.outbox_notify.notified().await;
    }

    /// The oldest `limit` outbox entries, in commit order.
    pub fn outbox_batch(&self, limit: usize) -> Result<Vec<(Vec<u8>, OrderRecord)>, StoreError> {
        let mut out = Vec::with_capacity(limit);
        for (k, v) in self.scan(OUTBOX_PREFIX, limit)? {
            let rec = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                path: self.inner.path.clone(),
                detail: format!("outbox entry {}: {e}", String::from_utf8_lossy(&k)),
            })?;
            out.push((k, rec));
        }
        Ok(out)
    }

    /// Drops entries the sink confirmed. Not journaled: a replay after a crash may
    /// queue them again, which is harmless because sink writes are idempotent.
    pub fn outbox_remove(&self, keys: &[Vec<u8>]) {
        self.inner
            .mem
            .apply(keys.iter().map(|k| (k.clone(), None)).collect());
        self.inner
            .outbox_len
            .fetch_sub(keys.len() as u64, Ordering::Relaxed);
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
        await_lock_released(&Path::new(&self.inner.path).join("db"));
    }
}

/// Waits (at most `LOCK_RELEASE_WAIT`) until nothing holds the lock sled takes on its
/// file. sled lets go of it when the last of its I/O threads drops the file, which
/// can be after the `Db` is flushed and dropped; a store reopened in this process
/// right after a shutdown (a test, a supervisor's quick restart) must find it free.
fn await_lock_released(file: &Path) {
    use rustix::fs::{flock, FlockOperation};
    let Ok(f) = std::fs::File::open(file) else {
        return;
    };
    let deadline = std::time::Instant::now() + LOCK_RELEASE_WAIT;
    while flock(&f, FlockOperation::NonBlockingLockExclusive).is_err()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(LOCK_RELEASE_POLL);
    }
    // Dropping `f` releases the lock just taken.
}

/// Records (durably) that the store holds this build's schema.
fn mark_schema(db: &sled::Db) -> Result<(), StoreError> {
    db.insert(SCHEMA_KEY, SCHEMA_VERSION.to_string().as_bytes())?;
    db.flush()?;
    Ok(())
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
            if found < SCHEMA_VERSION {
                // Schema 1 data reads as it is (`layout`); the mark keeps older
                // builds, which cannot read schema 2's spent holds, from opening it.
                mark_schema(db)?;
                tracing::info!(
                    path,
                    from = found,
                    to = SCHEMA_VERSION,
                    "store schema upgraded"
                );
            }
            Ok(())
        }
        None if db.is_empty() => mark_schema(db),
        None => Err(StoreError::Corrupt {
            path: path.into(),
            detail: "data without a schema version".into(),
        }),
    }
}

#[cfg(test)]
mod tests;
