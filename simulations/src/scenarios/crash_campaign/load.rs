//! The campaign's mixed load: buyers joining over HTTP or WebSocket, waiting for
//! admission, buying, paying or cancelling; an operator adding stock. Every answer
//! that reaches a client goes into the ledger, acknowledged or in doubt.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::ledger::{lock, OrderRec, Shared, UserRec};
use crate::client::http::HttpClient;
use crate::protocol::ServerFrame;

/// What every client of one run shares.
#[derive(Clone)]
pub struct Load {
    pub http: Arc<HttpClient>,
    pub server: std::net::SocketAddr,
    pub jwt_secret: String,
    pub admin_key: String,
    pub ledger: Shared,
    /// Set when the server is about to be killed: clients stop starting new users.
    pub stop: Arc<AtomicBool>,
    /// Numbers users uniquely over the whole campaign.
    pub next_user: Arc<AtomicU64>,
    /// A buyer's pause between one user and the next (keeps the ledger checkable).
    pub pace: Duration,
    /// `token_ttl_secs` of each activity: an acknowledged token may expire after it.
    pub ttl_secs: std::collections::HashMap<String, u64>,
}

/// How a step ended: `Ok` acknowledged, `Refused` answered with an error, `Doubt`
/// no answer (the server died meanwhile).
enum Step<T> {
    Ok(T),
    Refused,
    Doubt,
}

impl Load {
    fn jwt(&self, user: &str) -> String {
        crate::jwt::mint(
            &self.jwt_secret,
            user,
            (crate::client::now_ms() / 1000.0) as u64 + 3600,
        )
    }

    async fn post(&self, path: &str, bearer: &str, body: &Value) -> Step<(u16, Value)> {
        match self.http.post(path, Some(bearer), body).await {
            Ok(r) if r.status < 300 => Step::Ok((r.status, r.json().unwrap_or(Value::Null))),
            // A 5xx may come from a server going down mid-commit: not a refusal.
            Ok(r) if r.status >= 500 => Step::Doubt,
            Ok(_) => Step::Refused,
            Err(_) => Step::Doubt,
        }
    }

    /// One buyer after another until told to stop; `ws` buyers join over WebSocket.
    pub async fn buyer(self, activity: String, ws: bool, seed: u64) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        while !self.stop.load(Ordering::Acquire) {
            let n = self.next_user.fetch_add(1, Ordering::Relaxed);
            let user = format!("c{n}");
            let pay: f64 = rng.gen();
            let buys = rng.gen_bool(0.8);
            if ws {
                self.ws_user(&activity, &user, buys, pay).await;
            } else {
                self.http_user(&activity, &user, buys, pay).await;
            }
            tokio::time::sleep(self.pace).await;
        }
    }

    async fn http_user(&self, activity: &str, user: &str, buys: bool, pay: f64) {
        let jwt = self.jwt(user);
        let sent_ms = crate::client::now_ms();
        let Step::Ok((_, t)) = self
            .post(
                &format!("/api/activities/{activity}/join"),
                &jwt,
                &json!({}),
            )
            .await
        else {
            return;
        };
        let Some(ticket) = t["ticket"].as_str() else {
            return;
        };
        self.record_place(activity, user, ticket, sent_ms, t["token"].as_str());
        if !buys {
            return;
        }
        let mut token = t["token"].as_str().map(str::to_owned);
        // Polls until admitted (a few seconds at most, or until the kill).
        for _ in 0..100 {
            if token.is_some() || self.stop.load(Ordering::Acquire) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
            let path = format!("/api/activities/{activity}/tickets/{ticket}");
            match self.http.get(&path, Some(&jwt)).await {
                Ok(r) if r.status == 200 => {
                    token = r
                        .json()
                        .and_then(|v| v["token"].as_str().map(str::to_owned));
                    if let Some(tok) = &token {
                        self.record_token(user, tok);
                    }
                }
                _ => return,
            }
        }
        if let Some(tok) = token {
            self.purchase_and_after(activity, user, &tok, pay).await;
        }
    }

    async fn ws_user(&self, activity: &str, user: &str, buys: bool, pay: f64) {
        let path = format!("/ws/activities/{activity}?access_token={}", self.jwt(user));
        let sent_ms = crate::client::now_ms();
        let Ok(mut ws) =
            crate::client::ws::connect(self.server, std::net::Ipv4Addr::LOCALHOST.into(), &path)
                .await
        else {
            return;
        };
        let mut token = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while token.is_none() && !self.stop.load(Ordering::Acquire) {
            let frame = match tokio::time::timeout_at(deadline, ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => ServerFrame::parse(&t),
                Ok(Some(Ok(_))) => continue,
                _ => break,
            };
            match frame {
                Ok(ServerFrame::Queued { ticket, .. }) => {
                    self.record_place(activity, user, &ticket, sent_ms, None);
                    if !buys {
                        break;
                    }
                }
                Ok(ServerFrame::Admitted { token: t, .. }) => {
                    self.record_token(user, &t);
                    token = Some(t);
                }
                _ => {}
            }
        }
        drop(ws);
        if let Some(tok) = token {
            self.purchase_and_after(activity, user, &tok, pay).await;
        }
    }

    fn record_place(
        &self,
        activity: &str,
        user: &str,
        ticket: &str,
        sent_ms: f64,
        token: Option<&str>,
    ) {
        let mut l = lock(&self.ledger);
        l.acked_ops += 1 + u64::from(token.is_some());
        l.users.insert(
            user.to_owned(),
            UserRec {
                activity: activity.to_owned(),
                ticket: ticket.to_owned(),
                sent_ms,
                acked_ms: crate::client::now_ms(),
                token: token.map(str::to_owned),
                token_ms: crate::client::now_ms(),
                ttl_ms: self.ttl_secs.get(activity).copied().unwrap_or(0) as f64 * 1000.0,
                ..UserRec::default()
            },
        );
    }

    fn record_token(&self, user: &str, token: &str) {
        let mut l = lock(&self.ledger);
        l.acked_ops += 1;
        if let Some(u) = l.users.get_mut(user) {
            u.token = Some(token.to_owned());
            u.token_ms = crate::client::now_ms();
        }
    }

    /// Buys with `token`, then pays (`pay` < 0.5), cancels (< 0.7) or leaves the
    /// order pending.
    async fn purchase_and_after(&self, activity: &str, user: &str, token: &str, pay: f64) {
        if !self.purchase(activity, user, token).await {
            return;
        }
        let action = match pay {
            p if p < 0.5 => "pay",
            p if p < 0.7 => "cancel",
            _ => return,
        };
        let Some(id) = lock(&self.ledger)
            .users
            .get(user)
            .and_then(|u| u.order.as_ref())
            .map(|o| o.id.clone())
        else {
            return;
        };
        let status = if action == "pay" { "paid" } else { "cancelled" };
        let step = self
            .post(
                &format!("/api/orders/{id}/{action}"),
                &self.jwt(user),
                &json!({}),
            )
            .await;
        let mut l = lock(&self.ledger);
        let Some(o) = l.users.get_mut(user).and_then(|u| u.order.as_mut()) else {
            return;
        };
        match step {
            Step::Ok(_) => {
                o.status = status.to_owned();
                o.in_doubt = None;
                l.acked_ops += 1;
            }
            Step::Doubt => o.in_doubt = Some(status.to_owned()),
            Step::Refused => {}
        }
    }

    /// A purchase; `true` once its order is acknowledged. `Err` when the server
    /// refused it.
    pub async fn purchase(&self, activity: &str, user: &str, token: &str) -> bool {
        self.purchase_step(activity, user, token).await == Some(true)
    }

    /// `Some(true)` acknowledged, `Some(false)` refused, `None` in doubt.
    async fn purchase_step(&self, activity: &str, user: &str, token: &str) -> Option<bool> {
        let path = format!("/api/activities/{activity}/purchase");
        let step = self
            .post(&path, &self.jwt(user), &json!({ "token": token }))
            .await;
        let mut l = lock(&self.ledger);
        let outcome = match &step {
            Step::Ok(_) => Some(true),
            Step::Refused => Some(false),
            Step::Doubt => None,
        };
        if outcome == Some(true) {
            l.acked_ops += 1;
        }
        let Some(u) = l.users.get_mut(user) else {
            return outcome;
        };
        match step {
            Step::Ok((_, body)) => {
                let field = |k: &str| body["order"][k].as_str().unwrap_or_default().to_owned();
                u.order = Some(OrderRec {
                    id: field("id"),
                    status: field("status"),
                    in_doubt: None,
                });
                u.purchase_in_doubt = false;
            }
            Step::Doubt => u.purchase_in_doubt = true,
            Step::Refused => u.purchase_in_doubt = false,
        }
        outcome
    }

    /// Purchases whose answer never came, retried with the same token: the token was
    /// acknowledged, so it must buy (or return the order it already bought). Returns
    /// a violation for each refusal.
    pub async fn retry_in_doubt(&self) -> Vec<String> {
        let doubtful: Vec<(String, String, String)> = lock(&self.ledger)
            .users
            .iter()
            .filter(|(_, u)| u.purchase_in_doubt && u.order.is_none())
            .filter_map(|(n, u)| Some((n.clone(), u.activity.clone(), u.token.clone()?)))
            .collect();
        let mut refused = Vec::new();
        for (user, activity, token) in doubtful {
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            if self.purchase_step(&activity, &user, &token).await == Some(false) {
                refused.push(format!("{user}: an acknowledged token no longer buys"));
            }
        }
        refused
    }

    /// The operator: adds a few units now and then.
    pub async fn stocker(self, activity: String) {
        while !self.stop.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(150)).await;
            let add = 3;
            lock(&self.ledger)
                .stock
                .entry(activity.clone())
                .or_default()
                .in_doubt += add;
            let step = self
                .post(
                    &format!("/api/admin/activities/{activity}/stock"),
                    &self.admin_key,
                    &json!({ "add": add }),
                )
                .await;
            let mut l = lock(&self.ledger);
            if let Some(s) = l.stock.get_mut(&activity) {
                match step {
                    Step::Ok(_) => {
                        s.in_doubt -= add;
                        s.acked += add;
                    }
                    Step::Refused => s.in_doubt -= add,
                    Step::Doubt => {}
                }
            }
            if matches!(step, Step::Ok(_)) {
                l.acked_ops += 1;
            }
        }
    }
}
