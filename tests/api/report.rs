//! The post-event report over the real API: figures recorded as a sale runs, kept
//! across a restart, and the per-minute table as CSV.

use crate::common::*;
use serde_json::json;
use sluice::actors::messages::Tick;
use sluice::domain::clock::{rfc3339, Clock};
use sluice::domain::ids::ActivityId;

async fn tick(app: &TestApp, id: &str) {
    let id = ActivityId::parse(id).expect("id");
    let addr = app.state.registry.get(&id).expect("running here");
    addr.send(Tick).await.expect("tick");
}

#[actix_web::test]
async fn the_report_counts_a_sale_as_it_ran_and_survives_a_restart() {
    let app = spawn_app_manual_clock().await;
    let opens = app.clock.as_ref().expect("manual").now_ms() + 2_000;
    let r = app
        .create(
            json!({"id":"rep","name":"Rep","kind":"sale","stock":3,"opens_at": rfc3339(opens),
            "admission":{"rate_per_sec":100,"max_active":2}}),
        )
        .await;
    assert_eq!(r.status, 201);
    // Four in the pre-queue, one of whom gives up before opening.
    let mut tickets = Vec::new();
    for i in 0..4 {
        let j = app.join_http("rep", &format!("p{i}")).await;
        tickets.push(j.body["ticket"].as_str().expect("t").to_owned());
    }
    let path = format!("/api/activities/rep/tickets/{}", tickets[3]);
    assert_eq!(app.as_user("p3", "DELETE", &path, None).await.status, 200);
    app.advance(2_000);
    tick(&app, "rep").await;
    // Two admitted at opening (no wait); a later joiner waits 5 s for a unit back.
    let mut tokens = Vec::new();
    for (i, ticket) in tickets.iter().enumerate().take(3) {
        let path = format!("/api/activities/rep/tickets/{ticket}");
        let v = app.as_user(&format!("p{i}"), "GET", &path, None).await.body;
        if v["status"] == "admitted" {
            tokens.push((format!("p{i}"), v["token"].as_str().expect("t").to_owned()));
        }
    }
    assert_eq!(tokens.len(), 2);
    let late = app.join_http("rep", "late").await;
    assert_eq!(late.body["status"], "waiting");
    let mut orders = Vec::new();
    for (user, token) in &tokens {
        let o = app.purchase("rep", user, token, None).await;
        assert_eq!(o.status, 201);
        orders.push((
            user.clone(),
            o.body["order"]["id"].as_str().expect("id").to_owned(),
        ));
    }
    let (u0, o0) = &orders[0];
    let (u1, o1) = &orders[1];
    assert_eq!(
        app.as_user(u0, "POST", &format!("/api/orders/{o0}/pay"), None)
            .await
            .status,
        200
    );
    app.advance(5_000);
    assert_eq!(
        app.as_user(u1, "POST", &format!("/api/orders/{o1}/cancel"), None)
            .await
            .status,
        200
    );
    tick(&app, "rep").await;

    let r = app.admin("GET", "/activities/rep/report", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let b = &r.body;
    assert_eq!(
        (
            b["joins"].as_u64(),
            b["orders"].as_u64(),
            b["paid"].as_u64(),
            b["cancelled"].as_u64()
        ),
        (Some(5), Some(2), Some(1), Some(1)),
        "{b}"
    );
    assert_eq!(b["abandoned"], 1, "{b}");
    assert_eq!(b["peak_waiting"], 4, "{b}");
    assert!(b["admitted"].as_u64() >= Some(3), "{b}");
    assert_eq!(b["wait_secs"]["max"], 5.0, "{b}");
    assert_eq!(b["wait_secs"]["p50"], 0.0, "{b}");
    assert_eq!(b["gave_up"]["prequeue"], 1, "{b}");
    let minutes = b["per_minute"].as_array().expect("per_minute");
    let sum = |k: &str| {
        minutes
            .iter()
            .map(|m| m[k].as_u64().expect("n"))
            .sum::<u64>()
    };
    assert_eq!((sum("joins"), sum("orders")), (5, 2), "{b}");
    assert!(minutes
        .iter()
        .all(|m| m["minute"].as_str().is_some_and(|s| s.ends_with(":00Z"))));

    // A key in the URL is never accepted (it would end up in logs).
    let (status, _) = app
        .get_text(&format!(
            "/api/admin/activities/rep/report?format=csv&api_key={ADMIN_KEY}"
        ))
        .await;
    assert_eq!(status, 401);
    let (status, csv) = app
        .get_text_as(
            "/api/admin/activities/rep/report?format=csv",
            Some(ADMIN_KEY),
        )
        .await;
    assert_eq!(status, 200);
    let mut rows = csv.lines();
    assert_eq!(
        rows.next(),
        Some("minute,joins,admitted,orders,waiting,abandoned")
    );
    assert_eq!(rows.count(), minutes.len());
    assert_eq!(
        app.admin("GET", "/activities/rep/report?format=xml", None)
            .await
            .status,
        400
    );
    let (status, page) = app.get_text("/admin/report?id=rep").await;
    assert!(status == 200 && page.contains("/assets/report.js"));

    // A graceful stop writes what the last second recorded.
    let before = b.clone();
    assert_eq!(app.join_http("rep", "after").await.status, 201);
    let before_restart = app.admin("GET", "/activities/rep/report", None).await.body;
    app.stop().await;
    let app = app.reopen().await;
    let after = app.admin("GET", "/activities/rep/report", None).await.body;
    assert_eq!(after, before_restart);
    assert_eq!(
        after["joins"].as_u64(),
        before["joins"].as_u64().map(|j| j + 1)
    );
}
