//! The shop behind sluice: payment confirmed by the shop (`payment.mode = "external"`),
//! scoped admin keys (operator, viewer, shop) with their `401`/`403`, the audit log,
//! and the event stream opened with a ticket instead of a key in the URL.

use crate::common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use sluice::config::{AdminKeySettings, AdminRole, PaymentMode, Settings};

pub const SHOP_KEY: &str = "shop-key-0123456789abcdef0123456789abcdef";
pub const VIEWER_KEY: &str = "viewer-key-0123456789abcdef0123456789abcd";

/// External payment, and a `shop` and a `viewer` key beside the operator's `default`.
pub fn shop_settings(s: &mut Settings) {
    s.payment.mode = PaymentMode::External;
    s.admin.keys = vec![
        AdminKeySettings {
            name: "shop-backend".into(),
            key: SHOP_KEY.into(),
            role: AdminRole::Shop,
        },
        AdminKeySettings {
            name: "ops-viewer".into(),
            key: VIEWER_KEY.into(),
            role: AdminRole::Viewer,
        },
    ];
}

/// `user` joins (admitted at once) and buys one unit; the order id.
pub async fn buy(api: &Api, id: &str, user: &str) -> String {
    let j = api.join_http(id, user).await;
    assert_eq!(j.body["status"], "admitted", "{}", j.body);
    let o = api
        .purchase(id, user, j.body["token"].as_str().expect("token"), None)
        .await;
    assert_eq!(o.status, 201, "{}", o.body);
    o.body["order"]["id"].as_str().expect("id").to_owned()
}

async fn shop_pay(api: &Api, key: &str, order: &str, body: Option<Value>) -> Resp {
    api.request(
        "POST",
        &format!("/api/admin/orders/{order}/pay"),
        Some(key),
        body,
    )
    .await
}

#[actix_web::test]
async fn the_shop_confirms_payment_once_and_never_after_a_cancel() {
    let app = spawn_with(true, shop_settings).await;
    app.create(
        json!({"id": "shop", "name": "Shop", "kind": "sale", "stock": 3,
                      "payment_timeout_secs": 60,
                      "admission": {"rate_per_sec": 1000, "max_active": 10}}),
    )
    .await;
    let a = buy(&app, "shop", "ann").await;
    let create = json!({"id": "shop-2", "name": "S", "kind": "sale", "stock": 1});
    app.request(
        "POST",
        "/api/admin/activities",
        Some(SHOP_KEY),
        Some(create),
    )
    .await
    .expect_error(403, "forbidden");

    // The buyer cannot mark it paid; keys without the right cannot either.
    app.as_user("ann", "POST", &format!("/api/orders/{a}/pay"), None)
        .await
        .expect_error(403, "forbidden");
    shop_pay(&app, VIEWER_KEY, &a, None)
        .await
        .expect_error(403, "forbidden");
    shop_pay(&app, "not-a-key", &a, None)
        .await
        .expect_error(401, "unauthorized");
    let too_long = json!({"payment_ref": "x".repeat(129)});
    for bad in [
        too_long,
        json!({"payment_ref": ""}),
        json!({"payment_ref": 7}),
    ] {
        shop_pay(&app, SHOP_KEY, &a, Some(bad))
            .await
            .expect_error(400, "invalid_request");
    }
    let pending = app
        .as_user("ann", "GET", &format!("/api/orders/{a}"), None)
        .await;
    assert_eq!(pending.body["order"]["status"], "pending_payment");

    // The shop confirms with its reference; again is the same order.
    let paid = shop_pay(&app, SHOP_KEY, &a, Some(json!({"payment_ref": "pi_3Nk"}))).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(
        (
            &paid.body["order"]["status"],
            &paid.body["order"]["payment_ref"]
        ),
        (&json!("paid"), &json!("pi_3Nk"))
    );
    let again = shop_pay(&app, SHOP_KEY, &a, Some(json!({"payment_ref": "pi_other"}))).await;
    assert_eq!((again.status, &again.body), (200, &paid.body));
    let seen = app
        .as_user("ann", "GET", &format!("/api/orders/{a}"), None)
        .await;
    assert_eq!(seen.body, paid.body, "the buyer sees the shop's reference");
    let read = app
        .request(
            "GET",
            &format!("/api/admin/orders/{a}"),
            Some(SHOP_KEY),
            None,
        )
        .await;
    assert_eq!(read.body, paid.body);

    // Cancelled by the shop: units back, idempotent, and a late payment is refused.
    let b = buy(&app, "shop", "bob").await;
    let cancel = |key: &'static str| {
        let path = format!("/api/admin/orders/{b}/cancel");
        let app = &app;
        async move { app.request("POST", &path, Some(key), None).await }
    };
    cancel(VIEWER_KEY).await.expect_error(403, "forbidden");
    let c = cancel(SHOP_KEY).await;
    assert_eq!(
        (c.status, &c.body["order"]["status"]),
        (200, &json!("cancelled"))
    );
    assert_eq!(cancel(SHOP_KEY).await.body, c.body);
    let before = app.assert_invariant("shop").await;
    assert_eq!(
        (before["sold"].as_u64(), before["available"].as_u64()),
        (Some(1), Some(2))
    );
    shop_pay(&app, SHOP_KEY, &b, None)
        .await
        .expect_error(409, "conflict");
    let after = app.assert_invariant("shop").await;
    assert_eq!(
        (&after["sold"], &after["available"], &after["paid"]),
        (&before["sold"], &before["available"], &before["paid"]),
        "a late payment takes no unit"
    );

    // Expired unpaid (the payment timeout): the same.
    let c_order = buy(&app, "shop", "cat").await;
    app.advance(60_001);
    let mut status = Value::Null;
    for _ in 0..400 {
        let r = app
            .request(
                "GET",
                &format!("/api/orders/{c_order}"),
                Some(SHOP_KEY),
                None,
            )
            .await;
        status = r.body["order"]["status"].clone();
        if status == "cancelled" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(status, "cancelled", "the payment timeout cancelled it");
    shop_pay(&app, SHOP_KEY, &c_order, None)
        .await
        .expect_error(409, "conflict");
    let r = app
        .request(
            "GET",
            &format!("/api/orders/{c_order}"),
            Some(SHOP_KEY),
            None,
        )
        .await;
    assert_eq!(r.body["order"]["status"], "cancelled");
    app.assert_invariant("shop").await;

    // Every admin call above with a known key is in the audit, under the key's
    // name, refused ones included; the buyer's own call and the unknown key's are
    // not.
    let audit = app.admin("GET", "/audit", None).await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    let mut got: Vec<(String, String, String, u64)> = audit.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["key_name"].as_str().expect("name").to_owned(),
                e["method"].as_str().expect("method").to_owned(),
                e["path"].as_str().expect("path").to_owned(),
                e["status"].as_u64().expect("status"),
            )
        })
        .collect();
    got.reverse();
    let e = |k: &str, p: String, s| (k.to_owned(), "POST".to_owned(), p, s);
    let pay = |o: &str| format!("/api/admin/orders/{o}/pay");
    let cancel_path = format!("/api/admin/orders/{b}/cancel");
    assert_eq!(
        got,
        vec![
            e("default", "/api/admin/activities".into(), 201),
            e("shop-backend", "/api/admin/activities".into(), 403),
            e("ops-viewer", pay(&a), 403),
            e("shop-backend", pay(&a), 400),
            e("shop-backend", pay(&a), 400),
            e("shop-backend", pay(&a), 400),
            e("shop-backend", pay(&a), 200),
            e("shop-backend", pay(&a), 200),
            e("ops-viewer", cancel_path.clone(), 403),
            e("shop-backend", cancel_path.clone(), 200),
            e("shop-backend", cancel_path, 200),
            e("shop-backend", pay(&b), 409),
            e("shop-backend", pay(&c_order), 409),
        ],
        "the audit, oldest first"
    );
}

/// (key, method, path, expected status) for a representative set of endpoints.
#[actix_web::test]
async fn each_role_reaches_exactly_its_endpoints() {
    let app = spawn_with(false, shop_settings).await;
    app.create_sale("roles", 5, json!({"rate_per_sec": 1000}))
        .await;
    let order = buy(&app, "roles", "ann").await;
    let create = json!({"id": "roles-2", "name": "R", "kind": "sale", "stock": 1});
    // A receiver registration for the webhook cases (nothing listens there: only
    // who may register and delete is checked).
    let hook = json!({"url": "http://127.0.0.1:9/hook", "events": ["order.paid"]});
    let registered = app
        .request(
            "POST",
            "/api/admin/webhooks",
            Some(ADMIN_KEY),
            Some(hook.clone()),
        )
        .await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    let hook_id = registered.body["id"].as_str().expect("id").to_owned();
    let cases: Vec<(&str, &str, String, Option<Value>, u16)> = vec![
        // viewer: every admin GET, no change
        (VIEWER_KEY, "GET", "/api/admin/activities".into(), None, 200),
        (
            VIEWER_KEY,
            "GET",
            "/api/admin/activities/roles".into(),
            None,
            200,
        ),
        (
            VIEWER_KEY,
            "GET",
            "/api/admin/activities/roles/report".into(),
            None,
            200,
        ),
        (VIEWER_KEY, "GET", "/api/admin/cluster".into(), None, 200),
        (VIEWER_KEY, "GET", format!("/api/orders/{order}"), None, 200),
        (
            VIEWER_KEY,
            "POST",
            "/api/admin/events/ticket".into(),
            None,
            200,
        ),
        (
            VIEWER_KEY,
            "POST",
            "/api/admin/activities".into(),
            Some(create.clone()),
            403,
        ),
        (
            VIEWER_KEY,
            "POST",
            "/api/admin/activities/roles/pause".into(),
            None,
            403,
        ),
        (
            VIEWER_KEY,
            "POST",
            format!("/api/admin/orders/{order}/cancel"),
            None,
            403,
        ),
        (VIEWER_KEY, "GET", "/api/admin/audit".into(), None, 403),
        (VIEWER_KEY, "GET", "/api/admin/webhooks".into(), None, 200),
        (
            VIEWER_KEY,
            "POST",
            "/api/admin/webhooks".into(),
            Some(hook.clone()),
            403,
        ),
        (
            VIEWER_KEY,
            "DELETE",
            format!("/api/admin/webhooks/{hook_id}"),
            None,
            403,
        ),
        // shop: orders only
        (
            SHOP_KEY,
            "GET",
            format!("/api/admin/orders/{order}"),
            None,
            200,
        ),
        (SHOP_KEY, "GET", format!("/api/orders/{order}"), None, 200),
        (
            SHOP_KEY,
            "POST",
            "/api/admin/activities".into(),
            Some(create.clone()),
            403,
        ),
        (SHOP_KEY, "GET", "/api/admin/activities".into(), None, 403),
        (
            SHOP_KEY,
            "POST",
            "/api/admin/activities/roles/stock".into(),
            Some(json!({"add": 1})),
            403,
        ),
        (
            SHOP_KEY,
            "POST",
            "/api/admin/events/ticket".into(),
            None,
            403,
        ),
        (SHOP_KEY, "GET", "/api/admin/events".into(), None, 403),
        (SHOP_KEY, "GET", "/api/admin/audit".into(), None, 403),
        (SHOP_KEY, "GET", "/api/admin/webhooks".into(), None, 403),
        (
            SHOP_KEY,
            "POST",
            "/api/admin/webhooks".into(),
            Some(hook.clone()),
            403,
        ),
        (
            SHOP_KEY,
            "DELETE",
            format!("/api/admin/webhooks/{hook_id}"),
            None,
            403,
        ),
        (
            SHOP_KEY,
            "POST",
            format!("/api/admin/orders/{order}/pay"),
            None,
            200,
        ),
        // the v1 key: an operator, everything
        (
            ADMIN_KEY,
            "POST",
            "/api/admin/activities".into(),
            Some(create),
            201,
        ),
        (
            ADMIN_KEY,
            "POST",
            "/api/admin/activities/roles/pause".into(),
            None,
            200,
        ),
        (ADMIN_KEY, "GET", "/api/admin/audit".into(), None, 200),
        (
            ADMIN_KEY,
            "POST",
            format!("/api/admin/orders/{order}/pay"),
            None,
            200,
        ),
        // unknown or missing keys: 401, whatever the endpoint
        (
            "wrong-key",
            "GET",
            "/api/admin/activities".into(),
            None,
            401,
        ),
        (
            "wrong-key",
            "POST",
            format!("/api/admin/orders/{order}/pay"),
            None,
            401,
        ),
        ("", "GET", "/api/admin/audit".into(), None, 401),
    ];
    for (key, method, path, body, want) in cases {
        let auth = (!key.is_empty()).then_some(key);
        let r = app.request(method, &path, auth, body).await;
        assert_eq!(r.status, want, "{key} {method} {path}: {}", r.body);
        if want >= 400 {
            let code = if want == 401 {
                "unauthorized"
            } else {
                "forbidden"
            };
            r.expect_error(want, code);
        }
    }
    // The operator deletes it; the registration, the refused attempts and the
    // deletion are audited under their keys' names.
    let del = format!("/api/admin/webhooks/{hook_id}");
    let r = app.request("DELETE", &del, Some(ADMIN_KEY), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let audit = app.admin("GET", "/audit", None).await;
    let hooks: Vec<(String, String, String, u64)> = audit.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| {
            e["path"]
                .as_str()
                .is_some_and(|p| p.starts_with("/api/admin/webhooks"))
        })
        .map(|e| {
            (
                e["key_name"].as_str().expect("name").to_owned(),
                e["method"].as_str().expect("method").to_owned(),
                e["path"].as_str().expect("path").to_owned(),
                e["status"].as_u64().expect("status"),
            )
        })
        .rev()
        .collect();
    let e = |k: &str, m: &str, p: &str, s| (k.to_owned(), m.to_owned(), p.to_owned(), s);
    assert_eq!(
        hooks,
        vec![
            e("default", "POST", "/api/admin/webhooks", 201),
            e("ops-viewer", "POST", "/api/admin/webhooks", 403),
            e("ops-viewer", "DELETE", &del, 403),
            e("shop-backend", "POST", "/api/admin/webhooks", 403),
            e("shop-backend", "DELETE", &del, 403),
            e("default", "DELETE", &del, 204),
        ],
        "webhook registration in the audit, oldest first"
    );
}

#[actix_web::test]
async fn the_audit_log_lists_changes_newest_first_with_key_names() {
    let app = spawn_with(false, shop_settings).await;
    app.create_sale("aud", 5, json!({"rate_per_sec": 1000}))
        .await;
    let order = buy(&app, "aud", "ann").await;
    shop_pay(&app, VIEWER_KEY, &order, None).await;
    shop_pay(&app, SHOP_KEY, &order, Some(json!({"payment_ref": "r-1"}))).await;
    app.request(
        "POST",
        "/api/admin/activities/aud/pause",
        Some(SHOP_KEY),
        None,
    )
    .await;
    app.admin("POST", "/activities/nope/pause", None).await;
    // Not state changes, or not a known key: not in the log.
    app.admin("GET", "/activities/aud", None).await;
    app.request("POST", "/api/admin/events/ticket", Some(VIEWER_KEY), None)
        .await;
    app.request(
        "POST",
        "/api/admin/activities/aud/pause",
        Some("forged"),
        None,
    )
    .await;
    app.as_user("ann", "POST", &format!("/api/orders/{order}/pay"), None)
        .await;

    let r = app.admin("GET", "/audit", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got: Vec<(String, String, String, u64)> = r.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["key_name"].as_str().expect("name").to_owned(),
                e["method"].as_str().expect("method").to_owned(),
                e["path"].as_str().expect("path").to_owned(),
                e["status"].as_u64().expect("status"),
            )
        })
        .collect();
    let e = |k: &str, p: String, s| (k.to_owned(), "POST".to_owned(), p, s);
    assert_eq!(
        got,
        vec![
            e("default", "/api/admin/activities/nope/pause".into(), 404),
            e(
                "shop-backend",
                "/api/admin/activities/aud/pause".into(),
                403
            ),
            e(
                "shop-backend",
                format!("/api/admin/orders/{order}/pay"),
                200
            ),
            e("ops-viewer", format!("/api/admin/orders/{order}/pay"), 403),
            e("default", "/api/admin/activities".into(), 201),
        ]
    );
    let ats: Vec<&str> = r.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["at"].as_str().expect("at"))
        .collect();
    assert!(ats.windows(2).all(|w| w[0] >= w[1]), "{ats:?}");
    let two = app.admin("GET", "/audit?limit=2", None).await;
    assert_eq!(two.body["entries"].as_array().map(Vec::len), Some(2));
    app.admin("GET", "/audit?limit=0", None)
        .await
        .expect_error(400, "invalid_request");

    // Durable: after a restart on the same store it is all still there.
    app.stop().await;
    let again = app.reopen().await;
    let after = again.admin("GET", "/audit", None).await;
    assert_eq!(after.body, r.body);
}

/// Opens the event stream at `path_and_query` with `bearer`; its status and, when
/// 200, its first `data:` frame.
async fn first_event(api: &Api, path_and_query: &str, bearer: Option<&str>) -> (u16, String) {
    let mut req = api.client.get(format!("{}{path_and_query}", api.base));
    if let Some(b) = bearer {
        req = req.insert_header(("Authorization", format!("Bearer {b}")));
    }
    let mut res = req.send().await.expect("reaches the server");
    let status = res.status().as_u16();
    if status != 200 {
        return (status, String::new());
    }
    let chunk = res.next().await.expect("a frame").expect("readable");
    (status, String::from_utf8_lossy(&chunk).into_owned())
}

#[actix_web::test]
async fn the_event_stream_opens_with_a_single_use_ticket_never_a_key_in_the_url() {
    let app = spawn_with(false, shop_settings).await;
    let t = app
        .request("POST", "/api/admin/events/ticket", Some(VIEWER_KEY), None)
        .await;
    assert_eq!(t.status, 200, "{}", t.body);
    let ticket = t.body["ticket"].as_str().expect("ticket").to_owned();
    assert!(!ticket.contains(VIEWER_KEY));
    let url = format!("/api/admin/events?ticket={ticket}");
    let (status, frame) = first_event(&app, &url, None).await;
    assert_eq!(status, 200);
    assert!(
        frame.starts_with("data: ") && frame.contains("\"payment_mode\":\"external\""),
        "{frame}"
    );
    // Spent, forged, or a key in the query: refused.
    assert_eq!(first_event(&app, &url, None).await.0, 401);
    let forged = format!("/api/admin/events?ticket={}x", &ticket);
    assert_eq!(first_event(&app, &forged, None).await.0, 401);
    let in_url = format!("/api/admin/events?api_key={ADMIN_KEY}");
    assert_eq!(first_event(&app, &in_url, None).await.0, 401);
    // The header still works for clients that can set one.
    assert_eq!(
        first_event(&app, "/api/admin/events", Some(ADMIN_KEY))
            .await
            .0,
        200
    );
}

#[actix_web::test]
async fn a_shop_payment_and_the_audit_survive_kill_9_and_no_key_reaches_the_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("sluice.log");
    let keys = format!(
        r#"[{{name = "shop-backend", key = "{SHOP_KEY}", role = "shop"}},
            {{name = "ops-viewer", key = "{VIEWER_KEY}", role = "viewer"}}]"#
    );
    let env = [
        ("SLUICE__PAYMENT__MODE", "external".to_owned()),
        ("SLUICE__ADMIN__KEYS", keys),
        // The most the request spans and handlers say.
        ("SLUICE__LOG__LEVEL", "trace".to_owned()),
    ];
    let mut app = Process::start_logged("sluice", &env, Some(&log)).await;
    app.create_sale("crash-shop", 3, json!({"rate_per_sec": 1000}))
        .await;
    let order = buy(&app, "crash-shop", "ann").await;
    let paid = shop_pay(&app, SHOP_KEY, &order, Some(json!({"payment_ref": "pi_9"}))).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    // Every way a key or credential travels, including refused ones.
    let t = app
        .request("POST", "/api/admin/events/ticket", Some(VIEWER_KEY), None)
        .await;
    let ticket = t.body["ticket"].as_str().expect("ticket").to_owned();
    let url = format!("/api/admin/events?ticket={ticket}");
    assert_eq!(first_event(&app, &url, None).await.0, 200);
    assert_eq!(first_event(&app, &url, None).await.0, 401);
    let in_url = format!("/api/admin/events?api_key={ADMIN_KEY}");
    assert_eq!(first_event(&app, &in_url, None).await.0, 401);
    shop_pay(&app, VIEWER_KEY, &order, None).await;
    let audit = app.admin("GET", "/audit", None).await;
    assert_eq!(audit.body["entries"].as_array().map(Vec::len), Some(3));

    app.kill9();
    app.restart().await;
    let seen = app
        .request("GET", &format!("/api/orders/{order}"), Some(SHOP_KEY), None)
        .await;
    assert_eq!(
        seen.body, paid.body,
        "paid with its reference after kill -9"
    );
    assert_eq!(
        shop_pay(&app, SHOP_KEY, &order, None).await.body,
        paid.body,
        "still idempotent"
    );
    let after = app.admin("GET", "/audit", None).await;
    assert_eq!(
        after.body["entries"].as_array().expect("entries")[1..],
        audit.body["entries"].as_array().expect("entries")[..],
        "the log survived, the repeated payment on top"
    );
    app.kill9();

    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.contains("request"),
        "the log has request lines: {text}"
    );
    for secret in [SHOP_KEY, VIEWER_KEY, ADMIN_KEY, ticket.as_str()] {
        assert!(!text.contains(secret), "{secret} is in the log");
    }
}
