//! A site gated by sluice through nginx `auth_request` (docs/gate.md): without a pass
//! the origin sends people to the waiting page; the hand-off sets the pass cookie and
//! the origin serves them; once the pass expires the origin refuses again.

use crate::common::*;
use serde_json::json;

fn location(h: &awc::http::header::HeaderMap) -> String {
    h.get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[actix_web::test]
#[ignore = "needs nginx: scripts/test.sh installs it"]
async fn nginx_sends_people_without_a_pass_to_the_waiting_room_and_admits_pass_holders() {
    let app = spawn_app_manual_clock().await;
    let nginx = nginx_gate(app.port, "door").await;
    let origin = format!("http://127.0.0.1:{}/shop/", nginx.port);
    let r = app
        .create(json!({"id": "door", "name": "Door", "kind": "gate",
                       "gate": {"origin_url": origin, "pass_ttl_secs": 30},
                       "admission": {"rate_per_sec": 1000, "max_active": 1}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let front = app.at(nginx.port, None);

    let (status, h) = front.get_headers("/shop/", &[]).await;
    assert_eq!(status, 302, "{}", nginx.log());
    assert!(location(&h).ends_with("/a/door"), "{h:?}");
    assert_eq!(
        front.get_text("/a/door").await.0,
        200,
        "the waiting page, through nginx"
    );

    // Ann is admitted at once; Bob waits behind her pass (max_active 1).
    let ann = front.join_http("door", "ann").await;
    let pass = ann.body["pass"].as_str().expect("a pass").to_owned();
    let bob = front.join_http("door", "bob").await;
    assert_eq!(bob.body["status"], "waiting", "{}", bob.body);

    let (status, h) = front
        .get_headers(&format!("/api/gate/door/enter?pass={pass}"), &[])
        .await;
    assert_eq!((status, location(&h)), (303, origin.clone()));
    let set = h
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let cookie = set.split(';').next().unwrap_or_default().to_owned();
    assert_eq!(cookie, format!("sluice_pass={pass}"));
    let (status, _) = front.get_headers("/shop/", &[("cookie", &cookie)]).await;
    assert_eq!(
        status,
        200,
        "the origin serves a pass holder: {}",
        nginx.log()
    );
    let forged = format!("sluice_pass={}x", &pass[..pass.len() - 1]);
    assert_eq!(
        front.get_headers("/shop/", &[("cookie", &forged)]).await.0,
        302
    );

    // The pass expires: the origin refuses again, and Bob's turn comes.
    app.advance(30_000);
    let (status, h) = front.get_headers("/shop/", &[("cookie", &cookie)]).await;
    assert_eq!(status, 302);
    assert!(location(&h).ends_with("/a/door"), "{h:?}");
    let ticket = bob.body["ticket"].as_str().expect("ticket");
    let mut bob_now = bob.body.clone();
    for _ in 0..200 {
        bob_now = front
            .as_user(
                "bob",
                "GET",
                &format!("/api/activities/door/tickets/{ticket}"),
                None,
            )
            .await
            .body;
        if bob_now["status"] == "admitted" {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(bob_now["pass"].is_string(), "{bob_now}");
}
