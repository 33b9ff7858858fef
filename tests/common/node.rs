//! `Node`: one sluice process of a cluster (the real binary in cluster mode, with
//! short leases), driven through `Api` like any other server.

use super::process::Process;
use std::time::Duration;

pub const LEASE_MS: u64 = 1500;
pub const RENEW_MS: u64 = 300;

pub struct Node {
    pub id: String,
    process: Process,
}

impl std::ops::Deref for Node {
    type Target = Process;
    fn deref(&self) -> &Process {
        &self.process
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.process
    }
}

impl Node {
    /// Node `id` of the cluster coordinated through the Redis at `redis_url`.
    pub async fn start(id: &str, redis_url: &str) -> Node {
        Self::start_with(id, &[("SLUICE__CLUSTER__REDIS_URL", redis_url.to_owned())]).await
    }

    /// Node `id` with its Redis given by `settings` (a URL, or Sentinel's), and any
    /// other `SLUICE__...` settings (the same on every node).
    pub async fn start_with(id: &str, settings: &[(&str, String)]) -> Node {
        let mut cluster = vec![
            ("SLUICE__CLUSTER__ENABLED", "true".to_owned()),
            ("SLUICE__CLUSTER__NODE_ID", id.to_owned()),
            ("SLUICE__CLUSTER__LEASE_MS", LEASE_MS.to_string()),
            ("SLUICE__CLUSTER__RENEW_MS", RENEW_MS.to_string()),
            // One public address for the whole cluster (the issuer of gate passes).
            (
                "SLUICE__SERVER__PUBLIC_URL",
                "http://sluice.cluster.test".to_owned(),
            ),
        ];
        cluster.extend_from_slice(settings);
        Node {
            id: id.to_owned(),
            process: Process::start(&format!("node {id}"), &cluster).await,
        }
    }

    /// The owner of activity `id` (and its fencing token) as this node sees it, once
    /// it is one of `allowed`.
    pub async fn owner(&self, id: &str, allowed: &[&str]) -> (String, u64) {
        for _ in 0..400 {
            let v = self.admin("GET", "/cluster", None).await.body;
            let found = v["activities"].as_array().and_then(|a| {
                a.iter()
                    .find(|x| x["id"] == id)
                    .and_then(|x| Some((x["owner"].as_str()?.to_owned(), x["fence"].as_u64()?)))
            });
            if let Some((o, f)) = found {
                if allowed.contains(&o.as_str()) {
                    return (o, f);
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no owner of {id} among {allowed:?} as {} sees it", self.id);
    }
}
