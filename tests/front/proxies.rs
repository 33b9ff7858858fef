//! Trusted proxies: a crowd behind nginx is limited per original client; a client
//! that talks to sluice directly cannot choose its address with a forged header; a
//! crowd behind one address fits the default limits.

use crate::common::*;
use futures_util::future::join_all;
use serde_json::json;

#[actix_web::test]
#[ignore = "needs nginx: scripts/test.sh installs it"]
async fn a_crowd_through_nginx_is_limited_per_client_and_forged_headers_are_not_believed() {
    let app = spawn_with(false, |s| {
        s.server.trusted_proxies = vec![PROXY_SOURCE.into()];
        // Each client joins twice (HTTP, WebSocket): well under 5 per second. Seen as
        // one address (the proxy's), 800 joins would mostly get 429.
        s.limits.join_per_ip_per_sec = 5;
    })
    .await;
    app.create_sale(
        "drop",
        2000,
        json!({"rate_per_sec": 1000, "max_active": 2000}),
    )
    .await;
    let nginx = nginx(app.port).await;
    let crowd: Vec<_> = (0..400)
        .map(|n| app.at(nginx.port, Some(crowd_ip(n))))
        .collect();

    let joins = join_all(
        crowd
            .iter()
            .enumerate()
            .map(|(n, c)| async move { c.join_http("drop", &format!("h{n}")).await }),
    )
    .await;
    let refused: Vec<_> = joins.iter().filter(|r| r.status != 201).collect();
    assert!(
        refused.is_empty(),
        "{} of 400 HTTP joins refused, e.g. {}",
        refused.len(),
        refused[0].body
    );

    let mut sockets = join_all(
        crowd
            .iter()
            .enumerate()
            .map(|(n, c)| async move { c.ws("drop", &format!("w{n}"), None).await }),
    )
    .await;
    for u in &mut sockets {
        let first = u.next_json().await;
        assert!(
            first["type"] == "queued" || first["type"] == "admitted",
            "{}: {first}",
            u.user
        );
    }
    let v = app.view("drop").await;
    assert_eq!(
        v["waiting"].as_u64().unwrap_or(0) + v["admitted_total"].as_u64().unwrap_or(0),
        800,
        "{v}"
    );

    // Direct, from 127.0.0.1 (not a trusted proxy), a new forged address each time:
    // limited as 127.0.0.1.
    let forged = join_all((0..20).map(|n| {
        let req = app
            .client
            .post(format!("{}/api/activities/drop/join", app.base))
            .insert_header((
                "Authorization",
                format!("Bearer {}", app.user_token(&format!("f{n}"))),
            ))
            .insert_header(("X-Forwarded-For", format!("203.0.113.{n}")))
            .insert_header(("Forwarded", format!("for=198.51.100.{n}")));
        async move {
            req.send()
                .await
                .expect("direct join answers")
                .status()
                .as_u16()
        }
    }))
    .await;
    let limited = forged.iter().filter(|s| **s == 429).count();
    assert!(
        limited >= 10,
        "forged headers changed the address: {forged:?}"
    );
    drop(sockets);
}

/// The measurement: 400 users behind one address (here with no proxy
/// configured at all, the worst case) join with the shipped default limits.
#[actix_web::test]
async fn four_hundred_users_behind_one_address_fit_the_default_limits() {
    let defaults = sluice::config::Settings::defaults();
    let app = spawn_with(false, |s| s.limits = defaults.limits.clone()).await;
    app.create_sale(
        "crowd",
        1000,
        json!({"rate_per_sec": 1000, "max_active": 1000}),
    )
    .await;
    let joins = join_all((0..400).map(|n| {
        let app = &app;
        async move { app.join_http("crowd", &format!("u{n}")).await }
    }))
    .await;
    let placed = joins.iter().filter(|r| r.status == 201).count();
    let limited = joins.iter().filter(|r| r.status == 429).count();
    eprintln!("400 users behind one address, default limits: {placed} placed, {limited} got 429");
    assert_eq!((placed, limited), (400, 0));
}
