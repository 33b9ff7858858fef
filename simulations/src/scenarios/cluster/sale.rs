//! The sale the cluster scenario runs: create it through n1 (paused), let
//! everyone join spread over the nodes, resume, SIGKILL the owner (or the
//! Redis primary) mid-sale, sell out.

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::failover::Failover;
use super::kill::{kill_the_owner, KillPlan};
use super::node_sampler::{NodeSample, NodeSampler};
use super::node_stats::NodeReadings;
use super::nodes::Nodes;
use super::redis_kill::{kill_the_redis_primary, RedisFailover};
use super::topology::{find_owner, OWNER_LIMIT};
use crate::admin::Admin;
use crate::cli::{ClusterArgs, KillTarget};
use crate::crowd::{Crowd, CrowdSpec};
use crate::plan::Behaviour;
use crate::report::Report;
use crate::sampler::Sampler;
use crate::scenarios::common;
use crate::scenarios::sale::{activity_spec, SaleRun, Timeline};

/// Everything the cluster run measured.
pub struct ClusterRun {
    pub sale: SaleRun,
    /// Owner (node index) and fence when the sale started.
    pub owner_before: Option<(usize, Option<u64>)>,
    pub killed: Option<usize>,
    pub failover: Option<Failover>,
    /// `--kill redis-primary`: the Redis failover (then `killed`/`failover` are `None`).
    pub redis_failover: Option<RedisFailover>,
    pub readings: NodeReadings,
    pub node_series: Vec<NodeSample>,
    /// The node the coordinator reads through at the end (alive).
    pub observer: usize,
}

/// Runs the sale on `nodes`; `report.run_errors` gets what went wrong on the way.
pub async fn run(
    nodes: &mut Nodes,
    args: &ClusterArgs,
    deadline: (Instant, f64),
    report: &mut Report,
) -> Result<ClusterRun, String> {
    let (deadline, deadline_ms) = deadline;
    let sale = args.sale();
    let mut timeline = Timeline::start();
    let Opened {
        id,
        paused,
        owner_before,
    } = open_sale(nodes, args, &mut timeline, report).await?;
    // The coordinator reads through a node that is not the owner: it survives the kill.
    let mut observer = owner_before.map_or(0, |(o, _)| (o + 1) % nodes.list.len());
    let mut readings = NodeReadings {
        before: nodes.samples(),
        ..NodeReadings::default()
    };
    let sampler = Sampler::start_over(
        nodes.admins_from(observer),
        id.clone(),
        Arc::new(AtomicU32::new(0)),
    );
    let node_sampler = NodeSampler::start(nodes.list.iter().map(|n| n.pid.clone()).collect());
    let spec = crowd_spec(nodes, args, &id, deadline_ms);
    let overflows_before = crate::server::listen_overflows();
    let mut crowd = Crowd::start(&spec).await?;
    timeline.mark(format!(
        "{} users started in {} process(es) over {} nodes",
        spec.users,
        crowd.processes,
        nodes.list.len()
    ));

    if !crowd.wait_for(deadline, |_, c| c.all_joined()).await {
        report
            .run_errors
            .push("not every user joined before the deadline".into());
    }
    timeline.mark(format!("{} joined", crowd.totals().joined));
    let listen_overflows = match (overflows_before, crate::server::listen_overflows()) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b)),
        _ => None,
    };
    let view = nodes.list[observer].admin.view(&id).await.ok();
    let waiting_at_peak = view.as_ref().map_or(0, |v| v.waiting);
    readings.peak = nodes.samples();

    if paused {
        resume_after_hold(
            &nodes.list[observer].admin,
            &id,
            sale.hold_secs,
            deadline,
            &mut timeline,
            report,
        )
        .await;
    }

    let mut kill = KillPlan {
        activity: &id,
        observer: &mut observer,
        deadline,
        timeline: &mut timeline,
        report: &mut *report,
        readings: &mut readings,
    };
    let (killed, failover, mut redis_failover) = match args.kill {
        KillTarget::Owner => {
            let (killed, failover) = kill_the_owner(nodes, args, &mut kill).await;
            (killed, failover, None)
        }
        KillTarget::RedisPrimary => (
            None,
            None,
            kill_the_redis_primary(nodes, args, &mut kill).await,
        ),
    };

    let processes = crowd.processes;
    let finished = crowd.finish(deadline + Duration::from_secs(20)).await;
    report.run_errors.extend(finished.errors);
    let records = finished.records;
    timeline.mark("all users finished".into());
    if let Some(f) = redis_failover.as_mut() {
        f.find_first_new_order(&records);
        if let Some(t) = f.first_new_order_secs {
            timeline.mark(format!("(first new order after the Redis kill: {t:.2} s)"));
        }
    }
    let final_view = common::wait_view(
        &nodes.list[observer].admin,
        &id,
        Duration::from_secs(5),
        |v| v.held == 0 && v.waiting == 0,
    )
    .await;
    readings.refresh_last(nodes.samples());
    let samples = sampler.stop().await;
    let node_series = node_sampler.stop().await;
    Ok(ClusterRun {
        sale: SaleRun {
            activity_id: id,
            records,
            samples,
            final_view,
            baseline: None,
            at_peak: None,
            end: None,
            waiting_at_peak,
            processes,
            listen_overflows,
            load_lag: finished.lag,
            timeline: timeline.entries,
        },
        owner_before,
        killed,
        failover,
        redis_failover,
        readings,
        node_series,
        observer,
    })
}

/// The activity as created.
struct Opened {
    id: String,
    paused: bool,
    /// Its first owner (node index) and fence, if the cluster view named one.
    owner_before: Option<(usize, Option<u64>)>,
}

/// Creates the sale through n1, pauses it (checking that n1 knows it at
/// once) and finds its owner.
async fn open_sale(
    nodes: &Nodes,
    args: &ClusterArgs,
    timeline: &mut Timeline,
    report: &mut Report,
) -> Result<Opened, String> {
    let id = common::activity_id(&args.run, "cluster");
    let first = &nodes.list[0];
    first
        .admin
        .create_activity(&activity_spec(&id, &args.sale()))
        .await
        .map_err(|e| format!("create activity through {}: {e}", first.id))?;
    timeline.mark(format!("activity {id} created through {}", first.id));
    let paused = match pause_when_known(&first.admin, &id).await {
        Ok(unknown_for) => {
            if let Some(t) = unknown_for {
                timeline.mark(format!(
                    "pause through {} answered 404 for {t:.2} s after the 201",
                    first.id
                ));
            }
            report.check(
                "the node that created the activity knows it at once",
                unknown_for.is_none(),
                unknown_for.map_or("pause answered 200".into(), |t| {
                    format!("pause answered 404 not_found for {t:.2} s after the 201")
                }),
            );
            true
        }
        Err(e) => {
            report.run_errors.push(e);
            false
        }
    };
    let owner_before = match find_owner(nodes, 0, &id).await {
        Ok((i, fence)) => {
            timeline.mark(format!("owner {} (fence {fence:?})", nodes.list[i].id));
            Some((i, fence))
        }
        Err(e) => {
            report.run_errors.push(e);
            None
        }
    };
    Ok(Opened {
        id,
        paused,
        owner_before,
    })
}

/// Keeps the crowd paused `hold_secs`, then resumes the sale.
async fn resume_after_hold(
    admin: &Admin,
    id: &str,
    hold_secs: f64,
    deadline: Instant,
    timeline: &mut Timeline,
    report: &mut Report,
) {
    if hold_secs > 0.0 {
        timeline.mark(format!("holding the crowd paused for {hold_secs} s"));
        let hold = Instant::now() + Duration::from_secs_f64(hold_secs);
        tokio::time::sleep_until(hold.min(deadline)).await;
    }
    if let Err(e) = admin.control(id, "resume").await {
        report.run_errors.push(format!("resume: {e}"));
    }
    timeline.mark("sale resumed (admissions start)".into());
}

fn crowd_spec(nodes: &Nodes, args: &ClusterArgs, id: &str, deadline_ms: f64) -> CrowdSpec {
    CrowdSpec {
        server_urls: nodes.urls(),
        activity_id: id.to_string(),
        jwt_secret: args.jwt_secret.clone(),
        user_prefix: "cluster-u".into(),
        users: args.users,
        procs: args.run.procs,
        sources_per_proc: args.run.sources,
        handshakes: args.run.handshakes,
        deadline_unix_ms: deadline_ms,
        behaviour: Behaviour {
            pay: !args.no_pay,
            seed: args.run.seed,
            ..Behaviour::default()
        },
    }
}

/// Pauses `id` through `admin`, retrying (up to 10 s) while the node answers
/// 404; returns how long it did, if it did.
async fn pause_when_known(admin: &Admin, id: &str) -> Result<Option<f64>, String> {
    let path = format!("/api/admin/activities/{id}/pause");
    let start = Instant::now();
    let mut unknown = false;
    loop {
        let r = admin
            .http
            .request("POST", &path, Some(&admin.key), None)
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        match r.status {
            200 => return Ok(unknown.then(|| start.elapsed().as_secs_f64())),
            404 if start.elapsed() < OWNER_LIMIT => unknown = true,
            s => {
                return Err(format!(
                    "POST {path}: expected 200, got {s} {}",
                    r.body_text()
                ))
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
