//! `simulate cluster`: N sluice nodes sharing a throwaway Redis (or Sentinel
//! group), a crowd spread over them (user i on node i % N), the activity's
//! owner (or the Redis primary) killed mid-sale; checks that the cluster
//! recovers and that nobody's place, ticket or acknowledged order is lost.

mod cadence;
mod failover;
mod fifo;
mod kill;
mod node_env;
mod node_sampler;
mod node_stats;
mod nodes;
mod orders;
mod redis;
mod redis_kill;
mod redis_server;
mod report;
mod sale;
mod sentinels;
mod topology;

use std::path::Path;

use serde_json::json;

use crate::charts::{line_chart, Series};
use crate::cli::{ClusterArgs, KillTarget};
use crate::metrics::CrowdMetrics;
use crate::report::Report;
use nodes::Nodes;

/// Most nodes a run may start (each is a process with its own store).
const MAX_NODES: usize = 64;

pub async fn run(args: ClusterArgs) -> Result<bool, String> {
    validate(&args)?;
    let deadline = super::common::deadline(&args.run);
    let mut report = Report::new(
        "cluster",
        super::sale_report::params(
            &args.as_flash_sale(),
            json!({
                "nodes": args.nodes, "lease_ms": args.lease_ms, "kill_after_sold": args.kill_after(),
                "redis_url_given": args.redis_url.is_some(), "sentinel": args.sentinel, "failover_timeout_secs": args.failover_timeout_secs,
                "kill": args.kill.name(), "sentinel_group": args.own_sentinels(), "replica_acks": args.replica_acks, "replicas": args.replicas,
            }),
        ),
    );
    let mut nodes = interruptible(Nodes::start(&args)).await??;
    // Children are stopped on every path below: shutdown() here, or the
    // Drop of `nodes` (SIGKILL) if this future itself is dropped.
    let outcome = interruptible(sale::run(&mut nodes, &args, deadline, &mut report)).await;
    let run = match outcome {
        Ok(Ok(run)) => run,
        Ok(Err(e)) => {
            let tails = nodes.log_tails();
            nodes.shutdown(&mut report).await;
            return Err(format!("{e}\n{tails}"));
        }
        Err(e) => {
            nodes.shutdown(&mut report).await;
            return Err(e);
        }
    };
    let m = CrowdMetrics::of(&run.sale.records);
    let orders = orders::check(&nodes.admins_from(run.observer), &run.sale.records).await;
    let cluster = report::report_cluster(&mut report, &nodes, &args, &run, &m, &orders);
    if let Some(dir) = &args.run.charts {
        match node_rss_chart(dir, &nodes, &run.node_series) {
            Ok(file) => report.charts.push(file),
            Err(e) => report.run_errors.push(format!("charts: {e}")),
        }
    }
    nodes.shutdown(&mut report).await;
    report.data = json!({ "metrics": m, "cluster": cluster, "samples": run.sale.samples });
    // Users who were away when admitted waited for their reconnect, not for
    // the server: the latency chart shows the connected ones.
    let latencies: Vec<f64> = run
        .sale
        .records
        .iter()
        .filter(|r| !r.admitted_on_resume())
        .filter_map(crate::user::record::UserRecord::admission_latency_ms)
        .collect();
    super::common::finish(report, &args.run, &run.sale.samples, &latencies)
}

fn validate(args: &ClusterArgs) -> Result<(), String> {
    if !(1..=MAX_NODES).contains(&args.nodes) {
        return Err(format!("--nodes must be 1..={MAX_NODES}"));
    }
    if args.users == 0 || args.stock == 0 {
        return Err("--users and --stock must be positive".into());
    }
    if args.kill_after() >= args.stock {
        return Err(format!(
            "--kill-after-sold {} must be below --stock {}: the kill comes mid-sale",
            args.kill_after(),
            args.stock
        ));
    }
    if args.kill == KillTarget::RedisPrimary
        && (args.redis_url.is_some() || args.sentinel.is_some())
    {
        return Err(
            "--kill redis-primary needs the run's own Sentinel group: drop --redis-url / --sentinel"
                .into(),
        );
    }
    if args.own_sentinels() && args.replica_acks as usize > args.replicas {
        return Err(format!(
            "--replica-acks {}: the run's Sentinel group has {} replica(s) (--replicas)",
            args.replica_acks, args.replicas
        ));
    }
    if !args.spawn_server.is_file() {
        return Err(format!(
            "--spawn-server {}: no such file",
            args.spawn_server.display()
        ));
    }
    Ok(())
}

/// Runs `work` unless SIGINT or SIGTERM comes first (then `Err`, and
/// `work` is dropped: its children get SIGKILL through `kill_on_drop`).
async fn interruptible<T>(work: impl std::future::Future<Output = T>) -> Result<T, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    tokio::select! {
        out = work => Ok(out),
        _ = tokio::signal::ctrl_c() => Err("interrupted (SIGINT): nodes, Redis and workers stopped".into()),
        _ = term.recv() => Err("terminated (SIGTERM): nodes, Redis and workers stopped".into()),
    }
}

/// `cluster-node-rss.svg`: each node's RSS over the run.
fn node_rss_chart(
    dir: &Path,
    nodes: &Nodes,
    series: &[node_sampler::NodeSample],
) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let lines: Vec<Series> = nodes
        .list
        .iter()
        .enumerate()
        .map(|(i, n)| Series {
            name: n.id.clone(),
            points: series
                .iter()
                .filter_map(|s| Some((s.t_secs, s.rss_kib.get(i).copied()?? as f64 / 1024.0)))
                .collect(),
        })
        .collect();
    let path = dir.join("cluster-node-rss.svg");
    line_chart(&path, "RSS of each node", "seconds", "MiB", &lines)?;
    Ok(path.display().to_string())
}
