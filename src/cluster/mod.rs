//! Cluster mode (docs/cluster.md): many sluice processes share one Redis; each
//! activity has exactly one owner at a time, sessions may connect to any node.
//!
//! - Membership: every node refreshes `sluice:node:{id}` (its advertised URL, with a
//!   TTL of `lease_ms`) every `renew_ms`; the live nodes are those whose key exists.
//! - Ownership: a lease `sluice:lease:{activity}` = `{node}|{fence}`, taken with a
//!   fencing token from `INCR`, renewed every `renew_ms`. Free activities are claimed
//!   by their rendezvous-hash node among the live ones, which rebuilds the activity
//!   from the replica (`replicate`). A node that cannot renew in time stops deciding.
//! - Sessions anywhere: `relay` (WebSocket sessions) and `client::forward` (HTTP
//!   calls) reach the owner from any node.

pub mod client;
pub mod keys;
pub mod relay;
pub mod replicate;

use crate::actors::activity::Replica;
use crate::actors::registry::Registry;
use crate::config::Settings;
use crate::domain::activity::ActivityView;
use crate::domain::ids::ActivityId;
use crate::domain::spec::{ActivitySpec, SlotSpec};
use crate::error::{ApiError, ErrorCode};
use anyhow::Context as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use relay::{OwnerRef, Relay};
use replicate::Replicator;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A sled key and its value, as replicated.
type Kv = (Vec<u8>, Vec<u8>);

/// What this node knows of the cluster, refreshed every `renew_ms`.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// Live nodes: id -> advertised base URL.
    pub nodes: BTreeMap<String, String>,
    /// Every activity of the cluster, with its current owner (none while it moves).
    pub activities: BTreeMap<ActivityId, Option<(String, u64)>>,
    /// When the view was last read from Redis.
    pub read_at: Option<Instant>,
}

/// An activity this node owns.
struct Owned {
    holder: String,
    fence: u64,
    /// When the last successful renewal was sent: the lease lasts `lease_ms` from then.
    renewed: Instant,
    /// Still being rebuilt from the replica (no actor yet); renewed all the same.
    adopting: bool,
}

/// How a request for an activity not running here is served.
pub enum Route {
    /// Forward to the owner at this base URL.
    Owner(OwnerRef),
    /// The activity exists but is between owners.
    Moving,
    /// No such activity in the cluster.
    Unknown,
}

#[derive(Serialize)]
struct NodeOut<'a> {
    id: &'a str,
    advertise: &'a str,
    live: bool,
}

#[derive(Serialize)]
struct ActivityOut<'a> {
    id: &'a str,
    owner: Option<&'a str>,
    fence: Option<u64>,
}

pub struct Cluster {
    pub node_id: String,
    pub advertise: String,
    lease_ms: u64,
    renew_ms: u64,
    conn: ConnectionManager,
    replicator: Replicator,
    registry: Arc<Registry>,
    view: RwLock<ClusterView>,
    owned: Mutex<HashMap<ActivityId, Owned>>,
    pub relay: Arc<Relay>,
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
        let target = crate::store::sink::redact_url(&c.redis_url);
        let client = redis::Client::open(c.redis_url.as_str())
            .with_context(|| format!("invalid cluster.redis_url {target}"))?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(c.renew_ms))
            .set_connection_timeout(Some(Duration::from_millis(c.renew_ms)))
            .set_response_timeout(Some(Duration::from_millis(c.renew_ms)));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .with_context(|| format!("cannot connect to the cluster's Redis at {target}"))?;
        let advertise = settings.advertise();
        let key = settings.admin.api_key.clone();
        let cluster = Arc::new(Cluster {
            node_id: c.node_id.clone(),
            advertise: advertise.clone(),
            lease_ms: c.lease_ms,
            renew_ms: c.renew_ms,
            replicator: Replicator::start(conn.clone()),
            conn,
            registry,
            view: RwLock::new(ClusterView::default()),
            owned: Mutex::new(HashMap::new()),
            relay: Arc::new(Relay::new(
                c.node_id.clone(),
                advertise,
                key.clone(),
                relay_arbiter,
            )),
            key_hash: crate::http::state::AppState::hash_key(&key),
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

    /// Runs reconciliation every `renew_ms` until the process stops.
    pub fn start(self: &Arc<Self>) {
        let me = Arc::clone(self);
        actix_web::rt::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(me.renew_ms));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                me.round().await;
            }
        });
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// True if `presented` is the cluster's shared secret.
    pub fn is_internal(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        crate::http::state::AppState::hash_key(&String::from_utf8_lossy(presented))
            .ct_eq(&self.key_hash)
            .into()
    }

    fn owned(&self) -> std::sync::MutexGuard<'_, HashMap<ActivityId, Owned>> {
        self.owned.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn view(&self) -> ClusterView {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Live nodes other than this one: (id, base URL).
    pub fn peers(&self) -> Vec<(String, String)> {
        self.view
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .nodes
            .iter()
            .filter(|(id, _)| **id != self.node_id)
            .map(|(id, a)| (id.clone(), a.clone()))
            .collect()
    }

    /// How to reach an activity that is not running here.
    pub fn route(&self, id: &ActivityId) -> Route {
        let view = self.view.read().unwrap_or_else(|e| e.into_inner());
        match view.activities.get(id) {
            None => Route::Unknown,
            Some(None) => Route::Moving,
            Some(Some((node, fence))) => match view.nodes.get(node) {
                Some(base) if *node != self.node_id => Route::Owner(OwnerRef {
                    node: node.clone(),
                    base: base.clone(),
                    fence: *fence,
                }),
                _ => Route::Moving,
            },
        }
    }

    /// The node that should own a new activity: rendezvous over the live nodes.
    pub fn preferred(&self, id: &ActivityId) -> Option<(String, String)> {
        let view = self.view.read().unwrap_or_else(|e| e.into_inner());
        let mut live: Vec<&str> = view.nodes.keys().map(String::as_str).collect();
        if !live.contains(&self.node_id.as_str()) {
            live.push(&self.node_id);
        }
        let node = keys::rendezvous(id, live)?;
        let base = view
            .nodes
            .get(node)
            .cloned()
            .unwrap_or_else(|| self.advertise.clone());
        Some((node.to_owned(), base))
    }

    /// Creates an activity owned by this node: registers it cluster-wide (409 if the id
    /// is taken anywhere), takes its lease, and starts it replicating.
    pub async fn create(
        &self,
        spec: ActivitySpec,
        slots: Vec<SlotSpec>,
    ) -> Result<ActivityView, ApiError> {
        let id = spec.id.clone();
        let mut conn = self.conn.clone();
        let added: bool = conn
            .hset_nx(keys::ACTIVITIES, id.as_str(), 1)
            .await
            .map_err(redis_down)?;
        if !added {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("activity {id} already exists"),
            ));
        }
        let fence = self.acquire(&id).await.map_err(redis_down)?;
        if fence == 0 {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "the activity is being created elsewhere; retry",
            ));
        }
        let replica = self.hold(&id, fence, false);
        let res = self.registry.create(spec, slots, Some(replica)).await;
        self.note_owner(&id, Some((self.node_id.clone(), fence)));
        res.map_err(ApiError::from)
    }

    /// An account record (cluster mode keeps accounts in Redis, `sluice:accounts`).
    pub async fn account(&self, username: &str) -> Result<Option<Vec<u8>>, ApiError> {
        let mut conn = self.conn.clone();
        conn.hget(keys::ACCOUNTS, username)
            .await
            .map_err(redis_down)
    }

    /// Stores a new account; false if the username is taken.
    pub async fn add_account(&self, username: &str, record: &[u8]) -> Result<bool, ApiError> {
        let mut conn = self.conn.clone();
        conn.hset_nx(keys::ACCOUNTS, username, record)
            .await
            .map_err(redis_down)
    }

    /// Looks an activity this node has not heard of up in Redis (it may have been
    /// created through another node since the last round), so the first clients of a
    /// new activity are not told it does not exist.
    pub async fn lookup(&self, id: &ActivityId) {
        let mut conn = self.conn.clone();
        let known: redis::RedisResult<bool> = conn.hexists(keys::ACTIVITIES, id.as_str()).await;
        if !matches!(known, Ok(true)) {
            return;
        }
        let lease: redis::RedisResult<Option<String>> = conn.get(keys::lease(id)).await;
        let owner = lease
            .ok()
            .flatten()
            .as_deref()
            .and_then(keys::parse_holder)
            .map(|(n, f)| (n.to_owned(), f));
        self.note_owner(id, owner);
    }

    /// True while this node holds the activity's lease (running, or being rebuilt).
    pub fn holds(&self, id: &ActivityId) -> bool {
        self.owned().contains_key(id)
    }

    /// Reads the view now (after creating an activity on another node, so this node
    /// routes to it at once).
    pub async fn refresh(&self) {
        if let Ok(view) = self.read_view().await {
            *self.view.write().unwrap_or_else(|e| e.into_inner()) = view;
        }
    }

    /// Records a lease just taken (renewed by the loop from now on) and returns what
    /// the activity's actor replicates with.
    fn hold(&self, id: &ActivityId, fence: u64, adopting: bool) -> Replica {
        let holder = keys::holder(&self.node_id, fence);
        self.owned().insert(
            id.clone(),
            Owned {
                holder: holder.clone(),
                fence,
                renewed: Instant::now(),
                adopting,
            },
        );
        Replica {
            replicator: self.replicator.clone(),
            holder,
        }
    }

    /// Takes a free lease; the fencing token, or 0 if someone holds it.
    async fn acquire(&self, id: &ActivityId) -> redis::RedisResult<u64> {
        let mut conn = self.conn.clone();
        self.acquire
            .key(keys::lease(id))
            .key(keys::fence(id))
            .arg(&self.node_id)
            .arg(self.lease_ms)
            .invoke_async(&mut conn)
            .await
    }

    async fn heartbeat(&self) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .set_options(
                keys::node(&self.node_id),
                &self.advertise,
                redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(self.lease_ms)),
            )
            .ignore()
            .sadd(keys::NODES, &self.node_id)
            .ignore()
            .query_async(&mut conn)
            .await
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
                *self.view.write().unwrap_or_else(|e| e.into_inner()) = view.clone();
                self.claim_free(&view);
                // Read again after claiming, so this node's own takeovers count too.
                self.follow_moves(&self.view());
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the cluster view"),
        }
        metrics::gauge!("sluice_cluster_owned_activities").set(self.owned().len() as f64);
        metrics::gauge!("sluice_cluster_relayed_sessions")
            .set(self.relay.relayed_sessions() as f64);
    }

    async fn renew_all(&self) {
        let owned: Vec<(ActivityId, String, Instant, bool)> = self
            .owned()
            .iter()
            .map(|(id, o)| (id.clone(), o.holder.clone(), o.renewed, o.adopting))
            .collect();
        for (id, holder, renewed, adopting) in owned {
            let running = self.registry.get(&id).is_some_and(|a| a.connected());
            if !running && !adopting {
                // The actor stepped down itself (a commit missed the replica).
                self.step_down(&id, "the activity stopped after a replication failure")
                    .await;
                continue;
            }
            let sent = Instant::now();
            let mut conn = self.conn.clone();
            let res: redis::RedisResult<i64> = self
                .renew
                .key(keys::lease(&id))
                .arg(&holder)
                .arg(self.lease_ms)
                .invoke_async(&mut conn)
                .await;
            match res {
                Ok(1) => {
                    if let Some(o) = self.owned().get_mut(&id) {
                        o.renewed = sent;
                    }
                }
                Ok(_) => self.step_down(&id, "the lease was lost").await,
                Err(e) => {
                    // Unknown whether the lease still holds: stop before it can expire
                    // (one renewal interval of margin), never after.
                    let deadline =
                        Duration::from_millis(self.lease_ms.saturating_sub(self.renew_ms));
                    if renewed.elapsed() >= deadline {
                        self.step_down(&id, &format!("the lease cannot be renewed: {e}"))
                            .await;
                    }
                }
            }
        }
    }

    async fn step_down(&self, id: &ActivityId, why: &str) {
        tracing::warn!(activity_id = %id, reason = why, "giving up ownership");
        let Some(o) = self.owned().remove(id) else {
            return;
        };
        self.registry.remove(id);
        self.note_owner(id, None);
        self.release_lease(id, &o.holder).await;
    }

    /// Gives a lease up if this holder still has it (best effort: it expires anyway).
    async fn release_lease(&self, id: &ActivityId, holder: &str) {
        let mut conn = self.conn.clone();
        let res: redis::RedisResult<i64> = self
            .release
            .key(keys::lease(id))
            .arg(holder)
            .invoke_async(&mut conn)
            .await;
        if let Err(e) = res {
            tracing::debug!(activity_id = %id, error = %e, "cannot release a lease; it will expire");
        }
    }

    async fn read_view(&self) -> redis::RedisResult<ClusterView> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn.smembers(keys::NODES).await?;
        let mut nodes = BTreeMap::new();
        if !ids.is_empty() {
            let node_keys: Vec<String> = ids.iter().map(|n| keys::node(n)).collect();
            let adverts: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&node_keys)
                .query_async(&mut conn)
                .await?;
            for (id, adv) in ids.into_iter().zip(adverts) {
                if let Some(a) = adv {
                    nodes.insert(id, a);
                }
            }
        }
        let names: Vec<String> = conn.hkeys(keys::ACTIVITIES).await?;
        let ids: Vec<ActivityId> = names
            .iter()
            .filter_map(|n| ActivityId::parse(n).ok())
            .collect();
        let mut activities = BTreeMap::new();
        if !ids.is_empty() {
            let lease_keys: Vec<String> = ids.iter().map(keys::lease).collect();
            let leases: Vec<Option<String>> = redis::cmd("MGET")
                .arg(&lease_keys)
                .query_async(&mut conn)
                .await?;
            for (id, lease) in ids.into_iter().zip(leases) {
                let owner = lease
                    .as_deref()
                    .and_then(keys::parse_holder)
                    .map(|(n, f)| (n.to_owned(), f));
                activities.insert(id, owner);
            }
        }
        Ok(ClusterView {
            nodes,
            activities,
            read_at: Some(Instant::now()),
        })
    }

    fn note_owner(&self, id: &ActivityId, owner: Option<(String, u64)>) {
        self.view
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .activities
            .insert(id.clone(), owner);
    }

    /// Claims run as their own tasks: rebuilding a large activity takes longer than a
    /// lease, and the loop must go on renewing (that lease too) meanwhile.
    fn claim_free(self: &Arc<Self>, view: &ClusterView) {
        let live: Vec<&str> = view.nodes.keys().map(String::as_str).collect();
        for (id, owner) in &view.activities {
            if owner.is_some() || keys::rendezvous(id, live.iter().copied()) != Some(&self.node_id)
            {
                continue;
            }
            if self.owned().contains_key(id) {
                continue;
            }
            let (me, id) = (Arc::clone(self), id.clone());
            actix_web::rt::spawn(async move {
                if let Err(e) = me.adopt(&id).await {
                    tracing::warn!(activity_id = %id, error = %e, "cannot take the activity over");
                }
            });
        }
    }

    /// Takes a free activity over: lease first, then the replica.
    async fn adopt(&self, id: &ActivityId) -> anyhow::Result<()> {
        let started = Instant::now();
        let fence = self.acquire(id).await?;
        if fence == 0 {
            return Ok(());
        }
        let replica = self.hold(id, fence, true);
        let holder = replica.holder.clone();
        let loaded = match self.read_replica(id).await {
            Ok(kvs) => self
                .registry
                .adopt(id, kvs, replica)
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        };
        match loaded {
            Ok(true) => {
                if let Some(o) = self.owned().get_mut(id) {
                    o.adopting = false;
                }
                self.note_owner(id, Some((self.node_id.clone(), fence)));
                tracing::info!(activity_id = %id, fence, elapsed_ms = started.elapsed().as_millis() as u64, "took the activity over");
                metrics::counter!("sluice_cluster_takeovers_total").increment(1);
                Ok(())
            }
            other => {
                self.owned().remove(id);
                self.release_lease(id, &holder).await;
                match other {
                    Ok(_) => Ok(()), // registered, but its first commit never landed
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// The replica of an activity, in `HSCAN` pages: one `HGETALL` of 100,000 places
    /// (~25 MB) outlasts the connection's response timeout. Nothing writes it meanwhile
    /// (the lease is ours), so the pages add up to one consistent state.
    async fn read_replica(&self, id: &ActivityId) -> redis::RedisResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut conn = self.conn.clone();
        let mut all = std::collections::BTreeMap::new();
        let mut cursor = 0u64;
        loop {
            let (next, page): (u64, Vec<Kv>) = redis::cmd("HSCAN")
                .arg(keys::state(id))
                .arg(cursor)
                .arg("COUNT")
                .arg(5000)
                .query_async(&mut conn)
                .await?;
            all.extend(page);
            if next == 0 {
                return Ok(all.into_iter().collect());
            }
            cursor = next;
        }
    }

    /// Relayed sessions follow their activity to its new owner.
    fn follow_moves(&self, now: &ClusterView) {
        for (id, owner) in &now.activities {
            let Some((node, fence)) = owner else { continue };
            let Some(base) = now.nodes.get(node) else {
                continue;
            };
            let to = OwnerRef {
                node: node.clone(),
                base: base.clone(),
                fence: *fence,
            };
            self.relay.owner_changed(id, &to);
        }
    }

    /// `GET /api/admin/cluster`.
    pub fn describe(&self) -> serde_json::Value {
        let view = self.view();
        let owned: HashMap<ActivityId, u64> = self
            .owned()
            .iter()
            .map(|(k, o)| (k.clone(), o.fence))
            .collect();
        let nodes: Vec<NodeOut<'_>> = view
            .nodes
            .iter()
            .map(|(id, a)| NodeOut {
                id,
                advertise: a,
                live: true,
            })
            .collect();
        let activities: Vec<ActivityOut<'_>> = view
            .activities
            .iter()
            .map(|(id, o)| ActivityOut {
                id: id.as_str(),
                owner: o.as_ref().map(|(n, _)| n.as_str()),
                fence: o.as_ref().map(|(_, f)| *f),
            })
            .collect();
        serde_json::json!({
            "node_id": self.node_id,
            "advertise": self.advertise,
            "nodes": nodes,
            "activities": activities,
            "owned_here": owned,
            "relayed_sessions": self.relay.relayed_sessions(),
            "view_age_ms": view.read_at.map(|t| t.elapsed().as_millis() as u64),
        })
    }

    /// Healthy while the view was read within a lease.
    pub fn is_healthy(&self) -> bool {
        self.view()
            .read_at
            .is_some_and(|t| t.elapsed() < Duration::from_millis(self.lease_ms))
    }

    /// Graceful stop, after the activities drained: give every lease up at once (so
    /// others take over without waiting for expiry) and leave the membership.
    pub async fn leave(&self) {
        let owned: Vec<(ActivityId, String)> =
            self.owned().drain().map(|(id, o)| (id, o.holder)).collect();
        for (id, holder) in owned {
            self.release_lease(&id, &holder).await;
        }
        let mut conn = self.conn.clone();
        let _: redis::RedisResult<i64> = conn.del(keys::node(&self.node_id)).await;
    }
}

fn redis_down(e: redis::RedisError) -> ApiError {
    tracing::warn!(error = %e, "cluster Redis call failed");
    ApiError::new(
        ErrorCode::Unavailable,
        "the cluster's store cannot be reached",
    )
    .retry_after(1)
}
