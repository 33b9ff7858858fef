//! Webhook delivery: the registrations this process knows, one worker per receiver
//! that drains the activities' event logs to it, and their health.
//!
//! Events are committed by the activities themselves (`store::webhooks`); this only
//! reads them. A worker sends one receiver its events in commit order per activity,
//! retrying each with exponential backoff and jitter until a 2xx, then moves that
//! receiver's durable cursor. Workers are independent: a receiver that is down or slow
//! holds back only itself, and never the activities, which do not wait for delivery.
//! In cluster mode every node runs a worker per receiver for the activities it owns.

mod health;
mod sender;

pub use health::{Attempt, Health};

use crate::config::WebhookSettings;
use crate::domain::clock::{rfc3339, Clock};
use crate::domain::webhook::EventType;
use crate::store::webhooks::{EventSignal, Webhook, WebhookStore, WebhooksUnavailable};
use crate::store::Store;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

/// The activities whose events this process delivers (those it runs).
pub type Owned = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// Tells an activity that every receiver has passed its events below a number (the
/// activity deletes them in its own commit: `actors::messages::PruneEvents`).
pub type Prune = Arc<dyn Fn(&str, u64) + Send + Sync>;

/// A registration as `GET /api/admin/webhooks` lists it, with this node's delivery
/// health of it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: String,
    pub health: Health,
}

/// The contract names of `events`.
pub fn names(events: &[EventType]) -> Vec<String> {
    events.iter().map(|t| t.as_str().to_owned()).collect()
}

/// What delivery works with, chosen at start-up.
pub struct HubDeps {
    pub store: Store,
    /// Where registrations are kept (this process's store, or the cluster's Redis).
    pub registrations: Arc<dyn WebhookStore>,
    /// Shared with the activities: which types they write, and their wake-up call.
    pub signal: Arc<EventSignal>,
    pub settings: WebhookSettings,
    pub owned: Owned,
    pub prune: Prune,
    pub clock: Arc<dyn Clock>,
    /// Trust for `https://` receivers (`None`: their deliveries fail).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

pub struct Webhooks {
    deps: HubDeps,
    known: RwLock<Vec<Webhook>>,
    board: health::Board,
    /// Registrations changed here: reconcile the workers now.
    changed: Notify,
}

impl Webhooks {
    pub fn new(deps: HubDeps) -> Arc<Webhooks> {
        Arc::new(Webhooks {
            deps,
            known: RwLock::new(Vec::new()),
            board: health::Board::default(),
            changed: Notify::new(),
        })
    }

    /// The registrations as last read.
    pub fn list(&self) -> Vec<Webhook> {
        self.known.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn get(&self, id: &str) -> Option<Webhook> {
        self.list().into_iter().find(|h| h.id == id)
    }

    /// Stores a registration; events of its types are written from now on.
    pub async fn add(&self, hook: Webhook) -> Result<(), WebhooksUnavailable> {
        self.deps.registrations.insert(&hook).await?;
        let mut known = self.list();
        known.push(hook);
        self.adopt(known);
        Ok(())
    }

    /// `false` if no such registration.
    pub async fn remove(&self, id: &str) -> Result<bool, WebhooksUnavailable> {
        if !self.deps.registrations.remove(id).await? {
            return Ok(false);
        }
        let known = self.list().into_iter().filter(|h| h.id != id).collect();
        self.adopt(known);
        Ok(true)
    }

    /// Every registration as listed (never with its secret), with its health.
    pub fn views(&self) -> Vec<WebhookView> {
        self.list()
            .into_iter()
            .map(|h| WebhookView {
                health: self.board.health(&h.id),
                events: names(&h.events),
                created_at: rfc3339(h.created_at),
                id: h.id,
                url: crate::domain::webhook::redacted_url(&h.url),
            })
            .collect()
    }

    pub fn attempts(&self, id: &str) -> Vec<Attempt> {
        self.board.attempts(id)
    }

    /// Takes `known` as the registrations: the activities write the types they want,
    /// and the supervisor reconciles the workers.
    fn adopt(&self, known: Vec<Webhook>) {
        let mask = known
            .iter()
            .flat_map(|h| h.events.iter())
            .fold(0u8, |m, t| m | t.bit());
        self.deps.signal.set_mask(mask);
        *self.known.write().unwrap_or_else(|p| p.into_inner()) = known;
        self.changed.notify_one();
    }

    /// Reads the registrations again (other nodes may have changed them).
    async fn refresh(&self) {
        match self.deps.registrations.list().await {
            Ok(mut hooks) => {
                hooks.sort_by_key(|h| h.created_at);
                if hooks != self.list() {
                    self.adopt(hooks);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the webhook registrations"),
        }
    }

    /// Runs one worker per receiver, reconciled whenever registrations change, until
    /// the task is dropped (which aborts the workers).
    pub async fn run(self: Arc<Self>) {
        let mut workers: HashMap<String, Worker> = HashMap::new();
        loop {
            self.refresh().await;
            let known = self.list();
            workers.retain(|id, w| {
                let keep = known.iter().any(|h| &h.id == id && h == &w.hook);
                if !keep {
                    self.board.forget(id);
                    let (store, id) = (self.deps.store.clone(), id.clone());
                    if !known.iter().any(|h| h.id == id) {
                        actix_web::rt::spawn(async move {
                            let _ = store.drop_cursors(&id).await;
                        });
                    }
                }
                keep
            });
            for h in known {
                if !workers.contains_key(&h.id) {
                    let task = actix_web::rt::spawn(sender::run(Arc::clone(&self), h.clone()));
                    workers.insert(h.id.clone(), Worker { hook: h, task });
                }
            }
            let every = Duration::from_millis(self.deps.settings.refresh_ms);
            let _ = tokio::time::timeout(every, self.changed.notified()).await;
        }
    }

    /// Lets `activity` delete the events every receiver has passed (below the lowest
    /// of their cursors there).
    fn prune(&self, activity: &str) {
        let mut low = u64::MAX;
        for h in self.list() {
            match self.deps.store.cursor(&h.id, activity) {
                Ok(Some(c)) => low = low.min(c),
                _ => return,
            }
        }
        if low != u64::MAX {
            (self.deps.prune)(activity, low);
        }
    }
}

struct Worker {
    hook: Webhook,
    task: tokio::task::JoinHandle<()>,
}

/// A worker stops with its entry (a removed receiver, or the supervisor stopping).
impl Drop for Worker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
