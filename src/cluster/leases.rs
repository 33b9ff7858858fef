//! Ownership: a lease `sluice:lease:{activity}` = `{node}|{fence}`, taken with a
//! fencing token from `INCR` and renewed every `renew_ms`. A node that cannot renew in
//! time stops deciding before the lease can expire (docs/cluster.md argues why two
//! owners never decide at once).

use super::replicate::ReplicatedCommits;
use super::{keys, Cluster};
use crate::domain::ids::ActivityId;
use crate::store::CommitTarget;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An activity this node owns.
pub(super) struct Owned {
    pub(super) holder: String,
    pub(super) fence: u64,
    /// When the last successful renewal was sent: the lease lasts `lease_ms` from then.
    pub(super) renewed: Instant,
    /// Still being rebuilt from the replica (no actor yet); renewed all the same.
    pub(super) adopting: bool,
}

impl Cluster {
    pub(super) fn owned(&self) -> std::sync::MutexGuard<'_, HashMap<ActivityId, Owned>> {
        self.owned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True while this node holds the activity's lease (running, or being rebuilt).
    pub fn holds(&self, id: &ActivityId) -> bool {
        self.owned().contains_key(id)
    }

    /// Where the actor of an activity owned under `holder` commits: the local store
    /// and the replica, fenced by the lease.
    pub(super) fn commits_for(&self, id: &ActivityId, holder: String) -> Arc<dyn CommitTarget> {
        Arc::new(ReplicatedCommits {
            store: self.registry.store().clone(),
            replicator: self.replicator.clone(),
            activity: id.clone(),
            holder,
        })
    }

    /// Records a lease just taken (renewed by the loop from now on) and returns its
    /// holder (`node|fence`).
    pub(super) fn hold(&self, id: &ActivityId, fence: u64, adopting: bool) -> String {
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
        holder
    }

    /// Takes a free lease; the fencing token (0 if someone holds the lease), and
    /// when the activity was last served (ms), for the failover credit. The token is
    /// above every one this node has seen for the activity, so it never repeats one
    /// after a promoted replica lost the last `INCR`.
    pub(super) async fn acquire(&self, id: &ActivityId) -> redis::RedisResult<(u64, Option<u64>)> {
        let mut conn = self.primary.conn();
        let floor = self.high_fence(id) + 1;
        let (fence, served): (u64, Option<u64>) = self
            .acquire
            .key(keys::lease(id))
            .key(keys::fence(id))
            .key(keys::alive(id))
            .arg(&self.node_id)
            .arg(self.lease_ms)
            .arg(floor)
            .invoke_async(&mut conn)
            .await?;
        self.saw_fence(id, fence);
        Ok((fence, served))
    }

    fn high_fence(&self, id: &ActivityId) -> u64 {
        let seen = self.high_fence.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(id).copied().unwrap_or(0)
    }

    pub(super) fn saw_fence(&self, id: &ActivityId, fence: u64) {
        let mut seen = self.high_fence.lock().unwrap_or_else(|e| e.into_inner());
        let high = seen.entry(id.clone()).or_insert(0);
        *high = (*high).max(fence);
    }

    /// Remembers the tokens of a view just read.
    pub(super) fn note_fences(&self, view: &super::ClusterView) {
        for (id, owner) in &view.activities {
            if let Some((_, fence)) = owner {
                self.saw_fence(id, *fence);
            }
        }
    }

    pub(super) async fn renew_all(&self) {
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
            let mut conn = self.primary.conn();
            // Only a running actor whose commits land counts as serving: a rebuild,
            // or commits failing for want of the store, are part of the outage.
            let serving = if running && self.replicator.healthy() {
                self.registry.now().to_string()
            } else {
                String::new()
            };
            let res: redis::RedisResult<i64> = self
                .renew
                .key(keys::lease(&id))
                .key(keys::alive(&id))
                .arg(&holder)
                .arg(self.lease_ms)
                .arg(serving)
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

    pub(super) async fn step_down(&self, id: &ActivityId, why: &str) {
        tracing::warn!(activity_id = %id, reason = why, "giving up ownership");
        let Some(o) = self.owned().remove(id) else {
            return;
        };
        self.registry.remove(id);
        self.note_owner(id, None);
        self.release_lease(id, &o.holder).await;
    }

    /// Gives a lease up if this holder still has it (best effort: it expires anyway).
    pub(super) async fn release_lease(&self, id: &ActivityId, holder: &str) {
        let mut conn = self.primary.conn();
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
}
