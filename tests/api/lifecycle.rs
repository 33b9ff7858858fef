//! Time-driven behaviour on a manual clock: token expiry, payment timeouts, scheduled
//! openings with a shuffled pre-queue, appointments, pause/resume, closing.

use crate::common::*;
use serde_json::json;
use sluice::domain::clock::{rfc3339, Clock};

fn now_ms(app: &TestApp) -> u64 {
    app.clock.as_ref().expect("manual clock").now_ms()
}

#[actix_web::test]
async fn an_unspent_token_expires_gets_410_and_the_next_user_is_admitted() {
    let app = spawn_app_manual_clock().await;
    app.create_sale("exp", 1, json!({"token_ttl_secs": 30, "max_active": 1}))
        .await;
    let mut a = app.ws("exp", "a", None).await;
    let token = a.until("admitted").await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let mut b = app.ws("exp", "b", None).await;
    assert_eq!(b.until("queued").await["position"], 1);
    app.advance(30_001);
    let e = a.until("error").await;
    assert_eq!(e["code"], "token_expired");
    let admitted = b.until("admitted").await;
    assert!(admitted["expires_in_secs"]
        .as_u64()
        .is_some_and(|s| s <= 30));
    app.purchase("exp", "a", &token, None)
        .await
        .expect_error(410, "token_expired");
    let r = app
        .purchase("exp", "b", admitted["token"].as_str().expect("t"), None)
        .await;
    assert_eq!(r.status, 201);
    app.assert_invariant("exp").await;
}

#[actix_web::test]
async fn orders_are_paid_or_cancelled_and_unpaid_ones_time_out_to_the_next_user() {
    let app = spawn_app_manual_clock().await;
    let r = app
        .create(
            json!({"id":"pay","name":"Pay","kind":"sale","stock":2,"price_cents":500,
                       "payment_timeout_secs":60,"admission":{"wait_for_returns":true}}),
        )
        .await;
    assert_eq!(r.status, 201);
    let mut buyers = Vec::new();
    for u in ["a", "b"] {
        let mut s = app.ws("pay", u, None).await;
        let t = s.until("admitted").await["token"]
            .as_str()
            .expect("t")
            .to_owned();
        let o = app.purchase("pay", u, &t, None).await;
        assert_eq!(
            (o.status, o.body["order"]["amount_cents"].as_u64()),
            (201, Some(500))
        );
        buyers.push(o.body["order"]["id"].as_str().expect("id").to_owned());
    }
    let mut c = app.ws("pay", "c", None).await;
    let q = c.until("queued").await;
    assert_eq!(q["position"], 1);
    // a pays (idempotent); b never pays.
    let pa = |who: &str| app.user_token(who);
    for _ in 0..2 {
        let r = app
            .request(
                "POST",
                &format!("/api/orders/{}/pay", buyers[0]),
                Some(&pa("a")),
                None,
            )
            .await;
        assert_eq!(
            (r.status, r.body["order"]["status"].as_str()),
            (200, Some("paid"))
        );
    }
    app.request(
        "POST",
        &format!("/api/orders/{}/cancel", buyers[0]),
        Some(&pa("a")),
        None,
    )
    .await
    .expect_error(409, "conflict");
    app.request(
        "POST",
        &format!("/api/orders/{}/pay", buyers[1]),
        Some(&pa("a")),
        None,
    )
    .await
    .expect_error(403, "forbidden");
    // Nothing is available, but b's pending order may still give its unit back: c
    // keeps its place, and its next progress frame says what it waits for.
    app.advance(5_000);
    let p = c.until("position").await;
    assert_eq!(
        (p["position"].as_u64(), p["waiting_for_returns"].as_bool()),
        (Some(1), Some(true)),
        "{p}"
    );
    app.advance(55_001);
    let admitted = c.until("admitted").await;
    let late = app
        .request(
            "POST",
            &format!("/api/orders/{}/pay", buyers[1]),
            Some(&pa("b")),
            None,
        )
        .await;
    late.expect_error(409, "conflict");
    let order_b = app
        .request(
            "GET",
            &format!("/api/orders/{}", buyers[1]),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(order_b.body["order"]["status"], "cancelled");
    let r = app
        .purchase("pay", "c", admitted["token"].as_str().expect("t"), None)
        .await;
    assert_eq!(r.status, 201);
    let v = app.assert_invariant("pay").await;
    assert_eq!(
        (
            v["sold"].as_u64(),
            v["paid"].as_u64(),
            v["cancelled"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
}

#[actix_web::test]
async fn an_appointment_release_with_a_shuffled_prequeue_and_slot_choice() {
    let app = spawn_app_manual_clock().await;
    let opens = now_ms(&app) + 3_000;
    let r = app
        .create(json!({"id":"clinic","name":"Cardiology","kind":"appointment","opens_at": rfc3339(opens),
            "slots":[{"id":"d1-0900","label":"Dr. Li 09:00-09:30","capacity":1},
                     {"id":"d1-0930","label":"Dr. Li 09:30-10:00","capacity":1}],
            "admission":{"rate_per_sec":100,"max_active":2}}))
        .await;
    assert_eq!(
        (r.status, r.body["phase"].as_str()),
        (201, Some("scheduled"))
    );
    let mut users = Vec::new();
    for i in 0..20 {
        let mut s = app.ws("clinic", &format!("p{i:02}"), None).await;
        let pre = s.next_json().await;
        assert_eq!(pre["type"], "prequeue", "{pre}");
        users.push(s);
    }
    assert_eq!(app.view("clinic").await["waiting"], 20);
    app.advance(3_000);
    let mut positions = Vec::new();
    for s in users.iter_mut() {
        positions.push(
            s.until("queued").await["position"]
                .as_u64()
                .expect("position"),
        );
    }
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=20).collect::<Vec<_>>(), "every place distinct");
    assert_ne!(
        positions, sorted,
        "pre-queue order is shuffled, not join order"
    );
    // The first two in the shuffled order are admitted; both want the same slot.
    let first = positions.iter().position(|&p| p == 1).expect("p1");
    let second = positions.iter().position(|&p| p == 2).expect("p2");
    let t1 = users[first].until("admitted").await["token"]
        .as_str()
        .expect("t")
        .to_owned();
    let t2 = users[second].until("admitted").await["token"]
        .as_str()
        .expect("t")
        .to_owned();
    let u1 = users[first].user.clone();
    let u2 = users[second].user.clone();
    assert_eq!(
        app.purchase("clinic", &u1, &t1, Some("d1-0900"))
            .await
            .status,
        201
    );
    let full = app.purchase("clinic", &u2, &t2, Some("d1-0900")).await;
    full.expect_error(409, "sold_out");
    assert!(full.body["error"]["message"]
        .as_str()
        .expect("m")
        .contains("d1-0930"));
    let r = app.purchase("clinic", &u2, &t2, Some("d1-0930")).await;
    assert_eq!(
        (r.status, r.body["order"]["slot_id"].as_str()),
        (201, Some("d1-0930"))
    );
    app.assert_invariant("clinic").await;
    // Everyone else hears sold out; an operator adds a slot and new joins get in.
    let other = positions.iter().position(|&p| p == 3).expect("p3");
    assert_eq!(users[other].until("sold_out").await["type"], "sold_out");
    let audit = app.admin("GET", "/activities/clinic/shuffle", None).await;
    assert_eq!(audit.body["order"].as_array().map(Vec::len), Some(20));
    let r = app
        .admin(
            "POST",
            "/activities/clinic/slots",
            Some(json!({"slots":[{"id":"d1-1000","label":"Dr. Li 10:00","capacity":1}]})),
        )
        .await;
    assert_eq!((r.status, r.body["available"].as_u64()), (200, Some(1)));
    let mut late = app.ws("clinic", "late", None).await;
    let t = late.until("admitted").await["token"]
        .as_str()
        .expect("t")
        .to_owned();
    assert_eq!(
        app.purchase("clinic", "late", &t, Some("d1-1000"))
            .await
            .status,
        201
    );
    app.assert_invariant("clinic").await;
}

#[actix_web::test]
async fn pause_resume_close_and_live_admission_changes() {
    let app = spawn_app_manual_clock().await;
    app.create_sale("op", 10, json!({"max_active": 1})).await;
    let mut a = app.ws("op", "a", None).await;
    a.until("admitted").await;
    let mut b = app.ws("op", "b", None).await;
    b.until("queued").await;
    let r = app.admin("POST", "/activities/op/pause", None).await;
    assert_eq!(r.body["phase"], "paused");
    assert_eq!(b.next_json().await["type"], "paused");
    let r = app
        .admin(
            "PATCH",
            "/activities/op/admission",
            Some(json!({"max_active": 5})),
        )
        .await;
    assert_eq!(r.body["admission"]["max_active"], 5);
    app.admin("POST", "/activities/op/resume", None).await;
    assert_eq!(b.until("resumed").await["type"], "resumed");
    b.until("admitted").await;
    app.admin(
        "PATCH",
        "/activities/op/admission",
        Some(json!({"rate_per_sec": 0})),
    )
    .await
    .expect_error(400, "invalid_request");
    let mut c = app.ws("op", "c", None).await;
    c.until("admitted").await;
    let r = app.admin("POST", "/activities/op/close", None).await;
    assert_eq!(r.body["phase"], "closed");
    assert_eq!(c.until("closed").await["type"], "closed");
    app.join_http("op", "d").await.expect_error(409, "not_open");
    app.admin("POST", "/activities/op/stock", Some(json!({"add": 1})))
        .await
        .expect_error(409, "conflict");
}

#[actix_web::test]
async fn closes_at_ends_the_activity_and_outstanding_tokens_stop_working() {
    let app = spawn_app_manual_clock().await;
    let closes = now_ms(&app) + 10_000;
    app.create(
        json!({"id":"end","name":"End","kind":"sale","stock":5,"closes_at": rfc3339(closes),
                      "admission":{"max_active":1}}),
    )
    .await;
    let mut a = app.ws("end", "a", None).await;
    let t = a.until("admitted").await["token"]
        .as_str()
        .expect("t")
        .to_owned();
    let mut b = app.ws("end", "b", None).await;
    b.until("queued").await;
    app.advance(10_000);
    assert_eq!(b.until("closed").await["type"], "closed");
    app.purchase("end", "a", &t, None)
        .await
        .expect_error(409, "not_open");
    let v = app.assert_invariant("end").await;
    assert_eq!(
        (v["phase"].as_str(), v["held"].as_u64()),
        (Some("closed"), Some(0))
    );
}
