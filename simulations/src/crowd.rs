//! The crowd: all users of a run, split over workers (in this process, or
//! child processes of this binary past ~18k sockets), with merged progress.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::plan::{Behaviour, WorkerPlan};
use crate::user::record::UserRecord;
use crate::worker::{self, Progress, WorkerEvent};

/// Sockets one process may hold with headroom under the 20,000 fd limit.
pub const USERS_PER_PROCESS: usize = 18_000;

/// How to split and run the users.
#[derive(Debug, Clone)]
pub struct CrowdSpec {
    /// Base URLs of the server nodes; user `idx` connects to `server_urls[idx % len]`.
    pub server_urls: Vec<String>,
    pub activity_id: String,
    pub jwt_secret: String,
    pub user_prefix: String,
    pub users: usize,
    /// 0 = automatic (1 process up to 18,000 users).
    pub procs: usize,
    pub sources_per_proc: usize,
    pub handshakes: usize,
    pub deadline_unix_ms: f64,
    pub behaviour: Behaviour,
}

impl CrowdSpec {
    pub fn process_count(&self) -> usize {
        if self.procs > 0 {
            self.procs
        } else {
            self.users.div_ceil(USERS_PER_PROCESS).max(1)
        }
    }

    fn plans(&self) -> Vec<WorkerPlan> {
        let procs = self.process_count();
        let base = self.users / procs;
        let extra = self.users % procs;
        let mut first = 0;
        (0..procs)
            .map(|w| {
                let users = base + usize::from(w < extra);
                let plan = WorkerPlan {
                    worker_id: w,
                    servers: self.server_urls.clone(),
                    activity_id: self.activity_id.clone(),
                    jwt_secret: self.jwt_secret.clone(),
                    user_prefix: self.user_prefix.clone(),
                    first_user: first,
                    users,
                    // Address 0 (127.0.0.1) is left to the coordinator's own calls.
                    source_first: 1 + w * self.sources_per_proc,
                    source_count: self.sources_per_proc,
                    handshakes: (self.handshakes / procs).max(1),
                    deadline_unix_ms: self.deadline_unix_ms,
                    behaviour: self.behaviour.clone(),
                };
                first += users;
                plan
            })
            .collect()
    }
}

/// Totals over all workers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    pub joined: usize,
    pub never_joined: usize,
    pub finished: usize,
    pub resumed: usize,
    pub admitted: usize,
}

/// How late the load generator's own timers fired (see `worker::Progress`):
/// when it is starved of CPU, every latency and gap it measures is late too.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadLag {
    /// Worst lateness in any worker process, ms.
    pub max_ms: u32,
    /// Firings more than `worker::LAG_EPISODE_MS` late, all workers.
    pub episodes: u32,
}

/// What a crowd leaves when it is done.
pub struct Finished {
    pub records: Vec<UserRecord>,
    pub errors: Vec<String>,
    pub lag: LoadLag,
}

/// A running crowd.
pub struct Crowd {
    users: usize,
    events: mpsc::UnboundedReceiver<WorkerEvent>,
    control: watch::Sender<u64>,
    child_stdins: Vec<ChildStdin>,
    children: Vec<Child>,
    progress: BTreeMap<usize, Progress>,
    records: Vec<UserRecord>,
    workers_left: usize,
    pub worker_errors: Vec<String>,
    pub processes: usize,
}

impl Crowd {
    pub async fn start(spec: &CrowdSpec) -> Result<Self, String> {
        let plans = spec.plans();
        let (tx, rx) = mpsc::unbounded_channel();
        let (control, control_rx) = watch::channel(0u64);
        let mut child_stdins = Vec::new();
        let mut children = Vec::new();
        if plans.len() == 1 {
            let plan = plans.into_iter().next().expect("exactly one plan");
            tokio::spawn(worker::run(plan, control_rx, tx));
        } else {
            let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
            for plan in &plans {
                let json = serde_json::to_string(plan).map_err(|e| format!("encode plan: {e}"))?;
                let mut child = Command::new(&exe)
                    .arg("worker")
                    .arg("--plan")
                    .arg(json)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| format!("spawn worker: {e}"))?;
                let stdout = child.stdout.take().ok_or("worker without stdout")?;
                child_stdins.push(child.stdin.take().ok_or("worker without stdin")?);
                children.push(child);
                let tx = tx.clone();
                let worker = plan.worker_id;
                tokio::spawn(async move {
                    let mut lines = BufReader::new(stdout).lines();
                    let mut done = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        match serde_json::from_str::<WorkerEvent>(&line) {
                            Ok(ev) => {
                                done |= matches!(ev, WorkerEvent::Done { .. });
                                let _ = tx.send(ev);
                            }
                            Err(e) => {
                                let _ = tx.send(WorkerEvent::Done {
                                    worker,
                                    error: Some(format!("bad line: {e}")),
                                });
                                done = true;
                                break;
                            }
                        }
                    }
                    if !done {
                        let error = Some("worker exited without reporting".to_string());
                        let _ = tx.send(WorkerEvent::Done { worker, error });
                    }
                });
            }
        }
        let processes = children.len().max(1);
        Ok(Self {
            users: spec.users,
            events: rx,
            control,
            child_stdins,
            children,
            progress: BTreeMap::new(),
            records: Vec::with_capacity(spec.users),
            workers_left: processes,
            worker_errors: Vec::new(),
            processes,
        })
    }

    pub fn totals(&self) -> Totals {
        self.progress
            .values()
            .fold(Totals::default(), |t, p| Totals {
                joined: t.joined + p.joined,
                never_joined: t.never_joined + p.never_joined,
                finished: t.finished + p.finished,
                resumed: t.resumed + p.resumed,
                admitted: t.admitted + p.admitted,
            })
    }

    /// True once every user has joined or given up trying.
    pub fn all_joined(&self) -> bool {
        let t = self.totals();
        t.joined + t.never_joined >= self.users
    }

    /// Processes events until `done(totals)` holds, every worker finished,
    /// or `until` passes. Returns whether `done` held.
    pub async fn wait_for(
        &mut self,
        until: Instant,
        done: impl Fn(&Totals, &Crowd) -> bool,
    ) -> bool {
        loop {
            if done(&self.totals(), self) {
                return true;
            }
            if self.workers_left == 0 {
                return false;
            }
            match tokio::time::timeout_at(until, self.events.recv()).await {
                Ok(Some(ev)) => self.apply(ev),
                Ok(None) => self.workers_left = 0,
                Err(_) => return false,
            }
        }
    }

    fn apply(&mut self, ev: WorkerEvent) {
        match ev {
            WorkerEvent::Progress(p) => {
                self.progress.insert(p.worker, p);
            }
            WorkerEvent::Record(r) => self.records.push(*r),
            WorkerEvent::Done { worker, error } => {
                self.workers_left = self.workers_left.saturating_sub(1);
                if let Some(e) = error {
                    self.worker_errors.push(format!("worker {worker}: {e}"));
                }
            }
        }
    }

    /// Asks the storm-selected users to drop their sockets and resume.
    pub async fn storm(&mut self) {
        let epoch = *self.control.borrow() + 1;
        let _ = self.control.send(epoch);
        for stdin in &mut self.child_stdins {
            let _ = stdin.write_all(format!("{epoch}\n").as_bytes()).await;
            let _ = stdin.flush().await;
        }
    }

    pub fn lag(&self) -> LoadLag {
        self.progress
            .values()
            .fold(LoadLag::default(), |l, p| LoadLag {
                max_ms: l.max_ms.max(p.lag_max_ms),
                episodes: l.episodes + p.lag_episodes,
            })
    }

    /// Waits for every worker to report (users stop by themselves at the
    /// deadline; `grace` covers the reporting), then returns all records.
    pub async fn finish(mut self, until: Instant) -> Finished {
        self.wait_for(until, |_, c| c.workers_left == 0).await;
        if self.workers_left > 0 {
            self.worker_errors.push(format!(
                "{} worker(s) did not report in time",
                self.workers_left
            ));
        }
        for child in &mut self.children {
            let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
        }
        self.records.sort_by_key(|r| r.idx);
        Finished {
            lag: self.lag(),
            records: self.records,
            errors: self.worker_errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(users: usize, procs: usize, urls: &[&str]) -> CrowdSpec {
        CrowdSpec {
            server_urls: urls.iter().map(|u| (*u).to_string()).collect(),
            activity_id: "a".into(),
            jwt_secret: "s".into(),
            user_prefix: "u".into(),
            users,
            procs,
            sources_per_proc: 4,
            handshakes: 500,
            deadline_unix_ms: 0.0,
            behaviour: Behaviour::default(),
        }
    }

    #[test]
    fn every_worker_gets_every_node_and_a_contiguous_share() {
        let urls = [
            "http://127.0.0.1:1",
            "http://127.0.0.1:2",
            "http://127.0.0.1:3",
        ];
        let plans = spec(100_000, 0, &urls).plans();
        assert_eq!(plans.len(), 6, "one process per 18,000 users");
        let mut next = 0;
        for p in &plans {
            assert_eq!(p.servers, urls);
            assert_eq!(p.first_user, next);
            next += p.users;
        }
        assert_eq!(next, 100_000);
        assert_eq!(plans[1].source_first, 1 + 4);
    }
}
