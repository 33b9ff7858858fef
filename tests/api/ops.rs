//! Accounts, health and metrics.

use crate::common::*;
use serde_json::json;

#[actix_web::test]
async fn accounts_register_log_in_and_join_with_the_issued_token() {
    let app = spawn_app().await;
    let creds = json!({"username": "alice_1", "password": "correct horse battery"});
    let r = app
        .request("POST", "/api/auth/register", None, Some(creds.clone()))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let user_id = r.body["user_id"].as_str().expect("user_id").to_owned();
    app.request("POST", "/api/auth/register", None, Some(creds.clone()))
        .await
        .expect_error(409, "conflict");
    app.request(
        "POST",
        "/api/auth/register",
        None,
        Some(json!({"username": "x", "password": "short"})),
    )
    .await
    .expect_error(400, "invalid_request");

    let r = app
        .request("POST", "/api/auth/login", None, Some(creds))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.body["access_token"].as_str().expect("token").to_owned();
    assert!(r.body["expires_in"].as_u64().is_some_and(|s| s > 0));

    // Wrong password and unknown user fail the same way.
    let wrong = app
        .request(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"username": "alice_1", "password": "not the password"})),
        )
        .await;
    let unknown = app
        .request(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"username": "nobody_here", "password": "whatever123"})),
        )
        .await;
    wrong.expect_error(401, "unauthorized");
    unknown.expect_error(401, "unauthorized");
    assert_eq!(wrong.body, unknown.body);

    app.create_sale("acc", 1, json!({})).await;
    let r = app
        .request("POST", "/api/activities/acc/join", Some(&token), None)
        .await;
    assert_eq!(r.status, 201);
    let o = app
        .request(
            "POST",
            "/api/activities/acc/purchase",
            Some(&token),
            Some(json!({"token": r.body["token"]})),
        )
        .await;
    assert_eq!(
        (o.status, o.body["order"]["user_id"].as_str()),
        (201, Some(user_id.as_str()))
    );
}

fn series(metrics: &str, name: &str, label: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn scrape(app: &TestApp) -> String {
    let mut res = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status().as_u16(), 200);
    String::from_utf8(res.body().await.expect("body").to_vec()).expect("utf8")
}

#[actix_web::test]
async fn metrics_follow_a_sale() {
    let app = spawn_app().await;
    app.create_sale("met", 3, json!({})).await;
    let label = "activity=\"met\"";
    for i in 0..3 {
        let j = app.join_http("met", &format!("m{i}")).await;
        let t = j.body["token"].as_str().expect("token").to_owned();
        assert_eq!(
            app.purchase("met", &format!("m{i}"), &t, None).await.status,
            201
        );
    }
    // Activity gauges are refreshed once a second by the actor's tick: wait for them.
    let mut text = String::new();
    for _ in 0..100 {
        text = scrape(&app).await;
        // (Wait for both: one scrape under load showed sold 3 with admitted 1.)
        if series(&text, "sluice_activity_sold", label) == Some(3.0)
            && series(&text, "sluice_activity_admitted_total", label) == Some(3.0)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        series(&text, "sluice_activity_sold", label),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        series(&text, "sluice_activity_admitted_total", label),
        Some(3.0)
    );
    assert_eq!(series(&text, "sluice_activity_available", label), Some(0.0));
    assert!(
        text.contains("sluice_http_requests_total{"),
        "request counter"
    );
    assert!(
        text.contains("sluice_http_request_seconds_bucket{"),
        "latency histogram"
    );
    assert!(
        text.contains("sluice_commit_seconds_bucket"),
        "commit latency histogram"
    );
    assert!(
        series(&text, "sluice_journal_bytes", "").is_some(),
        "what a restart would replay"
    );
    let r = app.request("GET", "/readyz", None, None).await;
    assert_eq!((r.status, r.body["store"].as_str()), (200, Some("ok")));
}
