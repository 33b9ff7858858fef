//! The failover: SIGKILL the activity's owner, then poll the surviving nodes
//! until one names a different live owner and the activity answers again.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::nodes::Nodes;
use super::topology;

/// How often the surviving nodes are asked during the failover.
const POLL: Duration = Duration::from_millis(50);

/// What one poll of a surviving node saw.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The owner `GET /api/admin/cluster` named (`None`: none, or unreadable).
    pub owner: Option<String>,
    pub fence: Option<u64>,
    /// That owner is listed as live.
    pub owner_live: bool,
    /// `GET /api/admin/activities/{id}` answered 200.
    pub activity_ok: bool,
}

/// The failover's bookkeeping; times are seconds from the kill.
#[derive(Debug, Clone, Serialize)]
pub struct Failover {
    pub killed: String,
    pub fence_before: Option<u64>,
    pub owner_after: Option<String>,
    pub fence_after: Option<u64>,
    /// First poll naming a different live owner.
    pub new_owner_secs: Option<f64>,
    /// First poll with a different live owner and the activity answering 200:
    /// the failover time.
    pub failover_secs: Option<f64>,
    pub polls: u32,
    pub last_error: Option<String>,
    /// Unix ms of the kill and of the end of the failover (for the cadence check).
    pub killed_at_ms: f64,
    pub served_at_ms: Option<f64>,
}

impl Failover {
    pub fn new(killed: &str, fence_before: Option<u64>, killed_at_ms: f64) -> Self {
        Self {
            killed: killed.to_string(),
            fence_before,
            owner_after: None,
            fence_after: None,
            new_owner_secs: None,
            failover_secs: None,
            polls: 0,
            last_error: None,
            killed_at_ms,
            served_at_ms: None,
        }
    }

    /// Takes one poll made `t` seconds after the kill; true once the failover
    /// is over (a different live owner, and the activity served).
    pub fn observe(&mut self, t: f64, o: &Observation) -> bool {
        self.polls += 1;
        if self.failover_secs.is_some() {
            return true;
        }
        let moved = o
            .owner
            .as_deref()
            .is_some_and(|owner| owner != self.killed && o.owner_live);
        if !moved {
            return false;
        }
        if self.new_owner_secs.is_none() {
            self.new_owner_secs = Some(t);
        }
        self.owner_after = o.owner.clone();
        self.fence_after = o.fence;
        if o.activity_ok {
            self.failover_secs = Some(t);
            self.served_at_ms = Some(self.killed_at_ms + t * 1000.0);
        }
        self.failover_secs.is_some()
    }

    pub fn done(&self) -> bool {
        self.failover_secs.is_some()
    }

    /// The new owner holds a higher fencing token than the dead one did.
    pub fn fence_went_up(&self) -> bool {
        matches!((self.fence_before, self.fence_after), (Some(b), Some(a)) if a > b)
    }
}

/// SIGKILLs node `owner` and polls the others (round robin) every 50 ms
/// until the failover is over or `limit` passes.
pub async fn kill_and_watch(
    nodes: &mut Nodes,
    owner: usize,
    fence_before: Option<u64>,
    activity: &str,
    limit: Duration,
) -> Result<Failover, String> {
    let killed_id = nodes.list[owner].id.clone();
    let start = Instant::now();
    let mut f = Failover::new(&killed_id, fence_before, crate::client::now_ms());
    nodes.kill9(owner).await?;
    let survivors = nodes.live_from(owner + 1);
    if survivors.is_empty() {
        f.last_error = Some("no node left to take over".into());
        return Ok(f);
    }
    let mut k = 0;
    while start.elapsed() < limit {
        let node = &nodes.list[survivors[k % survivors.len()]];
        k += 1;
        let mut o = Observation::default();
        match topology::fetch(&node.admin, &node.id).await {
            Ok(view) => {
                if let Some((owner, fence)) = view.owner_of(activity) {
                    o.owner_live = view.is_live(owner);
                    o.owner = Some(owner.to_string());
                    o.fence = fence;
                }
            }
            Err(e) => f.last_error = Some(e),
        }
        let read = tokio::time::timeout(Duration::from_secs(3), node.admin.view(activity));
        match read.await {
            Ok(Ok(_)) => o.activity_ok = true,
            Ok(Err(e)) => f.last_error = Some(format!("{} view: {e}", node.id)),
            Err(_) => f.last_error = Some(format!("{} view: timed out", node.id)),
        }
        if f.observe(start.elapsed().as_secs_f64(), &o) {
            return Ok(f);
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(owner: Option<&str>, live: bool, ok: bool, fence: u64) -> Observation {
        Observation {
            owner: owner.map(str::to_string),
            fence: Some(fence),
            owner_live: live,
            activity_ok: ok,
        }
    }

    #[test]
    fn failover_ends_when_another_live_owner_serves_the_activity() {
        let mut f = Failover::new("n2", Some(3), 1000.0);
        assert!(!f.observe(0.5, &seen(Some("n2"), true, false, 3)));
        assert!(!f.observe(1.0, &seen(None, false, false, 3)));
        assert!(
            !f.observe(3.9, &seen(Some("n4"), false, true, 4)),
            "owner not live yet"
        );
        assert!(
            !f.observe(4.1, &seen(Some("n4"), true, false, 4)),
            "not serving yet"
        );
        assert_eq!(f.new_owner_secs, Some(4.1));
        assert!(f.observe(4.3, &seen(Some("n4"), true, true, 4)));
        assert_eq!(f.failover_secs, Some(4.3));
        assert_eq!(f.served_at_ms, Some(1000.0 + 4300.0));
        assert_eq!(f.owner_after.as_deref(), Some("n4"));
        assert!(f.fence_went_up());
        assert_eq!(f.polls, 5);
    }

    #[test]
    fn the_dead_owner_answering_is_no_failover() {
        let mut f = Failover::new("n1", Some(7), 0.0);
        assert!(!f.observe(9.0, &seen(Some("n1"), true, true, 7)));
        assert!(!f.done());
        assert!(!f.fence_went_up());
    }

    #[test]
    fn a_fence_that_did_not_rise_is_reported() {
        let mut f = Failover::new("n1", Some(7), 0.0);
        assert!(f.observe(4.0, &seen(Some("n3"), true, true, 7)));
        assert!(!f.fence_went_up());
    }
}
