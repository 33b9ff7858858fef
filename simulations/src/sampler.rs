//! Samples the admin view (and the server's RSS/CPU when we spawned it)
//! every 250 ms, for the time-series charts and peaks.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::Admin;
use crate::client::now_ms;
use crate::server::ProcSample;

pub const PERIOD: Duration = Duration::from_millis(250);

/// One reading. `t_secs` counts from the sampler's start.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Sample {
    pub t_secs: f64,
    /// False when the admin view could not be read (counters are then 0).
    pub ok: bool,
    pub waiting: i64,
    pub admitted_total: i64,
    pub available: i64,
    pub held: i64,
    pub sold: i64,
    pub paid: i64,
    pub cancelled: i64,
    pub rss_kib: Option<u64>,
    pub cpu_secs: Option<f64>,
}

/// A running sampler; `stop` returns the series.
pub struct Sampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    /// `pid` is read at each tick (0 = no process to sample), so a restarted
    /// server keeps being measured.
    pub fn start(admin: Admin, activity_id: String, pid: Arc<AtomicU32>) -> Self {
        Self::start_over(vec![admin], activity_id, pid)
    }

    /// Like [`Sampler::start`], reading the view through the first of `admins`
    /// that answers (the one that answered last is asked first): a cluster's
    /// nodes all serve it, and one of them may be gone.
    pub fn start_over(admins: Vec<Admin>, activity_id: String, pid: Arc<AtomicU32>) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let start = now_ms();
            let mut preferred = 0;
            let mut samples = Vec::new();
            let mut tick = tokio::time::interval(PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => break,
                }
                let t_secs = (now_ms() - start) / 1000.0;
                let mut view = None;
                for k in 0..admins.len() {
                    let i = (preferred + k) % admins.len();
                    let read = admins[i].view(&activity_id);
                    if let Ok(Ok(v)) = tokio::time::timeout(Duration::from_secs(2), read).await {
                        preferred = i;
                        view = Some(v);
                        break;
                    }
                }
                let mut s = match view {
                    Some(v) => Sample {
                        t_secs,
                        ok: true,
                        waiting: v.waiting,
                        admitted_total: v.admitted_total,
                        available: v.available,
                        held: v.held,
                        sold: v.sold,
                        paid: v.paid,
                        cancelled: v.cancelled,
                        ..Sample::default()
                    },
                    _ => Sample {
                        t_secs,
                        ..Sample::default()
                    },
                };
                let p = pid.load(Ordering::Relaxed);
                if p != 0 {
                    if let Some(ps) = ProcSample::read(p) {
                        s.rss_kib = Some(ps.rss_kib);
                        s.cpu_secs = Some(ps.cpu_secs);
                    }
                }
                samples.push(s);
            }
            samples
        });
        Self { stop, task }
    }

    pub async fn stop(self) -> Vec<Sample> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// The most admissions seen in any window of at least one second between
/// two readable samples, as (admissions, window seconds). The contract allows
/// at most `rate_per_sec` per second.
pub fn peak_admissions_per_window(samples: &[Sample]) -> Option<(i64, f64)> {
    let ok: Vec<&Sample> = samples.iter().filter(|s| s.ok).collect();
    let mut best: Option<(i64, f64)> = None;
    for (i, a) in ok.iter().enumerate() {
        let Some(b) = ok[i + 1..].iter().find(|b| b.t_secs - a.t_secs >= 1.0) else {
            break;
        };
        let n = b.admitted_total - a.admitted_total;
        let w = b.t_secs - a.t_secs;
        if best.is_none_or(|(bn, bw)| (n as f64 / w) > (bn as f64 / bw)) {
            best = Some((n, w));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: f64, admitted: i64) -> Sample {
        Sample {
            t_secs: t,
            ok: true,
            admitted_total: admitted,
            ..Sample::default()
        }
    }

    #[test]
    fn peak_window_is_the_densest_second() {
        let s = [
            at(0.0, 0),
            at(0.5, 10),
            at(1.0, 50),
            at(1.5, 60),
            at(2.0, 61),
        ];
        let (n, w) = peak_admissions_per_window(&s).expect("two samples a second apart");
        assert_eq!((n, w), (50, 1.0));
    }

    #[test]
    fn no_window_under_a_second() {
        assert!(peak_admissions_per_window(&[at(0.0, 0), at(0.5, 9)]).is_none());
    }
}
