//! `Api`: one sluice server seen from outside (its base URL and an HTTP client), with
//! the typed helpers every test drives it through, and identities minted for it.

use super::ws_user::WsUser;
use actix_web::web::Bytes;
use serde_json::{json, Value};
use sluice::domain::clock::Clock;
use sluice::domain::ids::UserId;
use sluice::domain::jwt::JwtKey;
use std::sync::Arc;
use std::time::Duration;

pub const ADMIN_KEY: &str = sluice::config::DEV_ADMIN_KEY;

pub struct Api {
    /// The loopback port the server (or the proxy in front of it) listens on.
    pub port: u16,
    pub base: String,
    pub ws_base: String,
    pub client: awc::Client,
    /// Mints user identities the server accepts (its `auth.jwt_secret`).
    jwt: JwtKey,
    /// The server's clock: identities are issued at its `now`.
    clock: Arc<dyn Clock>,
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

/// Asserts `capacity == available + held + sold` overall and per slot of an admin view.
#[track_caller]
pub fn check_invariant(v: &Value) {
    let n = |k: &str, o: &Value| o[k].as_u64().unwrap_or_else(|| panic!("{k} in {o}"));
    assert_eq!(
        n("capacity", v),
        n("available", v) + n("held", v) + n("sold", v),
        "{v}"
    );
    for s in v["slots"].as_array().into_iter().flatten() {
        assert_eq!(
            n("capacity", s),
            n("available", s) + n("held", s) + n("sold", s),
            "{s}"
        );
    }
}

impl Api {
    /// The server listening on `127.0.0.1:port`, signing identities with `jwt_secret`
    /// at `clock`'s time.
    pub fn new(port: u16, jwt_secret: &str, clock: Arc<dyn Clock>) -> Api {
        Api {
            port,
            base: format!("http://127.0.0.1:{port}"),
            ws_base: format!("ws://127.0.0.1:{port}"),
            // No connector limit: WebSockets hold their connection for good.
            client: awc::Client::builder()
                .connector(awc::Connector::new().limit(0))
                .timeout(Duration::from_secs(30))
                .finish(),
            jwt: JwtKey::new(jwt_secret.as_bytes()),
            clock,
        }
    }

    /// The same server's identities, reached at `127.0.0.1:port` (a proxy in front of
    /// it) from the local address `source` (any of 127.0.0.0/8: a distinct client as
    /// far as the proxy can tell).
    pub fn at(&self, port: u16, source: Option<std::net::IpAddr>) -> Api {
        let mut connector = awc::Connector::new().limit(0);
        if let Some(ip) = source {
            connector = connector.local_address(ip);
        }
        Api {
            port,
            base: format!("http://127.0.0.1:{port}"),
            ws_base: format!("ws://127.0.0.1:{port}"),
            client: awc::Client::builder()
                .connector(connector)
                .timeout(Duration::from_secs(30))
                .finish(),
            jwt: self.jwt.clone(),
            clock: Arc::clone(&self.clock),
        }
    }

    /// The same server over HTTPS and wss://, trusting what `tls` trusts.
    pub fn over_tls(&self, tls: Arc<rustls::ClientConfig>) -> Api {
        Api {
            port: self.port,
            base: format!("https://127.0.0.1:{}", self.port),
            ws_base: format!("wss://127.0.0.1:{}", self.port),
            client: awc::Client::builder()
                .connector(awc::Connector::new().limit(0).rustls_0_23(tls))
                .timeout(Duration::from_secs(30))
                .finish(),
            jwt: self.jwt.clone(),
            clock: Arc::clone(&self.clock),
        }
    }

    /// A bearer token for `user`, valid for an hour of the server's time.
    pub fn user_token(&self, user: &str) -> String {
        let now = self.clock.now_ms();
        self.jwt
            .issue(&UserId::parse(user).expect("valid user"), now / 1000 + 3600)
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
        .unwrap_or_else(|e| panic!("{method} {path} reaches {}: {e}", self.base));
        Self::read(&mut res).await
    }

    /// A request with a body of any content type, as a misbehaving client sends it.
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
            .unwrap_or_else(|e| panic!("{method} {path} reaches {}: {e}", self.base));
        Self::read(&mut res).await
    }

    async fn read<S>(res: &mut awc::ClientResponse<S>) -> Resp
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

    /// A GET without identity, its status and body as text (NDJSON, CSV).
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        self.get_text_as(path, None).await
    }

    /// A GET with an optional bearer, its status and body as text.
    pub async fn get_text_as(&self, path: &str, bearer: Option<&str>) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let mut req = self.client.get(url);
        if let Some(b) = bearer {
            req = req.insert_header(("Authorization", format!("Bearer {b}")));
        }
        let mut res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} reaches {}: {e}", self.base));
        let bytes = res.body().limit(64 * 1024 * 1024).await.expect("body");
        (
            res.status().as_u16(),
            String::from_utf8(bytes.to_vec()).expect("text body"),
        )
    }

    /// A request as `user`.
    pub async fn as_user(&self, user: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.request(method, path, Some(&self.user_token(user)), body)
            .await
    }

    /// A request to `/api/admin{path}` with the admin key.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.request(method, &format!("/api/admin{path}"), Some(ADMIN_KEY), body)
            .await
    }

    pub async fn create(&self, body: Value) -> Resp {
        self.admin("POST", "/activities", Some(body)).await
    }

    /// Creates a sale of `stock` units (201 expected); returns its admin view.
    pub async fn create_sale(&self, id: &str, stock: u32, admission: Value) -> Value {
        let r = self
            .create(json!({"id": id, "name": id, "kind": "sale", "stock": stock, "admission": admission}))
            .await;
        assert_eq!(r.status, 201, "create {id}: {}", r.body);
        r.body
    }

    /// The activity's admin view (200 expected).
    pub async fn view(&self, id: &str) -> Value {
        let r = self.admin("GET", &format!("/activities/{id}"), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// The activity's admin view, retried while it answers `unavailable` (an activity
    /// moving between cluster nodes).
    pub async fn view_when_available(&self, id: &str) -> Value {
        let r = self
            .get_when_available(&format!("/api/admin/activities/{id}"))
            .await;
        assert_eq!(r.status, 200, "view {id}: {}", r.body);
        r.body
    }

    /// `GET path` with the admin key, waiting out the contract's `503 unavailable`
    /// (an activity between owners answers so, with `Retry-After`) as a client would;
    /// still unavailable after 10 s fails the test.
    pub async fn get_when_available(&self, path: &str) -> Resp {
        for _ in 0..400 {
            let r = self.request("GET", path, Some(ADMIN_KEY), None).await;
            if r.status != 503 {
                return r;
            }
            assert_eq!(r.code(), "unavailable", "GET {path}: {}", r.body);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("GET {path} stayed unavailable");
    }

    /// The admin view, after asserting its counters add up (see `check_invariant`).
    pub async fn assert_invariant(&self, id: &str) -> Value {
        let v = self.view(id).await;
        check_invariant(&v);
        v
    }

    /// `assert_invariant` on `view_when_available`.
    pub async fn assert_invariant_when_available(&self, id: &str) -> Value {
        let v = self.view_when_available(id).await;
        check_invariant(&v);
        v
    }

    pub async fn purchase(&self, id: &str, user: &str, token: &str, slot: Option<&str>) -> Resp {
        let mut body = json!({"token": token});
        if let Some(s) = slot {
            body["slot_id"] = json!(s);
        }
        self.as_user(
            user,
            "POST",
            &format!("/api/activities/{id}/purchase"),
            Some(body),
        )
        .await
    }

    /// Joins by HTTP (a polling place).
    pub async fn join_http(&self, id: &str, user: &str) -> Resp {
        self.as_user(user, "POST", &format!("/api/activities/{id}/join"), None)
            .await
    }

    /// A GET with extra headers, redirects not followed: its status and response
    /// headers (no body read).
    pub async fn get_headers(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, awc::http::header::HeaderMap) {
        let client = awc::Client::builder().disable_redirects().finish();
        let mut req = client.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} reaches {}: {e}", self.base));
        (res.status().as_u16(), res.headers().clone())
    }

    /// Joins over a WebSocket (resuming `ticket` if given).
    pub async fn ws(&self, id: &str, user: &str, ticket: Option<&str>) -> WsUser {
        let query = ticket.map(|t| format!("&ticket={t}")).unwrap_or_default();
        self.ws_query(id, user, &query).await
    }

    /// Joins over a WebSocket with more query parameters (`&invite=...`).
    pub async fn ws_query(&self, id: &str, user: &str, query: &str) -> WsUser {
        let url = format!(
            "{}/ws/activities/{id}?access_token={}{query}",
            self.ws_base,
            self.user_token(user)
        );
        let (_, framed) = self
            .client
            .ws(url)
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{user} connects to {}: {e}", self.ws_base));
        WsUser {
            framed,
            user: user.to_owned(),
        }
    }
}

/// `user` joins over HTTP and buys; the acknowledged order (a `201`), or the status
/// of the step that was refused.
pub async fn buy(app: &Api, id: &str, user: &str) -> Result<Value, u16> {
    let j = app.join_http(id, user).await;
    if j.status != 201 && j.status != 200 {
        return Err(j.status);
    }
    let token = match j.body["token"].as_str() {
        Some(t) => t.to_owned(),
        None => admitted(app, id, user, &j.body["ticket"]).await?,
    };
    let p = app.purchase(id, user, &token, None).await;
    match p.status {
        201 | 200 => Ok(p.body["order"].clone()),
        s => Err(s),
    }
}

/// Polls a waiting ticket until its token is issued (bounded).
async fn admitted(app: &Api, id: &str, user: &str, ticket: &Value) -> Result<String, u16> {
    let ticket = ticket.as_str().expect("a ticket");
    let path = format!("/api/activities/{id}/tickets/{ticket}");
    for _ in 0..500 {
        let r = app
            .request("GET", &path, Some(&app.user_token(user)), None)
            .await;
        if r.status != 200 {
            return Err(r.status);
        }
        if let Some(t) = r.body["token"].as_str() {
            return Ok(t.to_owned());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{user} was not admitted within 10 s");
}
