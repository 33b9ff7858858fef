//! `Process`: the real sluice binary on a free port with its own temp store, driven
//! through `Api`; it can be killed with SIGKILL, frozen, and restarted on the same
//! port and store.

use super::api::Api;
use sluice::domain::clock::SystemClock;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub struct Process {
    api: Api,
    /// For failure messages.
    name: String,
    port: u16,
    /// `SLUICE__...` overrides on top of the binary's default config.
    env: Vec<(String, String)>,
    store: tempfile::TempDir,
    child: Option<Child>,
    /// Where the binary's stderr (its log) goes; inherited when `None`.
    log: Option<std::path::PathBuf>,
}

impl std::ops::Deref for Process {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Process {
    /// Starts the binary with the test overrides (fast ticks, no rate limits, quiet
    /// logs) plus `env`; returns once it answers `/healthz`.
    pub async fn start(name: &str, env: &[(&str, String)]) -> Process {
        Self::start_logged(name, env, None).await
    }

    /// `start`, with the log (stderr) appended to `log`, for tests that read it.
    pub async fn start_logged(
        name: &str,
        env: &[(&str, String)],
        log: Option<&std::path::Path>,
    ) -> Process {
        Self::start_with(name, env, log, None).await
    }

    /// `start` on a server that serves TLS (its `server.tls` in `env`), reached over
    /// HTTPS and wss:// with `tls` (whose roots trust the server's certificate).
    pub async fn start_tls(
        name: &str,
        env: &[(&str, String)],
        tls: Arc<rustls::ClientConfig>,
    ) -> Process {
        Self::start_with(name, env, None, Some(tls)).await
    }

    async fn start_with(
        name: &str,
        env: &[(&str, String)],
        log: Option<&std::path::Path>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Process {
        let store = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut all: Vec<(String, String)> = [
            ("SLUICE__SERVER__BIND", format!("127.0.0.1:{port}")),
            ("SLUICE__STORE__PATH", store.path().display().to_string()),
            ("SLUICE__SERVER__TICK_MS", "10".into()),
            ("SLUICE__LIMITS__JOIN_PER_IP_PER_SEC", "0".into()),
            ("SLUICE__LIMITS__PURCHASE_PER_IP_PER_SEC", "0".into()),
            ("SLUICE__LIMITS__ADMIN_PER_IP_PER_SEC", "0".into()),
            ("SLUICE__LIMITS__USER_PER_SEC", "0".into()),
            ("SLUICE__LOG__LEVEL", "warn".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        let mut api = Api::new(port, sluice::config::DEV_JWT_SECRET, Arc::new(SystemClock));
        if let Some(config) = tls {
            api = api.over_tls(config);
        }
        let mut p = Process {
            api,
            name: name.to_owned(),
            port,
            env: all,
            store,
            child: None,
            log: log.map(std::path::Path::to_path_buf),
        };
        p.launch().await;
        p
    }

    // The child is waited for in `kill9` (and so in `drop`).
    #[allow(clippy::zombie_processes)]
    async fn launch(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(self.log_to(Stdio::null))
            .stderr(self.log_to(Stdio::inherit))
            .spawn()
            .expect("binary starts");
        self.child = Some(child);
        for _ in 0..400 {
            if let Ok(r) = self
                .client
                .get(format!("{}/healthz", self.base))
                .send()
                .await
            {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} did not come up on port {}", self.name, self.port);
    }

    /// The log file when there is one (the binary logs to stdout), else `otherwise`.
    fn log_to(&self, otherwise: fn() -> Stdio) -> Stdio {
        match &self.log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .expect("log file opens"),
            ),
            None => otherwise(),
        }
    }

    /// The binary again, on the same port and store (after `kill9`).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.name);
        self.launch().await;
    }

    /// The store directory the binary runs on (unless `env` moved it).
    pub fn store_dir(&self) -> &std::path::Path {
        self.store.path()
    }

    /// Starts the binary on the same store expecting it to refuse (after `kill9`):
    /// returns what it wrote to stderr once it exited non-zero (bounded wait).
    pub fn start_refused(&mut self) -> String {
        assert!(self.child.is_none(), "{} is still running", self.name);
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts");
        for _ in 0..400 {
            if let Some(status) = child.try_wait().expect("waits") {
                assert!(!status.success(), "{} exited 0", self.name);
                let mut err = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().expect("piped"), &mut err)
                    .expect("reads stderr");
                return err;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("{} kept running on a store it should refuse", self.name);
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// SIGKILL: the process dies without a word.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP / SIGCONT: a process that freezes (a long GC pause, a stalled VM).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {}", self.pid());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = Command::new("kill")
                .args(["-CONT", &self.pid().to_string()])
                .status();
        }
        self.kill9();
    }
}
