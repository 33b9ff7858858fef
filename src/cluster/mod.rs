//! Cluster mode (docs/cluster.md): many sluice processes share one Redis (or a
//! primary found through Sentinel); each activity has exactly one owner at a time,
//! sessions may connect to any node.
//!
//! The core (actors, HTTP) is written as if there were one process; this module
//! plugs into its ports and nothing in the core imports it:
//! - `directory`: the HTTP `Directory` (requests forwarded, `forward`; sessions
//!   relayed, `session_link` and `relay`; lists and orders from every node);
//! - `replicate`: the `CommitTarget` of an owned activity (local store + replica,
//!   fenced by the lease);
//! - `accounts`: the `AccountStore` in Redis;
//! - `signing_keys`: the `SigningKeyStore` of gate passes in Redis;
//! - `internal`: the node-to-node endpoints.
//!
//! `Cluster` itself: `primary` (the Redis primary, fixed or followed through
//! Sentinel), `membership` (live nodes, the view), `leases` (ownership with fencing
//! tokens), `placement` (where an activity lives, creating one), `takeover`
//! (claiming free activities, rebuilding from the replica), `status`.

pub mod accounts;
pub mod client;
pub mod directory;
pub mod forward;
pub mod internal;
pub mod keys;
pub mod primary;
pub mod relay;
pub mod replicate;
pub mod session_link;
pub mod signing_keys;
pub mod webhooks;

mod leases;
mod membership;
mod placement;
mod status;
mod takeover;

use leases::Owned;
pub use membership::ClusterView;
pub use placement::Route;

use crate::actors::registry::Registry;
use crate::config::Settings;
use crate::domain::ids::ActivityId;
use crate::error::{ApiError, ErrorCode};
use anyhow::Context as _;
use primary::Primary;
use redis::{AsyncCommands, Script};
use relay::Relay;
use replicate::Replicator;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

pub struct Cluster {
    pub node_id: String,
    pub advertise: String,
    lease_ms: u64,
    renew_ms: u64,
    /// The Redis primary (fixed, or followed through Sentinel).
    primary: Arc<Primary>,
    replicator: Replicator,
    replica_acks: u32,
    ack_timeout_ms: u64,
    /// The highest fencing token seen per activity: a new lease's token starts above
    /// it, even on a promoted replica that never saw it (`keys::ACQUIRE`).
    high_fence: Mutex<HashMap<ActivityId, u64>>,
    pub registry: Arc<Registry>,
    view: RwLock<ClusterView>,
    owned: Mutex<HashMap<ActivityId, Owned>>,
    pub relay: Arc<Relay>,
    /// Takeovers run here, off the thread of the reconciliation loop: rebuilding
    /// 100,000 places takes seconds of CPU, and a loop blocked that long misses its
    /// heartbeats and renewals, so the lease lapsed mid-rebuild and two nodes took
    /// the activity from each other in turn, neither ever serving it.
    takeovers: actix::ArbiterHandle,
    /// Shared secret of node-to-node calls (the admin key).
    key: String,
    /// Its SHA-256, compared in constant time (computed once, not per request).
    key_hash: [u8; 32],
    acquire: Script,
    renew: Script,
    release: Script,
}
impl Cluster {
    /// Connects to Redis and announces this node. The reconciliation loop starts with
    /// `start`.
    pub async fn connect(
        settings: &Settings,
        registry: Arc<Registry>,
        relay_arbiter: actix::ArbiterHandle,
    ) -> anyhow::Result<Arc<Cluster>> {
        let c = &settings.cluster;
        let primary = Arc::new(Primary::connect(c).await?);
        let target = primary.addr();
        let advertise = settings.advertise();
        let key = settings.admin.api_key.clone();
        let takeovers = actix::Arbiter::new();
        let takeovers_handle = takeovers.handle();
        // The arbiter lives as long as the process: its handle keeps it running.
        std::mem::forget(takeovers);
        let cluster = Arc::new(Cluster {
            node_id: c.node_id.clone(),
            advertise: advertise.clone(),
            lease_ms: c.lease_ms,
            renew_ms: c.renew_ms,
            replicator: Replicator::start(
                Arc::clone(&primary),
                c.replica_acks,
                c.replica_ack_timeout_ms,
                std::time::Duration::from_millis(c.lease_ms),
            ),
            primary,
            replica_acks: c.replica_acks,
            ack_timeout_ms: c.replica_ack_timeout_ms,
            high_fence: Mutex::new(HashMap::new()),
            registry,
            view: RwLock::new(ClusterView::default()),
            owned: Mutex::new(HashMap::new()),
            relay: Arc::new(Relay::new(
                c.node_id.clone(),
                advertise,
                key.clone(),
                relay_arbiter,
            )),
            takeovers: takeovers_handle,
            key_hash: crate::http::admin_keys::key_digest(key.as_bytes()),
            key,
            acquire: Script::new(keys::ACQUIRE),
            renew: Script::new(keys::RENEW),
            release: Script::new(keys::RELEASE),
        });
        cluster.heartbeat().await.with_context(|| {
            format!(
                "cannot register node {} in the cluster's Redis at {target}",
                c.node_id
            )
        })?;
        tracing::info!(node_id = %cluster.node_id, advertise = %cluster.advertise, redis = %target, "cluster node up");
        Ok(cluster)
    }

    /// Runs reconciliation every `renew_ms` until the process stops, and, as its own
    /// task (slow sentinels must not delay renewals), asks the sentinels for the
    /// primary as often: after a promotion the next renewals and fenced writes go to
    /// the new primary, which re-validates every lease (docs/cluster.md).
    pub fn start(self: &Arc<Self>) {
        let period = Duration::from_millis(self.renew_ms);
        let me = Arc::clone(self);
        spawn_every(period, move || {
            let me = Arc::clone(&me);
            async move { me.round().await }
        });
        let primary = Arc::clone(&self.primary);
        spawn_every(period, move || {
            let primary = Arc::clone(&primary);
            async move {
                primary.follow().await;
            }
        });
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// True if `presented` is the cluster's shared secret.
    pub fn is_internal(&self, presented: &[u8]) -> bool {
        crate::http::admin_keys::key_matches(presented, &self.key_hash)
    }

    /// The account store of the cluster (its Redis).
    pub fn accounts(&self) -> accounts::RedisAccounts {
        accounts::RedisAccounts {
            primary: Arc::clone(&self.primary),
            replica_acks: self.replica_acks,
            ack_timeout_ms: self.ack_timeout_ms,
        }
    }

    /// The webhook registrations of the cluster (its Redis): every node delivers to
    /// every receiver, for the activities it owns.
    pub fn webhooks(&self) -> webhooks::RedisWebhooks {
        webhooks::RedisWebhooks {
            primary: Arc::clone(&self.primary),
            replica_acks: self.replica_acks,
            ack_timeout_ms: self.ack_timeout_ms,
        }
    }

    /// The gate pass signing keys of the cluster (its Redis).
    pub fn signing_keys(&self) -> signing_keys::RedisSigningKeys {
        signing_keys::RedisSigningKeys {
            primary: Arc::clone(&self.primary),
            replica_acks: self.replica_acks,
            ack_timeout_ms: self.ack_timeout_ms,
        }
    }

    /// True while this node runs the activity's actor.
    pub fn runs_here(&self, id: &ActivityId) -> bool {
        self.registry.get(id).is_some()
    }

    /// One reconciliation: heartbeat, renew what is owned (stepping down from what
    /// cannot be renewed in time), read the view, claim free activities this node is
    /// preferred for, and re-join relayed sessions whose activity moved.
    async fn round(self: &Arc<Self>) {
        if let Err(e) = self.heartbeat().await {
            tracing::warn!(error = %e, "cluster heartbeat failed");
        }
        self.renew_all().await;
        match self.read_view().await {
            Ok(view) => {
                self.note_fences(&view);
                *self.view.write().unwrap_or_else(|e| e.into_inner()) = view.clone();
                self.claim_free(&view);
                // Read again after claiming, so this node's own takeovers count too.
                self.follow_moves(&self.view());
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the cluster view"),
        }
        // Last: a slow answer must not hold up the renewals.
        self.primary.observe().await;
        metrics::gauge!("sluice_cluster_owned_activities").set(self.owned().len() as f64);
        metrics::gauge!("sluice_cluster_relayed_sessions")
            .set(self.relay.relayed_sessions() as f64);
    }

    /// Graceful stop, after the activities drained: give every lease up at once (so
    /// others take over without waiting for expiry) and leave the membership.
    pub async fn leave(&self) {
        let owned: Vec<(ActivityId, String)> =
            self.owned().drain().map(|(id, o)| (id, o.holder)).collect();
        for (id, holder) in owned {
            self.release_lease(&id, &holder).await;
        }
        let mut conn = self.primary.conn();
        let _: redis::RedisResult<i64> = conn.del(keys::node(&self.node_id)).await;
    }
}

/// Runs `step` every `period` (a slow step delays the next) until the process stops.
fn spawn_every<F, Fut>(period: Duration, mut step: F)
where
    F: FnMut() -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    actix_web::rt::spawn(async move {
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            step().await;
        }
    });
}

fn redis_down(e: redis::RedisError) -> ApiError {
    tracing::warn!(error = %e, "cluster Redis call failed");
    ApiError::new(
        ErrorCode::Unavailable,
        "the cluster's store cannot be reached",
    )
    .retry_after(1)
}
