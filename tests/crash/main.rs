//! Crash-consistency tests of the real binary: a journal left damaged by a crash or
//! a disk, and a disk that fills up mid-sale (`full_disk` needs root to mount a
//! tmpfs: ignored by plain `cargo test`, run by `scripts/test.sh`).

#[path = "../common/mod.rs"]
mod common;

mod full_disk;
mod journal_damage;
mod order_events;
mod tickets;
mod webhooks;

use common::*;
use serde_json::{json, Value};

/// A sale whose tokens outlive the test and whose admissions are immediate.
pub async fn create_sale(app: &Api, id: &str, stock: u64) {
    let r = app
        .create(json!({"id": id, "name": id, "kind": "sale", "stock": stock,
            "admission": {"max_active": 100000, "rate_per_sec": 100000, "token_ttl_secs": 3600,
                          "reconnect_grace_secs": 3600}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Every order in `orders` exists with its id and user, and the stock adds up.
pub async fn assert_kept(app: &Api, id: &str, orders: &[Value]) {
    for o in orders {
        let oid = o["id"].as_str().expect("id");
        let got = app
            .request("GET", &format!("/api/orders/{oid}"), Some(ADMIN_KEY), None)
            .await;
        assert_eq!(got.status, 200, "acknowledged order {oid}: {}", got.body);
        assert_eq!(got.body["order"]["user_id"], o["user_id"], "{oid}");
    }
    let v = app.assert_invariant(id).await;
    assert!(
        v["sold"].as_u64().expect("sold") >= orders.len() as u64,
        "{v}"
    );
}
