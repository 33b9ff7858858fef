//! `OrderFlusher`: drains the outbox to the configured sink, in commit order, in
//! batches. An entry leaves the outbox only after the sink confirmed it; while the
//! sink is down it retries with exponential backoff and jitter, and selling goes on
//! (sled is the source of truth). Sink writes are idempotent (versioned upserts), so
//! a replay after a crash between "sink confirmed" and "entry removed" is harmless.

use crate::store::sink::Sink;
use crate::store::Store;
use rand::Rng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// The configured sink, connected lazily: a sink that is down at start-up must not
/// stop sluice from selling; the flusher keeps trying and the outbox keeps the orders.
pub struct SinkSlot {
    kind: String,
    url: String,
    cell: OnceCell<Sink>,
}

impl SinkSlot {
    pub fn new(kind: &str, url: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            url: url.to_owned(),
            cell: OnceCell::new(),
        }
    }

    /// The connected sink, connecting first if needed.
    pub async fn get(&self) -> anyhow::Result<&Sink> {
        self.cell
            .get_or_try_init(|| Sink::connect(&self.kind, &self.url))
            .await
    }

    /// Reachability for /readyz.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.get().await?.ping().await
    }
}

pub struct OrderFlusher {
    store: Store,
    sink: Arc<SinkSlot>,
    batch_size: usize,
    failing: bool,
    backoff: Duration,
    /// Shared with /readyz: the last write or ping reached the sink.
    pub reachable: Arc<AtomicBool>,
}

/// What one step did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Idle,
    Flushed(usize),
    Failed,
}

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl OrderFlusher {
    pub fn new(store: Store, sink: Arc<SinkSlot>, batch_size: usize) -> Self {
        Self {
            store,
            sink,
            batch_size,
            failing: false,
            backoff: MIN_BACKOFF,
            reachable: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Sends one batch; tests call this directly.
    pub async fn step(&mut self) -> Step {
        let batch = match self.store.outbox_batch(self.batch_size) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                return Step::Failed;
            }
        };
        metrics::gauge!("sluice_outbox_backlog").set(self.store.outbox_len() as f64);
        if batch.is_empty() {
            return Step::Idle;
        }
        let records: Vec<_> = batch.iter().map(|(_, r)| r.clone()).collect();
        let written = match self.sink.get().await {
            Ok(sink) => sink.write(&records).await,
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => {
                let keys: Vec<Vec<u8>> = batch.into_iter().map(|(k, _)| k).collect();
                self.store.outbox_remove(&keys);
                if self.failing {
                    tracing::info!(
                        backlog = self.store.outbox_len(),
                        "order sink reachable again"
                    );
                }
                self.failing = false;
                self.reachable.store(true, Ordering::Release);
                self.backoff = MIN_BACKOFF;
                metrics::counter!("sluice_sink_orders_total").increment(keys.len() as u64);
                Step::Flushed(keys.len())
            }
            Err(e) => {
                metrics::counter!("sluice_sink_errors_total").increment(1);
                if !self.failing {
                    // Logged once per outage, not per retry.
                    tracing::warn!(error = %format!("{e:#}"), backlog = self.store.outbox_len(), "order sink unreachable; retrying with backoff");
                }
                self.failing = true;
                self.reachable.store(false, Ordering::Release);
                Step::Failed
            }
        }
    }

    /// Runs until `stop` is set, then makes a last attempt to drain.
    pub async fn run(mut self, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Acquire) {
            match self.step().await {
                Step::Flushed(_) => {}
                Step::Idle => {
                    let _ = tokio::time::timeout(
                        Duration::from_millis(500),
                        self.store.outbox_changed(),
                    )
                    .await;
                }
                Step::Failed => {
                    let jitter = rand::thread_rng().gen_range(0.5..1.5);
                    tokio::time::sleep(self.backoff.mul_f64(jitter)).await;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        while let Step::Flushed(_) = self.step().await {}
    }
}

#[cfg(test)]
mod tests {
    //! `step()` by hand against a real store and the throwaway Redis of
    //! scripts/services.sh (ignored by a plain `cargo test`; run with
    //! `--include-ignored` after sourcing it). The sink's key names are fixed by the
    //! contract, so these tests use a database number of their own, emptied first.
    use super::*;
    use crate::store::codec::KvOp;
    use crate::store::sink::redis::{HASH_PREFIX, STREAM_KEY};
    use crate::store::sink::testutil::{order, require_env, run_helper, REDIS_LOCK};
    use crate::store::sink::OrderRecord;
    use crate::store::CommitSettings;

    const NEEDS: &str = "a throwaway Redis (scripts/services.sh)";
    /// Databases 1 to 4 belong to the Redis sink's own tests.
    const DB: u8 = 5;

    /// A flusher over its own store in a temp dir, draining to Redis database `DB`.
    struct Bench {
        flusher: OrderFlusher,
        store: Store,
        redis: ::redis::Client,
        _dir: tempfile::TempDir,
    }

    impl Bench {
        async fn new(batch_size: usize) -> Bench {
            let base = require_env("SLUICE_TEST_REDIS_URL", NEEDS);
            let url = format!("{}/{DB}", base.trim_end_matches('/'));
            let redis = ::redis::Client::open(url.as_str())
                .unwrap_or_else(|e| panic!("bad SLUICE_TEST_REDIS_URL {url}: {e}"));
            ::redis::cmd("FLUSHDB")
                .query_async::<()>(&mut Self::connect(&redis).await)
                .await
                .unwrap_or_else(|e| panic!("FLUSHDB on {url}: {e}"));
            let dir = tempfile::tempdir().expect("temp dir");
            let store = Store::open(
                dir.path(),
                CommitSettings {
                    window: Duration::from_micros(100),
                    max_batch: 64,
                    queue: 1024,
                    checkpoint: Duration::from_secs(60),
                },
            )
            .expect("store opens");
            let sink = Arc::new(SinkSlot::new("redis", &url));
            Bench {
                flusher: OrderFlusher::new(store.clone(), sink, batch_size),
                store,
                redis,
                _dir: dir,
            }
        }

        /// A fresh connection for checks, so a check outlives a server restart.
        async fn connect(redis: &::redis::Client) -> ::redis::aio::MultiplexedConnection {
            redis
                .get_multiplexed_async_connection()
                .await
                .unwrap_or_else(|e| panic!("connecting for checks: {e}"))
        }

        /// Commits the records to the outbox, as an activity's commit would.
        async fn queue(&self, records: &[OrderRecord]) {
            let ops = records
                .iter()
                .map(|r| KvOp::Outbox(serde_json::to_vec(r).expect("records serialize")))
                .collect();
            let ack = self.store.commit(ops).expect("the store takes the commit");
            ack.await.expect("answered").expect("durable");
        }

        /// (id, version) of every entry of the sink's stream, oldest first.
        async fn stream(&self) -> Vec<(String, u64)> {
            let entries: Vec<(String, std::collections::HashMap<String, String>)> =
                ::redis::cmd("XRANGE")
                    .arg(STREAM_KEY)
                    .arg("-")
                    .arg("+")
                    .query_async(&mut Self::connect(&self.redis).await)
                    .await
                    .unwrap_or_else(|e| panic!("XRANGE: {e}"));
            entries
                .into_iter()
                .map(|(_, f)| {
                    let id = f.get("id").cloned().unwrap_or_default();
                    let version = f.get("version").and_then(|v| v.parse().ok()).unwrap_or(0);
                    (id, version)
                })
                .collect()
        }

        async fn status_of(&self, id: &str) -> Option<String> {
            ::redis::cmd("HGET")
                .arg(format!("{HASH_PREFIX}{id}"))
                .arg("status")
                .query_async(&mut Self::connect(&self.redis).await)
                .await
                .unwrap_or_else(|e| panic!("HGET {id}: {e}"))
        }

        fn reachable(&self) -> bool {
            self.flusher.reachable.load(Ordering::Acquire)
        }
    }

    fn versions(records: &[OrderRecord]) -> Vec<(String, u64)> {
        records.iter().map(|r| (r.id.clone(), r.version)).collect()
    }

    #[tokio::test]
    #[ignore = "needs Redis: source scripts/services.sh"]
    async fn orders_in_the_outbox_reach_the_sink_in_commit_order_and_leave_the_outbox() {
        let _shared = REDIS_LOCK.read().await;
        let mut bench = Bench::new(2).await;
        assert_eq!(bench.flusher.step().await, Step::Idle);
        let orders = [
            order("a", 1, "pending_payment"),
            order("b", 1, "pending_payment"),
            order("a", 2, "paid"),
        ];
        bench.queue(&orders).await;
        assert_eq!(bench.store.outbox_len(), 3);

        assert_eq!(bench.flusher.step().await, Step::Flushed(2), "one batch");
        assert_eq!(bench.store.outbox_len(), 1);
        assert_eq!(bench.flusher.step().await, Step::Flushed(1));
        assert_eq!(bench.flusher.step().await, Step::Idle);

        assert_eq!(bench.store.outbox_len(), 0);
        assert_eq!(bench.stream().await, versions(&orders));
        assert_eq!(bench.status_of("a").await.as_deref(), Some("paid"));
        assert!(bench.reachable());
    }

    /// Stops and restarts the throwaway Redis (exclusive lock: no other test that
    /// uses it runs meanwhile).
    #[tokio::test]
    #[ignore = "needs Redis: source scripts/services.sh"]
    async fn a_sink_that_is_down_keeps_the_orders_queued_and_gets_them_once_when_back() {
        let _outage = REDIS_LOCK.write().await;
        let mut bench = Bench::new(100).await;
        let before = [order("a", 1, "pending_payment")];
        bench.queue(&before).await;
        assert_eq!(bench.flusher.step().await, Step::Flushed(1));

        run_helper("SLUICE_TEST_REDIS_STOP", NEEDS);
        let during = [order("a", 2, "paid"), order("b", 1, "pending_payment")];
        bench.queue(&during).await;
        let down = bench.flusher.step().await;
        let still_queued = bench.store.outbox_len();
        let reachable_while_down = bench.reachable();
        run_helper("SLUICE_TEST_REDIS_START", NEEDS);
        assert_eq!(down, Step::Failed);
        assert_eq!(
            still_queued, 2,
            "the outbox keeps what the sink did not take"
        );
        assert!(
            !reachable_while_down,
            "/readyz hears the sink is unreachable"
        );

        assert_eq!(bench.flusher.step().await, Step::Flushed(2));
        assert!(bench.reachable());
        assert_eq!(bench.store.outbox_len(), 0);
        assert_eq!(
            bench.flusher.step().await,
            Step::Idle,
            "nothing is sent twice"
        );
        let all: Vec<OrderRecord> = before.into_iter().chain(during).collect();
        assert_eq!(
            bench.stream().await,
            versions(&all),
            "one entry per version"
        );
        assert_eq!(bench.status_of("a").await.as_deref(), Some("paid"));
    }
}
