//! A sluice server run as a child process: free port, temp store, health
//! wait, SIGKILL/SIGTERM, and RSS/CPU readings from /proc.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::process::{Child, Command};

/// How to start (and restart) the server.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub binary: PathBuf,
    pub port: u16,
    pub store_dir: PathBuf,
    /// Extra `SLUICE__...` variables (sink settings, secrets).
    pub env: Vec<(String, String)>,
    /// Where the server's stdout and stderr go.
    pub log_path: PathBuf,
}

impl ServerSpec {
    /// A spec on a free port with a fresh temp store directory.
    pub fn fresh(binary: &Path, env: Vec<(String, String)>) -> Result<Self, String> {
        let port = free_port()?;
        let base = std::env::temp_dir().join(format!("sluice-sim-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&base).map_err(|e| format!("create {}: {e}", base.display()))?;
        Ok(Self {
            binary: binary.to_path_buf(),
            port,
            store_dir: base.join("store"),
            env,
            log_path: base.join("server.log"),
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A running server child.
pub struct ServerProcess {
    child: Child,
    pid: u32,
}

impl ServerProcess {
    /// Starts the server and waits until `GET /healthz` answers 200.
    pub async fn start(spec: &ServerSpec) -> Result<Self, String> {
        let mut server = Self::spawn(spec)?;
        server.wait_healthy(spec, Duration::from_secs(60)).await?;
        Ok(server)
    }

    /// Starts the server without waiting for it (it may still be recovering).
    pub fn spawn(spec: &ServerSpec) -> Result<Self, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log_path)
            .map_err(|e| format!("open {}: {e}", spec.log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| format!("dup log: {e}"))?;
        let mut cmd = Command::new(&spec.binary);
        cmd.env("SLUICE__SERVER__BIND", format!("127.0.0.1:{}", spec.port))
            .env("SLUICE__STORE__PATH", &spec.store_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true);
        if let Some(root) = repo_root_of(&spec.binary) {
            // `config/default.toml` is read relative to the working directory.
            cmd.current_dir(root);
        }
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", spec.binary.display()))?;
        let pid = child.id().ok_or("server exited at once")?;
        Ok(Self { child, pid })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Polls `GET /healthz` every 20 ms until it answers 200 (`Err` if the server
    /// exits first or `limit` passes).
    pub async fn wait_healthy(&mut self, spec: &ServerSpec, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], spec.port));
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "server exited with {status} before serving; log: {}\n{}",
                    spec.log_path.display(),
                    failure_excerpt(&spec.log_path)
                ));
            }
            if healthz(addr).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(format!(
            "server not healthy after {limit:?}; log: {}",
            spec.log_path.display()
        ))
    }

    /// `kill -9`: the crash the contract promises to survive.
    pub async fn kill9(&mut self) -> Result<(), String> {
        self.child
            .start_kill()
            .map_err(|e| format!("kill -9: {e}"))?;
        let _ = self.child.wait().await;
        Ok(())
    }

    /// SIGKILL without waiting for the exit (for cleanup on an error path).
    pub fn kill_now(&mut self) {
        let _ = self.child.start_kill();
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub async fn stop(mut self, grace: Duration) -> Option<i32> {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => {
                let _ = self.kill9().await;
                None
            }
        }
    }

    /// One RSS/CPU reading of the server process.
    pub fn sample(&self) -> Option<ProcSample> {
        ProcSample::read(self.pid)
    }
}

/// The last `lines` lines of a server log (empty if unreadable).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Why a server stopped, from its log: the `Error:` / `panicked` lines
/// (before any backtrace), else the last lines.
fn failure_excerpt(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let reasons: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("Error") || l.contains("panicked"))
        .take(3)
        .collect();
    if reasons.is_empty() {
        log_tail(path, 10)
    } else {
        reasons.join("\n")
    }
}

/// The repository root above `target/release/sluice`, if it has a config dir.
fn repo_root_of(binary: &Path) -> Option<PathBuf> {
    let root = binary
        .canonicalize()
        .ok()?
        .parent()?
        .parent()?
        .parent()?
        .to_path_buf();
    root.join("config").is_dir().then_some(root)
}

async fn healthz(addr: std::net::SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(Ok(mut s)) =
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(addr)).await
    else {
        return false;
    };
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
        Ok(Ok(n)) => buf[..n].starts_with(b"HTTP/1.1 200"),
        _ => false,
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// Memory and CPU of a process at one instant.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProcSample {
    pub rss_kib: u64,
    /// User + system CPU seconds since the process started.
    pub cpu_secs: f64,
}

impl ProcSample {
    pub fn read(pid: u32) -> Option<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kib = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesised command name: state is field 3, so
        // utime (14) and stime (15) are at indices 11 and 12 of the rest.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        Some(Self {
            rss_kib,
            cpu_secs: (utime + stime) / clock_ticks(),
        })
    }
}

/// The kernel's `TcpExt ListenOverflows` counter (whole network namespace):
/// SYNs dropped because an accept queue was full. Each costs the client a
/// 1 s SYN retransmit, which shows up in the join latency tail.
pub fn listen_overflows() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let names = lines.next()?.split_whitespace();
    let values = lines.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(n, _)| *n == "ListenOverflows")
        .and_then(|(_, v)| v.parse().ok())
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listen_overflows() {
        assert!(listen_overflows().is_some());
    }

    #[test]
    fn reads_own_process() {
        let s = ProcSample::read(std::process::id()).expect("test fixture is valid");
        assert!(s.rss_kib > 0);
        assert!(s.cpu_secs >= 0.0);
    }
}
