//! `GET /api/admin/cluster`: this node's view of the cluster.

use super::Cluster;
use crate::domain::ids::ActivityId;
use serde::Serialize;
use std::collections::HashMap;

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

impl Cluster {
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
            "redis": self.primary.status(),
            "view_age_ms": view.read_at.map(|t| t.elapsed().as_millis() as u64),
        })
    }
}
