//! One redis-server (or sentinel) process: a throwaway one on a loopback
//! port with its own dir, or one given with `--redis-url` (left alone); and a
//! one-question client for asking these processes things.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use redis::{ConnectionAddr, FromRedisValue, IntoConnectionInfo, RedisConnectionInfo};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// A redis-server that keeps nothing on disk.
pub const NO_PERSISTENCE: [&str; 4] = ["--save", "", "--appendonly", "no"];

/// How long a fresh redis-server may take to answer PING.
const START_LIMIT: Duration = Duration::from_secs(10);

pub struct Redis {
    pub url: String,
    /// Its loopback port (0 when given).
    pub port: u16,
    /// The redis-server we started; `None` when it was given.
    child: Option<Child>,
    log_path: Option<PathBuf>,
}

impl Redis {
    /// A Redis someone else runs: used as is, never stopped.
    pub fn given(url: &str) -> Self {
        Self {
            url: url.to_string(),
            port: 0,
            child: None,
            log_path: None,
        }
    }

    /// Starts `binary` on a free port with `dir` as its working directory,
    /// `--save "" --appendonly no`, and waits until it answers PING.
    pub async fn start(binary: &Path, dir: &Path) -> Result<Self, String> {
        let port = crate::server::free_port()?;
        Self::launch(binary, dir, port, &NO_PERSISTENCE).await
    }

    /// Starts `binary` on `port` (loopback) with `dir` as its working
    /// directory, its log there, and `args` before the port (a config file
    /// comes first); waits until it answers PING.
    pub async fn launch(
        binary: &Path,
        dir: &Path,
        port: u16,
        args: &[&str],
    ) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let log_path = dir.join("redis.log");
        let mut cmd = Command::new(binary);
        cmd.args(args)
            .arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|e| {
            format!(
                "start {}: {e} (install Redis, or pass --redis-url)",
                binary.display()
            )
        })?;
        let mut redis = Self {
            url: format!("redis://127.0.0.1:{port}"),
            port,
            child: Some(child),
            log_path: Some(log_path),
        };
        redis.wait_ready(port).await?;
        Ok(redis)
    }

    async fn wait_ready(&mut self, port: u16) -> Result<(), String> {
        let until = Instant::now() + START_LIMIT;
        while Instant::now() < until {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(format!(
                    "redis-server exited with {status} before answering; {}",
                    self.log_hint()
                ));
            }
            if ping(port).await {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "redis-server did not answer PING within {START_LIMIT:?}; {}",
            self.log_hint()
        ))
    }

    fn log_hint(&self) -> String {
        match &self.log_path {
            Some(p) => format!("log {}:\n{}", p.display(), crate::server::log_tail(p, 10)),
            None => String::new(),
        }
    }

    /// Whether we started it (and so stop it).
    pub fn is_ours(&self) -> bool {
        self.child.is_some()
    }

    /// SIGTERM, SIGKILL after 5 s. A given Redis is left running.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// `kill -9`, waiting until it is gone (the crash a Sentinel group must survive).
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// SIGKILL without waiting (cleanup on an error path).
    pub fn kill_now(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// Limit on one question: connecting, asking, reading the reply.
const ASK_LIMIT: Duration = Duration::from_secs(1);

/// Sends `cmd` to `127.0.0.1:port` on a connection of its own and reads one
/// reply as `T`; all within 1 s.
pub async fn ask<T: FromRedisValue>(port: u16, cmd: &redis::Cmd) -> Result<T, String> {
    let work = async {
        // No `CLIENT SETINFO` on connect: the question is the only command sent.
        let info = ConnectionAddr::Tcp("127.0.0.1".into(), port)
            .into_connection_info()?
            .set_redis_settings(RedisConnectionInfo::default().set_skip_set_lib_name());
        let mut con = redis::Client::open(info)?
            .get_multiplexed_async_connection()
            .await?;
        cmd.query_async::<T>(&mut con).await
    };
    let what = || {
        cmd.args_iter()
            .filter_map(|a| match a {
                redis::Arg::Simple(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    match tokio::time::timeout(ASK_LIMIT, work).await {
        Ok(r) => r.map_err(|e| format!("{} on port {port}: {e}", what())),
        Err(_) => Err(format!("{} on port {port}: timed out", what())),
    }
}

/// True when `127.0.0.1:port` answers `PING` with `PONG`.
async fn ping(port: u16) -> bool {
    ask::<String>(port, &redis::cmd("PING"))
        .await
        .is_ok_and(|r| r == "PONG")
}
