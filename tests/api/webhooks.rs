//! Webhooks (docs/api.md, "Webhooks"): registration and its validation, delivery to
//! real receivers (signatures checked by the Standard Webhooks reference library),
//! retries with backoff, a slow receiver timed out without holding back another, the
//! deliveries endpoint and the metrics.

use crate::common::*;
use serde_json::{json, Value};
use sluice::config::Settings;

/// Short backoffs and timeouts, so retries happen within a test's bounded waits.
fn quick(s: &mut Settings) {
    s.webhooks.min_backoff_ms = 20;
    s.webhooks.max_backoff_ms = 200;
    s.webhooks.timeout_ms = 300;
    s.webhooks.refresh_ms = 100;
}

async fn register(app: &Api, url: &str, events: &[&str]) -> Value {
    let r = app
        .admin(
            "POST",
            "/webhooks",
            Some(json!({"url": url, "events": events})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

/// The buyer pays or cancels `order` (`200` expected).
async fn order_call(app: &Api, user: &str, order: &Value, action: &str) {
    let id = order["id"].as_str().expect("an order id");
    let path = format!("/api/orders/{id}/{action}");
    let r = app.as_user(user, "POST", &path, None).await;
    assert_eq!(r.status, 200, "{action} {id}: {}", r.body);
}

/// A sale whose admissions are immediate.
async fn sale(app: &Api, id: &str, stock: u32) {
    app.create_sale(
        id,
        stock,
        json!({"max_active": 1000, "rate_per_sec": 1000, "token_ttl_secs": 600}),
    )
    .await;
}

#[actix_web::test]
async fn registrations_are_validated_listed_without_secrets_and_removed() {
    let app = spawn_app().await;
    for (body, why) in [
        (
            json!({"url": "ftp://shop.example/h", "events": ["order.paid"]}),
            "scheme",
        ),
        (
            json!({"url": "/hooks", "events": ["order.paid"]}),
            "relative",
        ),
        (
            json!({"url": "http://us er:pw@shop.example/h", "events": ["order.paid"]}),
            "credentials with a space",
        ),
        (
            json!({"url": "http://user:p%zz@shop.example/h", "events": ["order.paid"]}),
            "credentials badly percent-encoded",
        ),
        (
            json!({"url": "http:///h", "events": ["order.paid"]}),
            "no host",
        ),
        (
            json!({"url": "http://shop.example:70000/", "events": ["order.paid"]}),
            "port",
        ),
        (
            json!({"url": "http://shop.example/h", "events": []}),
            "no events",
        ),
        (
            json!({"url": "http://shop.example/h", "events": ["order.shipped"]}),
            "unknown event",
        ),
        (json!({"url": "http://shop.example/h"}), "events missing"),
        (
            json!({"url": 5, "events": ["order.paid"]}),
            "url not a string",
        ),
        (
            json!({"url": "http://shop.example/h", "events": ["order.paid"], "x": 1}),
            "unknown field",
        ),
    ] {
        let r = app.admin("POST", "/webhooks", Some(body)).await;
        assert_eq!(r.status, 400, "{why}: {}", r.body);
        assert_eq!(r.code(), "invalid_request", "{why}");
    }
    let listed = app.admin("GET", "/webhooks", None).await;
    assert_eq!(listed.body["webhooks"], json!([]), "nothing stored");
    let anonymous = app
        .request(
            "POST",
            "/api/admin/webhooks",
            None,
            Some(json!({"url": "http://a/", "events": ["order.paid"]})),
        )
        .await;
    anonymous.expect_error(401, "unauthorized");

    // Loopback and private addresses are allowed: the shop's backend sits beside sluice.
    let made = register(
        &app,
        "http://127.0.0.1:9/hooks",
        &["order.paid", "order.created", "order.paid"],
    )
    .await;
    let secret = made["secret"].as_str().expect("secret");
    let key = base64_len(secret.strip_prefix("whsec_").expect("whsec_ prefix"));
    assert!((24..=32).contains(&key), "{key} key bytes");
    assert_eq!(
        made["events"],
        json!(["order.created", "order.paid"]),
        "deduplicated"
    );
    let id = made["id"].as_str().expect("id");

    let listed = app.admin("GET", "/webhooks", None).await;
    assert_eq!(listed.status, 200);
    let hooks = listed.body["webhooks"].as_array().expect("list");
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["id"], id);
    assert_eq!(hooks[0]["url"], "http://127.0.0.1:9/hooks");
    assert!(
        hooks[0].get("secret").is_none(),
        "the secret is shown only at creation"
    );
    assert_eq!(hooks[0]["health"]["pending"], 0);

    let d = app
        .admin("GET", &format!("/webhooks/{id}/deliveries"), None)
        .await;
    assert_eq!((d.status, d.body["deliveries"].clone()), (200, json!([])));
    app.admin("GET", "/webhooks/wh_nope/deliveries", None)
        .await
        .expect_error(404, "not_found");
    assert_eq!(
        app.admin("DELETE", &format!("/webhooks/{id}"), None)
            .await
            .status,
        204
    );
    app.admin("DELETE", &format!("/webhooks/{id}"), None)
        .await
        .expect_error(404, "not_found");
    assert_eq!(
        app.admin("GET", "/webhooks", None).await.body["webhooks"],
        json!([])
    );
}

fn base64_len(b64: &str) -> usize {
    b64.trim_end_matches('=').len() * 3 / 4
}

/// The kinds of what arrived, de-duplicated by `webhook-id`, in first-arrival order.
fn kinds(got: &[Delivery]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    got.iter()
        .filter(|d| seen.insert(d.id.clone()))
        .map(Delivery::kind)
        .collect()
}

#[actix_web::test]
async fn a_sale_reaches_the_receiver_in_commit_order_with_each_types_data() {
    let app = spawn_with(false, quick).await;
    let rx = Receiver::start().await;
    let all = [
        "order.created",
        "order.paid",
        "order.cancelled",
        "activity.phase_changed",
        "place.admitted",
    ];
    register(&app, &rx.url(), &all).await;
    sale(&app, "hooked", 2).await;
    let first = buy(&app, "hooked", "ann").await.expect("ann buys");
    let second = buy(&app, "hooked", "bob").await.expect("bob buys");
    order_call(&app, "ann", &first, "pay").await;
    order_call(&app, "bob", &second, "cancel").await;

    // Until the last event (the phase change of the cancelled unit coming back): each
    // event is its own delivery, so the cancellation alone may arrive first.
    let got = rx
        .wait_for("the sale's events", |g| {
            let k = kinds(g);
            k.iter().filter(|k| *k == "order.cancelled").count() == 1
                && k.last().is_some_and(|k| k == "activity.phase_changed")
        })
        .await;
    assert_eq!(
        kinds(&got),
        [
            "place.admitted",
            "order.created",
            "place.admitted",
            "order.created",
            "activity.phase_changed",
            "order.paid",
            "order.cancelled",
            "activity.phase_changed",
        ],
        "commit order"
    );
    let by_kind = |k: &str| {
        got.iter()
            .filter(|d| d.kind() == k)
            .map(Delivery::json)
            .collect::<Vec<_>>()
    };
    let created = by_kind("order.created");
    assert_eq!(
        created[0]["data"], first,
        "data is the ORDER as the buyer saw it"
    );
    assert_eq!(by_kind("order.paid")[0]["data"]["status"], "paid");
    assert_eq!(by_kind("order.cancelled")[0]["data"]["id"], second["id"]);
    let phases = by_kind("activity.phase_changed");
    assert_eq!(
        phases[0]["data"],
        json!({"activity_id": "hooked", "phase": "sold_out"})
    );
    assert_eq!(
        phases[1]["data"],
        json!({"activity_id": "hooked", "phase": "open"})
    );
    let admitted = &by_kind("place.admitted")[0];
    assert_eq!(admitted["data"]["activity_id"], "hooked");
    assert_eq!(admitted["data"]["user_id"], "ann");
    assert!(admitted["data"]["expires_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    for d in &got {
        assert!(d.id.starts_with("msg_"), "{}", d.id);
        assert!(d.signature.starts_with("v1,"), "{}", d.signature);
        assert!(d.json()["timestamp"].as_str().is_some());
    }
}

#[actix_web::test]
async fn only_subscribed_types_are_sent_and_a_removed_receiver_gets_nothing_more() {
    let app = spawn_with(false, quick).await;
    let paid = Receiver::start().await;
    let gone = Receiver::start().await;
    register(&app, &paid.url(), &["order.paid"]).await;
    let removed = register(&app, &gone.url(), &["order.created"]).await;
    sale(&app, "picky", 5).await;
    let o = buy(&app, "picky", "ann").await.expect("buys");
    gone.wait_for("the first order", |g| g.len() == 1).await;
    let id = removed["id"].as_str().expect("id");
    assert_eq!(
        app.admin("DELETE", &format!("/webhooks/{id}"), None)
            .await
            .status,
        204
    );
    buy(&app, "picky", "bob").await.expect("buys");
    order_call(&app, "ann", &o, "pay").await;
    let got = paid.wait_for("order.paid", |g| !g.is_empty()).await;
    assert_eq!(kinds(&got), ["order.paid"], "only its type");
    assert_eq!(
        kinds(&gone.received()),
        ["order.created"],
        "nothing after removal"
    );
}

#[actix_web::test]
async fn a_failing_receiver_is_retried_with_the_same_id_until_it_answers_2xx() {
    let app = spawn_with(false, quick).await;
    let rx = Receiver::start().await;
    rx.answer(500);
    let hook = register(&app, &rx.url(), &["order.created"]).await;
    let id = hook["id"].as_str().expect("id");
    sale(&app, "retry", 3).await;
    buy(&app, "retry", "ann").await.expect("buys");
    let tries = rx.wait_for("three tries", |g| g.len() >= 3).await;
    assert!(
        tries.iter().all(|d| d.id == tries[0].id),
        "one webhook-id on every try"
    );

    let log = app
        .admin("GET", &format!("/webhooks/{id}/deliveries"), None)
        .await;
    let last = &log.body["deliveries"][0];
    assert_eq!(last["status"], 500, "{}", log.body);
    assert_eq!(last["event_id"], tries[0].id);
    assert_eq!(last["type"], "order.created");
    assert!(last["attempt"].as_u64().expect("attempt") >= 2, "{last}");
    assert!(
        last["error"].as_str().is_some_and(|e| e.contains("500")),
        "{last}"
    );
    assert!(last["next_retry"].as_str().is_some(), "{last}");

    // Selling goes on while the receiver fails, and the backlog shows it.
    buy(&app, "retry", "bob")
        .await
        .expect("buys while the receiver fails");
    assert_eq!(poll_pending(&app, 2).await, 2, "both orders wait");
    rx.answer(204);
    let got = rx
        .wait_for("both orders delivered", |g| {
            kinds(g).len() == 2 && g.len() >= 4
        })
        .await;
    assert_eq!(kinds(&got).len(), 2);
    let ok = app.admin("GET", "/webhooks", None).await.body["webhooks"][0]["health"].clone();
    assert!(ok["last_success"].as_str().is_some(), "{ok}");
    assert!(ok["failed_attempts"].as_u64().expect("count") >= 2, "{ok}");
    let pending = poll_pending(&app, 0).await;
    assert_eq!(pending, 0);
    // Delivered everywhere: the activity deleted its events but the newest.
    let mut stored = 0..0;
    for _ in 0..400 {
        stored = app.state.store.event_range("retry").expect("reads");
        if stored.end - stored.start == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(stored, 1..2, "only the newest event is kept");

    let (status, metrics) = app.get_text("/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "sluice_webhook_delivered_total",
        "sluice_webhook_failed_attempts_total",
        "sluice_webhook_pending",
        "sluice_webhook_attempt_seconds",
    ] {
        assert!(metrics.contains(name), "{name} in /metrics");
    }
}

/// Waits (bounded) until the first receiver's backlog is `want`; returns the backlog.
async fn poll_pending(app: &Api, want: u64) -> u64 {
    let mut pending = u64::MAX;
    for _ in 0..400 {
        let l = app.admin("GET", "/webhooks", None).await;
        pending = l.body["webhooks"][0]["health"]["pending"]
            .as_u64()
            .unwrap_or(u64::MAX);
        if pending == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    pending
}

#[actix_web::test]
async fn a_slow_receiver_is_timed_out_and_does_not_hold_back_another() {
    let app = spawn_with(false, quick).await;
    let slow = Receiver::start().await;
    slow.slow(60_000);
    let fast = Receiver::start().await;
    let s = register(&app, &slow.url(), &["order.created"]).await;
    register(&app, &fast.url(), &["order.created"]).await;
    sale(&app, "mixed", 10).await;
    for u in ["a", "b", "c"] {
        buy(&app, "mixed", u).await.expect("buys");
    }
    let got = fast
        .wait_for("all three orders", |g| kinds(g).len() == 3)
        .await;
    assert_eq!(kinds(&got), ["order.created"; 3]);
    // The slow one keeps getting the first event, each try cut off by the timeout.
    slow.wait_for("a second try", |g| g.len() >= 2).await;
    let id = s["id"].as_str().expect("id");
    let log = app
        .admin("GET", &format!("/webhooks/{id}/deliveries"), None)
        .await;
    let last = &log.body["deliveries"][0];
    assert_eq!(last["status"], Value::Null, "{}", log.body);
    assert!(
        last["error"].as_str().is_some_and(
            |e| e.to_lowercase().contains("timeout") || e.to_lowercase().contains("timed out")
        ),
        "{last}"
    );
}

/// The Standard Webhooks reference library (`standardwebhooks` on PyPI, not ours)
/// verifies every delivery in a Python receiver.
#[actix_web::test]
#[ignore = "needs python3 with standardwebhooks (scripts/test.sh installs it)"]
async fn the_reference_library_verifies_every_delivery() {
    let app = spawn_with(false, quick).await;
    let port = free_port();
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let made = {
        let url = format!("http://127.0.0.1:{port}/hooks");
        register(
            &app,
            &url,
            &[
                "order.created",
                "order.paid",
                "place.admitted",
                "activity.phase_changed",
            ],
        )
        .await
    };
    let secret = made["secret"].as_str().expect("secret");
    let mut py = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/common/standard_receiver.py"
        ))
        .args([&port.to_string(), secret, &out.path().display().to_string()])
        .spawn()
        .expect("python3 runs");
    sale(&app, "verified", 2).await;
    for u in ["ann", "bob"] {
        let o = buy(&app, "verified", u).await.expect("buys");
        order_call(&app, u, &o, "pay").await;
    }
    // 2 admissions, 2 orders, sold out, 2 payments.
    let mut lines = Vec::new();
    for _ in 0..1200 {
        let text = std::fs::read_to_string(out.path()).unwrap_or_default();
        lines = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
            .collect();
        let verified: std::collections::HashSet<_> = lines
            .iter()
            .filter(|l| l["verified"] == true)
            .map(|l| l["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        if verified.len() >= 7 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let _ = py.kill();
    let _ = py.wait();
    assert!(!lines.is_empty(), "the receiver got nothing");
    for l in &lines {
        assert_eq!(l["verified"], true, "standardwebhooks rejected: {l}");
    }
    let types: Vec<&str> = lines.iter().filter_map(|l| l["type"].as_str()).collect();
    for t in [
        "order.created",
        "order.paid",
        "place.admitted",
        "activity.phase_changed",
    ] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }
}

/// The latest delivery attempt to the first receiver of `app`, once there is one.
async fn latest_attempt(app: &Api, hook: &str) -> Value {
    for _ in 0..400 {
        let log = app
            .admin("GET", &format!("/webhooks/{hook}/deliveries"), None)
            .await;
        if let Some(a) = log.body["deliveries"].get(0) {
            return a.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("no delivery attempt to {hook}");
}

/// An `https://` receiver (a sluice serving TLS with a self-signed certificate, which
/// answers the POST `404`): reached when `webhooks.ca_file` trusts its certificate,
/// refused before any request when it does not.
#[actix_web::test]
async fn https_receivers_are_verified_against_the_configured_certificates() {
    let certs = tempfile::tempdir().expect("temp dir");
    let (cert, key) = self_signed(certs.path(), "receiver");
    let receiver = spawn_with(false, |s| {
        s.server.tls.cert_path = cert.display().to_string();
        s.server.tls.key_path = key.display().to_string();
    })
    .await;
    let url = format!("https://localhost:{}/hooks", receiver.port);
    let trusting = spawn_with(false, |s| {
        quick(s);
        s.webhooks.ca_file = cert.clone();
    })
    .await;
    let distrusting = spawn_with(false, quick).await;
    for (app, reached) in [(&trusting, true), (&distrusting, false)] {
        let hook = register(app, &url, &["order.created"]).await;
        sale(app, "tls", 1).await;
        buy(app, "tls", "ann").await.expect("buys");
        let a = latest_attempt(app, hook["id"].as_str().expect("id")).await;
        if reached {
            assert_eq!(
                a["status"], 404,
                "the handshake held and the request went: {a}"
            );
        } else {
            assert_eq!(a["status"], Value::Null, "{a}");
            let e = a["error"].as_str().unwrap_or_default().to_lowercase();
            assert!(
                e.contains("certificate") || e.contains("issuer") || e.contains("tls"),
                "{a}"
            );
        }
    }
}

/// A receiver URL may carry `user:password@` (sent as HTTP Basic authorization, the
/// password never shown again) and a `#fragment` (never sent), as the contract
/// allows any http or https URL.
#[actix_web::test]
async fn credentials_in_a_receiver_url_are_sent_as_basic_auth_and_never_shown() {
    const PASSWORD: &str = "s3cr3t:pw";
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("sluice.log");
    let env = [
        ("SLUICE__WEBHOOKS__MIN_BACKOFF_MS", "20".to_owned()),
        ("SLUICE__WEBHOOKS__MAX_BACKOFF_MS", "200".to_owned()),
        ("SLUICE__WEBHOOKS__REFRESH_MS", "100".to_owned()),
        ("SLUICE__LOG__LEVEL", "trace".to_owned()),
    ];
    let app = Process::start_logged("sluice", &env, Some(&log)).await;
    let rx = Receiver::start().await;
    // `shop@acme` / `s3cr3t:pw`, percent-encoded in the URL as RFC 3986 wants.
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("shop@acme:{PASSWORD}"))
    );
    rx.require(&basic);
    let url = format!(
        "http://shop%40acme:s3cr3t%3Apw@127.0.0.1:{}/hooks?v=1#section",
        rx.port
    );
    let shown = format!(
        "http://shop%40acme:***@127.0.0.1:{}/hooks?v=1#section",
        rx.port
    );
    let made = register(&app, &url, &["order.created"]).await;
    assert_eq!(made["url"], shown.as_str(), "the answer hides the password");
    let good = made["id"].as_str().expect("id").to_owned();
    // The same receiver with a wrong password: it answers 401, retried.
    let wrong = format!("http://shop%40acme:nope@127.0.0.1:{}/hooks", rx.port);
    let bad = register(&app, &wrong, &["order.created"]).await;
    let bad = bad["id"].as_str().expect("id").to_owned();

    sale(&app, "basic", 2).await;
    buy(&app, "basic", "ann").await.expect("ann buys");
    let got = rx
        .wait_for("an authorized delivery and a refused one", |g| {
            g.iter()
                .any(|d| d.authorization.as_deref() == Some(basic.as_str()))
                && g.iter()
                    .any(|d| d.authorization.as_deref() != Some(basic.as_str()))
        })
        .await;
    for d in &got {
        assert!(
            d.authorization
                .as_deref()
                .is_some_and(|a| a.starts_with("Basic ")),
            "{d:?}"
        );
        assert!(!d.uri.contains('#') && !d.uri.contains('@'), "{}", d.uri);
        assert!(d.uri.starts_with("/hooks"), "{}", d.uri);
    }
    let ok = got
        .iter()
        .find(|d| d.authorization.as_deref() == Some(basic.as_str()))
        .expect("authorized");
    assert_eq!(ok.uri, "/hooks?v=1", "the fragment is not sent");
    assert_eq!(ok.kind(), "order.created");

    // The refused one is retried and its attempts say 401.
    let mut attempt = Value::Null;
    for _ in 0..400 {
        let d = app
            .admin("GET", &format!("/webhooks/{bad}/deliveries"), None)
            .await;
        attempt = d.body["deliveries"][0].clone();
        if attempt["status"] == 401 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(attempt["status"], 401, "{attempt}");

    // Nowhere does the password show: listings, deliveries, the server's log.
    let listed = app.admin("GET", "/webhooks", None).await;
    let urls: Vec<&str> = listed.body["webhooks"]
        .as_array()
        .expect("list")
        .iter()
        .map(|h| h["url"].as_str().expect("url"))
        .collect();
    assert!(urls.contains(&shown.as_str()), "{urls:?}");
    let texts = [
        listed.body.to_string(),
        app.admin("GET", &format!("/webhooks/{good}/deliveries"), None)
            .await
            .body
            .to_string(),
        app.admin("GET", &format!("/webhooks/{bad}/deliveries"), None)
            .await
            .body
            .to_string(),
        std::fs::read_to_string(&log).expect("log"),
    ];
    assert!(texts[3].contains("webhook registered"), "{}", texts[3]);
    for text in texts {
        for secret in ["s3cr3t", "nope", basic.as_str()] {
            assert!(!text.contains(secret), "{secret} shown in {text}");
        }
    }
}
