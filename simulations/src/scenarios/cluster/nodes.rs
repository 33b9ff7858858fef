//! The cluster's processes: N sluice nodes (own port, temp store and log
//! each) sharing one Redis. Starts them, kills one, stops them all; dropping
//! [`Nodes`] kills whatever still runs and removes the temp dir unless kept.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;

use super::redis::ClusterRedis;
use super::redis_server::Redis;
use super::sentinels::SentinelGroup;
use crate::admin::Admin;
use crate::cli::ClusterArgs;
use crate::client::addrs::SourceAddrs;
use crate::client::http::HttpClient;
use crate::report::Report;
use crate::server::{free_port, ProcSample, ServerProcess, ServerSpec};

/// How long a node may take to exit after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// One sluice node.
pub struct Node {
    /// `n1`, `n2`, ... (`cluster.node_id`).
    pub id: String,
    pub spec: ServerSpec,
    pub process: Option<ServerProcess>,
    /// Admin calls through this node (from 127.0.0.1).
    pub admin: Admin,
    /// Pid while it runs, 0 once killed or stopped (read by the samplers).
    pub pid: Arc<AtomicU32>,
    pub killed: bool,
}

impl Node {
    pub fn url(&self) -> String {
        self.spec.url()
    }

    pub fn sample(&self) -> Option<ProcSample> {
        self.process.as_ref().and_then(ServerProcess::sample)
    }
}

/// The nodes and their Redis.
pub struct Nodes {
    pub list: Vec<Node>,
    pub redis: ClusterRedis,
    /// Holds every node's store and log, and Redis's dir.
    pub dir: PathBuf,
    keep: bool,
}

impl Nodes {
    /// Starts Redis (unless `--redis-url`) and `--nodes` sluice processes in
    /// parallel, each healthy before this returns.
    pub async fn start(args: &ClusterArgs) -> Result<Self, String> {
        let dir = std::env::temp_dir().join(format!(
            "sluice-sim-cluster-{}-{}",
            std::process::id(),
            (crate::client::now_ms() / 1000.0) as u64
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let given = args.redis_url.clone().or_else(|| {
            let s = args.sentinel.as_ref()?;
            Some(format!("sentinel://{s}/{}", args.sentinel_master))
        });
        let started = match &given {
            Some(url) => Ok(ClusterRedis::Single(Box::new(Redis::given(url)))),
            None if args.own_sentinels() => {
                SentinelGroup::start(&args.redis_server, &dir.join("redis"), args.replicas)
                    .await
                    .map(|g| ClusterRedis::Group(Box::new(g)))
            }
            None => Redis::start(&args.redis_server, &dir.join("redis"))
                .await
                .map(|r| ClusterRedis::Single(Box::new(r))),
        };
        let redis = match started {
            Ok(r) => r,
            Err(e) => {
                if !args.keep_store {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                return Err(e);
            }
        };
        let mut nodes = Self {
            list: Vec::new(),
            redis,
            dir,
            keep: args.keep_store,
        };
        nodes.list = nodes.specs(args)?;
        let started = join_all(nodes.list.iter().map(|n| ServerProcess::start(&n.spec))).await;
        let mut errors = Vec::new();
        for (node, result) in nodes.list.iter_mut().zip(started) {
            match result {
                Ok(p) => {
                    node.pid.store(p.pid(), Ordering::Relaxed);
                    node.process = Some(p);
                }
                Err(e) => errors.push(format!("node {}: {e}", node.id)),
            }
        }
        if !errors.is_empty() {
            // `nodes` is dropped here: the started ones are killed.
            return Err(format!(
                "{}\n(logs are removed unless --keep-store; every node runs with SLUICE__CLUSTER__ENABLED=true, which a sluice without cluster mode refuses)",
                errors.join("\n")
            ));
        }
        Ok(nodes)
    }

    /// One spec per node: free port, own store and log, the cluster settings.
    fn specs(&self, args: &ClusterArgs) -> Result<Vec<Node>, String> {
        let common = super::node_env::common(args, &self.redis)?;
        let mut ports = Vec::new();
        let mut list = Vec::new();
        for i in 0..args.nodes {
            let port = distinct_free_port(&ports)?;
            ports.push(port);
            let id = format!("n{}", i + 1);
            let node_dir = self.dir.join(&id);
            std::fs::create_dir_all(&node_dir)
                .map_err(|e| format!("create {}: {e}", node_dir.display()))?;
            let mut env = common.clone();
            env.extend(super::node_env::own(&id, port));
            let spec = ServerSpec {
                binary: args.spawn_server.clone(),
                port,
                store_dir: node_dir.join("store"),
                env,
                log_path: node_dir.join("server.log"),
            };
            let http = Arc::new(HttpClient::new(
                std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                Arc::new(SourceAddrs::new(0, 1)),
                16,
            ));
            list.push(Node {
                id,
                spec,
                process: None,
                admin: Admin {
                    http,
                    key: args.admin_key.clone(),
                },
                pid: Arc::new(AtomicU32::new(0)),
                killed: false,
            });
        }
        Ok(list)
    }

    pub fn urls(&self) -> Vec<String> {
        self.list.iter().map(Node::url).collect()
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.list.iter().position(|n| n.id == id)
    }

    /// Indexes of the nodes not killed, starting at `first` and wrapping.
    pub fn live_from(&self, first: usize) -> Vec<usize> {
        let n = self.list.len();
        (0..n)
            .map(|k| (first + k) % n)
            .filter(|&i| !self.list[i].killed)
            .collect()
    }

    /// Admin clients of the live nodes, `first` first.
    pub fn admins_from(&self, first: usize) -> Vec<Admin> {
        self.live_from(first)
            .into_iter()
            .map(|i| self.list[i].admin.clone())
            .collect()
    }

    /// One RSS/CPU reading per node (`None` for a node not running).
    pub fn samples(&self) -> Vec<Option<ProcSample>> {
        self.list.iter().map(Node::sample).collect()
    }

    /// SIGKILL node `i` (the crash a cluster must survive).
    pub async fn kill9(&mut self, i: usize) -> Result<(), String> {
        let node = &mut self.list[i];
        let mut p = node
            .process
            .take()
            .ok_or_else(|| format!("node {} is not running", node.id))?;
        node.killed = true;
        node.pid.store(0, Ordering::Relaxed);
        p.kill9().await
    }

    /// SIGTERM every running node (in parallel; each must exit 0), stops our
    /// Redis, removes the temp dir unless `--keep-store`.
    pub async fn shutdown(&mut self, report: &mut Report) {
        let running: Vec<(String, ServerProcess)> = self
            .list
            .iter_mut()
            .filter_map(|n| {
                n.pid.store(0, Ordering::Relaxed);
                n.process.take().map(|p| (n.id.clone(), p))
            })
            .collect();
        let codes = join_all(
            running
                .into_iter()
                .map(|(id, p)| async move { (id, p.stop(STOP_GRACE).await) }),
        )
        .await;
        let exits: Vec<String> = codes
            .iter()
            .map(|(id, code)| format!("{id} {code:?}"))
            .collect();
        report.figure("nodes", "exit codes after SIGTERM", exits.join(", "));
        for (id, code) in &codes {
            if *code != Some(0) {
                report.run_errors.push(format!(
                    "node {id} did not exit 0 on SIGTERM (got {code:?})"
                ));
            }
        }
        self.redis.stop().await;
        if self.keep {
            report.figure(
                "nodes",
                "stores, logs and Redis dir kept in",
                self.dir.display(),
            );
        }
    }

    /// The last lines of every node's log (for a failure).
    pub fn log_tails(&self) -> String {
        self.list
            .iter()
            .map(|n| {
                format!(
                    "--- {} ({}):\n{}",
                    n.id,
                    n.spec.log_path.display(),
                    crate::server::log_tail(&n.spec.log_path, 5)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for n in &mut self.list {
            if let Some(p) = n.process.as_mut() {
                p.kill_now();
            }
        }
        self.redis.kill_now();
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A free port not in `taken` (the kernel may hand the same one out twice).
fn distinct_free_port(taken: &[u16]) -> Result<u16, String> {
    for _ in 0..50 {
        let p = free_port()?;
        if !taken.contains(&p) {
            return Ok(p);
        }
    }
    Err("no distinct free port after 50 tries".into())
}
