//! RSS and CPU of every node, read from /proc every 250 ms, for the per-node
//! peaks and the RSS chart.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::now_ms;
use crate::sampler::PERIOD;
use crate::server::ProcSample;

/// One reading of every node; `None` for a node not running.
#[derive(Debug, Clone, Serialize)]
pub struct NodeSample {
    pub t_secs: f64,
    pub rss_kib: Vec<Option<u64>>,
    pub cpu_secs: Vec<Option<f64>>,
}

pub struct NodeSampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<NodeSample>>,
}

impl NodeSampler {
    /// `pids[i]` is read at each tick (0 = node not running).
    pub fn start(pids: Vec<Arc<AtomicU32>>) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let start = now_ms();
            let mut series = Vec::new();
            let mut tick = tokio::time::interval(PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                let readings: Vec<Option<ProcSample>> = pids
                    .iter()
                    .map(|p| match p.load(Ordering::Relaxed) {
                        0 => None,
                        pid => ProcSample::read(pid),
                    })
                    .collect();
                series.push(NodeSample {
                    t_secs: (now_ms() - start) / 1000.0,
                    rss_kib: readings.iter().map(|r| r.map(|r| r.rss_kib)).collect(),
                    cpu_secs: readings.iter().map(|r| r.map(|r| r.cpu_secs)).collect(),
                });
            }
            series
        });
        Self { stop, task }
    }

    pub async fn stop(self) -> Vec<NodeSample> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}
