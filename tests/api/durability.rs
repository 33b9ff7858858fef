//! Durability: a graceful restart and a `kill -9` of the real binary both keep every
//! acknowledged order, ticket place and unexpired token.

use crate::common::*;
use serde_json::{json, Value};

#[actix_web::test]
async fn a_restart_on_the_same_store_resumes_everything() {
    let app = spawn_app().await;
    app.create_sale("keep", 3, json!({"max_active": 2, "token_ttl_secs": 600}))
        .await;
    let mut a = app.ws("keep", "a", None).await;
    let ta = a.until("admitted").await["token"]
        .as_str()
        .expect("t")
        .to_owned();
    let order = app.purchase("keep", "a", &ta, None).await.body["order"].clone();
    let mut b = app.ws("keep", "b", None).await;
    let tb = b.until("admitted").await["token"]
        .as_str()
        .expect("t")
        .to_owned();
    let mut c = app.ws("keep", "c", None).await;
    c.until("admitted").await;
    let mut d = app.ws("keep", "d", None).await;
    let qd = d.until("queued").await;
    app.stop().await;
    assert_eq!(d.until("restarting").await["type"], "restarting");

    let again = app.reopen().await;
    let got = again
        .request(
            "GET",
            &format!("/api/orders/{}", order["id"].as_str().expect("id")),
            Some(&again.user_token("a")),
            None,
        )
        .await;
    assert_eq!(got.body["order"], order);
    let mut d2 = again.ws("keep", "d", qd["ticket"].as_str()).await;
    let q = d2.until("queued").await;
    assert_eq!(
        (q["ticket"].clone(), q["position"].as_u64()),
        (qd["ticket"].clone(), Some(1))
    );
    assert_eq!(
        again.purchase("keep", "b", &tb, None).await.status,
        201,
        "pre-restart token buys"
    );
    again.assert_invariant("keep").await;
}

#[actix_web::test]
async fn kill_9_at_several_points_loses_nothing_acknowledged() {
    let mut app = Process::start("sluice", &[]).await;
    let r = app
        .create(json!({"id":"crash","name":"Crash","kind":"sale","stock":40,
                       "admission":{"max_active":10,"token_ttl_secs":600,"rate_per_sec":1000}}))
        .await;
    assert_eq!(r.status, 201);

    let mut orders: Vec<Value> = Vec::new();
    let mut tokens: Vec<(String, String)> = Vec::new();
    let mut tickets: Vec<(String, String, u64)> = Vec::new();
    for round in 0..3 {
        // Joins, admissions and purchases, then kill -9 right after.
        for i in 0..15 {
            let user = format!("r{round}u{i}");
            let r = app.join_http("crash", &user).await;
            assert!(r.status == 201 || r.status == 200, "{}", r.body);
            let ticket = r.body["ticket"].as_str().expect("ticket").to_owned();
            match r.body["status"].as_str() {
                Some("admitted") => {
                    let token = r.body["token"].as_str().expect("token").to_owned();
                    if i % 2 == 0 {
                        let o = app.purchase("crash", &user, &token, None).await;
                        assert_eq!(o.status, 201, "{}", o.body);
                        orders.push(o.body["order"].clone());
                    } else {
                        tokens.push((user, token));
                    }
                }
                Some("waiting") => {
                    tickets.push((user, ticket, r.body["position"].as_u64().expect("position")))
                }
                other => panic!("status {other:?}"),
            }
        }
        app.kill9();
        app.restart().await;
        // Every acknowledged order exists.
        for o in &orders {
            let id = o["id"].as_str().expect("id");
            let got = app
                .request("GET", &format!("/api/orders/{id}"), Some(ADMIN_KEY), None)
                .await;
            assert_eq!(got.body["order"]["id"], o["id"], "order {id} after kill -9");
        }
        app.assert_invariant("crash").await;
    }
    // Every acknowledged ticket still holds a place (positions only move forward).
    for (user, ticket, pos) in &tickets {
        let r = app
            .request(
                "GET",
                &format!("/api/activities/crash/tickets/{ticket}"),
                Some(&app.user_token(user)),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let status = r.body["status"].as_str().expect("status");
        assert!(
            status == "waiting" || status == "admitted",
            "{user}: {status}"
        );
        if status == "waiting" {
            assert!(r.body["position"].as_u64().expect("p") <= *pos);
        }
    }
    // Every unexpired pre-crash token buys exactly once.
    for (user, token) in &tokens {
        let r = app.purchase("crash", user, token, None).await;
        assert_eq!(r.status, 201, "{user}: {}", r.body);
        assert_eq!(app.purchase("crash", user, token, None).await.status, 200);
    }
    let v = app.assert_invariant("crash").await;
    assert_eq!(
        v["sold"].as_u64(),
        Some((orders.len() + tokens.len()) as u64)
    );
}
