//! A worker: runs a share of the users in this process and reports progress
//! and records as [`WorkerEvent`]s (JSON lines on stdout when it is a child).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};

use crate::plan::WorkerPlan;
use crate::user::record::UserRecord;
use crate::user::{session, stalled, Ctx};

/// Counters of one worker at one instant.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Progress {
    pub worker: usize,
    pub joined: usize,
    pub never_joined: usize,
    pub finished: usize,
    pub resumed: usize,
    pub admitted: usize,
    /// How late this process's 200 ms progress timer fired, at worst (ms): a
    /// load generator starved of CPU sees frames late, and its gaps with them.
    #[serde(default)]
    pub lag_max_ms: u32,
    /// Timer firings more than [`LAG_EPISODE_MS`] late.
    #[serde(default)]
    pub lag_episodes: u32,
}

/// A progress timer this much late counts as an episode of load-generator lag.
pub const LAG_EPISODE_MS: u32 = 1_000;

/// What a worker tells its parent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerEvent {
    Progress(Progress),
    Record(Box<UserRecord>),
    Done {
        worker: usize,
        error: Option<String>,
    },
}

/// Runs every user of `plan`; sends progress every 200 ms, then each record,
/// then `Done`.
pub async fn run(
    plan: WorkerPlan,
    control: watch::Receiver<u64>,
    events: mpsc::UnboundedSender<WorkerEvent>,
) {
    let servers = match resolve_servers(&plan.servers) {
        Ok(s) => s,
        Err(e) => {
            let _ = events.send(WorkerEvent::Done {
                worker: plan.worker_id,
                error: Some(e),
            });
            return;
        }
    };
    let ctx = Arc::new(Ctx::new(&plan, &servers, control));
    let mut tasks = Vec::with_capacity(plan.users);
    for i in 0..plan.users {
        let idx = plan.first_user + i;
        let user = format!("{}{idx}", plan.user_prefix);
        tasks.push(match plan.behaviour.stall_rcvbuf {
            Some(rcvbuf) => tokio::spawn(stalled::run_user(ctx.clone(), idx, user, rcvbuf)),
            None => tokio::spawn(session::run_user(ctx.clone(), idx, user)),
        });
    }
    let ticker = {
        let ctx = ctx.clone();
        let events = events.clone();
        let worker = plan.worker_id;
        tokio::spawn(async move {
            let period = Duration::from_millis(200);
            loop {
                let _ = events.send(WorkerEvent::Progress(progress_of(worker, &ctx)));
                let asleep = std::time::Instant::now();
                tokio::time::sleep(period).await;
                let late = asleep.elapsed().saturating_sub(period).as_millis();
                let late = u32::try_from(late).unwrap_or(u32::MAX);
                ctx.counters.lag_max_ms.fetch_max(late, Ordering::Relaxed);
                if late > LAG_EPISODE_MS {
                    ctx.counters.lag_episodes.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let mut error = None;
    for t in tasks {
        match t.await {
            Ok(rec) => {
                let _ = events.send(WorkerEvent::Record(Box::new(rec)));
            }
            Err(e) => error = Some(format!("user task failed: {e}")),
        }
    }
    ticker.abort();
    let _ = events.send(WorkerEvent::Progress(progress_of(plan.worker_id, &ctx)));
    let _ = events.send(WorkerEvent::Done {
        worker: plan.worker_id,
        error,
    });
}

fn resolve_servers(urls: &[String]) -> Result<Vec<std::net::SocketAddr>, String> {
    if urls.is_empty() {
        return Err("the worker plan names no server".into());
    }
    urls.iter()
        .map(|u| crate::client::resolve_base_url(u))
        .collect()
}

fn progress_of(worker: usize, ctx: &Ctx) -> Progress {
    let c = &ctx.counters;
    Progress {
        worker,
        joined: c.joined.load(Ordering::Relaxed),
        never_joined: c.never_joined.load(Ordering::Relaxed),
        finished: c.finished.load(Ordering::Relaxed),
        resumed: c.resumed.load(Ordering::Relaxed),
        admitted: c.admitted.load(Ordering::Relaxed),
        lag_max_ms: c.lag_max_ms.load(Ordering::Relaxed),
        lag_episodes: c.lag_episodes.load(Ordering::Relaxed),
    }
}

/// The hidden `worker` subcommand: plan from the command line, storm epochs
/// from stdin (one number per line), events to stdout as JSON lines.
pub async fn main_child(plan_json: &str) -> Result<(), String> {
    let plan: WorkerPlan =
        serde_json::from_str(plan_json).map_err(|e| format!("bad worker plan: {e}"))?;
    let (control_tx, control_rx) = watch::channel(0u64);
    tokio::spawn(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(epoch) = line.trim().parse::<u64>() {
                let _ = control_tx.send(epoch);
            }
        }
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let runner = tokio::spawn(run(plan, control_rx, tx));
    let mut out = tokio::io::stdout();
    while let Some(event) = rx.recv().await {
        let mut line = serde_json::to_vec(&event).map_err(|e| format!("encode event: {e}"))?;
        line.push(b'\n');
        out.write_all(&line)
            .await
            .map_err(|e| format!("stdout: {e}"))?;
        if matches!(event, WorkerEvent::Done { .. }) {
            break;
        }
    }
    out.flush().await.map_err(|e| format!("stdout: {e}"))?;
    runner.await.map_err(|e| format!("worker task: {e}"))
}
