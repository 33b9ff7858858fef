//! Webhook delivery survives a receiver outage and `kill -9` of sluice: every order
//! event the server acknowledged arrives at least once, exactly once by `webhook-id`,
//! in commit order.

use super::create_sale;
use crate::common::*;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, HashSet};

const SALE: &str = "hooked";

fn quick() -> Vec<(&'static str, String)> {
    [
        ("SLUICE__WEBHOOKS__MIN_BACKOFF_MS", "20"),
        ("SLUICE__WEBHOOKS__MAX_BACKOFF_MS", "200"),
        ("SLUICE__WEBHOOKS__TIMEOUT_MS", "1000"),
        ("SLUICE__WEBHOOKS__REFRESH_MS", "100"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

/// What the server acknowledged: (order id, event type).
type Expected = BTreeSet<(String, &'static str)>;

/// Buyers `from..to` buy; every third pays, every fifth cancels; each acknowledged
/// step is expected as an event.
async fn sell(app: &Api, from: usize, to: usize, expected: &mut Expected) {
    for i in from..to {
        let user = format!("buyer-{i}");
        let order = buy(app, SALE, &user).await.expect("buys");
        let id = order["id"].as_str().expect("order id").to_owned();
        expected.insert((id.clone(), "order.created"));
        let action = match i {
            _ if i % 3 == 0 => ("pay", "order.paid"),
            _ if i % 5 == 0 => ("cancel", "order.cancelled"),
            _ => continue,
        };
        let r = app
            .as_user(
                &user,
                "POST",
                &format!("/api/orders/{id}/{}", action.0),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        expected.insert((id, action.1));
    }
}

/// (order id, type) of a delivery.
fn what(d: &Delivery) -> (String, String) {
    let v: Value = d.json();
    (
        v["data"]["id"].as_str().unwrap_or_default().to_owned(),
        d.kind(),
    )
}

fn seq_of(webhook_id: &str) -> u64 {
    let n = webhook_id.rsplit('_').next().expect("msg_{activity}_{seq}");
    n.parse().expect("a number")
}

#[actix_web::test]
async fn order_events_survive_a_receiver_outage_and_kill_9() {
    let mut rx = Receiver::start().await;
    let mut app = Process::start("sluice", &quick()).await;
    let r = app
        .admin(
            "POST",
            "/webhooks",
            Some(json!({"url": rx.url(), "events": ["order.created", "order.paid", "order.cancelled"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    create_sale(&app, SALE, 100).await;
    let mut expected = Expected::new();

    sell(&app, 0, 15, &mut expected).await;
    rx.down().await;
    // Selling goes on while the receiver is down; then sluice dies mid-backlog.
    sell(&app, 15, 30, &mut expected).await;
    app.kill9();
    app.restart().await;
    sell(&app, 30, 45, &mut expected).await;
    rx.up();

    let want: HashSet<(String, String)> = expected
        .iter()
        .map(|(id, t)| (id.clone(), (*t).to_owned()))
        .collect();
    let got = rx
        .wait_for("every acknowledged order event", |g| {
            let have: HashSet<_> = g.iter().map(what).collect();
            want.is_subset(&have)
        })
        .await;

    // De-duplicated by webhook-id: each acknowledged event exactly once.
    let mut by_id: HashMap<&str, (String, String)> = HashMap::new();
    let mut first_seen = Vec::new();
    for d in &got {
        let w = what(d);
        match by_id.get(d.id.as_str()) {
            Some(prev) => assert_eq!(prev, &w, "one webhook-id, one event"),
            None => {
                by_id.insert(&d.id, w);
                first_seen.push(d);
            }
        }
    }
    let distinct: BTreeSet<(String, String)> = by_id.values().cloned().collect();
    assert_eq!(
        distinct.len(),
        by_id.len(),
        "no event under two webhook-ids"
    );
    assert_eq!(
        distinct,
        want.into_iter().collect(),
        "nothing missing, nothing extra"
    );
    // In commit order: first arrivals follow the activity's event sequence, and each
    // order's versions rise.
    let seqs: Vec<u64> = first_seen.iter().map(|d| seq_of(&d.id)).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "commit order: {seqs:?}"
    );
    let mut version: HashMap<String, u64> = HashMap::new();
    for d in &first_seen {
        let v = d.json();
        let id = v["data"]["id"].as_str().expect("id").to_owned();
        let n = v["data"]["version"].as_u64().expect("version");
        let before = version.insert(id.clone(), n).unwrap_or(0);
        assert!(n > before, "{id}: version {n} after {before}");
    }
}
