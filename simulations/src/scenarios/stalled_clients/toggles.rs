//! Pauses and resumes the activity every second through the admin API, so
//! non-coalescable `paused`/`resumed` notices pile up for stalled sockets.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::Admin;

const PERIOD: Duration = Duration::from_secs(1);
/// How long each pause lasts (admissions stop meanwhile).
const PAUSED_FOR: Duration = Duration::from_millis(100);

pub struct Toggler {
    stop: watch::Sender<bool>,
    task: JoinHandle<(u64, Vec<String>)>,
}

impl Toggler {
    pub fn start(admin: Admin, id: String) -> Self {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut pairs = 0u64;
            let mut errors = Vec::new();
            let mut tick = tokio::time::interval(PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                if *stopped.borrow() {
                    break;
                }
                // Always resume after a pause, even when asked to stop meanwhile.
                let paused = admin.control(&id, "pause").await;
                tokio::time::sleep(PAUSED_FOR).await;
                let resumed = admin.control(&id, "resume").await;
                match (paused, resumed) {
                    (Ok(_), Ok(_)) => pairs += 1,
                    (p, r) => {
                        if errors.len() < 5 {
                            errors.extend(p.err().into_iter().chain(r.err()));
                        }
                    }
                }
            }
            (pairs, errors)
        });
        Self { stop, task }
    }

    /// Stops after the current pair; (pairs done, first errors).
    pub async fn stop(self) -> (u64, Vec<String>) {
        let _ = self.stop.send(true);
        self.task
            .await
            .unwrap_or_else(|e| (0, vec![format!("toggler task: {e}")]))
    }
}
