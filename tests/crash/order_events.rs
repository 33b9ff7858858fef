//! An order and its `order.created` event are durable together or not at all, even
//! with purchases in flight: several clients buy concurrently while sluice is killed
//! with `kill -9`; after the restart every delivered `order.created` names an order
//! that exists, and every acknowledged order's event is delivered.

use super::create_sale;
use crate::common::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const SALE: &str = "inflight";
const CLIENTS: usize = 6;

/// `user` joins and buys one unit without panicking when the server is gone: the
/// acknowledged order id, `Ok(None)` if refused, `Err` if the server did not answer.
async fn try_buy(api: &Api, user: &str) -> Result<Option<String>, String> {
    let bearer = format!("Bearer {}", api.user_token(user));
    let post = |path: String, body: Value| {
        let req = api
            .client
            .post(format!("{}{path}", api.base))
            .insert_header(("Authorization", bearer.clone()));
        async move {
            let mut res = req.send_json(&body).await.map_err(|e| e.to_string())?;
            let status = res.status().as_u16();
            let v: Value = res.json().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((status, v))
        }
    };
    let (status, joined) = post(format!("/api/activities/{SALE}/join"), json!({})).await?;
    let Some(token) = joined["token"].as_str().filter(|_| status == 201) else {
        return Ok(None);
    };
    let (status, bought) = post(
        format!("/api/activities/{SALE}/purchase"),
        json!({"token": token}),
    )
    .await?;
    Ok((status == 201)
        .then(|| bought["order"]["id"].as_str().map(str::to_owned))
        .flatten())
}

#[actix_web::test]
async fn no_order_created_event_outlives_its_order_across_kill_9_mid_purchase() {
    let rx = Receiver::start().await;
    let env: Vec<(&str, String)> = [
        ("SLUICE__WEBHOOKS__MIN_BACKOFF_MS", "20"),
        ("SLUICE__WEBHOOKS__MAX_BACKOFF_MS", "200"),
        ("SLUICE__WEBHOOKS__REFRESH_MS", "100"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect();
    let mut app = Process::start("sluice", &env).await;
    let r = app
        .admin(
            "POST",
            "/webhooks",
            Some(json!({"url": rx.url(), "events": ["order.created"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    create_sale(&app, SALE, 100_000).await;

    // Clients buy back to back until the server stops answering.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let api = app.at(app.port, None);
        let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
        clients.push(actix_web::rt::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                match try_buy(&api, &format!("c{c}-{i}")).await {
                    Ok(Some(id)) => acked.lock().expect("lock").push(id),
                    Ok(None) => {}
                    Err(_) => return 1usize,
                }
                i += 1;
            }
            0
        }));
    }
    // Killed once a few dozen orders are acknowledged and delivered, with every
    // client mid-purchase.
    rx.wait_for("some order.created deliveries", |g| g.len() >= 20)
        .await;
    app.kill9();
    stop.store(true, Ordering::Relaxed);
    let mut cut = 0;
    for c in clients {
        cut += c.await.expect("client ran");
    }
    let acked: Vec<String> = acked.lock().expect("lock").clone();
    let before_kill = rx.received().len();
    assert!(acked.len() >= 20, "{} acknowledged", acked.len());

    app.restart().await;
    // A barrier: events go out in commit order, so once this order's event arrives,
    // every event committed before it (before the kill included) has been delivered.
    let marker = buy(&app, SALE, "after-restart")
        .await
        .expect("buys after the restart");
    let marker = marker["id"].as_str().expect("id").to_owned();
    let want: HashSet<String> = acked.iter().cloned().chain([marker.clone()]).collect();
    let got = rx
        .wait_for("every acknowledged order's event and the marker", |g| {
            let have: HashSet<String> = g
                .iter()
                .map(|d| {
                    d.json()["data"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect();
            want.is_subset(&have)
        })
        .await;

    // Every delivered order.created names an order that exists now, as delivered.
    let mut delivered = HashSet::new();
    for d in &got {
        assert_eq!(d.kind(), "order.created");
        let data = &d.json()["data"];
        let id = data["id"].as_str().expect("order id").to_owned();
        if !delivered.insert(id.clone()) {
            continue;
        }
        let now = app
            .request("GET", &format!("/api/orders/{id}"), Some(ADMIN_KEY), None)
            .await;
        assert_eq!(now.status, 200, "delivered {id} exists: {}", now.body);
        assert_eq!(now.body["order"]["user_id"], data["user_id"], "{id}");
    }
    let unacked = delivered.len() - want.len();
    app.assert_invariant(SALE).await;
    eprintln!(
        "{} acknowledged before kill -9, {} deliveries before it, {cut} of {CLIENTS} clients \
         left without an answer, {unacked} orders committed but not acknowledged (delivered and kept)",
        acked.len(),
        before_kill
    );
}
