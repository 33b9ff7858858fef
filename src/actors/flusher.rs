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
