//! One receiver's worker: reads each owned activity's events from the receiver's
//! cursor, sends those it subscribed to in order, and moves the cursor once each is
//! answered 2xx. A failed try (no answer within `webhooks.timeout_ms`, or not 2xx) is
//! retried after an exponential backoff with jitter, with the same `webhook-id`.

use super::{Attempt, Webhooks};
use crate::domain::clock::rfc3339;
use crate::domain::webhook::{
    body_type, event_id, secret_key, signature, target, EventType, Target,
};
use crate::store::webhooks::Webhook;
use actix_web::web::Bytes;
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs until aborted.
pub async fn run(hub: Arc<Webhooks>, hook: Webhook) {
    let timeout = Duration::from_millis(hub.deps.settings.timeout_ms);
    let builder = awc::Client::builder().timeout(timeout).disable_redirects();
    let client = match &hub.deps.tls {
        Some(tls) => builder
            .connector(awc::Connector::new().rustls_0_23(Arc::clone(tls)))
            .finish(),
        None => builder.finish(),
    };
    let Some(key) = secret_key(&hook.secret) else {
        tracing::error!(webhook = %hook.id, "unreadable webhook secret; not delivering");
        return;
    };
    let mut w = Sender {
        hub,
        to: target(&hook.url),
        hook,
        key,
        client,
        cursors: HashMap::new(),
        pruned: HashMap::new(),
        owed: HashSet::new(),
    };
    let hub = Arc::clone(&w.hub);
    loop {
        // Armed before reading, so events committed meanwhile wake the next round.
        let wake = hub.deps.signal.written();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let moved = w.round().await;
        if !moved {
            let every = Duration::from_millis(hub.deps.settings.refresh_ms);
            let _ = tokio::time::timeout(every, wake).await;
        }
    }
}

struct Sender {
    hub: Arc<Webhooks>,
    hook: Webhook,
    /// Where and with which credentials it is sent (never the URL's password).
    to: Target,
    key: Vec<u8>,
    client: awc::Client,
    /// The next event per activity, as far as this worker got.
    cursors: HashMap<String, u64>,
    /// When this worker last asked each activity to prune (at most once a refresh,
    /// while busy) and the activities owed a prune once it is idle.
    pruned: HashMap<String, Instant>,
    owed: HashSet<String>,
}

impl Sender {
    /// One batch per owned activity; whether any cursor moved.
    async fn round(&mut self) -> bool {
        let mut moved = false;
        for activity in (self.hub.deps.owned)() {
            match self.drain(&activity).await {
                Ok(m) => moved |= m,
                Err(e) => {
                    tracing::warn!(webhook = %self.hook.id, activity_id = %activity, error = %e, "cannot read webhook events");
                }
            }
        }
        self.count_pending();
        if !moved {
            for activity in std::mem::take(&mut self.owed) {
                self.prune(&activity);
            }
        }
        moved
    }

    fn prune(&mut self, activity: &str) {
        self.pruned.insert(activity.to_owned(), Instant::now());
        self.hub.prune(activity);
    }

    /// Publishes the events of the owned activities not yet passed (also while one
    /// event is being retried, so an outage shows as a growing backlog).
    fn count_pending(&self) {
        let store = &self.hub.deps.store;
        let pending: u64 = (self.hub.deps.owned)()
            .iter()
            .map(|a| {
                let end = store.next_event_seq(a).unwrap_or(0);
                let at = match self.cursors.get(a) {
                    Some(c) => *c,
                    None => store.cursor(&self.hook.id, a).ok().flatten().unwrap_or(0),
                };
                end.saturating_sub(at)
            })
            .sum();
        self.hub.board.set_pending(&self.hook.id, pending);
    }

    /// Sends one batch of `activity`'s events; whether the cursor moved.
    async fn drain(&mut self, activity: &str) -> Result<bool, crate::store::StoreError> {
        let hub = Arc::clone(&self.hub);
        let store = &hub.deps.store;
        let from = match self.cursors.get(activity) {
            Some(c) => *c,
            None => store.cursor(&self.hook.id, activity)?.unwrap_or(0),
        };
        let batch = store.events_from(activity, from, self.hub.deps.settings.batch)?;
        let mut next = from;
        for (seq, body) in batch {
            if let Some(t) = body_type(&body).filter(|t| self.wanted(*t, &body)) {
                self.deliver(activity, seq, t, Bytes::from(body)).await;
            }
            next = seq + 1;
        }
        let moved = next != from;
        if moved {
            store.set_cursor(&self.hook.id, activity, next).await?;
            self.cursors.insert(activity.to_owned(), next);
            let every = Duration::from_millis(self.hub.deps.settings.refresh_ms);
            let last = self.pruned.get(activity);
            if last.is_none_or(|t| t.elapsed() >= every) {
                self.prune(activity);
            } else {
                self.owed.insert(activity.to_owned());
            }
        }
        Ok(moved)
    }

    /// A type it subscribed to, stamped no earlier than the second it registered.
    fn wanted(&self, t: EventType, body: &[u8]) -> bool {
        #[derive(serde::Deserialize)]
        struct Stamp {
            timestamp: String,
        }
        let stamped = serde_json::from_slice::<Stamp>(body)
            .ok()
            .and_then(|s| crate::domain::clock::parse_rfc3339(&s.timestamp));
        let registered = self.hook.created_at / 1000 * 1000;
        self.hook.wants(t) && stamped.is_none_or(|at| at >= registered)
    }

    /// Tries until the receiver answers 2xx.
    async fn deliver(&self, activity: &str, seq: u64, t: EventType, body: Bytes) {
        let id = event_id(activity, seq);
        let mut attempt = 1u32;
        loop {
            let now = self.hub.deps.clock.now_ms();
            let ts = now / 1000;
            let started = Instant::now();
            let mut req = self.client.post(&self.to.url);
            if let Some(auth) = &self.to.authorization {
                req = req.insert_header(("authorization", auth.as_str()));
            }
            let sent = req
                .insert_header(("webhook-id", id.as_str()))
                .insert_header(("webhook-timestamp", ts.to_string()))
                .insert_header(("webhook-signature", signature(&self.key, &id, ts, &body)))
                .insert_header(("content-type", "application/json"))
                .send_body(body.clone())
                .await;
            metrics::histogram!("sluice_webhook_attempt_seconds")
                .record(started.elapsed().as_secs_f64());
            let (status, error) = match sent {
                Ok(res) if res.status().is_success() => (Some(res.status().as_u16()), None),
                Ok(res) => (
                    Some(res.status().as_u16()),
                    Some(format!("answered {}", res.status().as_u16())),
                ),
                Err(e) => (None, Some(e.to_string())),
            };
            let wait = error.is_some().then(|| self.backoff(attempt));
            self.hub.board.record(
                &self.hook.id,
                now,
                Attempt {
                    at: rfc3339(now),
                    event_id: id.clone(),
                    kind: t.as_str().to_owned(),
                    attempt,
                    status,
                    error,
                    next_retry: wait.map(|w| rfc3339(now + w.as_millis() as u64)),
                },
            );
            let Some(wait) = wait else {
                return;
            };
            self.count_pending();
            tokio::time::sleep(wait).await;
            attempt = attempt.saturating_add(1);
        }
    }

    /// `min_backoff * 2^(attempt-1)`, at most `max_backoff`, times a jitter in [0.5, 1.5).
    fn backoff(&self, attempt: u32) -> Duration {
        let s = &self.hub.deps.settings;
        let base = s
            .min_backoff_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(30))
            .min(s.max_backoff_ms);
        let jitter = rand::thread_rng().gen_range(0.5..1.5);
        Duration::from_millis(base).mul_f64(jitter)
    }
}
