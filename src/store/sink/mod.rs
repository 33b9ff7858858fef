//! Order sinks: the second durable record of orders (PostgreSQL or Redis), fed by the outbox flusher.
//!
//! Every write is idempotent, keyed by order id and version: replaying a batch, or
//! sending an older version after a newer one, leaves the sink unchanged. That is what
//! lets the flusher retry freely after crashes and outages ("exactly once in effect").

pub mod postgres;
pub mod redis;

use std::collections::HashMap;

/// One order at one version, as it leaves the outbox: exactly the contract's ORDER
/// object (with its `version`), so the sink stores what clients see.
pub use crate::domain::order::OrderView as OrderRecord;

/// The configured order sink.
pub enum Sink {
    Postgres(postgres::PostgresSink),
    Redis(redis::RedisSink),
}

impl Sink {
    /// Connects (and for PostgreSQL creates the `orders` table if missing). `kind` is "postgres" or "redis".
    pub async fn connect(kind: &str, url: &str) -> anyhow::Result<Sink> {
        match kind {
            "postgres" | "postgresql" => {
                Ok(Sink::Postgres(postgres::PostgresSink::connect(url).await?))
            }
            "redis" => Ok(Sink::Redis(redis::RedisSink::connect(url).await?)),
            other => {
                anyhow::bail!("unknown sink kind {other:?} (expected \"postgres\" or \"redis\")")
            }
        }
    }

    /// Writes a batch idempotently: a record older than or equal to what the sink holds changes nothing. Ok only when all are durable in the sink.
    pub async fn write(&self, batch: &[OrderRecord]) -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        match self {
            Sink::Postgres(s) => s.write(batch).await,
            Sink::Redis(s) => s.write(batch).await,
        }
    }

    /// Cheap reachability check for /readyz.
    pub async fn ping(&self) -> anyhow::Result<()> {
        match self {
            Sink::Postgres(s) => s.ping().await,
            Sink::Redis(s) => s.ping().await,
        }
    }
}

/// Keeps only the highest version of each order (first-seen order of ids preserved),
/// because one `INSERT ... ON CONFLICT` statement may not touch the same row twice.
pub(crate) fn latest_per_order(batch: &[OrderRecord]) -> Vec<&OrderRecord> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(batch.len());
    let mut out: Vec<&OrderRecord> = Vec::with_capacity(batch.len());
    for rec in batch {
        match index.get(rec.id.as_str()) {
            Some(&i) => {
                if rec.version > out[i].version {
                    out[i] = rec;
                }
            }
            None => {
                index.insert(&rec.id, out.len());
                out.push(rec);
            }
        }
    }
    out
}

/// The URL without its password, safe for error messages and logs.
pub(crate) fn redact_url(url: &str) -> String {
    // scheme://user:password@host... -> scheme://user:***@host...
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let Some(at) = rest.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Shared helpers for the sink tests (which need throwaway services, see scripts/services.sh).
    use super::OrderRecord;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::sync::RwLock;

    /// The sink outage tests stop and restart the throwaway servers while holding these
    /// exclusively. Every other unit test in this crate that talks to the throwaway
    /// PostgreSQL / Redis must hold the matching one shared (`PG_LOCK.read().await`) for
    /// its whole run, or it may see the server vanish under it.
    pub static PG_LOCK: RwLock<()> = RwLock::const_new(());
    /// See [`PG_LOCK`].
    pub static REDIS_LOCK: RwLock<()> = RwLock::const_new(());

    /// The value of a required test environment variable; panics (never skips) if unset.
    pub fn require_env(name: &str, needs: &str) -> String {
        match std::env::var(name) {
            Ok(v) if !v.is_empty() => v,
            _ => panic!(
                "{name} is not set: this test needs {needs}. Run it via scripts/test.sh, \
                 or `source scripts/services.sh` first."
            ),
        }
    }

    /// Runs a shell command from a helper variable (e.g. SLUICE_TEST_PG_STOP) and checks it succeeded.
    pub fn run_helper(var: &str, needs: &str) {
        let cmd = require_env(var, needs);
        let status = std::process::Command::new("bash")
            .arg("-c")
            .arg(&cmd)
            .status()
            .unwrap_or_else(|e| panic!("running {var} ({cmd}): {e}"));
        assert!(status.success(), "{var} ({cmd}) failed: {status}");
    }

    /// A prefix unique to this process and call, so tests never share order ids.
    pub fn unique_prefix(test: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!(
            "{test}-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    pub fn order(id: &str, version: u64, status: &str) -> OrderRecord {
        OrderRecord {
            id: id.to_string(),
            activity_id: "act-1".to_string(),
            slot_id: if version.is_multiple_of(2) {
                None
            } else {
                Some("0900".to_string())
            },
            user_id: "user-1".to_string(),
            quantity: 2,
            amount_cents: 1_999 + version,
            status: status.to_string(),
            created_at: "2026-11-22T10:00:00Z".to_string(),
            pay_by: "2026-11-22T10:15:00Z".to_string(),
            version,
            payment_ref: (status == "paid").then(|| format!("ref-{id}")),
        }
    }

    /// v1 pending, v2 paid or cancelled, ...: a plausible history.
    pub fn status_for(version: u64) -> &'static str {
        match version {
            1 => "pending_payment",
            2 => "paid",
            _ => "cancelled",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::order;
    use super::*;

    #[test]
    fn dedupe_keeps_highest_version_in_first_seen_order() {
        let batch = vec![
            order("a", 1, "pending_payment"),
            order("b", 2, "paid"),
            order("a", 3, "cancelled"),
            order("b", 1, "pending_payment"),
            order("c", 1, "pending_payment"),
        ];
        let got: Vec<(&str, u64)> = latest_per_order(&batch)
            .iter()
            .map(|r| (r.id.as_str(), r.version))
            .collect();
        assert_eq!(got, vec![("a", 3), ("b", 2), ("c", 1)]);
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(redact_url("postgres://u@h:5/db"), "postgres://u@h:5/db");
        assert_eq!(redact_url("redis://127.0.0.1:7/"), "redis://127.0.0.1:7/");
        assert_eq!(redact_url("redis://:pw@h/2"), "redis://:***@h/2");
    }

    #[tokio::test]
    async fn unknown_kind_is_an_error() {
        let err = Sink::connect("kafka", "x://y")
            .await
            .err()
            .map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("unknown sink kind"));
    }
}
