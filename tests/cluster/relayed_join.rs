//! A relayed join waits for a busy owner instead of being refused after
//! `server.actor_timeout_ms` (docs/cluster.md, "Sessions on any node").

use crate::common::*;
use crate::harness::Redis;
use crate::{id_owned_by, settled};
use serde_json::json;
use std::time::{Duration, Instant};

/// Far below the default, so the owner is "busy" for longer than it at once.
const ACTOR_TIMEOUT_MS: u64 = 400;

#[actix_web::test]
#[ignore = "needs redis-server: run scripts/test.sh"]
async fn a_relayed_join_waits_for_an_owner_busy_past_the_actor_timeout() {
    let redis = Redis::start().await;
    let env = [
        ("SLUICE__CLUSTER__REDIS_URL", redis.url()),
        (
            "SLUICE__SERVER__ACTOR_TIMEOUT_MS",
            ACTOR_TIMEOUT_MS.to_string(),
        ),
    ];
    let mut nodes = Vec::new();
    for i in 1..=3 {
        nodes.push(Node::start_with(&format!("n{i}"), &env).await);
    }
    let id = id_owned_by("busy", "n1");
    nodes[1].create_sale(&id, 3, json!({})).await;
    settled(&nodes.iter().collect::<Vec<_>>(), &id, "n1").await;

    // The owner stalls (well within its lease) while a join is relayed to it.
    nodes[0].signal("-STOP");
    let stalled = Instant::now();
    let mut ws = nodes[1].ws(&id, "ann", None).await;
    while stalled.elapsed() < Duration::from_millis(2 * ACTOR_TIMEOUT_MS) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nodes[0].signal("-CONT");
    let first = ws.next_json().await;
    assert_eq!(first["type"], "queued", "{first}");
    let (owner, fence) = nodes[2].owner(&id, &["n1", "n2", "n3"]).await;
    assert_eq!(
        (owner.as_str(), fence),
        ("n1", 1),
        "the owner kept its lease"
    );
}
