//! The group-commit writer thread: the only place that appends to the journal, and
//! the checkpoint thread: the only place that writes and flushes sled.

use super::journal::{self, Frame, Journal};
use super::layout::outbox_key;
use super::memtable::Writes;
use super::{Inner, Job, KvOp, StoreError};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

/// A segment this large is closed (and checkpointed) whatever the interval.
const SEGMENT_BYTES: u64 = 64 << 20;

/// A checkpoint writes sled this many keys at a time, pausing in between so the
/// latency-sensitive threads get the cores.
const CHECKPOINT_SLICE: usize = 1024;
const CHECKPOINT_PAUSE: std::time::Duration = std::time::Duration::from_millis(1);

pub(super) fn run(
    inner: Arc<Inner>,
    db: sled::Db,
    rx: Receiver<Job>,
    settings: super::CommitSettings,
    mut next_outbox: u64,
    mut journal: Journal,
    journal_dir: PathBuf,
) {
    let (checkpoints, checkpoint_rx) = std::sync::mpsc::channel::<u64>();
    let checkpointer = {
        let (inner, db, dir) = (Arc::clone(&inner), db.clone(), journal_dir.clone());
        std::thread::Builder::new()
            .name("sluice-store-checkpoint".into())
            .spawn(move || {
                while let Ok(upto) = checkpoint_rx.recv() {
                    checkpoint(&inner, &db, &dir, upto);
                }
            })
    };
    let mut last_checkpoint = Instant::now();
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let deadline = Instant::now() + settings.window;
        if !settings.window.is_zero() {
            while jobs.len() < settings.max_batch {
                // Whatever queued during the previous append is taken at once.
                let wait = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(j) => jobs.push(j),
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        let started = Instant::now();
        let result = if inner.healthy.load(Ordering::Acquire) {
            apply(&inner, &db, &mut journal, &mut jobs, &mut next_outbox)
        } else {
            Err(StoreError::Unavailable)
        };
        metrics::histogram!("sluice_commit_jobs").record(jobs.len() as f64);
        metrics::histogram!("sluice_commit_seconds").record(started.elapsed().as_secs_f64());
        let result = result.and_then(|outboxed| {
            let due = journal.bytes() >= SEGMENT_BYTES
                || (journal.bytes() > 0 && last_checkpoint.elapsed() >= settings.checkpoint);
            // Rotation and freezing go together: the closed segments hold exactly what
            // sled and the frozen writes hold. Skipped while a checkpoint still runs.
            if due && inner.mem.freeze().is_some() {
                let closed = journal.rotate()?;
                let _ = checkpoints.send(closed);
                last_checkpoint = Instant::now();
            }
            Ok(outboxed)
        });
        match result {
            Ok(outboxed) => {
                if outboxed > 0 {
                    inner.outbox_len.fetch_add(outboxed, Ordering::Relaxed);
                    inner.outbox_notify.notify_one();
                }
                for j in jobs {
                    j.finish(Ok(()));
                }
            }
            Err(e) => {
                // Fail-stop: memory is now ahead of disk, so nothing more is
                // acknowledged; a restart recovers from what is durable.
                if inner.healthy.swap(false, Ordering::AcqRel) {
                    tracing::error!(error = %e, "store write failed; refusing further writes");
                }
                for j in jobs {
                    j.finish(Err(StoreError::Unavailable));
                }
            }
        }
    }
    drop(checkpoints);
    if let Ok(h) = checkpointer {
        let _ = h.join();
    }
    // A clean stop leaves sled whole and the journal empty.
    inner.mem.freeze();
    checkpoint(&inner, &db, &journal_dir, journal.seq());
}

/// Copies the frozen writes into sled, flushes it, then deletes the journal segments
/// up to `upto`, which the flush made redundant. A failure keeps the segments
/// (nothing is lost) and stops further writes.
fn checkpoint(inner: &Inner, db: &sled::Db, dir: &std::path::Path, upto: u64) {
    let started = Instant::now();
    let frozen = inner.mem.frozen();
    let done = (|| {
        // In slices, pausing between them: one batch of everything doubled the
        // memory it copies and took both cores in a burst (admission latency p99 at
        // 18,000 waiting 157 -> 369 ms). Atomicity is not needed here: until the
        // segments are deleted, a crash replays them over whatever sled kept.
        let writes = frozen.as_deref().into_iter().flatten().collect::<Vec<_>>();
        for slice in writes.chunks(CHECKPOINT_SLICE) {
            let mut batch = sled::Batch::default();
            for (k, v) in slice {
                match v {
                    Some(v) => batch.insert(k.as_slice(), v.as_slice()),
                    None => batch.remove(k.as_slice()),
                }
            }
            db.apply_batch(batch)?;
            std::thread::sleep(CHECKPOINT_PAUSE);
        }
        db.flush()?;
        inner.mem.thaw();
        journal::delete_upto(dir, upto)
    })();
    metrics::histogram!("sluice_checkpoint_seconds").record(started.elapsed().as_secs_f64());
    if let Err(e) = done {
        if inner.healthy.swap(false, Ordering::AcqRel) {
            tracing::error!(error = %e, "checkpoint failed; refusing further writes");
        }
    }
}

/// Journals the window's writes as one frame (durable on return), then hands them to
/// the memtable, where every read sees them. Outbox keys and prefix deletes are
/// resolved here, so the frame holds only concrete keys.
fn apply(
    inner: &Inner,
    db: &sled::Db,
    journal: &mut Journal,
    jobs: &mut [Job],
    next_outbox: &mut u64,
) -> Result<u64, StoreError> {
    let mut writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    let mut frame = Frame::new();
    let mut outboxed = 0;
    for job in jobs {
        for op in std::mem::take(&mut job.ops) {
            match op {
                KvOp::Put(k, v) => {
                    frame.put(&k, &v);
                    writes.push((k, Some(v)));
                }
                KvOp::Del(k) => {
                    frame.del(&k);
                    writes.push((k, None));
                }
                KvOp::DelPrefix(p) => {
                    // What earlier windows wrote is in the memtable already; this
                    // window's own earlier writes are not, so they are checked too.
                    let mut keys: Writes = inner
                        .mem
                        .scan(db, &p, usize::MAX)?
                        .into_iter()
                        .map(|(k, _)| (k, None))
                        .collect();
                    keys.extend(
                        writes
                            .iter()
                            .filter(|(k, _)| k.starts_with(&p))
                            .map(|(k, _)| (k.clone(), None)),
                    );
                    for (k, _) in keys {
                        frame.del(&k);
                        writes.push((k, None));
                    }
                }
                KvOp::Outbox(v) => {
                    let k = outbox_key(*next_outbox);
                    frame.put(&k, &v);
                    writes.push((k, Some(v)));
                    *next_outbox += 1;
                    outboxed += 1;
                }
            }
        }
    }
    // A window of reads only (callers waiting for earlier commits) writes nothing.
    if !writes.is_empty() {
        journal.append(&frame.finish())?;
        inner.mem.apply(writes);
    }
    Ok(outboxed)
}
