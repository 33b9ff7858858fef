//! The owner's side of failover: every commit of an activity is also applied to its
//! replicated state in Redis (`sluice:state:{id}`), fenced by the owner's lease, and
//! the commit is acknowledged only once both sled and Redis have it.
//!
//! One task per process sends the commits in order, as pipelines of `EVALSHA APPLY`
//! (one per commit), so the replica sees each activity's commits in commit order.
//! A pipeline that fails as a whole (a timeout, a lost connection, too few replicas
//! confirming) is sent again, in order, for up to the lease's length: its writes are
//! absolute and fenced, so a repeat is harmless, and once another node holds the lease
//! the fence refuses it. A Redis that stalls for a second (a long script, a loaded
//! machine) no longer costs the owner its activity and every session a reconnect.
//! A commit that still fails, or is fenced, is never retried out of order: the
//! activity stops and is rebuilt from the replica (by this node or another), which
//! holds exactly the commits Redis applied.

use super::keys;
use super::primary::Primary;
use crate::domain::ids::ActivityId;
use crate::store::codec::KvOp;
use crate::store::{CommitFailure, CommitTarget, OnDurable, Store};
use redis::aio::ConnectionManager;
use redis::{Script, Value};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Why a commit did not reach the replica.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    #[error("the lease was lost: another node owns the activity now")]
    Fenced,
    #[error("the shared store cannot be written: {0}")]
    Unavailable(String),
}

/// Run with whether the replica took a commit.
type ReplicaAck = Box<dyn FnOnce(Result<(), ReplicaError>) + Send + Sync>;

struct Job {
    activity: ActivityId,
    holder: String,
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ack: ReplicaAck,
}

/// Commits waiting to be replicated are sent as one pipeline of at most this many,
/// and of at most `MAX_PIPELINE_OPS` writes (past the first commit): a pipeline
/// must come back within the write timeout, and a sold-out line's commits carry
/// thousands of writes each.
const MAX_PIPELINE: usize = 512;
const MAX_PIPELINE_OPS: usize = 8_192;

#[derive(Clone)]
pub struct Replicator {
    tx: mpsc::UnboundedSender<Job>,
    /// False while the last pipeline could not be written (or confirmed): owners
    /// are then not serving, whatever their actors believe.
    healthy: Arc<AtomicBool>,
}

/// How many replicas must have a pipeline before its commits count, and how long
/// to wait for them (Redis `WAIT`); 0 replicas: no wait.
#[derive(Clone, Copy)]
struct Acks {
    replicas: u32,
    timeout_ms: u64,
    /// How long a pipeline that failed as a whole is sent again.
    retry_for: Duration,
}

/// The first pause before a failed pipeline is sent again (doubling to the cap).
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_CAP: Duration = Duration::from_millis(500);

impl Replicator {
    /// Starts the sending task on the current runtime. It writes to whichever
    /// primary `primary` names at each pipeline.
    /// A pipeline that fails as a whole is sent again for up to `retry_for`.
    pub fn start(
        primary: Arc<Primary>,
        replica_acks: u32,
        ack_timeout_ms: u64,
        retry_for: Duration,
    ) -> Replicator {
        let (tx, rx) = mpsc::unbounded_channel();
        let acks = Acks {
            replicas: replica_acks,
            timeout_ms: ack_timeout_ms,
            retry_for,
        };
        let healthy = Arc::new(AtomicBool::new(true));
        tokio::spawn(run(primary, acks, rx, Arc::clone(&healthy)));
        Replicator { tx, healthy }
    }

    /// True unless the last pipeline failed for want of the store.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }

    /// Queues one commit; the receiver hears whether the replica took it.
    pub fn apply(
        &self,
        activity: &ActivityId,
        holder: &str,
        ops: &[KvOp],
    ) -> tokio::sync::oneshot::Receiver<Result<(), ReplicaError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.apply_to(
            activity,
            holder,
            ops,
            Box::new(move |res| {
                let _ = tx.send(res);
            }),
        );
        rx
    }

    /// Queues one commit; `ack` hears whether the replica took it. Outbox entries are
    /// not replicated: a new owner re-queues every order of the activity for the
    /// sink, whose writes are idempotent.
    pub fn apply_to(&self, activity: &ActivityId, holder: &str, ops: &[KvOp], ack: ReplicaAck) {
        let ops = ops
            .iter()
            .filter_map(|op| match op {
                KvOp::Put(k, v) => Some((k.clone(), Some(v.clone()))),
                KvOp::Del(k) => Some((k.clone(), None)),
                KvOp::Outbox(_) | KvOp::DelPrefix(_) => None,
            })
            .collect();
        let job = Job {
            activity: activity.clone(),
            holder: holder.to_owned(),
            ops,
            ack,
        };
        if let Err(mpsc::error::SendError(job)) = self.tx.send(job) {
            (job.ack)(Err(ReplicaError::Unavailable(
                "the replicator stopped".into(),
            )));
        }
    }
}

/// The commit target of an activity this node owns: the local store and the
/// replica, fenced by the owner's lease. A commit is durable once both have it; any
/// failure means a successor would rebuild a state without it, so it diverges.
pub struct ReplicatedCommits {
    pub store: Store,
    pub replicator: Replicator,
    pub activity: ActivityId,
    /// The lease holder (`node|fence`) every replicated write must still match.
    pub holder: String,
}

/// Whichever of the two writes finishes last reports the commit.
struct BothWrites {
    left: AtomicU8,
    failure: Mutex<Option<CommitFailure>>,
    done: Mutex<Option<OnDurable>>,
}

impl BothWrites {
    fn finish(&self, failure: Option<CommitFailure>) {
        let mut first = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = failure;
        }
        let failure = *first;
        drop(first);
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            let done = self.done.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(done) = done {
                done(failure.map_or(Ok(()), Err));
            }
        }
    }
}

impl CommitTarget for ReplicatedCommits {
    fn commit(&self, ops: Vec<KvOp>, done: OnDurable) {
        let both = Arc::new(BothWrites {
            left: AtomicU8::new(2),
            failure: Mutex::new(None),
            done: Mutex::new(Some(done)),
        });
        let replica = Arc::clone(&both);
        self.replicator.apply_to(
            &self.activity,
            &self.holder,
            &ops,
            Box::new(move |res| {
                replica.finish(res.err().map(|e| {
                    CommitFailure::Diverged(match e {
                        ReplicaError::Fenced => "this node no longer owns the activity; retry",
                        ReplicaError::Unavailable(_) => "the store cannot write",
                    })
                }))
            }),
        );
        self.store.commit_then(
            ops,
            Box::new(move |res| {
                both.finish(
                    res.err()
                        .map(|_| CommitFailure::Diverged("the store cannot write")),
                )
            }),
        );
    }
}

async fn run(
    primary: Arc<Primary>,
    acks: Acks,
    mut rx: mpsc::UnboundedReceiver<Job>,
    healthy: Arc<AtomicBool>,
) {
    let script = Script::new(keys::APPLY);
    // A commit that would have made the last pipeline too long starts the next.
    let mut carried: Option<Job> = None;
    loop {
        let first = match carried.take() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => break,
            },
        };
        let mut ops = first.ops.len();
        let mut jobs = vec![first];
        while jobs.len() < MAX_PIPELINE && ops < MAX_PIPELINE_OPS {
            match rx.try_recv() {
                Ok(j) if ops + j.ops.len() > MAX_PIPELINE_OPS => {
                    carried = Some(j);
                    break;
                }
                Ok(j) => {
                    ops += j.ops.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        // Per attempt: after a failover the next one goes to the new primary.
        let mut results = send(&mut primary.writes(), &script, &jobs, acks).await;
        let failed_at = Instant::now();
        let mut pause = RETRY_FIRST;
        while failed_whole(&results) && failed_at.elapsed() < acks.retry_for {
            healthy.store(false, Ordering::Release);
            tracing::debug!(commits = jobs.len(), "replication failed; sending again");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_CAP);
            results = send(&mut primary.writes(), &script, &jobs, acks).await;
        }
        let down = results
            .iter()
            .any(|r| matches!(r, Err(ReplicaError::Unavailable(_))));
        healthy.store(!down, Ordering::Release);
        for (job, res) in jobs.into_iter().zip(results) {
            if let Err(e) = &res {
                tracing::warn!(activity_id = %job.activity, error = %e, "replication failed");
            }
            (job.ack)(res);
        }
    }
}

/// One pipeline; on NOSCRIPT (a restarted Redis, a promoted replica) the script is
/// loaded and the pipeline sent once more (the script is idempotent: absolute puts
/// and deletes). With `acks`, the pipeline ends with `WAIT`: if fewer replicas than
/// required confirm in time, no commit of it counts (a promoted replica could lack
/// them), so each fails as `Unavailable`.
async fn send(
    conn: &mut ConnectionManager,
    script: &Script,
    jobs: &[Job],
    acks: Acks,
) -> Vec<Result<(), ReplicaError>> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for job in jobs {
        let mut inv = script.prepare_invoke();
        inv.key(keys::lease(&job.activity))
            .key(keys::state(&job.activity))
            .arg(&job.holder);
        for (k, v) in &job.ops {
            match v {
                Some(v) => inv.arg("P").arg(k.as_slice()).arg(v.as_slice()),
                None => inv.arg("D").arg(k.as_slice()),
            };
        }
        pipe.invoke_script(&inv);
    }
    if acks.replicas > 0 {
        pipe.cmd("WAIT").arg(acks.replicas).arg(acks.timeout_ms);
    }
    for attempt in 0..2 {
        let mut values: Vec<Value> = match pipe.query_async(conn).await {
            Ok(v) => v,
            Err(e) => {
                return all_fail(jobs, &e.to_string());
            }
        };
        let noscript = values
            .iter()
            .any(|v| matches!(v, Value::ServerError(e) if e.code() == "NOSCRIPT"));
        if noscript && attempt == 0 {
            if let Err(e) = script.prepare_invoke().load_async(conn).await {
                return all_fail(jobs, &e.to_string());
            }
            continue;
        }
        if acks.replicas > 0 {
            let confirmed = match values.pop() {
                Some(Value::Int(n)) => n,
                _ => -1,
            };
            if confirmed < i64::from(acks.replicas) {
                let why = format!(
                    "{confirmed} of {} replicas confirmed the writes in time",
                    acks.replicas
                );
                return all_fail(jobs, &why);
            }
        }
        return values
            .into_iter()
            .map(|v| match v {
                Value::ServerError(e) if e.code() == "FENCED" => Err(ReplicaError::Fenced),
                Value::ServerError(e) => Err(ReplicaError::Unavailable(e.to_string())),
                _ => Ok(()),
            })
            .collect();
    }
    all_fail(jobs, "the script could not be loaded")
}

/// Every commit of the pipeline failed for want of the store (not a fence).
fn failed_whole(results: &[Result<(), ReplicaError>]) -> bool {
    results
        .iter()
        .all(|r| matches!(r, Err(ReplicaError::Unavailable(_))))
}

fn all_fail(jobs: &[Job], why: &str) -> Vec<Result<(), ReplicaError>> {
    jobs.iter()
        .map(|_| Err(ReplicaError::Unavailable(why.to_owned())))
        .collect()
}
