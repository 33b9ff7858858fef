//! The group-commit writer thread: the only place that flushes sled.

use super::layout::outbox_key;
use super::{Inner, Job, KvOp, StoreError};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Instant;

pub(super) fn run(
    inner: Arc<Inner>,
    db: sled::Db,
    rx: Receiver<Job>,
    settings: super::CommitSettings,
    mut next_outbox: u64,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let deadline = Instant::now() + settings.window;
        if !settings.window.is_zero() {
            while jobs.len() < settings.max_batch {
                // Whatever queued during the previous flush is taken at once.
                let wait = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(j) => jobs.push(j),
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        let started = Instant::now();
        let result = if inner.healthy.load(Ordering::Acquire) {
            apply(&db, &jobs, &mut next_outbox)
        } else {
            Err(StoreError::Unavailable)
        };
        metrics::histogram!("sluice_commit_jobs").record(jobs.len() as f64);
        metrics::histogram!("sluice_commit_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(outboxed) => {
                if outboxed > 0 {
                    inner.outbox_len.fetch_add(outboxed, Ordering::Relaxed);
                    inner.outbox_notify.notify_one();
                }
                for j in jobs {
                    if let Some(ack) = j.ack {
                        let _ = ack.send(Ok(()));
                    }
                }
            }
            Err(e) => {
                // Fail-stop: memory is now ahead of disk, so nothing more is
                // acknowledged; a restart recovers from what is durable.
                if inner.healthy.swap(false, Ordering::AcqRel) {
                    tracing::error!(error = %e, "store write failed; refusing further writes");
                }
                for j in jobs {
                    if let Some(ack) = j.ack {
                        let _ = ack.send(Err(StoreError::Unavailable));
                    }
                }
            }
        }
    }
    let _ = db.flush();
}

fn apply(db: &sled::Db, jobs: &[Job], next_outbox: &mut u64) -> Result<u64, StoreError> {
    let mut batch = sled::Batch::default();
    let mut outboxed = 0;
    for job in jobs {
        for op in &job.ops {
            match op {
                KvOp::Put(k, v) => batch.insert(k.as_slice(), v.as_slice()),
                KvOp::Del(k) => batch.remove(k.as_slice()),
                KvOp::DelPrefix(p) => {
                    for key in db.scan_prefix(p.as_slice()).keys() {
                        batch.remove(key?);
                    }
                }
                KvOp::Outbox(v) => {
                    batch.insert(outbox_key(*next_outbox), v.as_slice());
                    *next_outbox += 1;
                    outboxed += 1;
                }
            }
        }
    }
    db.apply_batch(batch)?;
    db.flush()?;
    Ok(outboxed)
}
