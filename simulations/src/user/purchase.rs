//! The HTTP side of a user: purchase with the admission token (choosing a
//! slot for appointments), then pay unless told to leave it unpaid.

use std::collections::HashSet;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom as _;
use rand::{Rng as _, SeedableRng as _};
use serde_json::{json, Value};

use super::record::{OrderAck, Outcome, UserRecord};
use super::route::Route;
use super::Ctx;
use crate::client::http::{HttpClient, Response};
use crate::client::now_ms;

/// Purchase attempts per admission (slot retries and transient failures).
const MAX_ATTEMPTS: u32 = 200;
/// Times every slot may be tried before an admitted user gives up.
const MAX_SLOT_ROUNDS: u32 = 3;

/// Buys with `token` through the user's node (the next one when its node
/// does not answer: any node serves the purchase); records the order or why
/// there is none.
pub async fn buy(ctx: &Ctx, rec: &mut UserRecord, jwt: &str, token: &str, route: &mut Route) {
    let mut rng = StdRng::seed_from_u64(
        ctx.behaviour.seed ^ (rec.idx as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    let leave_unpaid = rng.gen_bool(ctx.behaviour.unpaid_fraction.clamp(0.0, 1.0));
    let path = format!("/api/activities/{}/purchase", ctx.activity_id);
    // Slots refused in this round; a full slot can get a unit back (an
    // unpaid order cancelled), so the round starts over when all were tried.
    let mut tried: HashSet<String> = HashSet::new();
    let mut rounds = 0;
    let mut hint: Option<String> = None;
    let mut last_refusal = String::new();
    for _ in 0..MAX_ATTEMPTS {
        if ctx.past_deadline() {
            rec.anomaly("deadline passed before the purchase succeeded");
            rec.outcome = Outcome::Timeout;
            return;
        }
        let slot = if !ctx.behaviour.appointment {
            None
        } else if let Some(h) = hint.take() {
            Some(h)
        } else {
            match pick_slot(ctx, &ctx.node(*route).http, jwt, &tried, &mut rng).await {
                Ok(Some(s)) => Some(s),
                Ok(None) if rounds < MAX_SLOT_ROUNDS => {
                    rounds += 1;
                    tried.clear();
                    continue;
                }
                Ok(None) => {
                    rec.anomaly(format!(
                        "every slot answered 409 sold_out to an admitted user, {MAX_SLOT_ROUNDS} rounds; last: {last_refusal}"
                    ));
                    rec.outcome = Outcome::PurchaseFailed;
                    return;
                }
                Err(e) => {
                    rec.purchase_transport_errors += 1;
                    if rec.purchase_transport_errors == 1 {
                        rec.anomaly(format!("slot view: {e}"));
                    }
                    route.fail_over();
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            }
        };
        let mut body = json!({ "token": token, "quantity": 1 });
        if let Some(s) = &slot {
            body["slot_id"] = json!(s);
        }
        let resp = match ctx.node(*route).http.post(&path, Some(jwt), &body).await {
            Ok(r) => r,
            Err(e) => {
                // The server may be restarting, or this node is gone: the
                // token still buys afterwards, on any node.
                rec.purchase_transport_errors += 1;
                if rec.purchase_transport_errors == 1 {
                    rec.anomaly(format!("purchase transport error: {e}"));
                }
                route.fail_over();
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        match (resp.status, resp.error_code().as_deref()) {
            (200 | 201, _) => match order_of(&resp) {
                Some(order) => {
                    let mut ack = OrderAck {
                        id: str_field(&order, "id"),
                        http_status: resp.status,
                        slot_id: order
                            .get("slot_id")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .or(slot),
                        status: str_field(&order, "status"),
                        left_unpaid: leave_unpaid,
                        acked_ms: now_ms(),
                    };
                    rec.outcome = Outcome::Bought;
                    if ctx.behaviour.pay && !leave_unpaid {
                        pay(ctx, rec, jwt, &mut ack, route).await;
                    }
                    rec.order = Some(ack);
                    return;
                }
                None => {
                    rec.anomaly(format!(
                        "purchase {} without an order: {}",
                        resp.status,
                        resp.body_text()
                    ));
                    rec.outcome = Outcome::PurchaseFailed;
                    return;
                }
            },
            (409, Some("sold_out")) if ctx.behaviour.appointment => {
                rec.purchase_sold_out += 1;
                last_refusal = format!("{:?}: {}", slot, resp.body_text());
                hint = slot_hint(&resp).filter(|h| Some(h) != slot.as_ref() && !tried.contains(h));
                if let Some(s) = slot {
                    tried.insert(s);
                }
            }
            (503 | 429, _) => {
                let wait = resp.retry_after.unwrap_or(0).clamp(0, 5);
                tokio::time::sleep(Duration::from_millis(250 + wait * 1000)).await;
            }
            (status, code) => {
                if status == 409 && code == Some("sold_out") {
                    rec.purchase_sold_out += 1;
                }
                rec.anomaly(format!("purchase -> {status} {}", resp.body_text()));
                rec.outcome = Outcome::PurchaseFailed;
                return;
            }
        }
    }
    rec.anomaly("purchase attempts exhausted");
    rec.outcome = Outcome::PurchaseFailed;
}

/// `POST /api/orders/{id}/pay`, retried (on the next node) while the server
/// is unreachable.
async fn pay(ctx: &Ctx, rec: &mut UserRecord, jwt: &str, ack: &mut OrderAck, route: &mut Route) {
    let path = format!("/api/orders/{}/pay", ack.id);
    for _ in 0..MAX_ATTEMPTS {
        if ctx.past_deadline() {
            rec.anomaly("deadline passed before payment");
            return;
        }
        match ctx
            .node(*route)
            .http
            .post(&path, Some(jwt), &json!({}))
            .await
        {
            Ok(r) if r.status == 200 => {
                ack.status = order_of(&r)
                    .map(|o| str_field(&o, "status"))
                    .unwrap_or_default();
                if ack.status != "paid" {
                    rec.anomaly(format!("pay returned status {:?}", ack.status));
                }
                return;
            }
            Ok(r) if r.status == 503 || r.status == 429 => {}
            Ok(r) => {
                rec.anomaly(format!("pay -> {} {}", r.status, r.body_text()));
                return;
            }
            Err(_) => {
                rec.purchase_transport_errors += 1;
                route.fail_over();
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A random slot that has units left and that we have not tried; falls back
/// to any untried slot when the view shows none left (our own hold may be
/// counted there). `Ok(None)`: every slot was tried.
async fn pick_slot(
    ctx: &Ctx,
    http: &HttpClient,
    jwt: &str,
    tried: &HashSet<String>,
    rng: &mut StdRng,
) -> Result<Option<String>, String> {
    let view = crate::admin::public_view(http, &ctx.activity_id, Some(jwt)).await?;
    let open: Vec<&str> = view
        .slots
        .iter()
        .filter(|s| s.available > 0 && !tried.contains(&s.id))
        .map(|s| s.id.as_str())
        .collect();
    if let Some(s) = open.choose(rng) {
        return Ok(Some((*s).to_string()));
    }
    let untried: Vec<&str> = view
        .slots
        .iter()
        .filter(|s| !tried.contains(&s.id))
        .map(|s| s.id.as_str())
        .collect();
    Ok(untried.choose(rng).map(|s| (*s).to_string()))
}

/// The first slot a `409 sold_out` message names as having units left
/// ("... slots with units left: d3-1330 (1), ..."). Only a hint: the
/// contract does not fix the message text.
fn slot_hint(resp: &Response) -> Option<String> {
    let json = resp.json()?;
    let message = json.get("error")?.get("message")?.as_str()?;
    let list = message.split("units left:").nth(1)?;
    let first = list.split(',').next()?.split_whitespace().next()?;
    let id = first.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || c == '-'));
    (!id.is_empty()).then(|| id.to_string())
}

fn order_of(resp: &Response) -> Option<Value> {
    resp.json()?.get("order").cloned()
}

fn str_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}
