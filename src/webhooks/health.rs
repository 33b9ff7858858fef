//! What operators see of each receiver: recent attempts, last success and error,
//! backlog; the same figures go to `/metrics`.

use crate::domain::clock::{rfc3339, Millis};
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Attempts kept per receiver for `GET /api/admin/webhooks/{id}/deliveries`.
pub const KEPT_ATTEMPTS: usize = 100;

/// One delivery attempt.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    /// When it was made (RFC 3339).
    pub at: String,
    /// The event's `webhook-id`.
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The tries of this event so far, this one included.
    pub attempt: u32,
    /// The receiver's HTTP status, `null` if it did not answer.
    #[schema(required = true)]
    pub status: Option<u16>,
    /// Why it failed (`null` on success).
    #[schema(required = true)]
    pub error: Option<String>,
    /// When the next try is due after a failure (`null` on success).
    #[schema(required = true)]
    pub next_retry: Option<String>,
}

/// One receiver's health, for the dashboard.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Events committed and not yet delivered to it (of every type some receiver wants).
    pub pending: u64,
    pub delivered: u64,
    pub failed_attempts: u64,
    #[schema(required = true)]
    pub last_success: Option<String>,
    #[schema(required = true)]
    pub last_error: Option<String>,
    #[schema(required = true)]
    pub last_error_at: Option<String>,
    #[serde(skip)]
    attempts: VecDeque<Attempt>,
}

#[derive(Default)]
pub struct Board {
    by_hook: Mutex<HashMap<String, Health>>,
}

impl Board {
    fn with<T>(&self, hook: &str, f: impl FnOnce(&mut Health) -> T) -> T {
        let mut map = self.by_hook.lock().unwrap_or_else(|p| p.into_inner());
        f(map.entry(hook.to_owned()).or_default())
    }

    pub fn record(&self, hook: &str, at: Millis, attempt: Attempt) {
        let ok = attempt.error.is_none();
        let label = [("webhook", hook.to_owned())];
        if ok {
            metrics::counter!("sluice_webhook_delivered_total", &label).increment(1);
        } else {
            metrics::counter!("sluice_webhook_failed_attempts_total", &label).increment(1);
        }
        self.with(hook, |h| {
            if ok {
                h.delivered += 1;
                h.last_success = Some(rfc3339(at));
            } else {
                h.failed_attempts += 1;
                h.last_error = attempt.error.clone();
                h.last_error_at = Some(rfc3339(at));
            }
            if h.attempts.len() == KEPT_ATTEMPTS {
                h.attempts.pop_front();
            }
            h.attempts.push_back(attempt);
        });
    }

    pub fn set_pending(&self, hook: &str, pending: u64) {
        metrics::gauge!("sluice_webhook_pending", "webhook" => hook.to_owned()).set(pending as f64);
        self.with(hook, |h| h.pending = pending);
    }

    /// Recent attempts, newest first.
    pub fn attempts(&self, hook: &str) -> Vec<Attempt> {
        self.with(hook, |h| h.attempts.iter().rev().cloned().collect())
    }

    pub fn health(&self, hook: &str) -> Health {
        self.with(hook, |h| h.clone())
    }

    pub fn forget(&self, hook: &str) {
        self.by_hook
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(hook);
        metrics::gauge!("sluice_webhook_pending", "webhook" => hook.to_owned()).set(0.0);
    }
}
