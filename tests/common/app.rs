//! `spawn_app()`: a real sluice server in this process, on a free port, with its own
//! temporary store it can reopen; driven through `Api`.

use super::api::Api;
use sluice::config::Settings;
use sluice::domain::clock::{Clock, ManualClock, SystemClock};
use sluice::startup::{Application, Stopper};
use std::sync::Arc;

pub struct TestApp {
    api: Api,
    /// Present when the app runs on a manual clock the test steps.
    pub clock: Option<ManualClock>,
    pub store_dir: tempfile::TempDir,
    pub settings: Settings,
    pub state: actix_web::web::Data<sluice::http::state::AppState>,
    stopper: Stopper,
    /// The server's task: after a stop it still closes the store, which a reopen on
    /// the same directory must wait for (sled holds a file lock until then).
    running: std::cell::RefCell<Option<actix_web::rt::task::JoinHandle<std::io::Result<()>>>>,
}

impl std::ops::Deref for TestApp {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

pub fn test_settings(dir: &std::path::Path) -> Settings {
    let mut s = Settings::defaults();
    s.server.bind = "127.0.0.1:0".into();
    s.server.tick_ms = 10;
    s.server.workers = 2;
    s.store.path = dir.to_path_buf();
    s.store.commit_window_us = 200;
    // Tests exercise limits explicitly; elsewhere they would only add noise.
    s.limits.join_per_ip_per_sec = 0;
    s.limits.poll_per_ip_per_sec = 0;
    s.limits.purchase_per_ip_per_sec = 0;
    s.limits.user_per_sec = 0;
    s.limits.login_per_ip_per_sec = 0;
    s.auth.argon2_memory_kib = 1024;
    s.auth.argon2_iterations = 1;
    s
}

pub async fn spawn_app() -> TestApp {
    spawn_with(false, |_| {}).await
}

/// An app whose time only moves when the test says so.
pub async fn spawn_app_manual_clock() -> TestApp {
    spawn_with(true, |_| {}).await
}

pub async fn spawn_with(manual: bool, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(dir.path());
    tweak(&mut settings);
    start(settings, dir, manual).await
}

async fn start(settings: Settings, dir: tempfile::TempDir, manual: bool) -> TestApp {
    let clock = manual.then(|| ManualClock::new(SystemClock.now_ms()));
    let clock_dyn: Arc<dyn Clock> = match &clock {
        Some(c) => Arc::new(c.clone()),
        None => Arc::new(SystemClock),
    };
    let app = Application::build(settings.clone(), Arc::clone(&clock_dyn))
        .await
        .expect("application builds");
    let api = Api::new(app.port(), &settings.auth.jwt_secret, clock_dyn);
    let stopper = app.stopper();
    let state = app.state();
    let running = actix_web::rt::spawn(app.run_until_stopped());
    TestApp {
        api,
        clock,
        store_dir: dir,
        settings,
        state,
        stopper,
        running: std::cell::RefCell::new(Some(running)),
    }
}

impl TestApp {
    pub fn advance(&self, ms: u64) {
        self.clock.as_ref().expect("manual clock").advance_ms(ms);
    }

    /// Graceful shutdown, as on SIGTERM; returns once the store is closed.
    pub async fn stop(&self) {
        self.stopper.stop().await;
        let running = self.running.borrow_mut().take();
        if let Some(task) = running {
            let _ = task.await;
        }
    }

    /// A new app on this one's store and settings (after `stop`), on the system clock.
    pub async fn reopen(self) -> TestApp {
        start(self.settings, self.store_dir, false).await
    }
}
