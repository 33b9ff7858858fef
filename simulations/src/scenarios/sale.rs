//! The sale every sale-based scenario runs: create, let everyone join
//! (paused, unless told otherwise), then sell; with an optional twist
//! (storm, crash, sink outage) in the middle.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

use super::common::{self, Target};
use crate::admin::ActivityView;
use crate::cli::{FlashSaleArgs, SaleArgs};
use crate::client::now_ms;
use crate::crowd::{Crowd, CrowdSpec, LoadLag};
use crate::plan::Behaviour;
use crate::report::Report;
use crate::sampler::{Sample, Sampler};
use crate::server::ProcSample;
use crate::user::record::UserRecord;

pub use crate::user::record::POSITION_GAP_LIMIT_MS;

/// What happens between "everyone joined" and "sale over".
pub enum Twist {
    None,
    /// Users with `idx % every == 0` drop and resume while the sale is paused.
    Storm {
        every: usize,
    },
    /// `kill -9` once `fraction` of the stock is sold, restart after `down`.
    Crash {
        fraction: f64,
        down: Duration,
    },
    /// Run `stop` after `after`, `start` after `outage` more.
    SinkOutage {
        stop: String,
        start: String,
        after: Duration,
        outage: Duration,
    },
}

/// Everything a sale run measured.
pub struct SaleRun {
    pub activity_id: String,
    pub records: Vec<UserRecord>,
    pub samples: Vec<Sample>,
    pub final_view: Option<ActivityView>,
    pub baseline: Option<ProcSample>,
    pub at_peak: Option<ProcSample>,
    pub end: Option<ProcSample>,
    pub waiting_at_peak: i64,
    pub processes: usize,
    /// Kernel accept-queue overflows while users joined (whole machine).
    pub listen_overflows: Option<u64>,
    /// How late the load generator's own timers fired.
    pub load_lag: LoadLag,
    /// (seconds since start, what happened)
    pub timeline: Vec<(f64, String)>,
}

pub fn activity_spec(id: &str, sale: &SaleArgs) -> Value {
    json!({
        "id": id,
        "name": format!("Simulated sale {id}"),
        "kind": "sale",
        "stock": sale.stock,
        "per_user_limit": 1,
        "admission": {
            "rate_per_sec": sale.rate,
            "max_active": sale.max_active,
            "token_ttl_secs": sale.token_ttl,
            "join_pow_bits": sale.pow_bits,
        },
    })
}

/// Ends a sale scenario: stores `data` (the run's samples are added), stops the
/// spawned server, draws charts and writes the reports.
pub async fn finish_reported(
    mut target: Target,
    mut report: Report,
    args: &FlashSaleArgs,
    run: &SaleRun,
    mut data: Value,
) -> Result<bool, String> {
    data["samples"] = json!(run.samples);
    report.data = data;
    target.shutdown(&mut report).await;
    common::finish(
        report,
        &args.run,
        &run.samples,
        &crate::metrics::CrowdMetrics::admission_latencies(&run.records),
    )
}

/// Runs the sale with `twist`; `report.run_errors` gets what went wrong on
/// the way, the caller adds its own checks.
pub async fn run(
    target: &mut Target,
    args: &FlashSaleArgs,
    scenario: &str,
    twist: &Twist,
    report: &mut Report,
) -> Result<SaleRun, String> {
    let (deadline, deadline_ms) = common::deadline(&args.run);
    let mut timeline = Timeline::start();
    let id = common::activity_id(&args.run, scenario);
    target
        .admin
        .create_activity(&activity_spec(&id, &args.sale))
        .await
        .map_err(|e| format!("create activity: {e}"))?;
    timeline.mark(format!("activity {id} created"));
    let paused = if args.sale.admit_during_joins {
        false
    } else {
        match target.admin.control(&id, "pause").await {
            Ok(_) => true,
            Err(e) => {
                report
                    .run_errors
                    .push(format!("POST /api/admin/activities/{id}/pause: {e}"));
                false
            }
        }
    };
    let baseline = target.sample();
    let sampler = Sampler::start(target.admin.clone(), id.clone(), target.pid.clone());
    let spec = crowd_spec(target, args, &id, scenario, twist, deadline_ms);
    let overflows_before = crate::server::listen_overflows();
    let mut crowd = Crowd::start(&spec).await?;
    timeline.mark(format!(
        "{} users started in {} process(es)",
        spec.users, crowd.processes
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
    let view = target.admin.view(&id).await.ok();
    let waiting_at_peak = view.as_ref().map_or(0, |v| v.waiting);
    let at_peak = target.sample();

    if let Twist::Storm { every } = twist {
        let expected = args.sale.users.div_ceil((*every).max(1));
        storm(&mut crowd, expected, deadline, &mut timeline, report).await;
    }

    if paused && args.sale.hold_secs > 0.0 {
        timeline.mark(format!(
            "holding the crowd paused for {} s",
            args.sale.hold_secs
        ));
        let hold = Instant::now() + Duration::from_secs_f64(args.sale.hold_secs);
        tokio::time::sleep_until(hold.min(deadline)).await;
    }
    if paused {
        if let Err(e) = target.admin.control(&id, "resume").await {
            report.run_errors.push(format!("resume: {e}"));
        }
        timeline.mark("sale resumed (admissions start)".into());
    }

    mid_sale(target, args, &id, twist, &mut timeline).await?;

    let processes = crowd.processes;
    let finished = crowd.finish(deadline + Duration::from_secs(20)).await;
    report.run_errors.extend(finished.errors);
    let records = finished.records;
    timeline.mark("all users finished".into());
    // Let in-flight holds settle (spent tokens, sockets closing).
    let final_view = common::wait_view(&target.admin, &id, Duration::from_secs(5), |v| {
        v.held == 0 && v.waiting == 0
    })
    .await;
    // After a restart the process is another one: its CPU is not comparable.
    let end = if matches!(twist, Twist::Crash { .. }) {
        None
    } else {
        target.sample()
    };
    let samples = sampler.stop().await;
    Ok(SaleRun {
        activity_id: id,
        records,
        samples,
        final_view,
        baseline,
        at_peak,
        end,
        waiting_at_peak,
        processes,
        listen_overflows,
        load_lag: finished.lag,
        timeline: timeline.entries,
    })
}

/// Runs `sh -c cmd`; a short description of how it went.
pub async fn shell(cmd: &str) -> String {
    match tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .await
    {
        Ok(o) if o.status.success() => format!("`{cmd}` ok"),
        Ok(o) => format!(
            "`{cmd}` failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("`{cmd}` could not run: {e}"),
    }
}

/// Timestamped notes of what the run did, for the report.
pub(super) struct Timeline {
    start_ms: f64,
    pub(super) entries: Vec<(f64, String)>,
}

impl Timeline {
    pub(super) fn start() -> Self {
        Self {
            start_ms: now_ms(),
            entries: Vec::new(),
        }
    }

    pub(super) fn mark(&mut self, what: String) {
        self.entries
            .push(((now_ms() - self.start_ms) / 1000.0, what));
    }
}

fn crowd_spec(
    target: &Target,
    args: &FlashSaleArgs,
    id: &str,
    scenario: &str,
    twist: &Twist,
    deadline_ms: f64,
) -> CrowdSpec {
    CrowdSpec {
        server_urls: vec![target.url.clone()],
        activity_id: id.to_string(),
        jwt_secret: target.jwt_secret.clone(),
        user_prefix: format!("{scenario}-u"),
        users: args.sale.users,
        procs: args.run.procs,
        sources_per_proc: args.run.sources,
        handshakes: args.run.handshakes,
        deadline_unix_ms: deadline_ms,
        behaviour: Behaviour {
            pay: !args.sale.no_pay,
            seed: args.run.seed,
            pow_bits: args.sale.pow_bits,
            storm_every: if let Twist::Storm { every } = twist {
                *every
            } else {
                0
            },
            ..Behaviour::default()
        },
    }
}

/// Signals the storm and waits (up to 60 s) until `expected` users resumed.
async fn storm(
    crowd: &mut Crowd,
    expected: usize,
    deadline: Instant,
    timeline: &mut Timeline,
    report: &mut Report,
) {
    crowd.storm().await;
    timeline.mark(format!("storm: ~{expected} users drop and resume"));
    let until = (Instant::now() + Duration::from_secs(60)).min(deadline);
    let before = crowd.totals().resumed;
    if !crowd
        .wait_for(until, |t, _| t.resumed >= before + expected)
        .await
    {
        report.run_errors.push(format!(
            "only {} of {expected} storm users resumed within 60 s",
            crowd.totals().resumed - before
        ));
    }
    timeline.mark(format!("{} resumed", crowd.totals().resumed - before));
}

/// The twists that happen while the sale runs: crash and sink outage.
async fn mid_sale(
    target: &mut Target,
    args: &FlashSaleArgs,
    id: &str,
    twist: &Twist,
    timeline: &mut Timeline,
) -> Result<(), String> {
    match twist {
        Twist::Crash { fraction, down } => {
            let want = ((args.sale.stock as f64) * fraction).ceil() as i64;
            let v = common::wait_view(&target.admin, id, Duration::from_secs(60), |v| {
                v.sold >= want
            })
            .await;
            timeline.mark(format!(
                "sold {} >= {want}: kill -9",
                v.map_or(-1, |v| v.sold)
            ));
            target.kill9().await?;
            tokio::time::sleep(*down).await;
            target
                .restart()
                .await
                .map_err(|e| format!("restart after kill -9: {e}\n{}", target.log_tail()))?;
            timeline.mark("server restarted on the same store".into());
        }
        Twist::SinkOutage {
            stop,
            start,
            after,
            outage,
        } => {
            tokio::time::sleep(*after).await;
            timeline.mark(format!("sink stop command: {}", shell(stop).await));
            tokio::time::sleep(*outage).await;
            timeline.mark(format!("sink start command: {}", shell(start).await));
        }
        Twist::None | Twist::Storm { .. } => {}
    }
    Ok(())
}
