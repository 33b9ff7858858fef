//! `--kill redis-primary`: at the moment the owner would have been killed,
//! `kill -9` the Redis primary of our Sentinel group instead, and time the
//! way back: the sentinels promote the replica, every node follows it, an
//! empty redis-server replaces the dead one on its port (with one replica and
//! `replica_acks = 1`, writes wait until the promoted primary has a replica
//! again), Sentinel attaches it, the activity is served, the first new order.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::kill::{wait_for_kill_point, KillPlan};
use super::nodes::Nodes;
use super::topology;
use crate::cli::ClusterArgs;
use crate::user::record::UserRecord;

const POLL: Duration = Duration::from_millis(50);

/// The Redis failover's bookkeeping; times are seconds from the kill.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RedisFailover {
    /// `127.0.0.1:port` of the primary killed, and of the one promoted.
    pub old_primary: String,
    pub new_primary: Option<String>,
    /// The activity's owner and fence just before the kill.
    pub owner_before: Option<String>,
    pub fence_before: Option<u64>,
    pub owner_after: Option<String>,
    pub fence_after: Option<u64>,
    /// Every owner a poll named from the kill until the activity was served
    /// again (with `owner_before`), in order of first sight: an owner whose
    /// writes stop steps down, and ownership may pass around while writes wait.
    pub owners_seen: Vec<String>,
    /// The sentinels name the replica as primary.
    pub promoted_secs: Option<f64>,
    /// Every node's `GET /api/admin/cluster` names the new primary.
    pub followed_secs: Option<f64>,
    /// The empty redis-server answers on the dead primary's port.
    pub restarted_secs: Option<f64>,
    /// It replicates from the new primary (link up).
    pub reattached_secs: Option<f64>,
    /// A live node owns the activity and it answers 200.
    pub served_secs: Option<f64>,
    /// The first order acknowledged to a client after the promotion (before
    /// it no write can succeed: an order acknowledged in between was
    /// confirmed before the kill).
    pub first_new_order_secs: Option<f64>,
    pub last_error: Option<String>,
    pub killed_at_ms: f64,
}

impl RedisFailover {
    fn saw_owner(&mut self, view: &topology::ClusterView, activity: &str) {
        if let Some((owner, _)) = view.owner_of(activity) {
            if !self.owners_seen.iter().any(|o| o == owner) {
                self.owners_seen.push(owner.to_string());
            }
        }
    }

    /// The nodes whose activity stopped during the failover (it stopped
    /// serving its local sessions): every owner seen, unless the first one
    /// kept the activity with the same fence throughout.
    pub fn stepped_down(&self) -> &[String] {
        let kept = self.owners_seen.len() == 1
            && self.owner_after == self.owner_before
            && self.fence_after == self.fence_before;
        if kept {
            &[]
        } else {
            &self.owners_seen
        }
    }

    /// When the failover ended, in unix ms (selling resumed; else the
    /// activity served again): the end of the window the cadence check excuses.
    pub fn over_at_ms(&self) -> Option<f64> {
        let t = self.first_new_order_secs.or(self.served_secs)?;
        Some(self.killed_at_ms + t * 1000.0)
    }

    /// The failover time of the docs table: kill -> first new order.
    pub fn failover_secs(&self) -> Option<f64> {
        self.first_new_order_secs
    }

    /// Sets `first_new_order_secs` from the users' records.
    pub fn find_first_new_order(&mut self, records: &[UserRecord]) {
        let Some(promoted) = self.promoted_secs else {
            return;
        };
        let after = self.killed_at_ms + promoted * 1000.0;
        self.first_new_order_secs = records
            .iter()
            .filter_map(|r| Some(r.order.as_ref()?.acked_ms))
            .filter(|&t| t > after)
            .min_by(f64::total_cmp)
            .map(|t| (t - self.killed_at_ms) / 1000.0);
    }
}

/// Once `--kill-after-sold` orders exist, kills the Redis primary and
/// watches the way back (up to `--failover-timeout-secs` in all); `None`
/// when no kill was possible (the run errors say why).
pub async fn kill_the_redis_primary(
    nodes: &mut Nodes,
    args: &ClusterArgs,
    k: &mut KillPlan<'_>,
) -> Option<RedisFailover> {
    let sold = wait_for_kill_point(nodes, args, k).await?;
    let Some(old) = nodes.redis.group().map(|g| g.primary.port) else {
        k.report
            .run_errors
            .push("--kill redis-primary without our own Sentinel group".into());
        return None;
    };
    let mut f = RedisFailover {
        old_primary: format!("127.0.0.1:{old}"),
        ..RedisFailover::default()
    };
    match topology::find_owner(nodes, *k.observer, k.activity).await {
        Ok((i, fence)) => {
            f.owner_before = Some(nodes.list[i].id.clone());
            f.owners_seen.push(nodes.list[i].id.clone());
            f.fence_before = fence;
        }
        Err(e) => k.report.run_errors.push(format!("before the kill: {e}")),
    }
    k.readings.refresh_last(nodes.samples());
    k.timeline.mark(format!(
        "sold {sold} >= {}: kill -9 the Redis primary {} (owner {:?}, fence {:?})",
        args.kill_after(),
        f.old_primary,
        f.owner_before,
        f.fence_before
    ));
    let limit = Duration::from_secs(args.failover_timeout_secs)
        .min(k.deadline.saturating_duration_since(Instant::now()));
    let start = Instant::now();
    f.killed_at_ms = crate::client::now_ms();
    if let Err(e) = watch(nodes, k.activity, old, start, start + limit, &mut f).await {
        k.timeline.mark(format!("Redis failover incomplete: {e}"));
        f.last_error = Some(e);
    }
    Some(f)
}

/// The steps after the kill, each timed into `f`; `Err` at the first that
/// did not happen by `until`.
async fn watch(
    nodes: &mut Nodes,
    activity: &str,
    old: u16,
    start: Instant,
    until: Instant,
    f: &mut RedisFailover,
) -> Result<(), String> {
    let secs = || start.elapsed().as_secs_f64();
    let group = nodes.redis.group_mut().ok_or("no Sentinel group of ours")?;
    group.primary.kill9().await;
    let left = until.saturating_duration_since(Instant::now());
    let new = group
        .until_promoted(old, left)
        .await
        .ok_or_else(|| format!("the sentinels promoted no replica within {left:?}"))?;
    f.promoted_secs = Some(secs());
    let primary = format!("127.0.0.1:{new}");
    f.new_primary = Some(primary.clone());

    // Only once no node writes to the old address may a server answer there again.
    let mut last: String;
    for node in &nodes.list {
        loop {
            match topology::fetch(&node.admin, &node.id).await {
                Ok(v) => {
                    f.saw_owner(&v, activity);
                    if v.redis_primary() == Some(primary.as_str()) {
                        break;
                    }
                    last = format!("{} names {:?}", node.id, v.redis_primary());
                }
                Err(e) => last = e,
            }
            if Instant::now() >= until {
                return Err(format!("not every node followed {primary}: {last}"));
            }
            tokio::time::sleep(POLL).await;
        }
    }
    f.followed_secs = Some(secs());

    let group = nodes.redis.group_mut().ok_or("no Sentinel group of ours")?;
    group.replace_primary().await?;
    f.restarted_secs = Some(secs());
    // While the writes wait for it, ownership may pass around: note who owns.
    let live = nodes.live_from(0);
    let mut i = 0;
    loop {
        let group = nodes.redis.group().ok_or("no Sentinel group of ours")?;
        if group.until_replicating(old, POLL).await.is_ok() {
            break;
        }
        let node = &nodes.list[live[i % live.len()]];
        i += 1;
        if let Ok(v) = topology::fetch(&node.admin, &node.id).await {
            f.saw_owner(&v, activity);
        }
        if Instant::now() >= until {
            return Err(format!(
                "the empty redis-server on {old} did not replicate from {primary} in time"
            ));
        }
    }
    f.reattached_secs = Some(secs());

    loop {
        let node = &nodes.list[live[i % live.len()]];
        i += 1;
        match served_by(node, activity, f).await {
            Ok((owner, fence)) => {
                f.owner_after = Some(owner);
                f.fence_after = fence;
                f.served_secs = Some(secs());
                return Ok(());
            }
            Err(e) => last = e,
        }
        if Instant::now() >= until {
            return Err(format!("the activity was not served again: {last}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The activity's live owner and fence as `node` sees them, if the activity
/// also answers there.
async fn served_by(
    node: &super::nodes::Node,
    activity: &str,
    f: &mut RedisFailover,
) -> Result<(String, Option<u64>), String> {
    let view = topology::fetch(&node.admin, &node.id).await?;
    f.saw_owner(&view, activity);
    let (owner, fence) = view
        .owner_of(activity)
        .ok_or_else(|| format!("{} names no owner", node.id))?;
    if !view.is_live(owner) {
        return Err(format!("{} names {owner}, not live", node.id));
    }
    let owner = owner.to_string();
    match tokio::time::timeout(Duration::from_secs(3), node.admin.view(activity)).await {
        Ok(Ok(_)) => Ok((owner, fence)),
        Ok(Err(e)) => Err(format!("{} view: {e}", node.id)),
        Err(_) => Err(format!("{} view: timed out", node.id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::record::OrderAck;

    fn ordered_at(ms: f64) -> UserRecord {
        UserRecord {
            order: Some(OrderAck {
                acked_ms: ms,
                ..OrderAck::default()
            }),
            ..UserRecord::default()
        }
    }

    #[test]
    fn the_first_new_order_comes_after_the_promotion() {
        let mut f = RedisFailover {
            killed_at_ms: 10_000.0,
            promoted_secs: Some(2.0),
            ..RedisFailover::default()
        };
        // Before the kill, and in flight across it (confirmed before the kill).
        let records = [
            ordered_at(9_000.0),
            ordered_at(10_050.0),
            ordered_at(31_000.0),
            ordered_at(28_500.0),
            UserRecord::default(),
        ];
        f.find_first_new_order(&records);
        assert_eq!(f.first_new_order_secs, Some(18.5));
        assert_eq!(f.failover_secs(), Some(18.5));
        assert_eq!(f.over_at_ms(), Some(28_500.0));
    }

    #[test]
    fn no_promotion_no_new_order() {
        let mut f = RedisFailover {
            killed_at_ms: 10_000.0,
            served_secs: Some(4.0),
            ..RedisFailover::default()
        };
        f.find_first_new_order(&[ordered_at(20_000.0)]);
        assert_eq!(f.first_new_order_secs, None);
        assert_eq!(f.over_at_ms(), Some(14_000.0), "served ends the window");
    }

    #[test]
    fn an_owner_that_kept_its_fence_did_not_step_down() {
        let kept = RedisFailover {
            owner_before: Some("n1".into()),
            owner_after: Some("n1".into()),
            fence_before: Some(3),
            fence_after: Some(3),
            owners_seen: vec!["n1".into()],
            ..RedisFailover::default()
        };
        assert!(kept.stepped_down().is_empty());
        let retaken = RedisFailover {
            fence_after: Some(9),
            ..kept.clone()
        };
        assert_eq!(retaken.stepped_down(), ["n1".to_string()]);
        let moved = RedisFailover {
            owner_after: Some("n2".into()),
            owners_seen: vec!["n1".into(), "n3".into(), "n2".into()],
            ..retaken
        };
        assert_eq!(moved.stepped_down().len(), 3);
    }
}
