//! `Receiver`: a real webhook receiver (an actix-web server on a free port) that
//! records every delivery and answers as the test says: `2xx`, an error status, not
//! at all for a while (slow), not listening (down, then up again on its port), or
//! `401` to a request without the `Authorization` it requires.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::Value;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The request's path and query, as sent.
    pub uri: String,
    pub body: Vec<u8>,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }
}

#[derive(Default)]
struct Script {
    got: Mutex<Vec<Delivery>>,
    /// The status to answer with.
    status: AtomicU16,
    /// Requests before this number (1-based) are held this long before answering.
    slow_ms: AtomicU64,
    /// The `Authorization` a request needs (else `401`), if any.
    require: Mutex<Option<String>>,
}

pub struct Receiver {
    pub port: u16,
    script: Arc<Script>,
    server: Option<actix_web::dev::ServerHandle>,
}

impl Receiver {
    /// Listening, answering `200`.
    pub async fn start() -> Receiver {
        let mut r = Receiver {
            port: super::free_port(),
            script: Arc::new(Script::default()),
            server: None,
        };
        r.script.status.store(200, Ordering::Relaxed);
        r.up();
        r
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    /// Starts listening (again) on its port.
    pub fn up(&mut self) {
        let script = Arc::clone(&self.script);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(Arc::clone(&script)))
                .app_data(web::PayloadConfig::default().limit(1 << 20))
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .bind(("127.0.0.1", self.port))
        .expect("the receiver binds its port")
        .run();
        self.server = Some(server.handle());
        actix_web::rt::spawn(server);
    }

    /// Stops listening: deliveries find nobody (connection refused).
    pub async fn down(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop(false).await;
        }
    }

    /// Answers every later request with `status`.
    pub fn answer(&self, status: u16) {
        self.script.status.store(status, Ordering::Relaxed);
    }

    /// Holds every later request `ms` before answering (0: at once).
    pub fn slow(&self, ms: u64) {
        self.script.slow_ms.store(ms, Ordering::Relaxed);
    }

    /// Answers `401` to every later request whose `Authorization` is not `auth`.
    pub fn require(&self, auth: &str) {
        *self.script.require.lock().expect("lock") = Some(auth.to_owned());
    }

    pub fn received(&self) -> Vec<Delivery> {
        self.script.got.lock().expect("lock").clone()
    }

    /// Waits (bounded) until `done` holds for what was received; panics otherwise.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        for _ in 0..1200 {
            let got = self.received();
            if done(&got) {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let got = self.received();
        panic!(
            "receiver on {}: {what} did not happen; got {} deliveries: {:?}",
            self.port,
            got.len(),
            got.iter()
                .map(|d| (d.id.clone(), d.kind()))
                .collect::<Vec<_>>()
        );
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, s: web::Data<Arc<Script>>) -> HttpResponse {
    let h = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    s.got.lock().expect("lock").push(Delivery {
        id: h("webhook-id"),
        timestamp: h("webhook-timestamp"),
        signature: h("webhook-signature"),
        authorization: req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        uri: req.uri().to_string(),
        body: body.to_vec(),
    });
    let required = s.require.lock().expect("lock").clone();
    if required.is_some_and(|r| h("authorization") != r) {
        return HttpResponse::Unauthorized().finish();
    }
    let slow = s.slow_ms.load(Ordering::Relaxed);
    if slow > 0 {
        tokio::time::sleep(Duration::from_millis(slow)).await;
    }
    let status = s.status.load(Ordering::Relaxed);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).expect("a status")).finish()
}
