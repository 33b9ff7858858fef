//! Placement: which node an activity lives on, how to reach it from here, and
//! creating one (registered cluster-wide, owned by its creator under a new lease).

use super::relay::OwnerRef;
use super::{keys, redis_down, Cluster, ClusterView};
use crate::domain::activity::ActivityView;
use crate::domain::ids::ActivityId;
use crate::domain::spec::{ActivitySpec, SlotSpec};
use crate::error::{ApiError, ErrorCode};
use redis::AsyncCommands;

/// How a request for an activity not running here is served.
pub enum Route {
    /// Forward to the owner at this base URL.
    Owner(OwnerRef),
    /// The activity exists but is between owners.
    Moving,
    /// No such activity in the cluster.
    Unknown,
}

impl Cluster {
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
        let exists = || ApiError::new(ErrorCode::Conflict, format!("activity {id} already exists"));
        // The lease first: once the id is registered, every node's round looks for
        // activities without a lease to claim, and would find this one.
        let (fence, _) = self.acquire(&id).await.map_err(redis_down)?;
        let mut conn = self.primary.conn();
        if fence == 0 {
            let known: bool = conn
                .hexists(keys::ACTIVITIES, id.as_str())
                .await
                .map_err(redis_down)?;
            return Err(if known {
                exists()
            } else {
                ApiError::new(
                    ErrorCode::Unavailable,
                    "the activity is being created elsewhere; retry",
                )
            });
        }
        let holder = keys::holder(&self.node_id, fence);
        let added: Result<bool, _> = conn.hset_nx(keys::ACTIVITIES, id.as_str(), 1).await;
        if !matches!(added, Ok(true)) {
            self.release_lease(&id, &holder).await;
            return Err(added.map_err(redis_down).err().unwrap_or_else(exists));
        }
        let holder = self.hold(&id, fence, false);
        let res = self
            .registry
            .create(spec, slots, self.commits_for(&id, holder))
            .await;
        self.note_owner(&id, Some((self.node_id.clone(), fence)));
        res.map_err(ApiError::from)
    }

    /// Looks an activity this node has not heard of up in Redis (it may have been
    /// created through another node since the last round), so the first clients of a
    /// new activity are not told it does not exist.
    pub async fn lookup(&self, id: &ActivityId) {
        let mut conn = self.primary.conn();
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

    /// Relayed sessions follow their activity to its new owner.
    pub(super) fn follow_moves(&self, now: &ClusterView) {
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
}
