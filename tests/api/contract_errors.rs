//! Every contract error provoked at least once; after each, the server is healthy and
//! the activity's invariant and orders are unchanged.

use crate::common::*;
use actix_web::web::Bytes;
use serde_json::json;

async fn healthy_and_unchanged(app: &TestApp, id: &str, sold: u64) {
    assert_eq!(app.request("GET", "/healthz", None, None).await.status, 200);
    let v = app.assert_invariant(id).await;
    assert_eq!(v["sold"].as_u64(), Some(sold), "{v}");
}

#[actix_web::test]
async fn bad_requests_identities_and_ids_get_their_contract_errors() {
    let app = spawn_app().await;
    app.create_sale("e", 3, json!({"max_active": 2})).await;
    let mut a = app.ws("e", "alice", None).await;
    let token = a.until("admitted").await["token"]
        .as_str()
        .expect("t")
        .to_owned();
    let order = app.purchase("e", "alice", &token, None).await;
    assert_eq!(order.status, 201);
    let order_id = order.body["order"]["id"].as_str().expect("id").to_owned();

    // 400 invalid_request
    let admin = Some(ADMIN_KEY);
    app.raw(
        "POST",
        "/api/admin/activities",
        admin,
        Bytes::from_static(b"{not json"),
        "application/json",
    )
    .await
    .expect_error(400, "invalid_request");
    for body in [
        json!({"id":"x","name":"x","kind":"sale","stock":"ten"}),
        json!({"id":"x","name":"x","kind":"sale","stock":-1}),
        json!({"id":"x","name":"x","kind":"sale","stock":18446744073709551616u128.to_string()}),
        json!({"id":"../etc","name":"x","kind":"sale","stock":1}),
        json!({"id":"x","name":"x","kind":"lottery","stock":1}),
        json!({"id":"x","name":"x","kind":"sale","stock":1,"admission":{"token_ttl_secs":0}}),
        json!({"id":"x","name":"x","kind":"sale","stock":1,"price_cents":1e30}),
        json!({"id":"x","name":"x".repeat(500),"kind":"sale","stock":1}),
        json!([1, 2, 3]),
    ] {
        app.create(body.clone())
            .await
            .expect_error(400, "invalid_request");
    }
    let deep = format!("{}1{}", "[".repeat(5000), "]".repeat(5000));
    app.raw(
        "POST",
        "/api/admin/activities",
        admin,
        Bytes::from(deep),
        "application/json",
    )
    .await
    .expect_error(400, "invalid_request");
    app.request(
        "POST",
        "/api/admin/activities/e/stock",
        admin,
        Some(json!({"add": -5})),
    )
    .await
    .expect_error(400, "invalid_request");

    // 401 unauthorized: missing, malformed, badly signed, expired identities; wrong admin key.
    app.request("POST", "/api/activities/e/join", None, None)
        .await
        .expect_error(401, "unauthorized");
    app.request("POST", "/api/activities/e/join", Some("not.a.jwt"), None)
        .await
        .expect_error(401, "unauthorized");
    let forged = sluice::domain::jwt::JwtKey::new(b"another-secret").issue(
        &sluice::domain::ids::UserId::parse("alice").expect("id"),
        u64::MAX / 2000,
    );
    app.request("POST", "/api/activities/e/join", Some(&forged), None)
        .await
        .expect_error(401, "unauthorized");
    let expired = sluice::domain::jwt::JwtKey::new(app.settings.auth.jwt_secret.as_bytes())
        .issue(&sluice::domain::ids::UserId::parse("alice").expect("id"), 1);
    app.request("POST", "/api/activities/e/join", Some(&expired), None)
        .await
        .expect_error(401, "unauthorized");
    app.request("GET", "/api/admin/activities", Some("wrong-key"), None)
        .await
        .expect_error(401, "unauthorized");
    app.request(
        "GET",
        "/api/admin/activities",
        Some(&app.user_token("alice")),
        None,
    )
    .await
    .expect_error(401, "unauthorized");

    // 401 token_invalid: forged, tampered, another activity's.
    app.purchase("e", "alice", "garbage", None)
        .await
        .expect_error(401, "token_invalid");
    let mut tampered = token.clone().into_bytes();
    tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
    app.purchase(
        "e",
        "alice",
        &String::from_utf8(tampered).expect("utf8"),
        None,
    )
    .await
    .expect_error(401, "token_invalid");
    app.create_sale("other", 1, json!({})).await;
    let mut o = app.ws("other", "olga", None).await;
    let other_token = o.until("admitted").await["token"]
        .as_str()
        .expect("t")
        .to_owned();
    app.purchase("e", "olga", &other_token, None)
        .await
        .expect_error(401, "token_invalid");

    // 403 forbidden: someone else's token, order, ticket.
    let mut b = app.ws("e", "bob", None).await;
    let bob_token = b.until("admitted").await["token"]
        .as_str()
        .expect("t")
        .to_owned();
    app.purchase("e", "mallory", &bob_token, None)
        .await
        .expect_error(403, "forbidden");
    app.request(
        "POST",
        "/api/activities/e/purchase",
        Some(&app.user_token("bob")),
        Some(json!({"token": bob_token, "quantity": 0})),
    )
    .await
    .expect_error(400, "invalid_request");
    app.request(
        "GET",
        &format!("/api/orders/{order_id}"),
        Some(&app.user_token("mallory")),
        None,
    )
    .await
    .expect_error(403, "forbidden");
    let bob_ticket = app.join_http("e", "bob").await.body["ticket"]
        .as_str()
        .expect("t")
        .to_owned();
    app.request(
        "GET",
        &format!("/api/activities/e/tickets/{bob_ticket}"),
        Some(&app.user_token("mallory")),
        None,
    )
    .await
    .expect_error(403, "forbidden");

    // 404 not_found: activity, ticket, order, traversal ids, unknown routes.
    let u = app.user_token("alice");
    for path in [
        "/api/activities/nope",
        "/api/activities/..%2F..%2Fetc%2Fpasswd",
        "/api/activities/e/tickets/AAAAAAAAAAAAAAAAAAAAAA",
        "/api/activities/e/tickets/..",
        "/api/orders/e.zz",
        "/api/orders/nonsense",
        "/api/orders/..%2Fx",
        "/no/such/route",
    ] {
        app.request("GET", path, Some(&u), None)
            .await
            .expect_error(404, "not_found");
    }
    // A purchase on an id that names nothing is 404 whatever its token, malformed
    // (else 401 token_invalid) or real.
    // (Each by another user: the per-user rate limit counts purchases.)
    for (id, token, user) in [
        ("nope", "garbage", "p1"),
        ("nope", token.as_str(), "p2"),
        ("NOT-AN-ID", "x", "p3"),
    ] {
        app.purchase(id, user, token, None)
            .await
            .expect_error(404, "not_found");
    }
    app.purchase("e", "p4", "garbage", None)
        .await
        .expect_error(401, "token_invalid");

    // 409 conflict, limit_reached.
    app.create(json!({"id":"e","name":"again","kind":"sale","stock":1}))
        .await
        .expect_error(409, "conflict");
    app.join_http("e", "alice")
        .await
        .expect_error(409, "limit_reached");

    // Replayed purchase: same order, 200.
    let again = app.purchase("e", "alice", &token, None).await;
    assert_eq!(
        (again.status, again.body["order"]["id"].as_str()),
        (200, Some(order_id.as_str()))
    );

    // 413 payload_too_large: a 5 MB body.
    let big = Bytes::from(format!("{{\"id\":\"{}\"}}", "a".repeat(5 * 1024 * 1024)));
    app.raw(
        "POST",
        "/api/admin/activities",
        admin,
        big,
        "application/json",
    )
    .await
    .expect_error(413, "payload_too_large");

    healthy_and_unchanged(&app, "e", 1).await;
}

/// Every body over `server.max_body_bytes` is the contract's JSON `413`, also on the
/// calls whose body is optional (the join, the shop's payment confirmation), and
/// changes nothing.
#[actix_web::test]
async fn every_body_over_the_limit_is_a_json_payload_too_large() {
    let app = spawn_app().await;
    app.create_sale("big", 2, json!({})).await;
    let token = app.user_token("alice");
    let big = || Bytes::from(format!("{{\"invite\":\"{}\"}}", "a".repeat(100 * 1024)));
    for (path, auth) in [
        ("/api/activities/big/join", token.as_str()),
        ("/api/activities/big/purchase", token.as_str()),
        ("/api/admin/orders/big.1/pay", ADMIN_KEY),
        ("/api/admin/activities", ADMIN_KEY),
    ] {
        let r = app
            .raw("POST", path, Some(auth), big(), "application/json")
            .await;
        assert_eq!(r.status, 413, "{path}: {}", r.body);
        r.expect_error(413, "payload_too_large");
    }
    // The refused join made no place: the first real join is a new one.
    assert_eq!(app.join_http("big", "alice").await.status, 201);
    healthy_and_unchanged(&app, "big", 0).await;
}

#[actix_web::test]
async fn sold_out_not_open_and_queue_full() {
    let app = spawn_app().await;
    app.create_sale("tiny", 1, json!({"max_active": 1, "queue_capacity": 1}))
        .await;
    let mut a = app.ws("tiny", "a", None).await;
    let t = a.until("admitted").await["token"]
        .as_str()
        .expect("t")
        .to_owned();
    assert_eq!(app.join_http("tiny", "b").await.status, 201);
    app.join_http("tiny", "c")
        .await
        .expect_error(503, "queue_full");
    let full = app.join_http("tiny", "c").await;
    assert!(full.retry_after.is_some());
    assert_eq!(app.purchase("tiny", "a", &t, None).await.status, 201);
    app.join_http("tiny", "d")
        .await
        .expect_error(409, "sold_out");
    app.admin("POST", "/activities/tiny/close", None).await;
    app.join_http("tiny", "e")
        .await
        .expect_error(409, "not_open");
    healthy_and_unchanged(&app, "tiny", 1).await;
}

#[actix_web::test]
async fn floods_over_the_limit_get_429_with_retry_after() {
    let app = spawn_with(false, |s| {
        s.limits.join_per_ip_per_sec = 3;
    })
    .await;
    app.create_sale("flood", 100, json!({})).await;
    let mut limited = None;
    for i in 0..10 {
        let r = app.join_http("flood", &format!("bot{i}")).await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("a flood from one IP is limited");
    r.expect_error(429, "rate_limited");
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    healthy_and_unchanged(&app, "flood", 0).await;
}

/// `limits.admin_per_ip_per_sec` holds every admin call from one address, checked
/// before the key: guessing keys is limited like using one.
#[actix_web::test]
async fn admin_floods_from_one_address_get_429_with_retry_after() {
    let app = spawn_with(false, |s| {
        s.limits.admin_per_ip_per_sec = 3;
    })
    .await;
    for key in [ADMIN_KEY, "a-wrong-guess"] {
        let mut limited = None;
        for _ in 0..10 {
            let r = app
                .request("GET", "/api/admin/activities", Some(key), None)
                .await;
            if r.status == 429 {
                limited = Some(r);
                break;
            }
        }
        let r = limited.unwrap_or_else(|| panic!("a flood with {key} is limited"));
        r.expect_error(429, "rate_limited");
        assert!(r.retry_after.is_some());
    }
}

#[actix_web::test]
async fn a_draining_server_answers_unavailable() {
    let app = spawn_app().await;
    app.create_sale("d", 5, json!({})).await;
    app.state.registry.drain().await;
    let r = app.join_http("d", "late").await;
    r.expect_error(503, "unavailable");
    assert!(r.retry_after.is_some());
}

#[actix_web::test]
async fn a_proof_of_work_join_challenge_when_the_activity_asks_for_one() {
    let app = spawn_app().await;
    app.create_sale("pow", 5, json!({"join_pow_bits": 10}))
        .await;
    let r = app.join_http("pow", "bot").await;
    r.expect_error(400, "invalid_request");
    assert!(r.body["error"]["message"]
        .as_str()
        .expect("m")
        .contains("proof-of-work"));
    let c = app
        .request(
            "GET",
            "/api/activities/pow/challenge",
            Some(&app.user_token("human")),
            None,
        )
        .await;
    assert_eq!((c.status, c.body["bits"].as_u64()), (200, Some(10)));
    let nonce = c.body["nonce"].as_str().expect("nonce").to_owned();
    let solution = sluice::domain::pow::solve(&nonce, 10);
    // Another user cannot use this nonce.
    let stolen = app
        .request(
            "POST",
            "/api/activities/pow/join",
            Some(&app.user_token("bot")),
            Some(json!({"pow_nonce": nonce, "pow_solution": solution})),
        )
        .await;
    stolen.expect_error(400, "invalid_request");
    let ok = app
        .request(
            "POST",
            "/api/activities/pow/join",
            Some(&app.user_token("human")),
            Some(json!({"pow_nonce": nonce, "pow_solution": solution})),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    // Over WebSocket the answer rides in the query string.
    let c = app
        .request(
            "GET",
            "/api/activities/pow/challenge",
            Some(&app.user_token("ws")),
            None,
        )
        .await;
    let nonce = c.body["nonce"].as_str().expect("nonce").to_owned();
    let solution = sluice::domain::pow::solve(&nonce, 10);
    let url = format!(
        "{}/ws/activities/pow?access_token={}&pow_nonce={nonce}&pow_solution={solution}",
        app.ws_base,
        app.user_token("ws")
    );
    let (_, framed) = app.client.ws(url).connect().await.expect("connects");
    let mut u = WsUser {
        framed,
        user: "ws".into(),
    };
    assert_eq!(u.until("admitted").await["type"], "admitted");
    healthy_and_unchanged(&app, "pow", 0).await;
}

#[actix_web::test]
async fn websocket_connections_per_ip_and_messages_per_connection_are_limited() {
    let app = spawn_with(false, |s| {
        s.server.max_ws_per_ip = 2;
        s.server.ws_messages_per_sec = 3;
    })
    .await;
    app.create_sale("wsl", 1, json!({"max_active": 1})).await;
    let mut a = app.ws("wsl", "a", None).await;
    a.until("admitted").await;
    let mut b = app.ws("wsl", "b", None).await;
    b.until("queued").await;
    // A third socket from the same address is refused before the upgrade.
    let url = format!(
        "{}/ws/activities/wsl?access_token={}",
        app.ws_base,
        app.user_token("c")
    );
    match app.client.ws(url).connect().await {
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => assert_eq!(s.as_u16(), 429),
        other => panic!("expected 429, got {:?}", other.map(|r| r.0.status())),
    }
    // Over the message budget: rate_limited error frames, the socket stays usable.
    for _ in 0..6 {
        b.send_text("{}").await;
    }
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(
            b.until("error").await["code"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
    }
    assert!(codes.iter().any(|c| c == "rate_limited"), "{codes:?}");
    assert!(codes.iter().any(|c| c == "invalid_request"), "{codes:?}");
    // Closing one socket frees a slot for the address.
    drop(a);
    let mut c = connect_when_free(&app, "wsl", "c").await;
    c.until("queued").await;
    healthy_and_unchanged(&app, "wsl", 0).await;
}

#[actix_web::test]
async fn a_full_server_refuses_new_websockets_with_503_and_keeps_its_sessions() {
    let app = spawn_with(false, |s| s.server.max_ws_sessions = 1).await;
    app.create_sale("full", 1, json!({"max_active": 1})).await;
    let mut a = app.ws("full", "a", None).await;
    a.until("admitted").await;
    let url = |user: &str| {
        format!(
            "{}/ws/activities/full?access_token={}",
            app.ws_base,
            app.user_token(user)
        )
    };
    // The process cap, not the per-IP one: 503 unavailable, come back shortly.
    match app.client.ws(url("b")).connect().await {
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => assert_eq!(s.as_u16(), 503),
        other => panic!("expected 503, got {:?}", other.map(|r| r.0.status())),
    }
    // The session already held is untouched; once it closes, a new one fits.
    drop(a);
    let mut b = connect_when_free(&app, "full", "b").await;
    b.until("queued").await;
    healthy_and_unchanged(&app, "full", 0).await;
}

/// A WebSocket for `user`, retried while the server has not yet counted a closed
/// socket out (the close reaches it asynchronously).
async fn connect_when_free(app: &TestApp, activity: &str, user: &str) -> WsUser {
    let url = format!(
        "{}/ws/activities/{activity}?access_token={}",
        app.ws_base,
        app.user_token(user)
    );
    for _ in 0..50 {
        if let Ok((_, framed)) = app.client.ws(url.as_str()).connect().await {
            return WsUser {
                framed,
                user: user.into(),
            };
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("a slot frees up once a socket closes");
}
