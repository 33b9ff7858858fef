//! A ticket whose token bought an order answers after `kill -9` as it did before
//! (found by the crash campaign: it was `404` after any restart).

use super::{buy, create_sale};
use crate::common::*;

#[actix_web::test]
async fn a_purchased_ticket_answers_after_kill_9() {
    let mut app = Process::start("sluice", &[]).await;
    create_sale(&app, "kept", 10).await;
    let j = app.join_http("kept", "buyer").await;
    let ticket = j.body["ticket"].as_str().expect("ticket").to_owned();
    let order = buy(&app, "kept", "buyer").await.expect("bought");
    let path = format!("/api/activities/kept/tickets/{ticket}");
    let before = app
        .request("GET", &path, Some(&app.user_token("buyer")), None)
        .await;
    assert_eq!(before.body["order_id"], order["id"], "{}", before.body);
    app.kill9();
    app.restart().await;
    let after = app
        .request("GET", &path, Some(&app.user_token("buyer")), None)
        .await;
    assert_eq!((after.status, after.body.clone()), (200, before.body));
}
