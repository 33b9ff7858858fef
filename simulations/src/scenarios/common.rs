//! What every scenario shares: the target server (given or spawned), the
//! run deadline, and writing the report files.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::admin::Admin;
use crate::cli::{RunArgs, ServerArgs};
use crate::client::addrs::SourceAddrs;
use crate::client::http::HttpClient;
use crate::crowd::LoadLag;
use crate::report::{f1, Report};
use crate::sampler::Sample;
use crate::server::{ProcSample, ServerProcess, ServerSpec};

/// Per-IP limit keys of `config/default.toml` lifted on a spawned server:
/// every simulated user comes from one of a few loopback addresses.
const PER_IP_LIMITS: [&str; 4] = [
    "JOIN_PER_IP_PER_SEC",
    "POLL_PER_IP_PER_SEC",
    "PURCHASE_PER_IP_PER_SEC",
    "ADMIN_PER_IP_PER_SEC",
];

/// The server under test.
pub struct Target {
    pub url: String,
    pub admin: Admin,
    /// Coordinator's own client (from 127.0.0.1).
    pub http: Arc<HttpClient>,
    pub jwt_secret: String,
    pub spec: Option<ServerSpec>,
    pub process: Option<ServerProcess>,
    /// Pid of the spawned server (0 when not spawned), read by the sampler.
    pub pid: Arc<AtomicU32>,
    keep_store: bool,
}

impl Target {
    /// Uses `--url`, or starts `--spawn-server` with `extra_env`.
    pub async fn open(args: &ServerArgs, extra_env: Vec<(String, String)>) -> Result<Self, String> {
        let env = spawned_server_env(extra_env, args.keep_rate_limits, &args.server_env)?;
        let (url, spec, process) = match &args.spawn_server {
            Some(binary) => {
                let spec = ServerSpec::fresh(binary, env)?;
                let process = ServerProcess::start(&spec).await?;
                (spec.url(), Some(spec), Some(process))
            }
            None => (args.url.trim_end_matches('/').to_string(), None, None),
        };
        let server = crate::client::resolve_base_url(&url)?;
        let http = Arc::new(HttpClient::new(
            server,
            Arc::new(SourceAddrs::new(0, 1)),
            64,
        ));
        let pid = Arc::new(AtomicU32::new(
            process.as_ref().map_or(0, ServerProcess::pid),
        ));
        Ok(Self {
            url,
            admin: Admin {
                http: http.clone(),
                key: args.admin_key.clone(),
            },
            http,
            jwt_secret: args.jwt_secret.clone(),
            spec,
            process,
            pid,
            keep_store: args.keep_store,
        })
    }

    pub fn sample(&self) -> Option<ProcSample> {
        self.process.as_ref().and_then(ServerProcess::sample)
    }

    /// SIGKILL the spawned server.
    pub async fn kill9(&mut self) -> Result<(), String> {
        let p = self.process.as_mut().ok_or("no spawned server to kill")?;
        p.kill9().await?;
        self.process = None;
        self.pid.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Starts the server again on the same port and store.
    pub async fn restart(&mut self) -> Result<(), String> {
        let spec = self.spec.as_ref().ok_or("no spawned server to restart")?;
        let p = ServerProcess::start(spec).await?;
        self.pid.store(p.pid(), Ordering::Relaxed);
        self.process = Some(p);
        Ok(())
    }

    /// Stops a spawned server (SIGTERM) and removes its temp dir unless kept.
    pub async fn shutdown(&mut self, report: &mut Report) {
        if let Some(p) = self.process.take() {
            let code = p.stop(Duration::from_secs(15)).await;
            report.figure("server", "exit code after SIGTERM", format!("{code:?}"));
            if code != Some(0) {
                report
                    .run_errors
                    .push(format!("server did not exit 0 on SIGTERM (got {code:?})"));
            }
        }
        if let Some(spec) = &self.spec {
            let dir = spec.log_path.parent().map(std::path::Path::to_path_buf);
            match (self.keep_store, dir) {
                (true, Some(d)) => report.figure("server", "store and log kept in", d.display()),
                (false, Some(d)) => {
                    let _ = std::fs::remove_dir_all(d);
                }
                _ => {}
            }
        }
    }

    /// The server log's last lines (for failures).
    pub fn log_tail(&self) -> String {
        let Some(spec) = &self.spec else {
            return String::new();
        };
        crate::server::log_tail(&spec.log_path, 10)
    }
}

/// The environment of a spawned server: `extra`, then the per-IP limits
/// lifted (unless `keep_rate_limits`), then each `--server-env KEY=VALUE`.
pub fn spawned_server_env(
    extra: Vec<(String, String)>,
    keep_rate_limits: bool,
    server_env: &[String],
) -> Result<Vec<(String, String)>, String> {
    let mut env = extra;
    if !keep_rate_limits {
        for class in PER_IP_LIMITS {
            env.push((format!("SLUICE__LIMITS__{class}"), "0".to_string()));
        }
    }
    for kv in server_env {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--server-env {kv}: expected KEY=VALUE"))?;
        env.push((k.to_string(), v.to_string()));
    }
    Ok(env)
}

/// The run's deadline, as a tokio instant and as unix ms (for children).
pub fn deadline(run: &RunArgs) -> (Instant, f64) {
    let secs = run.max_secs.max(5);
    (
        Instant::now() + Duration::from_secs(secs),
        crate::client::now_ms() + secs as f64 * 1000.0,
    )
}

pub fn activity_id(run: &RunArgs, scenario: &str) -> String {
    run.activity_id.clone().unwrap_or_else(|| {
        format!(
            "sim-{scenario}-{}",
            (crate::client::now_ms() / 1000.0) as u64
        )
    })
}

/// Server memory and CPU figures from the three readings.
pub fn server_figures(
    report: &mut Report,
    baseline: Option<ProcSample>,
    at_peak: Option<ProcSample>,
    end: Option<ProcSample>,
    waiting_at_peak: i64,
    samples: &[Sample],
) {
    let Some(b) = baseline else {
        report.figure(
            "server",
            "process metrics",
            "not sampled (use --spawn-server)",
        );
        return;
    };
    let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
    report.figure("server", "RSS before joins", mib(b.rss_kib));
    if let Some(p) = at_peak {
        report.figure("server", "RSS at peak waiting", mib(p.rss_kib));
        report.figure("server", "waiting at that instant", waiting_at_peak);
        if waiting_at_peak > 0 {
            let per = (p.rss_kib as f64 - b.rss_kib as f64) * 1024.0 / waiting_at_peak as f64;
            report.figure(
                "server",
                "RSS per waiting session",
                format!("{:.1} KiB", per / 1024.0),
            );
        }
        report.figure(
            "server",
            "CPU seconds during joins",
            f1(p.cpu_secs - b.cpu_secs),
        );
    }
    if let Some(e) = end {
        report.figure("server", "RSS at end", mib(e.rss_kib));
        report.figure(
            "server",
            "CPU seconds whole run",
            f1(e.cpu_secs - b.cpu_secs),
        );
    }
    let max_rss = samples.iter().filter_map(|s| s.rss_kib).max();
    if let Some(m) = max_rss {
        report.figure("server", "max RSS sampled (250 ms)", mib(m));
    }
}

/// Prints the report, writes JSON/Markdown (and charts), returns pass/fail.
pub fn finish(
    mut report: Report,
    run: &RunArgs,
    samples: &[Sample],
    latencies: &[f64],
) -> Result<bool, String> {
    let scenario = report.scenario.clone();
    if let Some(dir) = &run.charts {
        match crate::charts::draw_run(dir, &scenario, samples, latencies) {
            Ok(files) => report.charts.extend(files),
            Err(e) => report.run_errors.push(format!("charts: {e}")),
        }
    }
    let out_dir = run
        .out_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("sluice-sim"));
    let json = run
        .json
        .clone()
        .unwrap_or_else(|| out_dir.join(format!("{scenario}.json")));
    let md = run
        .markdown
        .clone()
        .unwrap_or_else(|| out_dir.join(format!("{scenario}.md")));
    report.print();
    report.write(&json, &md)?;
    println!("reports: {} {}", json.display(), md.display());
    for c in &report.charts {
        println!("chart: {c}");
    }
    Ok(report.passed())
}

/// Polls `cond` on the admin view every 50 ms until it holds or `limit` passes.
pub async fn wait_view(
    admin: &Admin,
    id: &str,
    limit: Duration,
    cond: impl Fn(&crate::admin::ActivityView) -> bool,
) -> Option<crate::admin::ActivityView> {
    let until = Instant::now() + limit;
    let mut last = None;
    while Instant::now() < until {
        if let Ok(v) = admin.view(id).await {
            if cond(&v) {
                return Some(v);
            }
            last = Some(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

/// The load generator's own timer lag: frames it reports late by up to this
/// much may have arrived on time.
pub fn report_lag(report: &mut Report, lag: LoadLag) {
    report.figure(
        "joins",
        "load generator timer lag: max ms / firings over 1 s late",
        format!("{} / {}", lag.max_ms, lag.episodes),
    );
}
