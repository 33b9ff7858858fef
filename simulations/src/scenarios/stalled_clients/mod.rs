//! `simulate stalled-clients`: users that stop reading their WebSocket must
//! not grow the server's memory without bound. Stalled users join first (the
//! head of the line, where every admission moves them), read until `queued`,
//! then never read again; normal users join behind them and buy. During the
//! stall period the sale runs and is paused/resumed every second, so position
//! frames and `paused`/`resumed` notices pile up for the stalled sockets,
//! while the server's RSS is sampled every 250 ms.

mod measure;
mod report;
mod toggles;

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::common::{self, Target};
use super::sale::{self, SaleRun, Timeline};
use super::sale_report;
use crate::admin::ActivityView;
use crate::cli::{FlashSaleArgs, StalledArgs};
use crate::client::now_ms;
use crate::crowd::{Crowd, CrowdSpec};
use crate::plan::Behaviour;
use crate::report::Report;
use crate::sampler::Sampler;
use crate::server::ProcSample;
use crate::user::record::UserRecord;

const SCENARIO: &str = "stalled-clients";
/// The run stops by itself within this many seconds, whatever `--max-secs` says.
pub const MAX_SECS_CAP: u64 = 180;

/// What the stall period measured, besides the sale.
pub struct Stall {
    pub stalled: Vec<UserRecord>,
    /// Seconds since the sampler started: all users joined / stalled users read again.
    pub start_t: f64,
    pub end_t: f64,
    pub at_end: Option<ProcSample>,
    pub view_start: Option<ActivityView>,
    pub view_end: Option<ActivityView>,
    pub toggles: u64,
    pub toggle_errors: Vec<String>,
}

pub async fn run(args: StalledArgs) -> Result<bool, String> {
    let fs = flash_sale_args(&args);
    let mut report = Report::new(
        SCENARIO,
        sale_report::params(
            &fs,
            json!({
                "stalled": args.stalled, "run_secs": args.run_secs, "toggles": args.toggles,
                "rcvbuf": args.rcvbuf, "max_growth_kib": args.max_growth_kib,
            }),
        ),
    );
    let mut target = Target::open(&args.server, Vec::new()).await?;
    let (run, stall) = match stall_run(&mut target, &args, &fs, &mut report).await {
        Ok(r) => r,
        Err(e) => {
            target.shutdown(&mut report).await;
            return Err(e);
        }
    };
    let data = report::report(&mut report, &args, &run, &stall);
    sale::finish_reported(target, report, &fs, &run, data).await
}

/// The normal users' sale as a flash sale (for the shared report parts),
/// with `--max-secs` capped.
fn flash_sale_args(args: &StalledArgs) -> FlashSaleArgs {
    let mut run = args.run.clone();
    run.max_secs = run.max_secs.min(MAX_SECS_CAP);
    FlashSaleArgs {
        server: args.server.clone(),
        run,
        sale: args.sale(),
    }
}

async fn stall_run(
    target: &mut Target,
    args: &StalledArgs,
    fs: &FlashSaleArgs,
    report: &mut Report,
) -> Result<(SaleRun, Stall), String> {
    let (deadline, deadline_ms) = common::deadline(&fs.run);
    let mut timeline = Timeline::start();
    let id = common::activity_id(&fs.run, SCENARIO);
    target
        .admin
        .create_activity(&sale::activity_spec(&id, &fs.sale))
        .await
        .map_err(|e| format!("create activity: {e}"))?;
    target
        .admin
        .control(&id, "pause")
        .await
        .map_err(|e| format!("pause: {e}"))?;
    timeline.mark(format!("activity {id} created, paused"));
    let baseline = target.sample();
    let t0 = now_ms();
    let sampler = Sampler::start(target.admin.clone(), id.clone(), target.pid.clone());
    let since_t0 = || (now_ms() - t0) / 1000.0;

    // Stalled users first: they take the head of the line.
    let stalled_behaviour = Behaviour {
        stall_rcvbuf: Some(args.rcvbuf),
        ..Behaviour::default()
    };
    let spec = crowd_spec(
        target,
        fs,
        &id,
        "s",
        args.stalled,
        deadline_ms,
        stalled_behaviour,
    );
    let mut stalled = Crowd::start(&spec).await?;
    if !stalled.wait_for(deadline, |_, c| c.all_joined()).await {
        report
            .run_errors
            .push("not every stalled user joined".into());
    }
    timeline.mark(format!(
        "{} stalled users joined, stopped reading",
        stalled.totals().joined
    ));
    let behaviour = Behaviour {
        pay: !fs.sale.no_pay,
        seed: fs.run.seed,
        ..Behaviour::default()
    };
    let spec = crowd_spec(target, fs, &id, "u", args.users, deadline_ms, behaviour);
    let mut normal = Crowd::start(&spec).await?;
    if !normal.wait_for(deadline, |_, c| c.all_joined()).await {
        report
            .run_errors
            .push("not every normal user joined".into());
    }
    timeline.mark(format!("{} normal users joined", normal.totals().joined));
    let view_start = target.admin.view(&id).await.ok();
    let at_peak = target.sample();
    let start_t = since_t0();

    target
        .admin
        .control(&id, "resume")
        .await
        .map_err(|e| format!("resume: {e}"))?;
    timeline.mark(format!("sale resumed: stall period of {} s", args.run_secs));
    let stall_end = (Instant::now() + Duration::from_secs(args.run_secs)).min(deadline);
    let toggler = args
        .toggles
        .then(|| toggles::Toggler::start(target.admin.clone(), id.clone()));
    // Follows the normal users meanwhile (they may all finish early).
    normal.wait_for(stall_end, |_, _| false).await;
    tokio::time::sleep_until(stall_end).await;
    let (toggles, toggle_errors) = match toggler {
        Some(t) => t.stop().await,
        None => (0, Vec::new()),
    };
    let at_end = target.sample();
    let end_t = since_t0();
    let view_end = target.admin.view(&id).await.ok();
    timeline.mark(format!(
        "stall period over ({toggles} pause/resume pairs): stalled users read again"
    ));

    // The stalled users read what is buffered and how their socket ended.
    stalled.storm().await;
    let stalled_done = stalled.finish(deadline + Duration::from_secs(20)).await;
    report.run_errors.extend(stalled_done.errors);
    let stalled_records = stalled_done.records;
    timeline.mark("stalled users drained their sockets".into());
    let processes = normal.processes;
    let finished = normal.finish(deadline + Duration::from_secs(20)).await;
    report.run_errors.extend(finished.errors);
    let records = finished.records;
    timeline.mark("all normal users finished".into());
    let final_view = common::wait_view(&target.admin, &id, Duration::from_secs(5), |v| {
        v.held == 0 && v.waiting == 0
    })
    .await;
    let end = target.sample();
    let samples = sampler.stop().await;
    let run = SaleRun {
        activity_id: id,
        records,
        samples,
        final_view,
        baseline,
        at_peak,
        end,
        waiting_at_peak: view_start.as_ref().map_or(0, |v| v.waiting),
        processes,
        listen_overflows: None,
        load_lag: finished.lag,
        timeline: timeline.entries,
    };
    let stall = Stall {
        stalled: stalled_records,
        start_t,
        end_t,
        at_end,
        view_start,
        view_end,
        toggles,
        toggle_errors,
    };
    Ok((run, stall))
}

fn crowd_spec(
    target: &Target,
    fs: &FlashSaleArgs,
    id: &str,
    kind: &str,
    users: usize,
    deadline_ms: f64,
    behaviour: Behaviour,
) -> CrowdSpec {
    CrowdSpec {
        server_urls: vec![target.url.clone()],
        activity_id: id.to_string(),
        jwt_secret: target.jwt_secret.clone(),
        user_prefix: format!("{SCENARIO}-{kind}"),
        users,
        procs: fs.run.procs,
        sources_per_proc: fs.run.sources,
        handshakes: fs.run.handshakes,
        deadline_unix_ms: deadline_ms,
        behaviour,
    }
}
