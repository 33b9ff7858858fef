//! Cluster mode against real processes: three sluice nodes (`common::Node`) and a
//! throwaway Redis per test (`harness`). They need `redis-server` on the PATH, so they
//! are ignored by a plain `cargo test`; `scripts/test.sh` runs them (and installs
//! Redis if missing).

#[path = "../common/mod.rs"]
mod common;
mod harness;
mod redis_failover;
mod relayed_join;
mod sentinels;
mod takeover_credit;

use common::*;
use harness::*;
use serde_json::json;
use sluice::cluster::keys;
use sluice::domain::ids::ActivityId;
use std::time::Duration;

async fn three_nodes(redis_urls: [&str; 3]) -> Vec<Node> {
    let mut nodes = Vec::new();
    for (i, url) in redis_urls.iter().enumerate() {
        nodes.push(Node::start(&format!("n{}", i + 1), url).await);
    }
    nodes
}

/// Waits until every node sees `owner` own `id`.
async fn settled(nodes: &[&Node], id: &str, owner: &str) {
    for n in nodes {
        n.owner(id, &[owner]).await;
    }
    // Named is not yet serving: a takeover rebuilds the activity after taking the
    // lease, answering `503` (moving) meanwhile.
    if let Some(n) = nodes.first() {
        n.view_when_available(id).await;
    }
}

fn node<'a>(nodes: &'a [Node], id: &str) -> &'a Node {
    nodes.iter().find(|n| n.id == id).expect("node")
}

/// An activity id whose rendezvous node among n1..n3 is `want`.
fn id_owned_by(prefix: &str, want: &str) -> String {
    (0..1000)
        .map(|i| format!("{prefix}-{i}"))
        .find(|id| {
            let a = ActivityId::parse(id).expect("id");
            keys::rendezvous(&a, ["n1", "n2", "n3"]) == Some(want)
        })
        .expect("some id lands on the node")
}

/// Waits for the user's `admitted` frame, buys with its token through `via` (201
/// expected) and returns the order id.
async fn buy_when_admitted(via: &Node, id: &str, user: &str, ws: &mut WsUser) -> String {
    let a = ws.until("admitted").await;
    let r = via
        .purchase(id, user, a["token"].as_str().expect("token"), None)
        .await;
    assert_eq!(r.status, 201, "{user} through {}: {}", via.id, r.body);
    r.body["order"]["id"].as_str().expect("order id").to_owned()
}

#[actix_web::test]
#[ignore = "needs redis-server: run scripts/test.sh"]
async fn sessions_on_any_node_share_one_fifo_line_and_one_place_per_user() {
    let redis = Redis::start().await;
    let url = redis.url();
    let nodes = three_nodes([&url, &url, &url]).await;
    nodes[0]
        .create_sale("fifo", 3, json!({"max_active": 1, "rate_per_sec": 1000}))
        .await;
    let (owner, _) = nodes[0].owner("fifo", &["n1", "n2", "n3"]).await;
    settled(&nodes.iter().collect::<Vec<_>>(), "fifo", &owner).await;
    assert_eq!(
        nodes[2]
            .admin("POST", "/activities/fifo/pause", None)
            .await
            .status,
        200
    );

    // Joins through all three nodes form one line with exact positions.
    let mut users = Vec::new();
    for i in 0..9 {
        let mut u = nodes[i % 3].ws("fifo", &format!("u{i}"), None).await;
        let q = u.until("queued").await;
        assert_eq!(
            q["position"],
            i + 1,
            "u{i} through {}: {q}",
            nodes[i % 3].id
        );
        users.push((u, q["ticket"].as_str().expect("ticket").to_owned()));
    }

    // One place per user across nodes: u0 through another node gets the same ticket
    // and place, and its first socket is superseded.
    let mut again = nodes[1].ws("fifo", "u0", None).await;
    let q = again.until("queued").await;
    assert_eq!(
        (q["ticket"].as_str(), q["position"].as_u64()),
        (Some(users[0].1.as_str()), Some(1))
    );
    users[0].0.until("superseded").await;
    users[0].0 = again;

    // FIFO across nodes: one token at a time, in join order; purchases go through a
    // node that does not own the activity.
    let non_owner = nodes.iter().find(|n| n.id != owner).expect("a non-owner");
    assert_eq!(
        nodes[1]
            .admin("POST", "/activities/fifo/resume", None)
            .await
            .status,
        200
    );
    let mut orders = Vec::new();
    for (i, (u, _)) in users.iter_mut().enumerate().take(3) {
        orders.push(buy_when_admitted(non_owner, "fifo", &format!("u{i}"), u).await);
    }
    for (i, (u, _)) in users.iter_mut().enumerate().skip(3) {
        let end = u.until("sold_out").await;
        assert_eq!(end["type"], "sold_out", "u{i}");
    }

    // Orders are visible from every node.
    for (i, order) in orders.iter().enumerate() {
        let via = &nodes[(i + 1) % 3];
        let mine = via
            .as_user(&format!("u{i}"), "GET", "/api/orders", None)
            .await;
        assert!(
            mine.body["orders"]
                .as_array()
                .is_some_and(|o| o.iter().any(|x| x["id"] == order.as_str())),
            "{}",
            mine.body
        );
    }
    let v = nodes[2].assert_invariant_when_available("fifo").await;
    assert_eq!(v["sold"], 3);
    assert_eq!(v["admitted_total"], 3);

    // Accounts are cluster-wide: registered through one node, logged in through another.
    let creds = json!({"username": "ada", "password": "correct horse battery"});
    let reg = nodes[0]
        .request("POST", "/api/auth/register", None, Some(creds.clone()))
        .await;
    assert_eq!(reg.status, 201, "{}", reg.body);
    let dup = nodes[2]
        .request("POST", "/api/auth/register", None, Some(creds.clone()))
        .await;
    assert_eq!((dup.status, dup.code()), (409, "conflict"));
    let login = nodes[1]
        .request("POST", "/api/auth/login", None, Some(creds))
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.body["user_id"], reg.body["user_id"]);
}

#[actix_web::test]
#[ignore = "needs redis-server: run scripts/test.sh"]
async fn an_owner_killed_mid_sale_loses_no_acknowledged_order_and_relayed_places_survive() {
    let redis = Redis::start().await;
    let url = redis.url();
    let mut nodes = three_nodes([&url, &url, &url]).await;
    let id = id_owned_by("kill", "n1");
    nodes[1]
        .create_sale(&id, 10, json!({"max_active": 2, "rate_per_sec": 1000}))
        .await;
    settled(&nodes.iter().collect::<Vec<_>>(), &id, "n1").await;
    assert_eq!(
        nodes[0]
            .admin("POST", &format!("/activities/{id}/pause"), None)
            .await
            .status,
        200
    );

    // Six users relayed through n2 and n3, one on the owner itself.
    let mut relayed = Vec::new();
    for i in 0..6 {
        let mut u = nodes[1 + i % 2].ws(&id, &format!("r{i}"), None).await;
        u.until("queued").await;
        relayed.push(u);
    }
    let mut direct = nodes[0].ws(&id, "d0", None).await;
    direct.until("queued").await;
    assert_eq!(
        nodes[2]
            .admin("POST", &format!("/activities/{id}/resume"), None)
            .await
            .status,
        200
    );

    // Two buy before the crash.
    let mut acknowledged = Vec::new();
    for (i, u) in relayed.iter_mut().enumerate().take(2) {
        let via = &nodes[1 + i % 2];
        acknowledged.push(buy_when_admitted(via, &id, &format!("r{i}"), u).await);
    }

    nodes[0].kill9();
    let (new_owner, fence) = nodes[1].owner(&id, &["n2", "n3"]).await;
    assert!(fence >= 2, "a higher fencing token: {fence}");
    settled(&[&nodes[1], &nodes[2]], &id, &new_owner).await;

    // The relayed sessions kept their sockets and places: the next ones are admitted
    // (again, with the same token, if it was issued before the crash) and buy.
    for (i, u) in relayed.iter_mut().enumerate().skip(2).take(3) {
        let via = &nodes[1 + i % 2];
        acknowledged.push(buy_when_admitted(via, &id, &format!("r{i}"), u).await);
    }

    // Every acknowledged order exists, through either survivor.
    all_orders_present(&[&nodes[1], &nodes[2]], &id, &acknowledged).await;
}

/// Every order in `orders` is found through `via` (in turn), and they are all the
/// activity sold: no unit sold twice, none acknowledged and lost.
async fn all_orders_present(via: &[&Node], id: &str, orders: &[String]) {
    for (i, order) in orders.iter().enumerate() {
        let got = via[i % via.len()]
            .get_when_available(&format!("/api/orders/{order}"))
            .await;
        assert_eq!(got.status, 200, "order {order}: {}", got.body);
    }
    let v = via[0].assert_invariant_when_available(id).await;
    assert_eq!(v["sold"].as_u64(), Some(orders.len() as u64), "{v}");
}

#[actix_web::test]
#[ignore = "needs redis-server: run scripts/test.sh"]
async fn a_stale_owner_cannot_write_after_another_node_took_over() {
    let redis = Redis::start().await;
    let url = redis.url();
    let nodes = three_nodes([&url, &url, &url]).await;
    let id = id_owned_by("stale", "n1");
    nodes[0].create_sale(&id, 5, json!({})).await;
    settled(&nodes.iter().collect::<Vec<_>>(), &id, "n1").await;

    // n1 freezes past its lease; another node takes over with a higher fence.
    nodes[0].signal("-STOP");
    let (new_owner, fence) = nodes[1].owner(&id, &["n2", "n3"]).await;
    assert_eq!(fence, 2);
    // The lease is visible before the new owner has rebuilt the activity: wait
    // until it serves (it answers `503`, moving, meanwhile).
    node(&nodes, &new_owner).view_when_available(&id).await;
    let add = node(&nodes, &new_owner)
        .admin(
            "POST",
            &format!("/activities/{id}/stock"),
            Some(json!({"add": 1})),
        )
        .await;
    assert_eq!(add.status, 200, "{}", add.body);

    // n1 wakes up still believing it owns the activity. Its write is refused by the
    // fencing check (503), or, if it noticed the lost lease first, forwarded to the
    // new owner (200). Never applied by the stale owner.
    nodes[0].signal("-CONT");
    let stale = nodes[0]
        .admin(
            "POST",
            &format!("/activities/{id}/stock"),
            Some(json!({"add": 1})),
        )
        .await;
    assert!(
        stale.status == 200 || (stale.status == 503 && stale.code() == "unavailable"),
        "{} {}",
        stale.status,
        stale.body
    );
    let forwarded = u64::from(stale.status == 200);
    let v = nodes[1].assert_invariant_when_available(&id).await;
    assert_eq!(v["capacity"].as_u64(), Some(6 + forwarded), "{v}");
    let (owner, f) = nodes[2].owner(&id, &["n2", "n3"]).await;
    assert_eq!((owner.as_str(), f), (new_owner.as_str(), 2));
    // And n1 let go of it.
    for _ in 0..200 {
        let me = nodes[0].admin("GET", "/cluster", None).await.body;
        if me["owned_here"].as_object().is_some_and(|o| o.is_empty()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("n1 still claims the activity");
}

#[actix_web::test]
#[ignore = "needs redis-server: run scripts/test.sh"]
async fn a_node_cut_off_from_redis_steps_down_and_its_activity_moves() {
    let redis = Redis::start().await;
    let url = redis.url();
    let proxy = Proxy::start(redis.port).await;
    let proxied = format!("redis://127.0.0.1:{}", proxy.port);
    let nodes = three_nodes([&proxied, &url, &url]).await;
    let id = id_owned_by("cut", "n1");
    nodes[1].create_sale(&id, 1, json!({"max_active": 1})).await;
    settled(&nodes.iter().collect::<Vec<_>>(), &id, "n1").await;
    assert_eq!(
        nodes[1]
            .admin("POST", &format!("/activities/{id}/pause"), None)
            .await
            .status,
        200
    );
    let mut relayed = nodes[1].ws(&id, "r0", None).await;
    relayed.until("queued").await;
    let mut direct = nodes[0].ws(&id, "d0", None).await;
    direct.until("queued").await;

    proxy.cut();
    // n1 cannot renew: it stops deciding and tells its own sessions to reconnect.
    direct.until("restarting").await;
    let (owner, _) = nodes[1].owner(&id, &["n2", "n3"]).await;
    settled(&[&nodes[1], &nodes[2]], &id, &owner).await;

    // The session relayed through n2 kept its place and buys.
    assert_eq!(
        nodes[2]
            .admin("POST", &format!("/activities/{id}/resume"), None)
            .await
            .status,
        200
    );
    buy_when_admitted(&nodes[2], &id, "r0", &mut relayed).await;
    let v = nodes[1].assert_invariant_when_available(&id).await;
    assert_eq!(v["sold"], 1);
}

#[actix_web::test]
#[ignore = "needs redis-server: run scripts/test.sh"]
async fn a_redis_stall_shorter_than_the_lease_costs_the_owner_nothing() {
    let redis = Redis::start().await;
    // A lease long enough that renewals outlast the stall; the replicated write
    // times out (after renew_ms + 500 ms) and must be sent again, not fail.
    let settings = [
        ("SLUICE__CLUSTER__REDIS_URL", redis.url()),
        ("SLUICE__CLUSTER__LEASE_MS", "6000".to_owned()),
        ("SLUICE__CLUSTER__RENEW_MS", "1000".to_owned()),
    ];
    let mut nodes = Vec::new();
    for n in ["n1", "n2", "n3"] {
        nodes.push(Node::start_with(n, &settings).await);
    }
    let id = id_owned_by("stall", "n1");
    nodes[1].create_sale(&id, 2, json!({"max_active": 1})).await;
    settled(&nodes.iter().collect::<Vec<_>>(), &id, "n1").await;
    let path = format!("/activities/{id}/pause");
    assert_eq!(nodes[1].admin("POST", &path, None).await.status, 200);
    let mut direct = nodes[0].ws(&id, "d0", None).await;
    direct.until("queued").await;
    let (_, fence) = nodes[0].owner(&id, &["n1"]).await;

    let client = redis::Client::open(redis.url()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connects");
    let paused: String = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2500)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .expect("CLIENT PAUSE");
    assert_eq!(paused, "OK");
    // Committed while Redis answers nobody: acknowledged once the stall is over.
    let joined = nodes[0].join_http(&id, "h1").await;
    assert_eq!(joined.status, 201, "{}", joined.body);
    assert_eq!(joined.body["status"], "waiting", "{}", joined.body);

    // Same owner, same fence: no step-down, no takeover, and its sessions kept
    // their sockets and places.
    assert_eq!(nodes[2].owner(&id, &["n1"]).await, ("n1".to_owned(), fence));
    let path = format!("/activities/{id}/resume");
    assert_eq!(nodes[2].admin("POST", &path, None).await.status, 200);
    buy_when_admitted(&nodes[0], &id, "d0", &mut direct).await;
    let v = nodes[1].assert_invariant_when_available(&id).await;
    assert_eq!(v["sold"], 1);
}

#[actix_web::test]
#[ignore = "needs redis-server: run scripts/test.sh"]
async fn replicated_writes_need_the_current_fencing_token() {
    use redis::AsyncCommands;
    use sluice::cluster::replicate::{ReplicaError, Replicator};
    use sluice::store::KvOp;
    let redis = Redis::start().await;
    let client = redis::Client::open(redis.url()).expect("url");
    let mut conn = redis::aio::ConnectionManager::new(client)
        .await
        .expect("connects");
    let id = ActivityId::parse("fenced").expect("id");
    let _: () = conn
        .set(keys::lease(&id), keys::holder("n1", 1))
        .await
        .expect("set");
    let mut settings = sluice::config::Settings::defaults().cluster;
    settings.redis_url = redis.url();
    let primary = sluice::cluster::primary::Primary::connect(&settings)
        .await
        .expect("connects");
    let r = Replicator::start(std::sync::Arc::new(primary), 0, 500, Duration::ZERO);
    let put = |v: &str| vec![KvOp::Put(b"a/fenced/rec".to_vec(), v.as_bytes().to_vec())];
    assert_eq!(
        r.apply(&id, &keys::holder("n1", 1), &put("one"))
            .await
            .expect("acked"),
        Ok(())
    );
    // n2 takes the lease with the next token; n1's next write is refused and not applied.
    let _: () = conn
        .set(keys::lease(&id), keys::holder("n2", 2))
        .await
        .expect("set");
    assert_eq!(
        r.apply(&id, &keys::holder("n1", 1), &put("two"))
            .await
            .expect("acked"),
        Err(ReplicaError::Fenced)
    );
    let stored: String = conn
        .hget(keys::state(&id), "a/fenced/rec")
        .await
        .expect("hget");
    assert_eq!(stored, "one");
    assert_eq!(
        r.apply(&id, &keys::holder("n2", 2), &put("three"))
            .await
            .expect("acked"),
        Ok(())
    );
}

#[actix_web::test]
#[ignore = "needs redis-server: run scripts/test.sh"]
async fn the_fairness_commitment_survives_a_failover_before_opening() {
    let redis = Redis::start().await;
    let url = redis.url();
    let mut nodes = three_nodes([&url, &url, &url]).await;
    let id = id_owned_by("fair", "n1");
    let opens = sluice::domain::clock::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as u64
            + 3_600_000,
    );
    let r = nodes[1]
        .create(json!({"id": id, "name": "Fair", "kind": "sale", "stock": 3, "opens_at": opens}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let commitment = r.body["fairness"]["commitment"]
        .as_str()
        .expect("a commitment")
        .to_owned();
    settled(&nodes.iter().collect::<Vec<_>>(), &id, "n1").await;
    let joined = nodes[2].join_http(&id, "early").await;
    assert_eq!(joined.body["status"], "prequeue", "{}", joined.body);

    nodes[0].kill9();
    let (new_owner, _) = nodes[1].owner(&id, &["n2", "n3"]).await;
    settled(&[&nodes[1], &nodes[2]], &id, &new_owner).await;
    let v = nodes[2].view_when_available(&id).await;
    assert_eq!(v["fairness"]["commitment"], commitment.as_str(), "{v}");
    let (status, body) = nodes[1]
        .get_text(&format!("/api/activities/{id}/fairness"))
        .await;
    assert_eq!(status, 200, "{body}");
    let f: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(f["commitment"], commitment.as_str());
    assert_eq!(
        f["seed"],
        serde_json::Value::Null,
        "still secret after failover"
    );
    let again = nodes[1].join_http(&id, "early").await;
    assert_eq!(
        again.body["receipt"], joined.body["receipt"],
        "the place survived"
    );
}

const SHOP_KEY: &str = "shop-key-0123456789abcdef0123456789abcdef";

/// Joins through `via` (admitted at once) and buys one unit; the order id.
async fn buy_http(via: &Node, id: &str, user: &str) -> String {
    let j = via.join_http(id, user).await;
    assert_eq!(j.body["status"], "admitted", "{}", j.body);
    let r = via
        .purchase(id, user, j.body["token"].as_str().expect("token"), None)
        .await;
    assert_eq!(r.status, 201, "{user} through {}: {}", via.id, r.body);
    r.body["order"]["id"].as_str().expect("order id").to_owned()
}

/// Waits until `node` lists `count` webhook registrations.
async fn sees_webhooks(node: &Node, count: usize) {
    for _ in 0..400 {
        let l = node.admin("GET", "/webhooks", None).await;
        if l.body["webhooks"].as_array().map(Vec::len) == Some(count) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("node {} does not list {count} webhooks", node.id);
}

async fn verify_on(n: &Node, id: &str, pass: &str) -> u16 {
    let bearer = format!("Bearer {pass}");
    n.get_headers(
        &format!("/api/gate/{id}/verify"),
        &[("authorization", &bearer)],
    )
    .await
    .0
}

#[actix_web::test]
#[ignore = "needs redis-server: run scripts/test.sh"]
async fn the_shop_pays_through_any_node_and_the_audit_gathers_every_node() {
    let redis = Redis::start().await;
    let url = redis.url();
    let shop = [
        ("SLUICE__CLUSTER__REDIS_URL", url.clone()),
        ("SLUICE__PAYMENT__MODE", "external".to_owned()),
        (
            "SLUICE__ADMIN__KEYS",
            format!(r#"[{{name = "shop-backend", key = "{SHOP_KEY}", role = "shop"}}]"#),
        ),
    ];
    let mut nodes = Vec::new();
    for i in 1..=3 {
        nodes.push(Node::start_with(&format!("n{i}"), &shop).await);
    }
    let id = id_owned_by("shop", "n1");
    nodes[0]
        .create_sale(&id, 3, json!({"max_active": 10, "rate_per_sec": 1000}))
        .await;
    settled(&nodes.iter().collect::<Vec<_>>(), &id, "n1").await;
    let order = buy_http(&nodes[1], &id, "ann").await;

    // Neither the buyer (through any node) nor a wrong key pays; the shop does, through
    // a node that does not own the activity.
    nodes[2]
        .as_user("ann", "POST", &format!("/api/orders/{order}/pay"), None)
        .await
        .expect_error(403, "forbidden");
    async fn pay(via: &Node, order: &str, key: &str) -> Resp {
        let path = format!("/api/admin/orders/{order}/pay");
        via.request(
            "POST",
            &path,
            Some(key),
            Some(json!({"payment_ref": "pi_c1"})),
        )
        .await
    }
    pay(&nodes[2], &order, "wrong")
        .await
        .expect_error(401, "unauthorized");
    let paid = pay(&nodes[1], &order, SHOP_KEY).await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.body["order"]["payment_ref"], "pi_c1");
    let again = pay(&nodes[2], &order, SHOP_KEY).await;
    assert_eq!(again.body, paid.body, "idempotent through another node");

    // The audit through the third node has the calls every node took.
    let audit = nodes[2].admin("GET", "/audit", None).await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    let calls: Vec<(String, String, u64)> = audit.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["key_name"].as_str().expect("name").to_owned(),
                e["path"].as_str().expect("path").to_owned(),
                e["status"].as_u64().expect("status"),
            )
        })
        .collect();
    let pay_path = format!("/api/admin/orders/{order}/pay");
    assert_eq!(
        calls,
        vec![
            ("shop-backend".to_owned(), pay_path.clone(), 200),
            ("shop-backend".to_owned(), pay_path, 200),
            (
                "default".to_owned(),
                "/api/admin/activities".to_owned(),
                201
            ),
        ],
        "each call once, newest first"
    );

    // Replicated: the owner dies, the next one has the payment.
    nodes[0].kill9();
    nodes[1].owner(&id, &["n2", "n3"]).await;
    let mut seen = serde_json::Value::Null;
    for _ in 0..400 {
        let r = nodes[1]
            .request("GET", &format!("/api/orders/{order}"), Some(SHOP_KEY), None)
            .await;
        if r.status == 200 {
            seen = r.body;
            break;
        }
        assert_eq!(r.code(), "unavailable", "{}", r.body);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(seen, paid.body, "the payment survived its owner");
}

#[actix_web::test]
#[ignore = "needs redis-server: run scripts/test.sh"]
async fn webhooks_registered_anywhere_are_delivered_by_the_owner_and_after_its_death() {
    let redis = Redis::start().await;
    let url = redis.url();
    let mut nodes = three_nodes([&url, &url, &url]).await;
    let rx = Receiver::start().await;
    let id = id_owned_by("hooks", "n1");
    let r = nodes[1]
        .admin(
            "POST",
            "/webhooks",
            Some(json!({"url": rx.url(), "events": ["order.created", "order.paid"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    for n in &nodes {
        sees_webhooks(n, 1).await;
    }
    nodes[1]
        .create_sale(
            &id,
            10,
            json!({"max_active": 100, "rate_per_sec": 1000, "token_ttl_secs": 600}),
        )
        .await;
    settled(&nodes.iter().collect::<Vec<_>>(), &id, "n1").await;

    let mut want = std::collections::BTreeSet::new();
    let mut first = None;
    for user in ["a", "b"] {
        let o = buy(&nodes[2], &id, user).await.expect("buys through n3");
        want.insert((o["id"].as_str().expect("id").to_owned(), "order.created"));
        first.get_or_insert(o);
    }
    rx.wait_for("the owner's first deliveries", |g| g.len() >= 2)
        .await;

    nodes[0].kill9();
    let (new_owner, _) = nodes[1].owner(&id, &["n2", "n3"]).await;
    settled(&[&nodes[1], &nodes[2]], &id, &new_owner).await;
    for user in ["c", "d"] {
        let o = loop {
            match buy(&nodes[1], &id, user).await {
                Ok(o) => break o,
                // The activity moving between nodes answers 503; retried.
                Err(503) => tokio::time::sleep(Duration::from_millis(25)).await,
                Err(s) => panic!("{user}: {s}"),
            }
        };
        want.insert((o["id"].as_str().expect("id").to_owned(), "order.created"));
    }
    let paid = first.expect("an order");
    let oid = paid["id"].as_str().expect("id");
    let r = nodes[2]
        .as_user("a", "POST", &format!("/api/orders/{oid}/pay"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    want.insert((oid.to_owned(), "order.paid"));

    let got = rx
        .wait_for("every order event, after the takeover too", |g| {
            let have: std::collections::BTreeSet<(String, String)> = g
                .iter()
                .map(|d| {
                    (
                        d.json()["data"]["id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        d.kind(),
                    )
                })
                .collect();
            want.iter()
                .all(|(o, t)| have.contains(&(o.clone(), (*t).to_owned())))
        })
        .await;
    // At least once across the takeover; one webhook-id per event.
    let mut ids = std::collections::HashMap::new();
    for d in &got {
        let w = (d.json()["data"]["id"].clone(), d.kind());
        assert_eq!(ids.entry(d.id.clone()).or_insert(w.clone()), &w, "{}", d.id);
    }
    assert_eq!(ids.len(), want.len(), "one id per event: {ids:?}");
}

#[actix_web::test]
#[ignore = "needs redis-server: run scripts/test.sh"]
async fn gate_passes_verify_on_every_node_and_revoke_and_ban_work_through_any_node() {
    let redis = Redis::start().await;
    let url = redis.url();
    let mut nodes = three_nodes([&url, &url, &url]).await;
    let id = id_owned_by("gate", "n1");
    let r = nodes[1]
        .create(json!({"id": id, "name": "Gate", "kind": "gate",
                       "gate": {"origin_url": "https://shop.example/", "pass_ttl_secs": 600},
                       "admission": {"rate_per_sec": 1000, "max_active": 1}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    settled(&nodes.iter().collect::<Vec<_>>(), &id, "n1").await;

    // Every node publishes the same keys.
    let jwks: Vec<String> =
        futures_util::future::join_all(nodes.iter().map(|n| n.get_text("/.well-known/jwks.json")))
            .await
            .into_iter()
            .map(|(_, body)| body)
            .collect();
    assert!(jwks.iter().all(|j| j == &jwks[0]), "{jwks:?}");

    // A pass issued by the owner (joined through n3) verifies through every node.
    let mut ann = nodes[2].ws(&id, "ann", None).await;
    let pass = ann.until("admitted").await["pass"]
        .as_str()
        .expect("a pass")
        .to_owned();
    let mut bob = nodes[1].ws(&id, "bob", None).await;
    assert_eq!(bob.until("queued").await["position"], 1);
    for n in &nodes {
        assert_eq!(verify_on(n, &id, &pass).await, 204, "through {}", n.id);
    }

    // Revoke and ban through a node that does not own the gate.
    let r = nodes[2]
        .admin(
            "DELETE",
            &format!("/activities/{id}/users/ann?ban=true"),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["banned"], true);
    ann.until("revoked").await;
    for n in &nodes {
        assert_eq!(
            verify_on(n, &id, &pass).await,
            401,
            "revoked, through {}",
            n.id
        );
    }
    let bob_pass = bob.until("admitted").await["pass"]
        .as_str()
        .expect("a pass")
        .to_owned();
    nodes[1]
        .join_http(&id, "ann")
        .await
        .expect_error(403, "forbidden");

    // The owner dies: the ban and the revocation were replicated, the keys are shared.
    nodes[0].kill9();
    let (new_owner, _) = nodes[1].owner(&id, &["n2", "n3"]).await;
    settled(&[&nodes[1], &nodes[2]], &id, &new_owner).await;
    nodes[1].view_when_available(&id).await;
    for n in &nodes[1..] {
        assert_eq!(verify_on(n, &id, &bob_pass).await, 204, "through {}", n.id);
        assert_eq!(verify_on(n, &id, &pass).await, 401, "through {}", n.id);
    }
    nodes[2]
        .join_http(&id, "ann")
        .await
        .expect_error(403, "forbidden");

    // A rotation through one node reaches every node's JWKS.
    let rotated = nodes[2].admin("POST", "/keys/rotate", None).await;
    let kid = rotated.body["kid"].as_str().expect("kid").to_owned();
    let mut seen = false;
    for _ in 0..100 {
        let (_, body) = nodes[1].get_text("/.well-known/jwks.json").await;
        if body.contains(&kid) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen, "n2 publishes the key rotated through n3");
}
