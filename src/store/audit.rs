//! The audit log of admin calls that changed (or tried to change) state, in this
//! process's store: one entry per call, committed through the writer like every
//! other write, so it is durable once `append` resolves and survives `kill -9`.
//!
//! Keys count down (`audit/{u64::MAX - seq:016x}`), so a forward scan, the only
//! kind the store has, reads newest first.

use super::layout::AUDIT_PREFIX;
use super::{KvOp, Store, StoreError};
use crate::domain::clock::Millis;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// One admin call as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at_ms: Millis,
    pub key_name: String,
    pub method: String,
    /// The path only: a query string is never kept.
    pub path: String,
    pub status: u16,
}

/// Appends to and reads the audit log of one store.
pub struct AuditLog {
    store: Store,
    next: AtomicU64,
}

fn key(seq: u64) -> Vec<u8> {
    format!("audit/{:016x}", u64::MAX - seq).into_bytes()
}

fn seq_of(key: &[u8]) -> Option<u64> {
    let hex = std::str::from_utf8(key).ok()?.strip_prefix("audit/")?;
    u64::from_str_radix(hex, 16).ok().map(|n| u64::MAX - n)
}

impl AuditLog {
    /// The log of `store`, continuing after its newest entry.
    pub fn open(store: Store) -> Result<AuditLog, StoreError> {
        let newest = store.scan(AUDIT_PREFIX, 1)?;
        let next = newest
            .first()
            .and_then(|(k, _)| seq_of(k))
            .map_or(0, |s| s + 1);
        Ok(AuditLog {
            store,
            next: AtomicU64::new(next),
        })
    }

    /// Records one call; resolves once it is durable.
    pub async fn append(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let value = serde_json::to_vec(record).expect("audit records serialize");
        let ack = self.store.commit(vec![KvOp::Put(key(seq), value)])?;
        ack.await.map_err(|_| StoreError::Unavailable)?
    }

    /// The newest `limit` entries, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let entries = self.store.scan(AUDIT_PREFIX, limit)?;
        Ok(entries
            .iter()
            .filter_map(|(_, v)| serde_json::from_slice(v).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CommitSettings;
    use std::time::Duration;

    fn record(at_ms: Millis, path: &str) -> AuditRecord {
        AuditRecord {
            at_ms,
            key_name: "ops".into(),
            method: "POST".into(),
            path: path.into(),
            status: 200,
        }
    }

    fn open(dir: &std::path::Path) -> Store {
        Store::open(
            dir,
            CommitSettings {
                window: Duration::ZERO,
                max_batch: 16,
                queue: 16,
                checkpoint: Duration::from_secs(60),
            },
        )
        .expect("opens")
    }

    #[tokio::test]
    async fn entries_read_newest_first_and_continue_after_a_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open(dir.path());
        let log = AuditLog::open(store.clone()).expect("log");
        for i in 0..3 {
            log.append(&record(i, &format!("/p{i}")))
                .await
                .expect("durable");
        }
        let paths = |log: &AuditLog, n| -> Vec<String> {
            log.recent(n)
                .expect("reads")
                .into_iter()
                .map(|r| r.path)
                .collect()
        };
        assert_eq!(paths(&log, 2), ["/p2", "/p1"]);
        store.shutdown();
        let store = open(dir.path());
        let log = AuditLog::open(store.clone()).expect("log");
        log.append(&record(9, "/p3")).await.expect("durable");
        assert_eq!(paths(&log, 10), ["/p3", "/p2", "/p1", "/p0"]);
        store.shutdown();
    }
}
