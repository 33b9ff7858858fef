//! Mid-sale: once `--kill-after-sold` orders exist, SIGKILL the activity's
//! current owner and watch the failover (`--kill owner`; the Redis primary's
//! kill is in `redis_kill.rs`).

use std::time::Duration;

use tokio::time::Instant;

use super::failover::{self, Failover};
use super::node_stats::NodeReadings;
use super::nodes::Nodes;
use super::topology::find_owner;
use crate::cli::ClusterArgs;
use crate::report::Report;
use crate::scenarios::common;
use crate::scenarios::sale::Timeline;

/// What the kill needs from the run.
pub struct KillPlan<'a> {
    pub activity: &'a str,
    /// The node the coordinator reads through; moved off the owner before the kill.
    pub observer: &'a mut usize,
    pub deadline: Instant,
    pub timeline: &'a mut Timeline,
    pub report: &'a mut Report,
    pub readings: &'a mut NodeReadings,
}

/// Once `--kill-after-sold` orders exist, finds the owner (through the
/// observer) and SIGKILLs it, then watches the failover. Returns the killed
/// node and the failover; `(None, None)` when no kill was possible.
pub async fn kill_the_owner(
    nodes: &mut Nodes,
    args: &ClusterArgs,
    k: &mut KillPlan<'_>,
) -> (Option<usize>, Option<Failover>) {
    if nodes.list.len() < 2 {
        k.report
            .run_errors
            .push("--nodes 1: no other node could take over, so no node was killed".into());
        return (None, None);
    }
    let Some(sold) = wait_for_kill_point(nodes, args, k).await else {
        return (None, None);
    };
    let (owner, fence) = match find_owner(nodes, *k.observer, k.activity).await {
        Ok(o) => o,
        Err(e) => {
            k.report.run_errors.push(format!("before the kill: {e}"));
            return (None, None);
        }
    };
    if owner == *k.observer {
        *k.observer = (owner + 1) % nodes.list.len();
    }
    k.readings.refresh_last(nodes.samples());
    k.timeline.mark(format!(
        "sold {sold} >= {}: SIGKILL owner {} (fence {fence:?})",
        args.kill_after(),
        nodes.list[owner].id
    ));
    let limit = Duration::from_secs(args.failover_timeout_secs)
        .min(k.deadline.saturating_duration_since(Instant::now()));
    match failover::kill_and_watch(nodes, owner, fence, k.activity, limit).await {
        Ok(f) => {
            k.timeline.mark(match (&f.owner_after, f.failover_secs) {
                (Some(o), Some(t)) => {
                    format!("{o} owns and serves the activity, {t:.2} s after the kill")
                }
                _ => format!(
                    "no failover within {limit:?} (last error: {:?})",
                    f.last_error
                ),
            });
            (Some(owner), Some(f))
        }
        Err(e) => {
            k.report
                .run_errors
                .push(format!("kill {}: {e}", nodes.list[owner].id));
            (None, None)
        }
    }
}

/// Waits (through the observer, until the deadline) for `--kill-after-sold`
/// orders; returns the sold count seen, or `None` (a run error) if they never came.
pub async fn wait_for_kill_point(
    nodes: &Nodes,
    args: &ClusterArgs,
    k: &mut KillPlan<'_>,
) -> Option<i64> {
    let want = args.kill_after() as i64;
    let left = k.deadline.saturating_duration_since(Instant::now());
    let admin = nodes.list[*k.observer].admin.clone();
    let sold = common::wait_view(&admin, k.activity, left, |v| v.sold >= want)
        .await
        .map_or(-1, |v| v.sold);
    if sold < want {
        k.report.run_errors.push(format!(
            "only {sold} sold (wanted {want} before the kill) by the deadline; nothing killed"
        ));
        return None;
    }
    Some(sold)
}
