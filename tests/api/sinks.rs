//! Orders reach a real PostgreSQL or Redis sink, with every status change, exactly once
//! in effect, across a sink outage. Needs the throwaway services `scripts/test.sh`
//! starts; ignored by a plain `cargo test`, run (and failing loudly) under test.sh.

use crate::common::*;
use serde_json::{json, Value};
use sluice::config::SinkKind;
use std::collections::BTreeMap;
use std::time::Duration;

/// Tests here stop and start the shared throwaway services: one at a time.
static SERVICES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run scripts/test.sh, which starts the service")
    })
}

fn run(var: &str) {
    let cmd = env(var);
    let ok = std::process::Command::new("bash")
        .arg("-c")
        .arg(&cmd)
        .status()
        .expect("runs")
        .success();
    assert!(ok, "{var} failed: {cmd}");
}

/// Sells `n` units to fresh users; pays every third order, cancels every fourth.
/// Returns order id -> (final status, version).
async fn sell(app: &TestApp, id: &str, from: usize, n: usize) -> BTreeMap<String, (String, u64)> {
    let mut out = BTreeMap::new();
    for i in from..from + n {
        let user = format!("{id}-u{i}");
        let j = app.join_http(id, &user).await;
        assert_eq!(j.body["status"], "admitted", "{}", j.body);
        let o = app
            .purchase(id, &user, j.body["token"].as_str().expect("token"), None)
            .await;
        assert_eq!(o.status, 201, "{}", o.body);
        let oid = o.body["order"]["id"].as_str().expect("id").to_owned();
        let mut last: Value = o.body["order"].clone();
        if i % 3 == 0 {
            last = app
                .request(
                    "POST",
                    &format!("/api/orders/{oid}/pay"),
                    Some(&app.user_token(&user)),
                    None,
                )
                .await
                .body["order"]
                .clone();
        } else if i % 4 == 0 {
            last = app
                .request(
                    "POST",
                    &format!("/api/orders/{oid}/cancel"),
                    Some(&app.user_token(&user)),
                    None,
                )
                .await
                .body["order"]
                .clone();
        }
        out.insert(
            oid,
            (
                last["status"].as_str().expect("status").to_owned(),
                last["version"].as_u64().expect("v"),
            ),
        );
    }
    out
}

/// Waits (bounded) until `read` returns exactly what was acknowledged.
async fn converge<F, Fut>(want: &BTreeMap<String, (String, u64)>, mut read: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = BTreeMap<String, (String, u64)>>,
{
    let mut got = BTreeMap::new();
    for _ in 0..300 {
        got = read().await;
        if &got == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("sink never converged:\nwant {want:?}\ngot  {got:?}");
}

async fn ready(app: &TestApp) -> (u16, Value) {
    let r = app.request("GET", "/readyz", None, None).await;
    (r.status, r.body)
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:x}", rand::random::<u32>())
}

async fn pg_orders(url: &str, activity: &str) -> BTreeMap<String, (String, u64)> {
    let Ok((client, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
        return BTreeMap::new();
    };
    actix_web::rt::spawn(conn);
    let rows = client
        .query(
            "SELECT id, status, version FROM orders WHERE activity_id = $1",
            &[&activity],
        )
        .await
        .unwrap_or_default();
    rows.iter()
        .map(|r| {
            (
                r.get::<_, String>(0),
                (r.get::<_, String>(1), r.get::<_, i64>(2) as u64),
            )
        })
        .collect()
}

#[actix_web::test]
#[ignore = "needs PostgreSQL: run scripts/test.sh"]
async fn every_order_and_status_change_reaches_postgres_across_an_outage() {
    let _one_at_a_time = SERVICES.lock().await;
    let url = env("SLUICE_TEST_PG_URL");
    let app = spawn_with(false, |s| {
        s.sink.kind = SinkKind::Postgres;
        s.sink.url = url.clone();
    })
    .await;
    let id = unique("pg");
    app.create_sale(&id, 100, json!({"max_active": 100, "rate_per_sec": 1000}))
        .await;
    let mut want = sell(&app, &id, 0, 12).await;
    converge(&want, || pg_orders(&url, &id)).await;
    assert_eq!(ready(&app).await.0, 200);

    run("SLUICE_TEST_PG_STOP");
    // Selling goes on while the sink is down; the outbox holds the orders.
    want.extend(sell(&app, &id, 12, 12).await);
    let (status, body) = ready(&app).await;
    assert_eq!(
        (status, body["sink"].as_str()),
        (503, Some("unreachable")),
        "{body}"
    );
    run("SLUICE_TEST_PG_START");
    converge(&want, || pg_orders(&url, &id)).await;
    let v = app.assert_invariant(&id).await;
    assert_eq!(
        v["sold"].as_u64(),
        Some(want.values().filter(|s| s.0 != "cancelled").count() as u64)
    );
    for _ in 0..100 {
        if ready(&app).await.1["outbox_backlog"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("outbox never drained");
}

async fn redis_orders(url: &str, ids: &[String]) -> BTreeMap<String, (String, u64)> {
    let Ok(client) = redis::Client::open(url) else {
        return BTreeMap::new();
    };
    let Ok(mut c) = client.get_multiplexed_async_connection().await else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for id in ids {
        let h: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("sluice:order:{id}"))
            .query_async(&mut c)
            .await
            .unwrap_or_default();
        if let (Some(s), Some(v)) = (
            h.get("status"),
            h.get("version").and_then(|v| v.parse().ok()),
        ) {
            out.insert(id.clone(), (s.clone(), v));
        }
    }
    out
}

#[actix_web::test]
#[ignore = "needs Redis: run scripts/test.sh"]
async fn every_order_and_status_change_reaches_redis_across_an_outage() {
    let _one_at_a_time = SERVICES.lock().await;
    let url = env("SLUICE_TEST_REDIS_URL");
    let app = spawn_with(false, |s| {
        s.sink.kind = SinkKind::Redis;
        s.sink.url = url.clone();
    })
    .await;
    let id = unique("rd");
    app.create_sale(&id, 100, json!({"max_active": 100, "rate_per_sec": 1000}))
        .await;
    let mut want = sell(&app, &id, 0, 12).await;
    let ids = |w: &BTreeMap<String, (String, u64)>| w.keys().cloned().collect::<Vec<_>>();
    let first = ids(&want);
    converge(&want, || redis_orders(&url, &first)).await;

    run("SLUICE_TEST_REDIS_STOP");
    want.extend(sell(&app, &id, 12, 12).await);
    assert_eq!(ready(&app).await.0, 503);
    run("SLUICE_TEST_REDIS_START");
    let all = ids(&want);
    converge(&want, || redis_orders(&url, &all)).await;
    // The stream holds exactly one entry per (order, version): replays added nothing.
    let client = redis::Client::open(url.as_str()).expect("url");
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let reply: redis::streams::StreamRangeReply =
        redis::AsyncCommands::xrange_all(&mut c, "sluice:orders")
            .await
            .expect("xrange");
    let ours: std::collections::HashSet<&String> = all.iter().collect();
    let mut seen: BTreeMap<(String, u64), u32> = BTreeMap::new();
    for e in &reply.ids {
        let (Some(oid), Some(v)) = (e.get::<String>("id"), e.get::<String>("version")) else {
            continue;
        };
        if ours.contains(&oid) {
            *seen.entry((oid, v.parse().expect("version"))).or_default() += 1;
        }
    }
    let versions: u64 = want.values().map(|(_, v)| *v).sum();
    assert_eq!(
        seen.len() as u64,
        versions,
        "one stream entry per order version"
    );
    assert!(seen.values().all(|&n| n == 1), "no version twice: {seen:?}");
}

#[actix_web::test]
#[ignore = "needs Redis: run scripts/test.sh"]
async fn a_sink_that_is_down_at_start_up_does_not_stop_selling() {
    let _one_at_a_time = SERVICES.lock().await;
    let url = env("SLUICE_TEST_REDIS_URL");
    run("SLUICE_TEST_REDIS_STOP");
    let app = spawn_with(false, |s| {
        s.sink.kind = SinkKind::Redis;
        s.sink.url = url.clone();
    })
    .await;
    let id = unique("late");
    app.create_sale(&id, 10, json!({})).await;
    let want = sell(&app, &id, 0, 5).await;
    assert_eq!(ready(&app).await.0, 503);
    run("SLUICE_TEST_REDIS_START");
    let ids: Vec<String> = want.keys().cloned().collect();
    converge(&want, || redis_orders(&url, &ids)).await;
}

/// The sink's (status, payment_ref) of `order`, if it has the order.
async fn sink_payment(kind: SinkKind, url: &str, order: &str) -> Option<(String, Option<String>)> {
    match kind {
        SinkKind::Postgres => {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .ok()?;
            actix_web::rt::spawn(conn);
            let row = client
                .query_opt(
                    "SELECT status, payment_ref FROM orders WHERE id = $1",
                    &[&order],
                )
                .await
                .ok()??;
            Some((row.get(0), row.get(1)))
        }
        _ => {
            let client = redis::Client::open(url).ok()?;
            let mut c = client.get_multiplexed_async_connection().await.ok()?;
            let h: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
                .arg(format!("sluice:order:{order}"))
                .query_async(&mut c)
                .await
                .ok()?;
            Some((h.get("status")?.clone(), h.get("payment_ref").cloned()))
        }
    }
}

#[actix_web::test]
#[ignore = "needs PostgreSQL and Redis: run scripts/test.sh"]
async fn the_shops_payment_ref_reaches_postgres_and_redis() {
    let _one_at_a_time = SERVICES.lock().await;
    for (kind, var) in [
        (SinkKind::Postgres, "SLUICE_TEST_PG_URL"),
        (SinkKind::Redis, "SLUICE_TEST_REDIS_URL"),
    ] {
        let url = env(var);
        let app = spawn_with(false, |s| {
            crate::shop::shop_settings(s);
            s.sink.kind = kind;
            s.sink.url = url.clone();
        })
        .await;
        let id = unique("ref");
        app.create_sale(&id, 5, json!({"max_active": 10, "rate_per_sec": 1000}))
            .await;
        let paid = crate::shop::buy(&app, &id, "ann").await;
        let pending = crate::shop::buy(&app, &id, "bob").await;
        let r = app
            .request(
                "POST",
                &format!("/api/admin/orders/{paid}/pay"),
                Some(crate::shop::SHOP_KEY),
                Some(json!({"payment_ref": format!("pi-{id}")})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let want = [
            (paid, Some(("paid".to_owned(), Some(format!("pi-{id}"))))),
            (pending, Some(("pending_payment".to_owned(), None))),
        ];
        let mut got = Vec::new();
        for _ in 0..300 {
            got.clear();
            for (order, _) in &want {
                got.push((order.clone(), sink_payment(kind, &url, order).await));
            }
            if got[..] == want[..] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(got[..], want[..], "{kind:?}");
        app.stop().await;
    }
}
