//! Takeover: free activities (no lease) are claimed by their rendezvous node among
//! the live ones, which takes the lease and rebuilds the activity from its replica.

use super::{keys, Cluster, ClusterView};
use crate::actors::registry::Registry;
use crate::domain::activity::Activity;
use crate::domain::ids::ActivityId;
use crate::store::{layout, CommitTarget, KvOp, StoreError};
use std::sync::Arc;
use std::time::Instant;

/// A sled key and its value, as replicated.
type Kv = (Vec<u8>, Vec<u8>);

impl Cluster {
    /// Claims run as their own tasks on their own thread (`takeovers`): rebuilding a
    /// large activity takes longer than a lease, and the loop must go on heartbeating
    /// and renewing (that lease too) meanwhile.
    pub(super) fn claim_free(self: &Arc<Self>, view: &ClusterView) {
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
            self.takeovers.spawn_fn(move || {
                actix_web::rt::spawn(async move {
                    if let Err(e) = me.adopt(&id).await {
                        tracing::warn!(activity_id = %id, error = %e, "cannot take the activity over");
                    }
                });
            });
        }
    }

    /// Takes a free activity over: lease first, then the replica.
    pub(super) async fn adopt(&self, id: &ActivityId) -> anyhow::Result<()> {
        let started = Instant::now();
        if !self.writes_can_land().await {
            // Its first commit would miss the replicas and step it down again: every
            // round a new fence, and its sessions told `restarting` each time.
            tracing::debug!(activity_id = %id, "not taking over until the primary has its replicas");
            return Ok(());
        }
        let (fence, since) = self.acquire(id).await?;
        if fence == 0 {
            return Ok(());
        }
        let holder = self.hold(id, fence, true);
        let loaded = match self.read_replica(id).await {
            Ok(kvs) => {
                let target = self.commits_for(id, holder.clone());
                rebuild(&self.registry, id, kvs, target, since)
                    .await
                    .map_err(anyhow::Error::from)
            }
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

    /// Whether the primary has the `replica_acks` replicas in sync that every
    /// replicated commit waits for (after a promotion, it may have none until the
    /// dead primary is replaced).
    async fn writes_can_land(&self) -> bool {
        self.replica_acks == 0
            || self
                .primary
                .online_replicas()
                .await
                .is_some_and(|n| n >= self.replica_acks)
    }

    /// The replica of an activity, in `HSCAN` pages: one `HGETALL` of 100,000 places
    /// (~25 MB) outlasts the connection's response timeout. Nothing writes it meanwhile
    /// (the lease is ours), so the pages add up to one consistent state.
    pub(super) async fn read_replica(
        &self,
        id: &ActivityId,
    ) -> redis::RedisResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut conn = self.primary.conn();
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
}

/// Replaces this node's copy of the activity with the replica (`kvs`: its sled keys
/// and values) in one commit, queues every order for the sink again (idempotent
/// there: the previous owner may have died before flushing), credits outstanding
/// tokens with the time since the activity was last served (`since`), and starts
/// the actor committing to `target` (its first commit persists the credit).
/// `Ok(false)`: the replica holds no record.
pub async fn rebuild(
    registry: &Registry,
    id: &ActivityId,
    kvs: Vec<(Vec<u8>, Vec<u8>)>,
    target: Arc<dyn CommitTarget>,
    since: Option<u64>,
) -> Result<bool, StoreError> {
    let store = registry.store();
    // Its webhook events too: a commit this node made but the replica refused
    // (diverged) must not be delivered as if it had happened.
    let mut ops = vec![
        KvOp::DelPrefix(layout::activity_key(id, "")),
        KvOp::DelPrefix(layout::events_of(id.as_str())),
    ];
    ops.extend(kvs.into_iter().map(|(k, v)| KvOp::Put(k, v)));
    let ack = store.commit(ops)?;
    ack.await.map_err(|_| StoreError::Unavailable)??;
    let Some(loaded) = store.load_activity(id)? else {
        return Ok(false);
    };
    if registry.outbox() {
        let requeue: Vec<KvOp> = loaded
            .data
            .orders
            .iter()
            .map(|o| KvOp::Outbox(serde_json::to_vec(&o.view()).unwrap_or_default()))
            .collect();
        if !requeue.is_empty() {
            let ack = store.commit(requeue)?;
            ack.await.map_err(|_| StoreError::Unavailable)??;
        }
    }
    let now = registry.now();
    let mut activity = Activity::restore(
        loaded.record,
        loaded.data,
        registry.key().clone(),
        now,
        crate::actors::registry::draw_seed(),
    );
    if let Some(since) = since {
        let credited = activity.credit_outage(since, now);
        tracing::info!(activity_id = %id, outage_ms = now.saturating_sub(since), credited, "tokens credited with the failover's time");
    }
    registry.start(activity, target);
    Ok(true)
}
