//! Webhooks in the store: the registration port, and each activity's event log with
//! the delivery cursors that drain it.
//!
//! Events are written by the activity's own commits (`codec::encode`, keys
//! `e/{activity}/{seq}`), so an event is durable exactly when its change is, and in
//! cluster mode it is replicated with the activity and a new owner delivers what the
//! old one had not. A cursor per receiver and activity says which event that receiver
//! gets next; events every receiver has passed are deleted by the activity itself
//! (`PruneEvents`, so the replica drops them too), all but the newest, whose number
//! keeps the sequence going after a restart.

use super::layout::{cursor_key, event_key, events_of, parse_event_seq, webhook_key};
use super::{KvOp, Store, StoreError};
use crate::domain::clock::Millis;
use crate::domain::webhook::EventType;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// A registered receiver, as stored (with its secret: deliveries are signed with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub events: Vec<EventType>,
    pub secret: String,
    /// Events stamped before the registration are not sent to it.
    pub created_at: Millis,
}

impl Webhook {
    pub fn wants(&self, t: EventType) -> bool {
        self.events.contains(&t)
    }
}

/// Why the registrations could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WebhooksUnavailable(pub &'static str);

/// Where registrations are kept: this process's store, or (cluster mode) the
/// cluster's Redis, so every node delivers to every receiver.
pub trait WebhookStore: Send + Sync {
    fn list(&self) -> BoxFuture<'_, Result<Vec<Webhook>, WebhooksUnavailable>>;
    /// Stores a new registration durably.
    fn insert<'a>(&'a self, hook: &'a Webhook) -> BoxFuture<'a, Result<(), WebhooksUnavailable>>;
    /// `false` if there was none with that id.
    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, WebhooksUnavailable>>;
}

/// Registrations in this process's store (`w/r/{id}`).
pub struct SledWebhooks {
    pub store: Store,
}

const UNREADABLE: WebhooksUnavailable = WebhooksUnavailable("the store cannot be read");
const UNWRITABLE: WebhooksUnavailable = WebhooksUnavailable("the store cannot write");

impl WebhookStore for SledWebhooks {
    fn list(&self) -> BoxFuture<'_, Result<Vec<Webhook>, WebhooksUnavailable>> {
        Box::pin(async move {
            let entries = self
                .store
                .scan(super::layout::WEBHOOK_PREFIX, usize::MAX)
                .map_err(|_| UNREADABLE)?;
            Ok(entries
                .iter()
                .filter_map(|(_, v)| serde_json::from_slice(v).ok())
                .collect())
        })
    }

    fn insert<'a>(&'a self, hook: &'a Webhook) -> BoxFuture<'a, Result<(), WebhooksUnavailable>> {
        Box::pin(async move {
            let value = serde_json::to_vec(hook).expect("registrations serialize");
            self.store
                .write(vec![KvOp::Put(webhook_key(&hook.id), value)])
                .await
                .map_err(|_| UNWRITABLE)
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, WebhooksUnavailable>> {
        Box::pin(async move {
            let key = webhook_key(id);
            if self.store.get(&key).map_err(|_| UNREADABLE)?.is_none() {
                return Ok(false);
            }
            self.store
                .write(vec![KvOp::Del(key)])
                .await
                .map_err(|_| UNWRITABLE)?;
            Ok(true)
        })
    }
}

/// What activities read before writing events (the types some receiver wants), and
/// how they tell the delivery workers that events were committed.
#[derive(Default)]
pub struct EventSignal {
    mask: AtomicU8,
    written: tokio::sync::Notify,
}

impl EventSignal {
    pub fn new() -> Arc<EventSignal> {
        Arc::new(EventSignal::default())
    }

    pub fn mask(&self) -> u8 {
        self.mask.load(Ordering::Acquire)
    }

    pub fn set_mask(&self, mask: u8) {
        self.mask.store(mask, Ordering::Release);
    }

    /// Called once events are durable.
    pub fn wrote(&self) {
        self.written.notify_waiters();
    }

    /// Resolves at the next `wrote`; `enable` it before looking, so nothing is missed.
    pub fn written(&self) -> tokio::sync::futures::Notified<'_> {
        self.written.notified()
    }
}

impl Store {
    /// Commits `ops` and waits until they are durable.
    pub async fn write(&self, ops: Vec<KvOp>) -> Result<(), StoreError> {
        self.commit(ops)?
            .await
            .map_err(|_| StoreError::Unavailable)?
    }

    /// The numbers of the activity's stored events: from the oldest to one past the
    /// newest ever written (pruning keeps the newest, and a deleted key still counts
    /// while it is in the memtable). Empty and from 0 for an activity without events.
    pub fn event_range(&self, activity: &str) -> Result<std::ops::Range<u64>, StoreError> {
        let end = self.next_event_seq(activity)?;
        let start = self
            .events_from(activity, 0, 1)?
            .first()
            .map_or(end, |(n, _)| *n);
        Ok(start..end)
    }

    /// The number the activity's next event gets.
    pub fn next_event_seq(&self, activity: &str) -> Result<u64, StoreError> {
        let prefix = events_of(activity);
        let newest = self.with_db(|db| {
            let disk = db.scan_prefix(&prefix).next_back().transpose()?;
            let disk = disk.and_then(|(k, _)| parse_event_seq(&k));
            let mem = self
                .inner
                .mem
                .last_under(&prefix)
                .and_then(|k| parse_event_seq(&k));
            Ok(disk.max(mem))
        })?;
        Ok(newest.map_or(0, |n| n + 1))
    }

    /// Up to `limit` of the activity's events from number `from` on, in order.
    pub fn events_from(
        &self,
        activity: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let prefix = events_of(activity);
        let start = event_key(activity, from);
        let entries = self.with_db(|db| self.inner.mem.scan_from(db, &prefix, &start, limit))?;
        Ok(entries
            .into_iter()
            .filter_map(|(k, v)| Some((parse_event_seq(&k)?, v)))
            .collect())
    }

    /// The next event `webhook` gets of `activity`, if it has a cursor there.
    pub fn cursor(&self, webhook: &str, activity: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .get(&cursor_key(webhook, activity))?
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()))
    }

    pub async fn set_cursor(
        &self,
        webhook: &str,
        activity: &str,
        next: u64,
    ) -> Result<(), StoreError> {
        let value = next.to_string().into_bytes();
        self.write(vec![KvOp::Put(cursor_key(webhook, activity), value)])
            .await
    }

    /// Forgets a removed receiver's cursors.
    pub async fn drop_cursors(&self, webhook: &str) -> Result<(), StoreError> {
        let prefix = format!("w/c/{webhook}/").into_bytes();
        let keys: Vec<KvOp> = self
            .scan(&prefix, usize::MAX)?
            .into_iter()
            .map(|(k, _)| KvOp::Del(k))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        self.write(keys).await
    }
}
