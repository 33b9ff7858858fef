//! Membership: every node refreshes `sluice:node:{id}` (its advertised URL, with a
//! TTL of `lease_ms`) every `renew_ms`; the live nodes are those whose key exists.
//! The view (live nodes, every activity and its owner) is read from Redis each round.

use super::{keys, Cluster};
use crate::domain::ids::ActivityId;
use redis::AsyncCommands;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

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

impl Cluster {
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

    /// Reads the view now (after creating an activity on another node, so this node
    /// routes to it at once).
    pub async fn refresh(&self) {
        if let Ok(view) = self.read_view().await {
            *self.view.write().unwrap_or_else(|e| e.into_inner()) = view;
        }
    }

    pub(super) async fn heartbeat(&self) -> redis::RedisResult<()> {
        let mut conn = self.primary.conn();
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

    pub(super) async fn read_view(&self) -> redis::RedisResult<ClusterView> {
        let mut conn = self.primary.conn();
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

    pub(super) fn note_owner(&self, id: &ActivityId, owner: Option<(String, u64)>) {
        self.view
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .activities
            .insert(id.clone(), owner);
    }

    /// Healthy while the view was read within a lease.
    pub fn is_healthy(&self) -> bool {
        self.view()
            .read_at
            .is_some_and(|t| t.elapsed() < Duration::from_millis(self.lease_ms))
    }
}
