//! `simulate crash-campaign`: a mixed load against the real binary, `kill -9` at a
//! uniformly random instant of each server's life (so kills land mid-commit,
//! mid-checkpoint, mid-rotation and mid-recovery), a restart on the same store, N
//! times. After every restart the independent checker (`ledger`) reads back every
//! operation the clients saw acknowledged.

mod ledger;
mod load;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng as _, SeedableRng as _};
use serde_json::json;
use tokio::time::Instant;

use super::common::spawned_server_env;
use crate::cli::{CrashCampaignArgs, RunArgs};
use crate::client::addrs::SourceAddrs;
use crate::client::http::HttpClient;
use crate::report::Report;
use crate::server::{ServerProcess, ServerSpec};
use ledger::{lock, Ledger, StockRec};
use load::Load;

/// The sale: huge stock, admission at once; buyers buy, pay, cancel; stock grows.
const SALE: &str = "cc-sale";
/// The line: slow admission, so a real waiting line whose order is checked.
const LINE: &str = "cc-line";
const LINE_TTL_SECS: u64 = 5;

pub async fn run(args: CrashCampaignArgs) -> Result<bool, String> {
    let binary = args
        .server
        .spawn_server
        .clone()
        .ok_or("crash-campaign needs --spawn-server PATH (it kills and restarts the server)")?;
    // Checkpoints (and journal rotations) every 100 ms, so kills land in them.
    let env = spawned_server_env(
        vec![("SLUICE__STORE__CHECKPOINT_MS".into(), "100".into())],
        args.server.keep_rate_limits,
        &args.server.server_env,
    )?;
    let spec = ServerSpec::fresh(&binary, env)?;
    let deadline = Instant::now() + Duration::from_secs(args.max_secs);
    let mut report = Report::new(
        "crash-campaign",
        json!({ "kills": args.kills, "life_ms": args.life_ms, "clients": args.clients,
                "pace_ms": args.pace_ms, "seed": args.seed, "binary": binary.display().to_string() }),
    );
    let mut server = ServerProcess::start(&spec).await?;
    let addr = crate::client::resolve_base_url(&spec.url())?;
    let http = Arc::new(HttpClient::new(addr, Arc::new(SourceAddrs::new(0, 1)), 64));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    create_activities(&http, &args.server.admin_key, &ledger).await?;
    let load = Load {
        http: http.clone(),
        server: addr,
        jwt_secret: args.server.jwt_secret.clone(),
        admin_key: args.server.admin_key.clone(),
        ledger: ledger.clone(),
        stop: Arc::new(AtomicBool::new(false)),
        next_user: Arc::new(AtomicU64::new(0)),
        pace: Duration::from_millis(args.pace_ms),
        ttl_secs: [(SALE.to_owned(), 3600), (LINE.to_owned(), LINE_TTL_SECS)].into(),
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let mut tally = Tally::default();
    let mut born = Instant::now();
    for k in 1..=args.kills {
        if Instant::now() >= deadline {
            report
                .run_errors
                .push(format!("stopped at --max-secs after {} kills", k - 1));
            break;
        }
        let life = Duration::from_millis(rng.gen_range(0..args.life_ms.max(1)));
        let kill_at = born + life;
        match tokio::time::timeout_at(kill_at, server.wait_healthy(&spec, Duration::from_secs(60)))
            .await
        {
            Err(_) => {
                server.kill9().await?;
                tally.mid_recovery += 1;
                tally.kills = k;
                println!(
                    "kill {k}/{}: at {} ms, mid-recovery",
                    args.kills,
                    life.as_millis()
                );
                server = ServerProcess::spawn(&spec)?;
                born = Instant::now();
                continue;
            }
            Ok(Err(e)) => {
                tally
                    .violations
                    .push(format!("kill {k}: the server did not come back: {e}"));
                break;
            }
            Ok(Ok(())) => {}
        }
        let recovery = born.elapsed();
        let (checked, found) = tally
            .check(
                &http,
                &args.server,
                &ledger,
                recovery,
                &format!("before kill {k}"),
            )
            .await;
        // The load runs for the rest of this server's life (the check does not count).
        load.stop.store(false, Ordering::Release);
        let clients = start_load(&load, args.clients);
        tokio::time::sleep(kill_at.saturating_duration_since(born + recovery)).await;
        server.kill9().await?;
        load.stop.store(true, Ordering::Release);
        for v in clients.await {
            tally.violations.push(format!("kill {k}: {v}"));
        }
        println!(
            "kill {k}/{}: at {} ms, after {} ms of load; recovery {:.0} ms; {} acknowledged ops checked, {found} violations",
            args.kills,
            life.as_millis(),
            life.saturating_sub(recovery).as_millis(),
            recovery.as_secs_f64() * 1000.0,
            checked,
        );
        for v in &tally.violations[tally.violations.len() - found..] {
            println!("  violation: {v}");
        }
        tally.kills = k;
        server = ServerProcess::spawn(&spec)?;
        born = Instant::now();
    }
    // The last restart is checked too.
    server.wait_healthy(&spec, Duration::from_secs(60)).await?;
    let (checked, _) = tally
        .check(
            &http,
            &args.server,
            &ledger,
            born.elapsed(),
            "after the last kill",
        )
        .await;
    tally.final_checked = checked;
    let code = server.stop(Duration::from_secs(15)).await;
    report.figure("server", "exit code after SIGTERM", format!("{code:?}"));
    tally.report(&mut report, &lock(&ledger));
    if args.server.keep_store {
        report.figure("server", "store and log kept in", spec.store_dir.display());
    } else if let Some(dir) = spec.log_path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    let run = RunArgs {
        procs: 0,
        max_secs: args.max_secs,
        json: None,
        markdown: None,
        charts: None,
        out_dir: args.out_dir.clone(),
        handshakes: 0,
        sources: 1,
        activity_id: None,
        seed: args.seed,
    };
    super::common::finish(report, &run, &[], &[])
}

async fn create_activities(
    http: &HttpClient,
    key: &str,
    ledger: &ledger::Shared,
) -> Result<(), String> {
    let admission = |rate: u64, active: u64, ttl: u64| json!({"rate_per_sec": rate, "max_active": active, "token_ttl_secs": ttl, "reconnect_grace_secs": 86400});
    for (id, stock, adm) in [
        (SALE, 1_000_000i64, admission(1000, 1_000_000, 3600)),
        (LINE, 1_000_000, admission(2, 20, LINE_TTL_SECS)),
    ] {
        let body = json!({"id": id, "name": id, "kind": "sale", "stock": stock,
                          "payment_timeout_secs": 2_592_000, "admission": adm});
        let r = http
            .post("/api/admin/activities", Some(key), &body)
            .await
            .map_err(|e| format!("create {id}: {e}"))?;
        if r.status != 201 {
            return Err(format!("create {id}: {} {}", r.status, r.body_text()));
        }
        lock(ledger).stock.insert(
            id.to_owned(),
            StockRec {
                initial: stock,
                ..StockRec::default()
            },
        );
    }
    Ok(())
}

/// Starts the buyers (every other one over WebSocket, one in four on the line), the
/// operator, and the retry of purchases left in doubt; resolves, once they stopped,
/// to the violations the retries found.
fn start_load(load: &Load, clients: usize) -> impl std::future::Future<Output = Vec<String>> {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..clients {
        let activity = if i % 4 == 3 { LINE } else { SALE };
        let seed = load.next_user.load(Ordering::Relaxed) + i as u64;
        set.spawn(
            load.clone()
                .buyer(activity.to_owned(), i % 2 == 1, seed)
                .map_to_none(),
        );
    }
    set.spawn(load.clone().stocker(SALE.to_owned()).map_to_none());
    let retry = load.clone();
    set.spawn(async move { Some(retry.retry_in_doubt().await) });
    async move {
        let mut found = Vec::new();
        let bound = Instant::now() + Duration::from_secs(20);
        while let Ok(Some(res)) = tokio::time::timeout_at(bound, set.join_next()).await {
            if let Ok(Some(v)) = res {
                found.extend(v);
            }
        }
        set.abort_all();
        found
    }
}

trait MapToNone: std::future::Future<Output = ()> + Sized {
    async fn map_to_none(self) -> Option<Vec<String>> {
        self.await;
        None
    }
}
impl<F: std::future::Future<Output = ()>> MapToNone for F {}

#[derive(Default)]
struct Tally {
    kills: usize,
    mid_recovery: usize,
    /// Acknowledged operations checked, summed over every check.
    checked: u64,
    final_checked: u64,
    recovery_ms: Vec<f64>,
    violations: Vec<String>,
}

impl Tally {
    /// Records a recovery time, then runs the checker; returns the acknowledged
    /// operations it checked and the violations it found (each labelled `when`).
    async fn check(
        &mut self,
        http: &Arc<HttpClient>,
        server: &crate::cli::ServerArgs,
        ledger: &ledger::Shared,
        recovery: Duration,
        when: &str,
    ) -> (u64, usize) {
        self.recovery_ms.push(recovery.as_secs_f64() * 1000.0);
        let verdict = ledger::verify(http, &server.admin_key, &server.jwt_secret, ledger).await;
        self.checked += verdict.checked;
        let found = verdict.violations.len();
        self.violations.extend(
            verdict
                .violations
                .into_iter()
                .map(|v| format!("{when}: {v}")),
        );
        (verdict.checked, found)
    }

    fn report(&mut self, report: &mut Report, ledger: &Ledger) {
        self.recovery_ms.sort_by(f64::total_cmp);
        let pct = |p: f64| {
            let n = self.recovery_ms.len();
            if n == 0 {
                return "-".to_owned();
            }
            let i = ((p * n as f64).ceil() as usize).clamp(1, n) - 1;
            format!("{:.0} ms", self.recovery_ms[i])
        };
        report.figure("campaign", "kills (kill -9)", self.kills);
        report.figure("campaign", "of which mid-recovery", self.mid_recovery);
        report.figure("campaign", "users", ledger.users.len());
        report.figure(
            "campaign",
            "acknowledged operations at the end",
            self.final_checked,
        );
        report.figure(
            "campaign",
            "acknowledged operations checked (all checks)",
            self.checked,
        );
        report.figure("campaign", "recovery time p50", pct(0.50));
        report.figure("campaign", "recovery time p99", pct(0.99));
        report.figure("campaign", "recovery time max", pct(1.0));
        report.figure("campaign", "violations", self.violations.len());
        report.check(
            "every acknowledged operation survived every kill",
            self.violations.is_empty(),
            self.violations
                .iter()
                .take(10)
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
        );
    }
}
