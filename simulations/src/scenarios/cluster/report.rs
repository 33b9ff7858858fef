//! What the cluster scenario reports beyond the shared sale figures: the
//! nodes, the failover, and the checks whose meaning a failover changes.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::cadence::FailoverCadence;
use super::fifo::FailoverFifo;
use super::node_stats::{node_stats, NodeRoles, NodeStats};
use super::nodes::Nodes;
use super::orders::OrdersFound;
use super::sale::ClusterRun;
use crate::cli::ClusterArgs;
use crate::metrics::CrowdMetrics;
use crate::report::{f1, Report};
use crate::scenarios::reconnect_storm::ResumeStats;
use crate::scenarios::sale_report;
use crate::stats::Summary;
use crate::user::record::UserRecord;

/// Adds every figure and check of the run; returns the JSON for `data.cluster`.
pub fn report_cluster(
    report: &mut Report,
    nodes: &Nodes,
    args: &ClusterArgs,
    run: &ClusterRun,
    m: &CrowdMetrics,
    orders: &OrdersFound,
) -> Value {
    let sale = args.sale();
    let records = &run.sale.records;
    sale_report::sale_figures(report, &run.sale, &sale, m);
    cluster_figures(report, nodes, args, run);
    let stats = per_node(report, nodes, run);
    let connected = away_figures(report, records);
    sale_report::joined_check(report, m);
    let (fifo, cadence) = order_checks(report, args, run);
    sale_report::outcome_checks(report, &run.sale, &sale, m);
    unfinished_check(report, m);
    let (moved, stayed) = resume_checks(report, run);
    failover_checks(report, run);
    report.check(
        "every acknowledged order exists afterwards (GET /api/orders/{id} on surviving nodes)",
        orders.holds(),
        orders.describe(),
    );
    json!({
        "nodes": stats,
        "owner_before": run.owner_before.map(|(i, fence)| json!({ "node": nodes.list[i].id, "fence": fence })),
        "failover": run.failover,
        "fifo": fifo,
        "cadence": cadence,
        "resumes_from_killed_node": moved,
        "drops_on_surviving_nodes": stayed,
        "orders": orders,
        "admission_latency_connected_ms": connected,
        "node_samples": run.node_series,
    })
}

/// Latency of the users connected when admitted, and how many were away;
/// returns that latency.
fn away_figures(report: &mut Report, records: &[UserRecord]) -> Summary {
    let connected = connected_latency(records);
    report.figure(
        "failover",
        "admission -> client ms, connected (p50/95/99/max)",
        format!(
            "{} / {} / {} / {}",
            f1(connected.p50),
            f1(connected.p95),
            f1(connected.p99),
            f1(connected.max)
        ),
    );
    report.figure(
        "failover",
        "`unavailable` error frames (user came back)",
        records
            .iter()
            .map(|r| u64::from(r.unavailable_frames))
            .sum::<u64>(),
    );
    report.figure(
        "failover",
        "admitted while away (`admitted` on reconnect)",
        records.iter().filter(|r| r.admitted_on_resume()).count(),
    );
    connected
}

/// FIFO and the position cadence, each with the exception a failover makes.
fn order_checks(
    report: &mut Report,
    args: &ClusterArgs,
    run: &ClusterRun,
) -> (FailoverFifo, FailoverCadence) {
    let records = &run.sale.records;
    let fifo = FailoverFifo::of(records, args.token_ttl as f64 * 1000.0);
    report.check(
        "FIFO: admitted in seq order; skipped only while away past their token",
        fifo.holds(),
        fifo.describe(),
    );
    let window = run
        .failover
        .as_ref()
        .and_then(|f| Some((f.killed_at_ms, f.served_at_ms?)));
    let cadence = FailoverCadence::of(records, window);
    report.figure(
        "failover",
        "gaps over 6 s: over the failover / others",
        format!(
            "{} (max {} ms) / {} (max {} ms)",
            cadence.excused,
            f1(cadence.max_excused_ms),
            cadence.violations,
            f1(cadence.max_violation_ms)
        ),
    );
    report.check(
        "a waiting user hears every 5 s (+1 s), or within that after the failover",
        cadence.holds(),
        format!(
            "{} gaps over 6 s: {} over the failover, {} not (max {} ms)",
            cadence.over_limit,
            cadence.excused,
            cadence.violations,
            f1(cadence.max_violation_ms)
        ),
    );
    (fifo, cadence)
}

/// Nobody is left waiting at the deadline or with a failed purchase.
fn unfinished_check(report: &mut Report, m: &CrowdMetrics) {
    let unfinished: usize = m
        .outcomes
        .iter()
        .filter(|(o, _)| !matches!(o.as_str(), "bought" | "sold_out" | "closed"))
        .map(|(_, n)| n)
        .sum();
    report.check(
        "every user heard how its run ended (bought, sold_out or closed)",
        unfinished == 0,
        format!("{unfinished} did not: {:?}", m.outcomes),
    );
}

/// Admission-to-client latency of users who were connected when admitted.
fn connected_latency(records: &[UserRecord]) -> Summary {
    let v: Vec<f64> = records
        .iter()
        .filter(|r| !r.admitted_on_resume())
        .filter_map(UserRecord::admission_latency_ms)
        .collect();
    Summary::of(&v)
}

fn cluster_figures(report: &mut Report, nodes: &Nodes, args: &ClusterArgs, run: &ClusterRun) {
    let id = |i: usize| nodes.list[i].id.clone();
    report.figure("cluster", "nodes", nodes.list.len());
    report.figure(
        "cluster",
        "redis",
        format!(
            "{} ({})",
            nodes.redis.url,
            if nodes.redis.is_ours() {
                "throwaway"
            } else {
                "given"
            }
        ),
    );
    report.figure(
        "cluster",
        "cluster.lease_ms",
        args.lease_ms
            .map_or("server default".to_string(), |ms| ms.to_string()),
    );
    if let Some((o, fence)) = run.owner_before {
        report.figure(
            "cluster",
            "owner before (fence)",
            format!("{} ({fence:?})", id(o)),
        );
    }
    if let Some(k) = run.killed {
        report.figure("cluster", "killed (SIGKILL)", id(k));
    }
    if let Some(f) = &run.failover {
        report.figure(
            "cluster",
            "owner after (fence)",
            format!("{:?} ({:?})", f.owner_after, f.fence_after),
        );
        let secs = |t: Option<f64>| t.map_or("never".to_string(), |t| format!("{t:.2} s"));
        report.figure(
            "cluster",
            "kill -> a different live owner named",
            secs(f.new_owner_secs),
        );
        report.figure(
            "cluster",
            "failover time (until the new owner serves)",
            secs(f.failover_secs),
        );
        report.figure("cluster", "failover polls", f.polls);
    }
}

/// One figure per node; returns the stats for the JSON report.
fn per_node(report: &mut Report, nodes: &Nodes, run: &ClusterRun) -> Vec<NodeStats> {
    let ids: Vec<String> = nodes.list.iter().map(|n| n.id.clone()).collect();
    let owner_after = run
        .failover
        .as_ref()
        .and_then(|f| nodes.index_of(f.owner_after.as_deref()?));
    let roles = NodeRoles {
        ids: &ids,
        urls: &nodes.urls(),
        owner_before: run.owner_before.map(|(i, _)| i),
        owner_after,
        killed: run.killed,
    };
    let stats = node_stats(&run.sale.records, &roles, &run.readings, &run.node_series);
    let mib = |k: Option<u64>| k.map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0));
    let opt = |x: Option<f64>| x.map_or("-".into(), f1);
    for s in &stats {
        let name = if s.role.is_empty() {
            s.id.clone()
        } else {
            format!("{} [{}]", s.id, s.role)
        };
        report.figure(
            "nodes",
            &name,
            format!(
                "sessions {}, join {} /s | RSS {} -> {} MiB ({} KiB/session), max {} MiB | CPU joins {} s, run {} s | admitted {}, adm->client p50/p99 {}/{} ms | resumes in {}",
                s.sessions,
                f1(s.join_rate_per_sec),
                mib(s.rss_before_kib),
                mib(s.rss_at_peak_kib),
                opt(s.kib_per_session),
                mib(s.max_rss_kib),
                opt(s.cpu_joins_secs),
                opt(s.cpu_run_secs),
                s.admitted,
                f1(s.admission_latency_ms.p50),
                f1(s.admission_latency_ms.p99),
                s.resumes_in
            ),
        );
    }
    stats
}

/// Users of the killed node resume with their ticket; sessions elsewhere are
/// not dropped. Returns (resumes from the killed node, drops elsewhere).
fn resume_checks(report: &mut Report, run: &ClusterRun) -> (ResumeStats, ResumeStats) {
    let records = &run.sale.records;
    let killed = run.killed;
    let moved = ResumeStats::of_matching(records, |r| Some(r.node_before) == killed);
    let stayed = ResumeStats::of_matching(records, |r| Some(r.node_before) != killed);
    report.figure(
        "failover",
        "sessions joined through the killed node",
        records
            .iter()
            .filter(|r| killed.is_some() && r.join_node == killed)
            .count(),
    );
    report.figure("failover", "reconnects from the killed node", moved.resumes);
    report.figure(
        "failover",
        "of them queued again, same ticket",
        moved.queued_same_ticket,
    );
    report.figure(
        "failover",
        "of them admitted / sold_out at once",
        moved.admitted_or_sold_out,
    );
    report.figure(
        "failover",
        "mean position before the kill",
        format!("{:.1}", moved.mean_position_before),
    );
    if killed.is_some() {
        report.check(
            "sessions of the killed node resumed with their ticket",
            moved.all_kept(),
            moved.describe(),
        );
        report.check(
            "resumed position <= position before the kill",
            moved.position_went_up == 0,
            format!("{} went up", moved.position_went_up),
        );
    }
    report.check(
        "sessions on surviving nodes kept their place",
        stayed.all_kept() && stayed.position_went_up == 0,
        format!(
            "{}; {} positions went up",
            stayed.describe(),
            stayed.position_went_up
        ),
    );
    let mut causes: BTreeMap<&str, usize> = BTreeMap::new();
    for x in records.iter().flat_map(|r| r.resumes.iter()) {
        if Some(x.node_before) != killed {
            *causes.entry(x.cause.as_str()).or_default() += 1;
        }
    }
    report.check(
        "sessions on surviving nodes kept their socket",
        stayed.resumes == 0,
        format!(
            "{} reconnects from nodes not killed, by cause {causes:?}",
            stayed.resumes
        ),
    );
    (moved, stayed)
}

fn failover_checks(report: &mut Report, run: &ClusterRun) {
    let Some(f) = &run.failover else {
        report.check(
            "another node took the activity over",
            false,
            "no failover was run (see the run errors)",
        );
        return;
    };
    report.check(
        "another node took the activity over",
        f.done(),
        match f.failover_secs {
            Some(t) => format!(
                "{} owns it and the activity answers {t:.2} s after the kill",
                f.owner_after.as_deref().unwrap_or("?")
            ),
            None => format!("not within the timeout; last error: {:?}", f.last_error),
        },
    );
    report.check(
        "the new owner holds a higher fence",
        f.fence_went_up(),
        format!("fence {:?} -> {:?}", f.fence_before, f.fence_after),
    );
}
