//! `spawn_app()`: a real sluice server on a free port with its own temporary store,
//! plus typed helpers to drive it over HTTP and WebSocket.

#![allow(dead_code)]

use actix_web::web::Bytes;
use serde_json::{json, Value};
use sluice::config::Settings;
use sluice::domain::clock::{Clock, ManualClock, SystemClock};
use sluice::domain::ids::UserId;
use sluice::domain::jwt::JwtKey;
use sluice::startup::{Application, Stopper};
use std::sync::Arc;
use std::time::Duration;

pub const ADMIN_KEY: &str = sluice::config::DEV_ADMIN_KEY;

pub struct TestApp {
    pub base: String,
    pub ws_base: String,
    pub client: awc::Client,
    /// Present when the app runs on a manual clock the test steps.
    pub clock: Option<ManualClock>,
    pub store_dir: tempfile::TempDir,
    pub settings: Settings,
    pub state: actix_web::web::Data<sluice::http::state::AppState>,
    jwt: JwtKey,
    stopper: Stopper,
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

pub async fn start(settings: Settings, dir: tempfile::TempDir, manual: bool) -> TestApp {
    let clock = manual.then(|| ManualClock::new(SystemClock.now_ms()));
    let clock_dyn: Arc<dyn Clock> = match &clock {
        Some(c) => Arc::new(c.clone()),
        None => Arc::new(SystemClock),
    };
    let app = Application::build(settings.clone(), clock_dyn)
        .await
        .expect("application builds");
    let port = app.port();
    let stopper = app.stopper();
    let state = app.state();
    actix_web::rt::spawn(app.run_until_stopped());
    // No connector limit: WebSockets hold their connection for good.
    let client = awc::Client::builder()
        .connector(awc::Connector::new().limit(0))
        .timeout(Duration::from_secs(30))
        .finish();
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        ws_base: format!("ws://127.0.0.1:{port}"),
        client,
        clock,
        store_dir: dir,
        jwt: JwtKey::new(settings.auth.jwt_secret.as_bytes()),
        settings,
        state,
        stopper,
    }
}

/// A response's status and JSON body.
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<String>,
}

impl Resp {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "body: {}",
            self.body
        );
        assert!(self.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
}

impl TestApp {
    pub fn user_token(&self, user: &str) -> String {
        let now = self
            .clock
            .as_ref()
            .map_or_else(|| SystemClock.now_ms(), |c| c.now_ms());
        self.jwt
            .issue(&UserId::parse(user).expect("valid user"), now / 1000 + 3600)
    }

    pub fn advance(&self, ms: u64) {
        self.clock.as_ref().expect("manual clock").advance_ms(ms);
    }

    pub async fn stop(&self) {
        self.stopper.stop().await;
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "GET" => self.client.get(url),
            "POST" => self.client.post(url),
            "PATCH" => self.client.patch(url),
            "DELETE" => self.client.delete(url),
            other => panic!("method {other}"),
        };
        if let Some(a) = auth {
            req = req.insert_header(("Authorization", format!("Bearer {a}")));
        }
        let mut res = match body {
            Some(b) => req.send_json(&b).await,
            None => req.send().await,
        }
        .expect("request reaches the server");
        self.read(&mut res).await
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: Bytes,
        content_type: &str,
    ) -> Resp {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "POST" => self.client.post(url),
            "PATCH" => self.client.patch(url),
            other => panic!("method {other}"),
        }
        .insert_header(("Content-Type", content_type));
        if let Some(a) = auth {
            req = req.insert_header(("Authorization", format!("Bearer {a}")));
        }
        let mut res = req
            .send_body(body)
            .await
            .expect("request reaches the server");
        self.read(&mut res).await
    }

    async fn read<S>(&self, res: &mut awc::ClientResponse<S>) -> Resp
    where
        S: futures_util::Stream<Item = Result<Bytes, awc::error::PayloadError>> + Unpin,
    {
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let bytes = res.body().limit(64 * 1024 * 1024).await.expect("body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            body,
            retry_after,
        }
    }

    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.request(method, &format!("/api/admin{path}"), Some(ADMIN_KEY), body)
            .await
    }

    pub async fn create_sale(&self, id: &str, stock: u32, admission: Value) -> Value {
        let r = self
            .admin(
                "POST",
                "/activities",
                Some(json!({"id": id, "name": id, "kind": "sale", "stock": stock, "admission": admission})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }

    pub async fn create(&self, body: Value) -> Resp {
        self.admin("POST", "/activities", Some(body)).await
    }

    pub async fn view(&self, id: &str) -> Value {
        let r = self.admin("GET", &format!("/activities/{id}"), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// Asserts `capacity == available + held + sold` overall and per slot.
    pub async fn assert_invariant(&self, id: &str) -> Value {
        let v = self.view(id).await;
        let n = |k: &str, o: &Value| o[k].as_u64().expect("counter");
        assert_eq!(
            n("capacity", &v),
            n("available", &v) + n("held", &v) + n("sold", &v),
            "{v}"
        );
        if let Some(slots) = v["slots"].as_array() {
            for s in slots {
                assert_eq!(
                    n("capacity", s),
                    n("available", s) + n("held", s) + n("sold", s),
                    "{s}"
                );
            }
        }
        v
    }

    pub async fn purchase(&self, id: &str, user: &str, token: &str, slot: Option<&str>) -> Resp {
        let mut body = json!({"token": token});
        if let Some(s) = slot {
            body["slot_id"] = json!(s);
        }
        self.request(
            "POST",
            &format!("/api/activities/{id}/purchase"),
            Some(&self.user_token(user)),
            Some(body),
        )
        .await
    }

    pub async fn join_http(&self, id: &str, user: &str) -> Resp {
        self.request(
            "POST",
            &format!("/api/activities/{id}/join"),
            Some(&self.user_token(user)),
            None,
        )
        .await
    }

    pub async fn ws(&self, id: &str, user: &str, ticket: Option<&str>) -> WsUser {
        let mut url = format!(
            "{}/ws/activities/{id}?access_token={}",
            self.ws_base,
            self.user_token(user)
        );
        if let Some(t) = ticket {
            url.push_str(&format!("&ticket={t}"));
        }
        let (_, framed) = self
            .client
            .ws(url)
            .connect()
            .await
            .expect("websocket connects");
        WsUser {
            framed,
            user: user.to_owned(),
        }
    }
}

pub use crate::ws_user::{Frame, WsUser};
