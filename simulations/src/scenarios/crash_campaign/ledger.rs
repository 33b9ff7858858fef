//! The campaign's independent checker: what the server acknowledged, recorded from
//! the client side, and the checks run against a restarted server.
//!
//! An operation is *acknowledged* when its success reached the client; one whose
//! answer never came (the server died) is *in doubt*: it may or may not have taken
//! effect, and either is correct. Nothing else may differ.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::Semaphore;

use crate::client::http::HttpClient;

/// One user's history in one activity (each user joins once, in one activity).
#[derive(Debug, Clone, Default)]
pub struct UserRec {
    pub activity: String,
    pub ticket: String,
    /// Unix ms when the join was sent, and when its acknowledgement arrived.
    pub sent_ms: f64,
    pub acked_ms: f64,
    pub token: Option<String>,
    /// When the token was acknowledged, and how long tokens of the activity live.
    pub token_ms: f64,
    pub ttl_ms: f64,
    /// A purchase whose answer never came, with this token.
    pub purchase_in_doubt: bool,
    pub order: Option<OrderRec>,
}

#[derive(Debug, Clone)]
pub struct OrderRec {
    pub id: String,
    /// The last acknowledged status.
    pub status: String,
    /// A status change whose answer never came.
    pub in_doubt: Option<String>,
}

/// Acknowledged stock additions of one activity.
#[derive(Debug, Clone, Copy, Default)]
pub struct StockRec {
    pub initial: i64,
    pub acked: i64,
    pub in_doubt: i64,
}

#[derive(Default)]
pub struct Ledger {
    pub users: HashMap<String, UserRec>,
    pub stock: HashMap<String, StockRec>,
    /// Acknowledged operations recorded so far.
    pub acked_ops: u64,
}

pub type Shared = Arc<Mutex<Ledger>>;

pub fn lock(l: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

/// What one check found.
#[derive(Debug, Default)]
pub struct Verdict {
    pub checked: u64,
    pub violations: Vec<String>,
}

impl Verdict {
    fn violation(&mut self, v: String) {
        self.violations.push(v);
    }
}

/// Reads back everything the ledger holds and compares: every acknowledged ticket,
/// token, order and status is there (or moved on only as an in-doubt call could
/// have), no order exists that was neither acknowledged nor in doubt, each activity's
/// stock adds up, and the waiting line keeps acknowledgement order.
pub async fn verify(
    http: &Arc<HttpClient>,
    admin_key: &str,
    jwt_secret: &str,
    ledger: &Shared,
) -> Verdict {
    let (users, stock, acked_ops) = {
        let l = lock(ledger);
        (l.users.clone(), l.stock.clone(), l.acked_ops)
    };
    let mut verdict = Verdict {
        checked: acked_ops,
        ..Verdict::default()
    };
    // Ticks keep admitting while the users are read one by one, so positions are
    // read at different instants: FIFO allows for the admissions meanwhile.
    let mut admitted_before = HashMap::new();
    for id in stock.keys() {
        admitted_before.insert(id.clone(), admitted_total(http, admin_key, id).await);
    }
    let limit = Arc::new(Semaphore::new(48));
    let mut tasks = tokio::task::JoinSet::new();
    for (user, rec) in users {
        let (http, limit) = (http.clone(), limit.clone());
        let jwt = crate::jwt::mint(
            jwt_secret,
            &user,
            (crate::client::now_ms() / 1000.0) as u64 + 3600,
        );
        tasks.spawn(async move {
            let _permit = limit.acquire().await;
            check_user(&http, &jwt, &user, &rec).await
        });
    }
    let mut orders_seen: HashMap<String, i64> = HashMap::new();
    let mut waiting: HashMap<String, Vec<(u64, f64, f64, String)>> = HashMap::new();
    while let Some(res) = tasks.join_next().await {
        match res {
            Ok(c) => {
                verdict.violations.extend(c.violations);
                *orders_seen.entry(c.activity.clone()).or_default() += c.orders;
                if let Some(w) = c.waiting {
                    waiting.entry(c.activity).or_default().push(w);
                }
            }
            Err(e) => verdict.violation(format!("checker task failed: {e}")),
        }
    }
    for (id, s) in stock {
        let drift = admitted_total(http, admin_key, &id).await
            - admitted_before.get(&id).copied().unwrap_or(0);
        let waiting = waiting.remove(&id).unwrap_or_default();
        fifo(&id, waiting, drift.max(0) as u64, &mut verdict);
        check_activity(
            http,
            admin_key,
            &id,
            s,
            orders_seen.get(&id).copied().unwrap_or(0),
            &mut verdict,
        )
        .await;
    }
    verdict
}

/// Tokens an activity issued so far (0 if the view cannot be read: the check of
/// the activity reports that).
async fn admitted_total(http: &HttpClient, admin_key: &str, id: &str) -> i64 {
    match get_json(http, &format!("/api/admin/activities/{id}"), admin_key).await {
        Ok((200, v)) => v["admitted_total"].as_i64().unwrap_or(0),
        _ => 0,
    }
}

struct UserCheck {
    activity: String,
    violations: Vec<String>,
    /// Orders the server lists for this user in its activity.
    orders: i64,
    /// (position, sent, acked, user) while waiting.
    waiting: Option<(u64, f64, f64, String)>,
}

async fn get_json(http: &HttpClient, path: &str, bearer: &str) -> Result<(u16, Value), String> {
    let r = http
        .get(path, Some(bearer))
        .await
        .map_err(|e| format!("GET {path}: {e}"))?;
    Ok((r.status, r.json().unwrap_or(Value::Null)))
}

async fn check_user(http: &HttpClient, jwt: &str, user: &str, rec: &UserRec) -> UserCheck {
    let mut c = UserCheck {
        activity: rec.activity.clone(),
        violations: Vec::new(),
        orders: 0,
        waiting: None,
    };
    let mut bad = |v: String| c.violations.push(format!("{user}: {v}"));
    // With 1 s of slack for the clocks of client and server.
    let may_expire = |since: f64| crate::client::now_ms() - since >= rec.ttl_ms - 1000.0;
    let path = format!("/api/activities/{}/tickets/{}", rec.activity, rec.ticket);
    match get_json(http, &path, jwt).await {
        Ok((200, t)) => {
            let status = t["status"].as_str().unwrap_or("");
            let order_id = t["order_id"].as_str();
            match (&rec.order, &rec.token) {
                (None, _) if status == "expired" && may_expire(rec.token_ms) => {}
                (Some(o), _) if order_id != Some(o.id.as_str()) => bad(format!(
                    "acknowledged order {} but the ticket says {t}",
                    o.id
                )),
                (None, Some(tok))
                    if status != "admitted"
                        || (t["token"].as_str() != Some(tok)
                            && !(rec.purchase_in_doubt && order_id.is_some())) =>
                {
                    bad(format!("acknowledged token lost: ticket {t}"))
                }
                (None, None) if status == "waiting" => {
                    let pos = t["position"].as_u64().unwrap_or(0);
                    c.waiting = Some((pos, rec.sent_ms, rec.acked_ms, user.to_owned()));
                }
                (None, None) if status != "admitted" => {
                    bad(format!("acknowledged place lost: ticket {t}"))
                }
                _ => {}
            }
        }
        // An ended place other than a purchase is not kept across a restart: once its
        // token may have expired, the ticket may be gone.
        Ok((404, _))
            if rec.order.is_none()
                && !rec.purchase_in_doubt
                && may_expire(rec.token_ms.max(rec.acked_ms)) => {}
        Ok((s, body)) => bad(format!("acknowledged ticket {}: {s} {body}", rec.ticket)),
        Err(e) => bad(e),
    }
    if rec.order.is_none() && !rec.purchase_in_doubt {
        return c;
    }
    let listed = match get_json(http, "/api/orders", jwt).await {
        Ok((200, body)) => body["orders"].as_array().cloned().unwrap_or_default(),
        Ok((s, body)) => {
            c.violations
                .push(format!("{user}: GET /api/orders {s} {body}"));
            return c;
        }
        Err(e) => {
            c.violations.push(format!("{user}: {e}"));
            return c;
        }
    };
    let ours: Vec<&Value> = listed
        .iter()
        .filter(|o| o["activity_id"].as_str() == Some(rec.activity.as_str()))
        .collect();
    c.orders = ours.len() as i64;
    if ours.len() > 1 {
        c.violations
            .push(format!("{user}: {} orders for one token", ours.len()));
    }
    match (&rec.order, ours.first()) {
        (Some(o), None) => c
            .violations
            .push(format!("{user}: acknowledged order {} is missing", o.id)),
        (Some(o), Some(got)) => {
            let status = got["status"].as_str().unwrap_or("");
            if got["id"].as_str() != Some(o.id.as_str()) {
                c.violations.push(format!(
                    "{user}: order {} listed instead of {}",
                    got["id"], o.id
                ));
            } else if status != o.status && Some(status) != o.in_doubt.as_deref() {
                c.violations.push(format!(
                    "{user}: order {} is {status}, acknowledged {}",
                    o.id, o.status
                ));
            }
        }
        // An order nobody was told about: only from a purchase whose answer never came.
        (None, Some(got)) if !rec.purchase_in_doubt => c.violations.push(format!(
            "{user}: order {} was never acknowledged",
            got["id"]
        )),
        (None, _) => {}
    }
    c
}

async fn check_activity(
    http: &Arc<HttpClient>,
    admin_key: &str,
    id: &str,
    s: StockRec,
    orders: i64,
    verdict: &mut Verdict,
) {
    let v = match get_json(http, &format!("/api/admin/activities/{id}"), admin_key).await {
        Ok((200, v)) => v,
        Ok((st, body)) => return verdict.violation(format!("{id}: admin view {st} {body}")),
        Err(e) => return verdict.violation(e),
    };
    let n = |k: &str| v[k].as_i64().unwrap_or(-1);
    if n("capacity") != n("available") + n("held") + n("sold")
        || n("available") < 0
        || n("held") < 0
    {
        verdict.violation(format!("{id}: capacity != available + held + sold: {v}"));
    }
    let added = n("capacity") - s.initial;
    if added < s.acked || added > s.acked + s.in_doubt {
        verdict.violation(format!(
            "{id}: stock added {added}, acknowledged {} (+{} in doubt)",
            s.acked, s.in_doubt
        ));
    }
    // Every order is one unit, pending, paid or cancelled; the users checked are
    // all who ever tried to buy, so the server has no other orders.
    if n("sold") + n("cancelled") != orders {
        verdict.violation(format!(
            "{id}: sold + cancelled = {} but the buyers list {orders} orders",
            n("sold") + n("cancelled")
        ));
    }
}

/// FIFO: a place acknowledged before another was even asked for is ahead of it.
/// Positions were read at different instants, while `drift` admissions took
/// places off the head, so a place may read up to `drift` lower than it was when
/// another was read: only an inversion larger than that is a violation.
fn fifo(id: &str, mut waiting: Vec<(u64, f64, f64, String)>, drift: u64, verdict: &mut Verdict) {
    waiting.sort_by_key(|w| w.0);
    let mut ahead = 0;
    let mut earliest_sent_ahead = f64::INFINITY;
    let mut who = String::new();
    for i in 0..waiting.len() {
        let (pos, _, acked, ref user) = waiting[i];
        // Everyone surely ahead of this place, even allowing for the drift.
        while ahead < i && waiting[ahead].0 + drift < pos {
            if waiting[ahead].1 < earliest_sent_ahead {
                earliest_sent_ahead = waiting[ahead].1;
                who = waiting[ahead].3.clone();
            }
            ahead += 1;
        }
        if !who.is_empty() && acked < earliest_sent_ahead {
            verdict.violation(format!(
                "{id}: {user} (position {pos}) was acknowledged before {who} (further ahead by more than {drift} admissions) asked"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (position, sent, acked, user)
    fn place(pos: u64, sent: f64, acked: f64, user: &str) -> (u64, f64, f64, String) {
        (pos, sent, acked, user.to_owned())
    }

    fn violations(waiting: Vec<(u64, f64, f64, String)>, drift: u64) -> usize {
        let mut v = Verdict::default();
        fifo("a", waiting, drift, &mut v);
        v.violations.len()
    }

    #[test]
    fn fifo_reports_an_inversion_the_drift_cannot_explain() {
        // `early` was acknowledged (t=2) before `late` asked (t=5), yet is behind.
        let line = vec![place(1, 5.0, 6.0, "late"), place(4, 1.0, 2.0, "early")];
        assert_eq!(violations(line.clone(), 0), 1);
        assert_eq!(violations(line.clone(), 2), 1);
        assert_eq!(
            violations(line, 3),
            0,
            "3 admissions during the reads explain it"
        );
    }

    #[test]
    fn fifo_allows_any_order_between_overlapping_joins() {
        // `b` asked (t=1.5) before `a`'s acknowledgement (t=2): either order is fair.
        let line = vec![place(1, 1.5, 3.0, "b"), place(2, 1.0, 2.0, "a")];
        assert_eq!(violations(line, 0), 0);
    }
}
