//! The waiting room over WebSocket: FIFO admission, sold out, one place per user, resume.

use crate::common::*;
use serde_json::json;

#[actix_web::test]
async fn three_hundred_users_first_hundred_buy_in_join_order_rest_hear_sold_out() {
    let app = spawn_app().await;
    app.create_sale("drop", 100, json!({"rate_per_sec": 1000, "max_active": 20}))
        .await;
    // Join one at a time, each acknowledged, so join order is known.
    let mut users = Vec::new();
    for i in 0..300 {
        let mut u = app.ws("drop", &format!("u{i:03}"), None).await;
        let first = u.next_json().await;
        assert_eq!(first["type"], "queued", "{first}");
        users.push((u, first));
    }
    // Every user reads its own socket (answering pings) and buys when admitted.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let app = std::rc::Rc::new(app);
    for (i, (mut u, _)) in users.into_iter().enumerate() {
        let (tx, app) = (tx.clone(), app.clone());
        actix_web::rt::spawn(async move {
            loop {
                match u.next().await {
                    Frame::Json(v) if v["type"] == "admitted" => {
                        let token = v["token"].as_str().expect("token");
                        let r = app.purchase("drop", &u.user, token, None).await;
                        assert_eq!(r.status, 201, "{}", r.body);
                        let _ = tx.send((i, v["issued_at_ms"].as_u64().expect("issued_at_ms")));
                        return;
                    }
                    Frame::Json(v) if v["type"] == "sold_out" => {
                        let _ = tx.send((i, 0));
                        return;
                    }
                    Frame::Json(_) => {}
                    Frame::Closed(_) => panic!("u{i:03} closed without sold_out"),
                }
            }
        });
    }
    drop(tx);
    let mut admitted_order = Vec::new();
    let mut sold_out = 0;
    while let Some((i, issued_at)) = rx.recv().await {
        if issued_at == 0 {
            sold_out += 1;
        } else {
            admitted_order.push((i, issued_at));
        }
    }
    admitted_order.sort_unstable();
    let buyers: Vec<usize> = admitted_order.iter().map(|a| a.0).collect();
    assert_eq!(
        buyers,
        (0..100).collect::<Vec<_>>(),
        "the first 100 joiners bought"
    );
    // Admission order equals join order: admission times never go back along join order.
    assert!(
        admitted_order.windows(2).all(|w| w[0].1 <= w[1].1),
        "{admitted_order:?}"
    );
    assert_eq!(sold_out, 200);
    let v = app.assert_invariant("drop").await;
    assert_eq!(
        (v["sold"].as_u64(), v["available"].as_u64()),
        (Some(100), Some(0))
    );
    assert_eq!(v["phase"], "sold_out");
    // Exactly 100 orders across the buyers.
    let mut orders = 0;
    for i in 0..100 {
        let r = app
            .request(
                "GET",
                "/api/orders",
                Some(&app.user_token(&format!("u{i:03}"))),
                None,
            )
            .await;
        orders += r.body["orders"].as_array().map_or(0, Vec::len);
    }
    assert_eq!(orders, 100);
    // Late joiners learn at once.
    app.join_http("drop", "late")
        .await
        .expect_error(409, "sold_out");
}

#[actix_web::test]
async fn positions_are_exact_and_shrink_as_users_ahead_leave() {
    let app = spawn_app().await;
    app.create_sale("q", 1, json!({"max_active": 1})).await;
    let mut first = app.ws("q", "first", None).await;
    first.until("admitted").await;
    // Each join is heard before the next connects: sessions on different HTTP
    // workers would otherwise race to the actor.
    let mut a = app.ws("q", "a", None).await;
    assert_eq!(a.next_json().await["position"], 1);
    let mut b = app.ws("q", "b", None).await;
    assert_eq!(b.next_json().await["position"], 2);
    let mut c = app.ws("q", "c", None).await;
    let qc = c.next_json().await;
    assert_eq!(
        (qc["type"].as_str(), qc["position"].as_u64()),
        (Some("queued"), Some(3))
    );
    b.send_text(r#"{"type":"leave"}"#).await;
    assert_eq!(c.until("position").await["position"], 2);
    // HTTP polling sees the same exact position.
    let ticket = qc["ticket"].as_str().expect("ticket");
    let r = app
        .request(
            "GET",
            &format!("/api/activities/q/tickets/{ticket}"),
            Some(&app.user_token("c")),
            None,
        )
        .await;
    assert_eq!(
        (
            r.status,
            r.body["status"].as_str(),
            r.body["position"].as_u64()
        ),
        (200, Some("waiting"), Some(2))
    );
}

#[actix_web::test]
async fn one_place_per_user_the_older_socket_is_superseded() {
    let app = spawn_app().await;
    app.create_sale("one", 1, json!({"max_active": 1})).await;
    let mut holder = app.ws("one", "holder", None).await;
    holder.until("admitted").await;
    let mut s1 = app.ws("one", "bob", None).await;
    let q1 = s1.until("queued").await;
    let mut s2 = app.ws("one", "bob", None).await;
    let q2 = s2.until("queued").await;
    assert_eq!(q1["ticket"], q2["ticket"], "same place");
    assert_eq!(q1["position"], q2["position"]);
    assert_eq!(s1.next_json().await["type"], "superseded");
    assert!(matches!(s1.next().await, Frame::Closed(_)));
    let v = app.view("one").await;
    assert_eq!(v["waiting"], 1);
    // HTTP join by the same user returns the same ticket too.
    let r = app.join_http("one", "bob").await;
    assert_eq!((r.status, &r.body["ticket"]), (200, &q1["ticket"]));
}

#[actix_web::test]
async fn a_dropped_user_resumes_its_place_by_ticket() {
    let app = spawn_app().await;
    app.create_sale("r", 1, json!({"max_active": 1})).await;
    let mut holder = app.ws("r", "holder", None).await;
    holder.until("admitted").await;
    let mut a = app.ws("r", "a", None).await;
    a.until("queued").await;
    let mut b = app.ws("r", "b", None).await;
    let qb = b.until("queued").await;
    drop(b);
    let ticket = qb["ticket"].as_str().expect("ticket");
    let mut again = app.ws("r", "b", Some(ticket)).await;
    let resumed = again.until("queued").await;
    assert_eq!(
        (resumed["ticket"].as_str(), resumed["position"].as_u64()),
        (Some(ticket), Some(2))
    );
    // Someone else's ticket is refused.
    let mut thief = app.ws("r", "mallory", Some(ticket)).await;
    let e = thief.next_json().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("forbidden"))
    );
}

#[actix_web::test]
async fn garbage_frames_get_error_frames_and_oversized_frames_close_1009() {
    let app = spawn_app().await;
    app.create_sale("g", 1, json!({"max_active": 1})).await;
    let mut holder = app.ws("g", "holder", None).await;
    holder.until("admitted").await;
    let mut u = app.ws("g", "u", None).await;
    u.until("queued").await;
    for junk in ["hello", "{}", r#"{"type":"buy"}"#, "[1,2]"] {
        u.send_text(junk).await;
        let e = u.until("error").await;
        assert_eq!(e["code"], "invalid_request", "{junk}");
    }
    u.send_text(&"x".repeat(5000)).await;
    loop {
        match u.next().await {
            Frame::Closed(r) => {
                let r = r.expect("close reason");
                assert_eq!(u16::from(r.code), 1009);
                break;
            }
            Frame::Json(_) => continue,
        }
    }
    // The activity is unharmed.
    let r = app.request("GET", "/healthz", None, None).await;
    assert_eq!(r.status, 200);
    app.assert_invariant("g").await;
}
