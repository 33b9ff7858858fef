//! The cluster's Redis under Sentinel (`sentinels`): a primary killed mid-sale, a
//! primary that comes back after its replica was promoted, and the replica
//! confirmation (`WAIT`) every acknowledged write needs.

use crate::common::*;
use crate::sentinels::Sentinels;
use crate::{all_orders_present, id_owned_by, node, settled};
use serde_json::{json, Value};
use sluice::cluster::keys;
use std::collections::HashSet;
use std::time::{Duration, Instant};

async fn sentinel_nodes(group: &Sentinels) -> Vec<Node> {
    let env = group.node_env();
    let mut nodes = Vec::new();
    for i in 1..=3 {
        nodes.push(Node::start_with(&format!("n{i}"), &env).await);
    }
    nodes
}

/// Buys with `token` through `via`, retrying while the cluster answers `unavailable`
/// (the activity moving to a new primary / owner); the order id.
async fn buy_through_failover(via: &Api, id: &str, user: &str, token: &str) -> String {
    for _ in 0..600 {
        let r = via.purchase(id, user, token, None).await;
        match r.status {
            201 | 200 => return r.body["order"]["id"].as_str().expect("order id").to_owned(),
            503 => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => panic!("{user} through port {}: {} {}", via.port, r.status, r.body),
        }
    }
    panic!("{user} could not buy through the failover");
}

/// The owner of `id` once its fencing token is above `fence`, as `via` sees it.
async fn owner_after(via: &Node, id: &str, fence: u64) -> (String, u64) {
    for _ in 0..600 {
        let (owner, f) = via.owner(id, &["n1", "n2", "n3"]).await;
        if f > fence {
            return (owner, f);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{id} kept fence {fence}");
}

/// `GET /api/admin/cluster`'s `redis` part once it satisfies `ok`.
async fn redis_status(via: &Node, ok: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        last = via.admin("GET", "/cluster", None).await.body["redis"].clone();
        if ok(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} never showed the expected Redis status: {last}", via.id);
}

#[actix_web::test]
#[ignore = "needs redis-server: run scripts/test.sh"]
async fn a_redis_primary_killed_mid_sale_loses_nothing_acknowledged_and_selling_resumes() {
    primary_killed_mid_sale(1).await;
}

#[actix_web::test]
#[ignore = "needs redis-server: run scripts/test.sh"]
async fn with_two_replicas_selling_resumes_without_replacing_the_dead_primary() {
    primary_killed_mid_sale(2).await;
}

/// Kills the Redis primary mid-sale with `replicas` replicas (each write confirmed
/// by one). With one, the dead machine must be replaced before writes resume.
async fn primary_killed_mid_sale(replicas: usize) {
    let mut group = Sentinels::start(replicas).await;
    let nodes = sentinel_nodes(&group).await;
    let id = id_owned_by("rkill", "n1");
    nodes[1]
        .create_sale(&id, 10, json!({"max_active": 3, "rate_per_sec": 1000}))
        .await;
    settled(&nodes.iter().collect::<Vec<_>>(), &id, "n1").await;
    let pause = format!("/activities/{id}/pause");
    assert_eq!(nodes[0].admin("POST", &pause, None).await.status, 200);
    let mut users = Vec::new();
    for i in 0..6 {
        let mut u = nodes[1 + i % 2].ws(&id, &format!("u{i}"), None).await;
        u.until("queued").await;
        users.push(u);
    }
    let resume = format!("/activities/{id}/resume");
    assert_eq!(nodes[2].admin("POST", &resume, None).await.status, 200);

    // Two orders acknowledged, and a token issued but not used, before the kill.
    let mut acknowledged = Vec::new();
    for (i, u) in users.iter_mut().enumerate().take(3) {
        let token = u.until("admitted").await["token"]
            .as_str()
            .expect("token")
            .to_owned();
        acknowledged.push((i, token));
    }
    let mut orders = Vec::new();
    for (i, token) in acknowledged.drain(..2) {
        let via = &nodes[1 + i % 2];
        orders.push(buy_through_failover(via, &id, &format!("u{i}"), &token).await);
    }
    let (_, fence) = nodes[1].owner(&id, &["n1"]).await;
    let old = group.primary.port;

    group.primary.kill9();
    let killed = Instant::now();
    let new = group.until_promoted(old).await;
    assert!(group.replicas.iter().any(|r| r.port == new), "{new}");
    let promoted = killed.elapsed();
    let primary = format!("127.0.0.1:{new}");
    for n in &nodes {
        let r = redis_status(n, |r| r["primary"] == primary.as_str()).await;
        assert_eq!(r["via_sentinel"], true, "{r}");
        assert_eq!(
            r["last_failover"]["from"],
            format!("127.0.0.1:{old}"),
            "{r}"
        );
        assert_eq!(r["last_failover"]["to"], primary.as_str(), "{r}");
    }
    // With one replica, the promoted one has no replica of its own, and every write
    // needs one (`replica_acks = 1`): selling waits until the dead machine is
    // replaced (once every node follows the new primary) and Sentinel attaches it.
    if replicas == 1 {
        group.primary.replace().await;
    }
    let (i, token) = acknowledged.pop().expect("the unused token");
    orders.push(buy_through_failover(&nodes[1 + i % 2], &id, &format!("u{i}"), &token).await);
    eprintln!(
        "{replicas} replica(s): redis primary killed -> replica promoted: {} ms; -> first new order: {} ms",
        promoted.as_millis(),
        killed.elapsed().as_millis()
    );
    owner_after(&nodes[2], &id, fence).await;

    // The places kept across the failover are admitted in turn and buy.
    for (i, u) in users.iter_mut().enumerate().skip(3) {
        let token = u.until("admitted").await["token"]
            .as_str()
            .expect("token")
            .to_owned();
        let via = &nodes[1 + i % 2];
        orders.push(buy_through_failover(via, &id, &format!("u{i}"), &token).await);
    }
    let distinct: HashSet<&String> = orders.iter().collect();
    assert_eq!(distinct.len(), 6, "one order per purchase: {orders:?}");
    all_orders_present(&nodes.iter().collect::<Vec<_>>(), &id, &orders).await;
}

#[actix_web::test]
#[ignore = "needs redis-server: run scripts/test.sh"]
async fn an_old_primary_back_after_a_promotion_accepts_no_write_of_the_old_owner() {
    let group = Sentinels::start(1).await;
    let nodes = sentinel_nodes(&group).await;
    let id = id_owned_by("rpart", "n1");
    nodes[1].create_sale(&id, 5, json!({})).await;
    settled(&nodes.iter().collect::<Vec<_>>(), &id, "n1").await;
    let stock = format!("/activities/{id}/stock");
    let add = Some(json!({"add": 1}));
    let before = nodes[0].admin("POST", &stock, add.clone()).await;
    assert_eq!(before.status, 200, "{}", before.body);
    let (_, fence) = nodes[1].owner(&id, &["n1"]).await;
    let old = group.primary.port;

    // The primary freezes: the owner's write reaches no replica, so it is refused.
    group.primary.signal("-STOP");
    let stale = nodes[0].admin("POST", &stock, add.clone()).await;
    stale.expect_error(503, "unavailable");
    let new = group.until_promoted(old).await;

    // The old primary comes back, still believing it is the primary, with whatever
    // the old owner sent it while frozen; Sentinel demotes it. (Until it replicates,
    // the promoted primary has no replica to confirm a commit, so nobody takes the
    // activity over.)
    group.primary.signal("-CONT");
    for _ in 0..600 {
        if Sentinels::role(old).await.as_deref() == Some("slave") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(Sentinels::role(old).await.as_deref(), Some("slave"));
    group.until_replicating(old).await;
    let (owner, new_fence) = owner_after(&nodes[1], &id, fence).await;

    // Writes of the old fence are refused by the new primary and by the old one.
    let old_holder = keys::holder("n1", fence);
    let put = redis::Script::new(keys::APPLY);
    // (The demoted one refuses as a replica, or already holds the new lease.)
    for (port, refusals) in [(new, &["FENCED"][..]), (old, &["FENCED", "READONLY"][..])] {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("url");
        let mut c = client
            .get_multiplexed_async_connection()
            .await
            .expect("connects");
        let res: redis::RedisResult<i64> = put
            .key(keys::lease(
                &sluice::domain::ids::ActivityId::parse(&id).expect("id"),
            ))
            .key("sluice:test:state")
            .arg(&old_holder)
            .arg("P")
            .arg("k")
            .arg("v")
            .invoke_async(&mut c)
            .await;
        let e = res.expect_err("a stale holder's write is refused");
        assert!(
            refusals.iter().any(|r| e.to_string().contains(r)),
            "port {port}: {e}"
        );
    }

    // Selling resumes on the new owner. Until the promoted primary's new replica
    // confirms writes (a loaded machine: more than one `WAIT`), an add may answer
    // `503`, and such an unacknowledged add may or may not have landed. Those adds
    // are of 10, the frozen one of 1: whatever landed, the stale write is absent
    // exactly when the capacity is 6 plus a multiple of 10.
    let ten = Some(json!({"add": 10}));
    let mut attempts = 0;
    loop {
        attempts += 1;
        let after = node(&nodes, &owner)
            .admin("POST", &stock, ten.clone())
            .await;
        if after.status == 200 {
            break;
        }
        after.expect_error(503, "unavailable");
        assert!(attempts < 200, "selling never resumed: {}", after.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v = nodes[2].assert_invariant_when_available(&id).await;
    let capacity = v["capacity"].as_u64().expect("capacity");
    let added = capacity.checked_sub(6).unwrap_or(1);
    assert!(
        added % 10 == 0 && (1..=attempts).contains(&(added / 10)),
        "5 + the acknowledged add of 1 + the add of 10 ({attempts} attempts), never the frozen add of 1: {v}"
    );
    assert!(new_fence > fence);
    let replica = format!("127.0.0.1:{old}");
    let r = redis_status(&nodes[0], |r| {
        r["replicas"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["addr"] == replica.as_str()))
    })
    .await;
    assert_eq!(r["primary"], format!("127.0.0.1:{new}"), "{r}");
}

#[actix_web::test]
#[ignore = "needs redis-server: run scripts/test.sh"]
async fn a_write_no_replica_confirmed_is_not_acknowledged() {
    use sluice::cluster::primary::Primary;
    use sluice::cluster::replicate::{ReplicaError, Replicator};
    use sluice::store::KvOp;
    // A primary without replicas, and writes that need one.
    let redis = crate::harness::Redis::start().await;
    let mut settings = sluice::config::Settings::defaults().cluster;
    settings.redis_url = redis.url();
    let primary = std::sync::Arc::new(Primary::connect(&settings).await.expect("connects"));
    let mut conn = primary.conn();
    let id = sluice::domain::ids::ActivityId::parse("waited").expect("id");
    let holder = keys::holder("n1", 1);
    let _: () = redis::AsyncCommands::set(&mut conn, keys::lease(&id), &holder)
        .await
        .expect("set");
    let put = vec![KvOp::Put(b"a/waited/rec".to_vec(), b"one".to_vec())];
    let unconfirmed = Replicator::start(
        std::sync::Arc::clone(&primary),
        1,
        50,
        std::time::Duration::ZERO,
    );
    let res = unconfirmed
        .apply(&id, &holder, &put)
        .await
        .expect("answered");
    assert!(
        matches!(&res, Err(ReplicaError::Unavailable(why)) if why.contains("0 of 1")),
        "{res:?}"
    );
    let unwaited = Replicator::start(primary, 0, 50, std::time::Duration::ZERO);
    assert_eq!(
        unwaited.apply(&id, &holder, &put).await.expect("answered"),
        Ok(())
    );
}
