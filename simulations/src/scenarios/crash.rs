//! `simulate crash`: kill -9 mid-sale, restart on the same store, then
//! check every acknowledged order and ticket survived.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::common::Target;
use super::reconnect_storm::ResumeStats;
use super::sale::{self, Twist};
use super::sale_report;
use crate::cli::CrashArgs;
use crate::client::http::HttpClient;
use crate::report::Report;
use crate::user::record::UserRecord;

pub async fn run(args: CrashArgs) -> Result<bool, String> {
    let c = &args.common;
    if c.server.spawn_server.is_none() {
        return Err("crash needs --spawn-server PATH (it kills and restarts the server)".into());
    }
    let mut report = Report::new(
        "crash",
        sale_report::params(
            c,
            json!({ "kill_at_sold": args.kill_at_sold, "down_secs": args.down_secs }),
        ),
    );
    let mut target = Target::open(&c.server, Vec::new()).await?;
    let twist = Twist::Crash {
        fraction: args.kill_at_sold,
        down: Duration::from_secs_f64(args.down_secs.max(0.0)),
    };
    let (run, m) = sale_report::run_reported(&mut target, c, "crash", &twist, &mut report).await?;

    let (found, missing, server_orders, errors) =
        orders_survived(&target, &run.activity_id, &run.records).await;
    report.figure(
        "crash",
        "orders acknowledged to clients",
        found + missing.len(),
    );
    report.figure(
        "crash",
        "orders the server lists (GET /api/orders)",
        server_orders,
    );
    report.check(
        "every acknowledged order exists after restart",
        missing.is_empty() && errors == 0,
        format!(
            "{found} found, {} missing {:?}, {errors} lookups failed",
            missing.len(),
            &missing[..missing.len().min(5)]
        ),
    );
    let s = ResumeStats::of(&run.records, "drop");
    report.figure("crash", "reconnects with ticket after the crash", s.resumes);
    report.figure(
        "crash",
        "resumed as queued with the same ticket",
        s.queued_same_ticket,
    );
    report.figure(
        "crash",
        "first frame other than queued",
        s.other_first_frame,
    );
    report.check("acknowledged tickets resume", s.all_kept(), s.describe());
    report.check(
        "resumed position <= position before",
        s.position_went_up == 0,
        format!("{} went up", s.position_went_up),
    );
    sale::finish_reported(
        target,
        report,
        c,
        &run,
        json!({ "metrics": m, "resumes": s }),
    )
    .await
}

/// For each user with an acknowledged order, `GET /api/orders` with its own
/// identity must list it. Returns (found, missing ids, orders listed, failures).
async fn orders_survived(
    target: &Target,
    activity: &str,
    records: &[UserRecord],
) -> (usize, Vec<String>, usize, usize) {
    let limit = Arc::new(Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for r in records.iter().filter(|r| r.order.is_some()) {
        let http: Arc<HttpClient> = target.http.clone();
        let jwt = crate::jwt::mint(
            &target.jwt_secret,
            &r.user,
            (crate::client::now_ms() / 1000.0) as u64 + 3600,
        );
        let order_id = r.order.as_ref().map(|o| o.id.clone()).unwrap_or_default();
        let limit = limit.clone();
        let activity = activity.to_string();
        tasks.spawn(async move {
            let _permit = limit.acquire().await;
            let resp = http.get("/api/orders", Some(&jwt)).await;
            let listed: Option<Vec<Value>> = resp
                .ok()
                .filter(|r| r.status == 200)
                .and_then(|r| r.json()?.get("orders")?.as_array().cloned());
            match listed {
                Some(orders) => {
                    let ours = orders
                        .iter()
                        .filter(|o| o.get("activity_id").and_then(Value::as_str) == Some(&activity))
                        .count();
                    let present = orders
                        .iter()
                        .any(|o| o.get("id").and_then(Value::as_str) == Some(&order_id));
                    (Some(present), order_id, ours)
                }
                None => (None, order_id, 0),
            }
        });
    }
    let (mut found, mut missing, mut listed, mut errors) = (0, Vec::new(), 0, 0);
    while let Some(res) = tasks.join_next().await {
        match res {
            Ok((Some(true), _, n)) => {
                found += 1;
                listed += n;
            }
            Ok((Some(false), id, n)) => {
                missing.push(id);
                listed += n;
            }
            _ => errors += 1,
        }
    }
    (found, missing, listed, errors)
}
