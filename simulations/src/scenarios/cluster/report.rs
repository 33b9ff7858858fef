//! What the cluster scenario reports beyond the shared sale figures: the
//! nodes, the failover, and the checks whose meaning a failover changes.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::cadence::FailoverCadence;
use super::fifo::FailoverFifo;
use super::node_stats::{node_stats, NodeRoles, NodeStats};
use super::nodes::Nodes;
use super::orders::OrdersFound;
use super::redis_kill::RedisFailover;
use super::sale::ClusterRun;
use crate::cli::{ClusterArgs, KillTarget};
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
    table_figures(report, run, m, &connected, &stats);
    sale_report::joined_check(report, m);
    let (fifo, cadence) = order_checks(report, args, run);
    sale_report::outcome_checks(report, &run.sale, &sale, m);
    unfinished_check(report, m);
    expired_check(report, records);
    let (moved, stayed) = resume_checks(report, nodes, run);
    match &run.redis_failover {
        Some(f) => redis_failover_checks(report, f),
        None if args.kill == KillTarget::RedisPrimary => report.check(
            "the Redis primary was killed and the cluster followed the promotion",
            false,
            "no Redis kill was run (see the run errors)",
        ),
        None => failover_checks(report, run),
    }
    report.check(
        "every acknowledged order exists afterwards (GET /api/orders/{id} on surviving nodes)",
        orders.holds(),
        orders.describe(),
    );
    json!({
        "nodes": stats,
        "owner_before": run.owner_before.map(|(i, fence)| json!({ "node": nodes.list[i].id, "fence": fence })),
        "failover": run.failover,
        "redis_failover": run.redis_failover,
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
    let window = match &run.redis_failover {
        Some(f) => f.over_at_ms().map(|end| (f.killed_at_ms, end)),
        None => run
            .failover
            .as_ref()
            .and_then(|f| Some((f.killed_at_ms, f.served_at_ms?))),
    };
    let cadence = FailoverCadence::of(records, window);
    // Node indices as "n<i+1>", the names the nodes are spawned with.
    let by_node: Vec<String> = cadence
        .by_node
        .iter()
        .map(|(i, n)| format!("n{}: {n}", i + 1))
        .collect();
    if let Some((lo, hi)) = cadence.after_failover_starts_s {
        report.figure(
            "failover",
            "gaps over 6 s that began after the failover: began s after it ended",
            format!("{} .. {}", f1(lo), f1(hi)),
        );
    }
    report.figure(
        "failover",
        "gaps over 6 s by the node the socket was on",
        if by_node.is_empty() {
            "-".to_owned()
        } else {
            by_node.join(", ")
        },
    );
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
            "{} gaps over 6 s: {} over the failover, {} not (max {} ms; of those kept: {} ended before the kill, {} overlapped the failover and ended late, {} began after it; {} were a place frame's first position)",
            cadence.over_limit,
            cadence.excused,
            cadence.violations,
            f1(cadence.max_violation_ms),
            cadence.before_kill,
            cadence.late_after_failover,
            cadence.after_failover,
            cadence.first_after_place
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

/// No admitted user met `token_expired` (the contract gives a token back the
/// time its activity was unavailable, so a failover must not expire one).
fn expired_check(report: &mut Report, records: &[UserRecord]) {
    let expired: Vec<&str> = records
        .iter()
        .filter(|r| r.anomalies.iter().any(|a| a.contains("token_expired")))
        .map(|r| r.user.as_str())
        .collect();
    report.check(
        "no purchase met token_expired",
        expired.is_empty(),
        format!(
            "{} users, first {:?}",
            expired.len(),
            &expired[..expired.len().min(5)]
        ),
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
    report.figure("cluster", "redis", nodes.redis.describe());
    report.figure("cluster", "killed mid-sale", args.kill.name());
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
    if let Some(f) = &run.redis_failover {
        redis_figures(report, f);
    }
}

/// Seconds from the kill, or "never".
fn secs(t: Option<f64>) -> String {
    t.map_or("never".to_string(), |t| format!("{t:.2} s"))
}

fn redis_figures(report: &mut Report, f: &RedisFailover) {
    report.figure(
        "cluster",
        "Redis primary killed -> promoted",
        format!("{} -> {:?}", f.old_primary, f.new_primary),
    );
    report.figure(
        "cluster",
        "owner (fence) at the kill -> after",
        format!(
            "{:?} ({:?}) -> {:?} ({:?})",
            f.owner_before, f.fence_before, f.owner_after, f.fence_after
        ),
    );
    for (name, t) in [
        ("kill -> replica promoted (sentinels)", f.promoted_secs),
        (
            "kill -> every node follows the new primary",
            f.followed_secs,
        ),
        (
            "kill -> empty redis-server on the old port",
            f.restarted_secs,
        ),
        (
            "kill -> it replicates from the new primary",
            f.reattached_secs,
        ),
        ("kill -> the activity served again", f.served_secs),
        ("kill -> first new order", f.first_new_order_secs),
    ] {
        report.figure("cluster", name, secs(t));
    }
    report.figure(
        "cluster",
        "failover time (kill -> first new order)",
        secs(f.failover_secs()),
    );
    if let Some(e) = &f.last_error {
        report.figure("cluster", "Redis failover: last error", e);
    }
}

/// The figures of docs/cluster.md's table of runs, on one screen.
fn table_figures(
    report: &mut Report,
    run: &ClusterRun,
    m: &CrowdMetrics,
    connected: &Summary,
    stats: &[NodeStats],
) {
    report.figure("summary", "joins/s", f1(m.join_rate_per_sec));
    let lag = run.sale.load_lag;
    report.figure(
        "summary",
        "load generator timer lag: max ms / firings over 1 s late",
        format!("{} / {}", lag.max_ms, lag.episodes),
    );
    report.figure(
        "summary",
        "admission -> client p50 / p99 ms (all; connected when admitted)",
        format!(
            "{} / {}; {} / {}",
            f1(m.admission_latency_ms.p50),
            f1(m.admission_latency_ms.p99),
            f1(connected.p50),
            f1(connected.p99)
        ),
    );
    let failover = match (&run.redis_failover, &run.failover) {
        (Some(f), _) => format!(
            "{} (Redis primary killed: promoted {}, first new order {})",
            secs(f.failover_secs()),
            secs(f.promoted_secs),
            secs(f.first_new_order_secs)
        ),
        (None, Some(f)) => format!("{} (owner killed)", secs(f.failover_secs)),
        (None, None) => "no kill".into(),
    };
    report.figure("summary", "failover time", failover);
    report.figure(
        "summary",
        "positions repeated by the socket's node / longest gap between the activity's own frames",
        format!("{} / {} ms", m.position_repeats, f1(m.news_gap_max_ms)),
    );
    let owner_index = run.owner_before.map(|(i, _)| i);
    let kib = |x: Option<f64>| x.map_or("-".to_string(), f1);
    let owner = owner_index.and_then(|i| stats.get(i)?.kib_per_session);
    let others: Vec<f64> = stats
        .iter()
        .enumerate()
        .filter(|&(i, _)| Some(i) != owner_index)
        .filter_map(|(_, s)| s.kib_per_session)
        .collect();
    let others_text = if others.is_empty() {
        "-".to_string()
    } else {
        let (lo, hi) = others
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        format!(
            "{} (mean; {}..{})",
            f1(others.iter().sum::<f64>() / others.len() as f64),
            f1(lo),
            f1(hi)
        )
    };
    report.figure(
        "summary",
        "RSS KiB per waiting session: owner / non-owners",
        format!("{} / {others_text}", kib(owner)),
    );
}

/// One figure per node; returns the stats for the JSON report.
fn per_node(report: &mut Report, nodes: &Nodes, run: &ClusterRun) -> Vec<NodeStats> {
    let ids: Vec<String> = nodes.list.iter().map(|n| n.id.clone()).collect();
    let after = match (&run.failover, &run.redis_failover) {
        (Some(f), _) => f.owner_after.as_deref(),
        (None, Some(f)) => f.owner_after.as_deref(),
        (None, None) => None,
    };
    let owner_after = after.and_then(|o| nodes.index_of(o));
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
/// not dropped. With `--kill redis-primary` no node dies, but an owner whose
/// writes stop steps down and its activity stops serving its own sessions
/// (`restarting`): those nodes take the killed node's part. Returns (resumes
/// from the killed node(s), drops elsewhere).
fn resume_checks(
    report: &mut Report,
    nodes: &Nodes,
    run: &ClusterRun,
) -> (ResumeStats, ResumeStats) {
    let records = &run.sale.records;
    let (lost, what, others): (Vec<usize>, &str, &str) = match &run.redis_failover {
        Some(f) => (
            f.stepped_down()
                .iter()
                .filter_map(|id| nodes.index_of(id))
                .collect(),
            "the owners that stepped down",
            "nodes that never stepped down as owner",
        ),
        None => (
            run.killed.into_iter().collect(),
            "the killed node",
            "surviving nodes",
        ),
    };
    if run.redis_failover.is_some() {
        report.figure(
            "failover",
            "owners that stepped down",
            lost.iter()
                .map(|&i| nodes.list[i].id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    let moved = ResumeStats::of_matching(records, |r| lost.contains(&r.node_before));
    let stayed = ResumeStats::of_matching(records, |r| !lost.contains(&r.node_before));
    report.figure(
        "failover",
        &format!("sessions joined through {what}"),
        records
            .iter()
            .filter(|r| r.join_node.is_some_and(|n| lost.contains(&n)))
            .count(),
    );
    report.figure(
        "failover",
        &format!("reconnects from {what}"),
        moved.resumes,
    );
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
    if !lost.is_empty() {
        report.check(
            &format!("sessions of {what} resumed with their ticket"),
            moved.all_kept(),
            format!(
                "{}; other first frames by kind {:?}",
                moved.describe(),
                other_first_frames(records, |n| lost.contains(&n))
            ),
        );
        report.check(
            "resumed position <= position before the kill",
            moved.position_went_up == 0,
            format!("{} went up", moved.position_went_up),
        );
    }
    report.check(
        &format!("sessions on {others} kept their place"),
        stayed.all_kept() && stayed.position_went_up == 0,
        format!(
            "{}; {} positions went up",
            stayed.describe(),
            stayed.position_went_up
        ),
    );
    let mut causes: BTreeMap<&str, usize> = BTreeMap::new();
    // Node ids are n1..nN in index order (nodes.rs).
    let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
    for x in records.iter().flat_map(|r| r.resumes.iter()) {
        if !lost.contains(&x.node_before) {
            *causes.entry(x.cause.as_str()).or_default() += 1;
            *by_node
                .entry(format!("n{}", x.node_before + 1))
                .or_default() += 1;
        }
    }
    report.check(
        &format!("sessions on {others} kept their socket"),
        stayed.resumes == 0,
        format!(
            "{} reconnects from those nodes, by cause {causes:?}, by node {by_node:?}",
            stayed.resumes
        ),
    );
    (moved, stayed)
}

/// The first frames of resumes from the nodes `of` selects that were neither
/// an answer about the place (`queued`, `admitted`, `sold_out`) nor missing.
fn other_first_frames(records: &[UserRecord], of: impl Fn(usize) -> bool) -> BTreeMap<&str, usize> {
    let mut kinds = BTreeMap::new();
    for x in records.iter().flat_map(|r| r.resumes.iter()) {
        let known = matches!(
            x.first_frame.as_str(),
            "queued" | "admitted" | "sold_out" | "none"
        );
        if of(x.node_before) && !known {
            *kinds.entry(x.first_frame.as_str()).or_default() += 1;
        }
    }
    kinds
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

/// `--kill redis-primary`: each step of the way back happened; the activity
/// is served by a live owner, which may be the same node (a Redis kill need
/// not move it): then its fence must not go down, a new owner's must rise.
fn redis_failover_checks(report: &mut Report, f: &RedisFailover) {
    report.check(
        "the sentinels promoted the replica after the Redis primary's kill",
        f.promoted_secs.is_some(),
        format!(
            "{} -> {:?} after {}; last error {:?}",
            f.old_primary,
            f.new_primary,
            secs(f.promoted_secs),
            f.last_error
        ),
    );
    report.check(
        "every node's GET /api/admin/cluster named the new primary",
        f.followed_secs.is_some(),
        format!("after {}", secs(f.followed_secs)),
    );
    report.check(
        "the empty redis-server on the old port was attached as a replica",
        f.reattached_secs.is_some(),
        format!(
            "started after {}, replicating after {}",
            secs(f.restarted_secs),
            secs(f.reattached_secs)
        ),
    );
    report.check(
        "a live owner serves the activity after the Redis failover",
        f.served_secs.is_some(),
        format!(
            "{:?} -> {:?}, served after {}",
            f.owner_before,
            f.owner_after,
            secs(f.served_secs)
        ),
    );
    let fence_ok = match (f.fence_before, f.fence_after) {
        (Some(b), Some(a)) if f.owner_after == f.owner_before => a >= b,
        (Some(b), Some(a)) => a > b,
        _ => false,
    };
    report.check(
        "fence: the same owner's did not go down, a new owner's went up",
        fence_ok,
        format!(
            "{:?} ({:?}) -> {:?} ({:?})",
            f.owner_before, f.fence_before, f.owner_after, f.fence_after
        ),
    );
    report.check(
        "selling resumed: an order acknowledged after the promotion",
        f.first_new_order_secs.is_some(),
        format!(
            "first new order {} after the kill",
            secs(f.first_new_order_secs)
        ),
    );
}
