//! `simulate sink-outage`: orders flow to Redis or PostgreSQL while the
//! sink is stopped and started again; every order must arrive with its
//! final status.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::common::Target;
use super::sale::{self, Twist};
use super::sale_report;
use crate::cli::SinkOutageArgs;
use crate::report::Report;

pub async fn run(args: SinkOutageArgs) -> Result<bool, String> {
    let c = &args.common;
    if c.server.spawn_server.is_none() {
        eprintln!("simulate: without --spawn-server the running server must already use the sink at --sink-url");
    }
    let params = json!({ "sink_kind": args.sink_kind, "stop_after_secs": args.stop_after_secs, "outage_secs": args.outage_secs });
    let mut report = Report::new("sink-outage", sale_report::params(c, params));
    let env = vec![
        ("SLUICE__SINK__KIND".to_string(), args.sink_kind.clone()),
        ("SLUICE__SINK__URL".to_string(), args.sink_url.clone()),
    ];
    let mut target = Target::open(&c.server, env).await?;
    let twist = Twist::SinkOutage {
        stop: args.stop_cmd.clone(),
        start: args.start_cmd.clone(),
        after: Duration::from_secs_f64(args.stop_after_secs.max(0.0)),
        outage: Duration::from_secs_f64(args.outage_secs.max(0.0)),
    };
    let (run, m) =
        sale_report::run_reported(&mut target, c, "sink-outage", &twist, &mut report).await?;

    let expected: HashMap<String, String> = run
        .records
        .iter()
        .filter_map(|r| r.order.as_ref())
        .map(|o| (o.id.clone(), o.status.clone()))
        .collect();
    let started = Instant::now();
    let until = started + Duration::from_secs(args.catch_up_secs);
    let (mut missing, mut wrong, mut last_err) = (expected.len(), 0, None);
    while Instant::now() < until {
        match read_sink(&args.sink_kind, &args.sink_url, expected.keys()).await {
            Ok(found) => {
                missing = expected
                    .keys()
                    .filter(|id| !found.contains_key(*id))
                    .count();
                wrong = expected
                    .iter()
                    .filter(|(id, st)| found.get(*id).is_some_and(|f| f != *st))
                    .count();
                last_err = None;
                if missing == 0 && wrong == 0 {
                    break;
                }
            }
            Err(e) => last_err = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    report.figure("sink", "orders expected in the sink", expected.len());
    report.figure(
        "sink",
        "time to catch up after the sale",
        format!("{:.1} s", started.elapsed().as_secs_f64()),
    );
    report.check(
        "every order reached the sink with its final status",
        missing == 0 && wrong == 0 && last_err.is_none(),
        format!(
            "{missing} missing, {wrong} with another status{}",
            last_err
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        ),
    );
    sale::finish_reported(target, report, c, &run, json!({ "metrics": m })).await
}

/// Order id -> status as stored in the sink (via `redis-cli` or `psql`).
async fn read_sink<'a>(
    kind: &str,
    url: &str,
    ids: impl Iterator<Item = &'a String>,
) -> Result<HashMap<String, String>, String> {
    use tokio::io::AsyncWriteExt as _;
    let ids: Vec<&String> = ids.collect();
    match kind {
        "redis" => {
            let mut child = tokio::process::Command::new("redis-cli")
                .arg("-u")
                .arg(url)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("redis-cli: {e}"))?;
            let mut stdin = child.stdin.take().ok_or("redis-cli without stdin")?;
            let script: String = ids
                .iter()
                .map(|id| format!("HGET sluice:order:{id} status\n"))
                .collect();
            stdin
                .write_all(script.as_bytes())
                .await
                .map_err(|e| format!("redis-cli stdin: {e}"))?;
            drop(stdin);
            let out = child
                .wait_with_output()
                .await
                .map_err(|e| format!("redis-cli: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "redis-cli: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let text = String::from_utf8_lossy(&out.stdout);
            Ok(ids
                .iter()
                .zip(text.lines())
                .filter(|(_, status)| !status.trim().is_empty())
                .map(|(id, status)| ((*id).clone(), status.trim().to_string()))
                .collect())
        }
        "postgres" => {
            let out = tokio::process::Command::new("psql")
                .arg(url)
                .args(["-At", "-F", "\t", "-c", "SELECT id, status FROM orders"])
                .output()
                .await
                .map_err(|e| format!("psql: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "psql: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Ok(String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.split_once('\t'))
                .map(|(id, st)| (id.to_string(), st.to_string()))
                .collect())
        }
        other => Err(format!("unknown sink kind {other}")),
    }
}
