//! `GET /api/admin/cluster`: which nodes a node sees, and who owns each
//! activity (with its fencing token).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::nodes::Nodes;
use crate::admin::Admin;

/// How long a freshly created activity may take to get an owner.
pub const OWNER_LIMIT: Duration = Duration::from_secs(10);

/// One node as another node sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeInfo {
    pub id: String,
    #[serde(default)]
    pub advertise: String,
    #[serde(default)]
    pub live: bool,
}

/// An activity's owner; `owner` is `None` during a failover.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ownership {
    pub id: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub fence: Option<u64>,
}

/// The Redis a node writes to (`redis` of the view).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RedisView {
    /// `host:port` of the primary.
    #[serde(default)]
    pub primary: Option<String>,
}

/// The cluster view of one node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterView {
    #[serde(default)]
    pub node_id: String,
    #[serde(default)]
    pub nodes: Vec<NodeInfo>,
    #[serde(default)]
    pub activities: Vec<Ownership>,
    #[serde(default)]
    pub redis: Option<RedisView>,
}

impl ClusterView {
    /// The owner of `activity` and its fence (`None`: no owner right now, or
    /// the activity is not listed).
    pub fn owner_of(&self, activity: &str) -> Option<(&str, Option<u64>)> {
        let a = self.activities.iter().find(|a| a.id == activity)?;
        Some((a.owner.as_deref()?, a.fence))
    }

    pub fn is_live(&self, node: &str) -> bool {
        self.nodes.iter().any(|n| n.id == node && n.live)
    }

    /// The Redis primary this node writes to.
    pub fn redis_primary(&self) -> Option<&str> {
        self.redis.as_ref()?.primary.as_deref()
    }
}

/// Reads the cluster view through `admin`'s node; a 404 says in words that
/// the node has no cluster mode.
pub async fn fetch(admin: &Admin, node: &str) -> Result<ClusterView, String> {
    let call = admin.http.get("/api/admin/cluster", Some(&admin.key));
    let resp = match tokio::time::timeout(Duration::from_secs(3), call).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(format!("GET /api/admin/cluster on {node}: {e}")),
        Err(_) => return Err(format!("GET /api/admin/cluster on {node}: timed out")),
    };
    match resp.status {
        200 => serde_json::from_slice(&resp.body).map_err(|e| {
            format!(
                "GET /api/admin/cluster on {node}: unreadable view ({e}): {}",
                resp.body_text()
            )
        }),
        404 => Err(format!(
            "GET /api/admin/cluster on {node} answered 404: this sluice does not serve the cluster view \
             (built without cluster mode, or cluster.enabled is off), so the owner cannot be found and no failover is tested"
        )),
        s => Err(format!(
            "GET /api/admin/cluster on {node}: expected 200, got {s} {}",
            resp.body_text()
        )),
    }
}

/// Asks node `via` who owns `activity` until an owner is named (a new
/// activity may need a moment to get its lease); a node without cluster mode
/// fails at once.
pub async fn find_owner(
    nodes: &Nodes,
    via: usize,
    activity: &str,
) -> Result<(usize, Option<u64>), String> {
    let until = Instant::now() + OWNER_LIMIT;
    let node = &nodes.list[via];
    loop {
        let view = fetch(&node.admin, &node.id).await?;
        if view.nodes.is_empty() {
            return Err(format!(
                "{}'s GET /api/admin/cluster lists no nodes ({view:?}): cluster mode is off there, \
                 so the owner cannot be found and no failover is tested",
                node.id
            ));
        }
        if let Some((owner, fence)) = view.owner_of(activity) {
            return nodes.index_of(owner).map(|i| (i, fence)).ok_or_else(|| {
                format!(
                    "{} names owner {owner:?}, which is none of our nodes",
                    node.id
                )
            });
        }
        if Instant::now() >= until {
            return Err(format!(
                "{} named no owner for {activity} within {OWNER_LIMIT:?}: {view:?}",
                node.id
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_contract_example() {
        let v: ClusterView = serde_json::from_str(
            r#"{"node_id":"n1","nodes":[{"id":"n1","advertise":"http://127.0.0.1:9001","live":true},
                {"id":"n2","advertise":"http://127.0.0.1:9002","live":false}],
                "activities":[{"id":"drop","owner":"n2","fence":3},{"id":"other","owner":null,"fence":4}],
                "redis":{"primary":"10.0.0.12:6379","via_sentinel":true,"replicas":[]}}"#,
        )
        .expect("test fixture is valid");
        assert_eq!(v.owner_of("drop"), Some(("n2", Some(3))));
        assert_eq!(v.owner_of("other"), None);
        assert_eq!(v.owner_of("missing"), None);
        assert!(v.is_live("n1"));
        assert!(!v.is_live("n2"));
        assert_eq!(v.redis_primary(), Some("10.0.0.12:6379"));
    }
}
