//! Gate activities and access control: passes (EdDSA JWTs) handed out by the waiting
//! room, verified by `/api/gate/{id}/verify` and offline by PyJWT from the JWKS; key
//! rotation; invite-only joins; revoke and ban over WebSocket and HTTP polling.

use crate::common::*;
use base64::Engine;
use serde_json::{json, Value};

fn gate(id: &str, max_active: u32, ttl: u32) -> Value {
    json!({"id": id, "name": id, "kind": "gate",
           "gate": {"origin_url": "http://origin.test/shop", "pass_ttl_secs": ttl},
           "admission": {"rate_per_sec": 1000, "max_active": max_active}})
}

/// The JSON of a JWT's first or second part.
fn jwt_part(token: &str, n: usize) -> Value {
    let part = token.split('.').nth(n).expect("a JWT part");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

async fn verify_status(api: &Api, id: &str, pass: &str) -> u16 {
    let bearer = format!("Bearer {pass}");
    let (status, _) = api
        .get_headers(
            &format!("/api/gate/{id}/verify"),
            &[("authorization", &bearer)],
        )
        .await;
    status
}

#[actix_web::test]
async fn a_gate_admits_by_max_active_and_its_pass_verifies_until_it_expires() {
    let app = spawn_app_manual_clock().await;
    let r = app.create(gate("door", 1, 30)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["gate"]["origin_url"], "http://origin.test/shop");
    assert_eq!(
        app.create(json!({"id": "bad", "name": "b", "kind": "gate"}))
            .await
            .status,
        400
    );

    let mut ann = app.ws("door", "ann", None).await;
    assert_eq!(ann.next_json().await["type"], "queued");
    let admitted = ann.until("admitted").await;
    assert!(admitted.get("token").is_none(), "{admitted}");
    let pass = admitted["pass"].as_str().expect("a pass").to_owned();
    let mut bob = app.ws("door", "bob", None).await;
    let queued = bob.next_json().await;
    assert_eq!(
        (queued["type"].as_str(), queued["position"].as_u64()),
        (Some("queued"), Some(1)),
        "max_active 1: bob waits behind ann's pass"
    );

    let header = jwt_part(&pass, 0);
    let claims = jwt_part(&pass, 1);
    assert_eq!(
        (header["alg"].as_str(), header["typ"].as_str()),
        (Some("EdDSA"), Some("JWT"))
    );
    assert_eq!(
        (claims["aud"].as_str(), claims["sub"].as_str()),
        (Some("door"), Some("ann"))
    );
    assert_eq!(
        claims["iss"],
        format!("http://{}", app.settings.server.bind)
    );
    assert_eq!(
        claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
        30
    );
    let jwks = app
        .request("GET", "/.well-known/jwks.json", None, None)
        .await;
    let key = &jwks.body["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str(),
            key["use"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"), Some("sig"))
    );
    assert_eq!(key["kid"], header["kid"]);

    assert_eq!(verify_status(&app, "door", &pass).await, 204);
    let cookie = format!("a=1; sluice_pass={pass}");
    let (by_cookie, _) = app
        .get_headers("/api/gate/door/verify", &[("cookie", &cookie)])
        .await;
    assert_eq!(by_cookie, 204);
    assert_eq!(app.get_headers("/api/gate/door/verify", &[]).await.0, 401);
    assert_eq!(
        verify_status(&app, "other", &pass).await,
        401,
        "wrong audience"
    );
    assert_eq!(verify_status(&app, "door", "x.y.z").await, 401);

    // The waiting page's hand-off: the cookie, and on to the origin.
    let (status, headers) = app
        .get_headers(&format!("/api/gate/door/enter?pass={pass}"), &[])
        .await;
    assert_eq!(status, 303);
    assert_eq!(
        headers.get("location").map(|v| v.as_bytes()),
        Some(&b"http://origin.test/shop"[..])
    );
    let set = headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    for part in [
        &format!("sluice_pass={pass}"),
        "Path=/",
        "HttpOnly",
        "SameSite=Lax",
    ] {
        assert!(set.contains(part), "{set}");
    }
    assert!(
        set.contains("Max-Age=29") || set.contains("Max-Age=30"),
        "{set}"
    );
    assert_eq!(
        app.get_headers("/api/gate/door/enter?pass=x.y.z", &[])
            .await
            .0,
        401
    );

    // The pass expires: its slot goes to bob, and verify refuses it.
    app.advance(30_000);
    let bob_in = bob.until("admitted").await;
    assert!(bob_in["pass"].is_string(), "{bob_in}");
    assert_eq!(verify_status(&app, "door", &pass).await, 401);
    let bob_pass = bob_in["pass"].as_str().expect("pass");
    assert_eq!(verify_status(&app, "door", bob_pass).await, 204);
    // A pass over HTTP polling: the ticket view carries it.
    app.advance(30_000);
    assert_eq!(bob.until("error").await["code"], "token_expired");
    let carol = app.join_http("door", "carol").await;
    assert_eq!(carol.body["status"], "admitted", "{}", carol.body);
    assert!(carol.body["token"].is_null());
    let carol_pass = carol.body["pass"].as_str().expect("pass");
    assert_eq!(verify_status(&app, "door", carol_pass).await, 204);
}

/// Runs `scripts/check-pass.py` (PyJWT + PyJWKClient) on a pass.
async fn pyjwt(app: &TestApp, aud: &str, pass: &str) -> Value {
    let args = vec![
        format!("{}/.well-known/jwks.json", app.base),
        format!("http://{}", app.settings.server.bind),
        aud.to_owned(),
        pass.to_owned(),
    ];
    let out = actix_web::rt::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/check-pass.py"
            ))
            .args(args)
            .output()
            .expect("python3 runs")
    })
    .await
    .expect("checker finished");
    assert!(
        out.status.success(),
        "check-pass.py failed (pip install 'pyjwt[crypto]'?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON verdict")
}

/// Needs PyJWT (`pip install 'pyjwt[crypto]'`, which scripts/test.sh does).
#[actix_web::test]
#[ignore = "needs PyJWT (scripts/test.sh installs it)"]
async fn pyjwt_and_verify_accept_passes_and_refuse_the_same_forgeries_across_a_rotation() {
    let app = spawn_app().await;
    assert_eq!(app.create(gate("door", 100, 600)).await.status, 201);
    let r = app.join_http("door", "ann").await;
    let pass = r.body["pass"]
        .as_str()
        .expect("admitted with a pass")
        .to_owned();

    let v = pyjwt(&app, "door", &pass).await;
    assert_eq!(v["valid"], true, "{v}");
    for (attack, refused) in v["rejected"].as_object().expect("rejections") {
        assert_eq!(
            refused,
            &json!(true),
            "PyJWT accepted the {attack} attack: {v}"
        );
    }
    assert_eq!(v["rejected"].as_object().map(|o| o.len()), Some(6));
    for (attack, token) in v["forged"].as_object().expect("forgeries") {
        let t = token.as_str().expect("a token");
        assert_eq!(
            verify_status(&app, "door", t).await,
            401,
            "/verify accepted {attack}"
        );
    }

    // Rotation: new passes carry the new kid; old ones verify until they expire.
    let old_kid = v["kid"].as_str().expect("kid").to_owned();
    let rotated = app.admin("POST", "/keys/rotate", None).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_kid = rotated.body["kid"].as_str().expect("kid").to_owned();
    assert_ne!(new_kid, old_kid);
    let bob = app.join_http("door", "bob").await;
    let bob_pass = bob.body["pass"].as_str().expect("pass");
    assert_eq!(jwt_part(bob_pass, 0)["kid"], json!(new_kid));
    assert_eq!(pyjwt(&app, "door", bob_pass).await["valid"], true);
    assert_eq!(
        pyjwt(&app, "door", &pass).await["valid"],
        true,
        "old pass after rotation"
    );
    assert_eq!(verify_status(&app, "door", &pass).await, 204);
    let jwks = app
        .request("GET", "/.well-known/jwks.json", None, None)
        .await;
    let kids: Vec<&str> = jwks.body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(kids, vec![new_kid.as_str(), old_kid.as_str()]);
}

async fn join_with(api: &Api, id: &str, user: &str, invite: Option<&str>) -> Resp {
    let body = invite.map(|c| json!({"invite": c}));
    api.as_user(user, "POST", &format!("/api/activities/{id}/join"), body)
        .await
}

#[actix_web::test]
async fn invite_codes_belong_to_their_first_user_and_survive_kill_9() {
    let mut app = Process::start("sluice", &[]).await;
    let r = app
        .create(
            json!({"id": "club", "name": "Club", "kind": "sale", "stock": 10,
                       "admission": {"access": "invite", "rate_per_sec": 1000}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["admission"]["access"], "invite");
    for bad in [
        json!({"count": 0}),
        json!({"count": 10_001}),
        json!({"n": 1}),
    ] {
        let r = app
            .admin("POST", "/activities/club/invites", Some(bad))
            .await;
        r.expect_error(400, "invalid_request");
    }
    let r = app
        .admin(
            "POST",
            "/activities/club/invites",
            Some(json!({"count": 2})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let codes: Vec<String> = serde_json::from_value(r.body["codes"].clone()).expect("codes");
    assert_eq!(codes.len(), 2);

    join_with(&app, "club", "ann", None)
        .await
        .expect_error(403, "forbidden");
    join_with(&app, "club", "ann", Some("nope"))
        .await
        .expect_error(403, "forbidden");
    assert_eq!(
        join_with(&app, "club", "ann", Some(&codes[0])).await.status,
        201
    );
    join_with(&app, "club", "bob", Some(&codes[0]))
        .await
        .expect_error(403, "forbidden");
    assert_eq!(
        join_with(&app, "club", "ann", Some(&codes[0])).await.status,
        200
    );

    app.kill9();
    app.restart().await;
    join_with(&app, "club", "bob", Some(&codes[0]))
        .await
        .expect_error(403, "forbidden");
    assert_eq!(
        join_with(&app, "club", "ann", Some(&codes[0])).await.status,
        200
    );
    // Over WebSocket: the code as a query parameter.
    let mut cat = app
        .ws_query("club", "cat", &format!("&invite={}", codes[1]))
        .await;
    let first = cat.next_json().await;
    assert!(
        first["type"] == "queued" || first["type"] == "admitted",
        "{first}"
    );
    let mut dan = app.ws_query("club", "dan", "&invite=nope").await;
    let refused = dan.next_json().await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("forbidden"))
    );
}

#[actix_web::test]
async fn revoke_frees_held_units_for_the_next_in_line_and_ban_refuses_later_joins() {
    let app = spawn_app().await;
    app.create_sale("drop", 1, json!({"rate_per_sec": 1000, "max_active": 1}))
        .await;
    let mut ann = app.ws("drop", "ann", None).await;
    assert!(ann.until("admitted").await["token"].is_string());
    let mut bob = app.ws("drop", "bob", None).await;
    assert_eq!(bob.next_json().await["type"], "queued");
    let carol = app.join_http("drop", "carol").await;
    assert_eq!(carol.body["status"], "waiting");
    let carol_ticket = carol.body["ticket"].as_str().expect("ticket").to_owned();

    let r = app
        .admin("DELETE", "/activities/drop/users/ann", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        json!({"user_id": "ann", "revoked": true, "banned": false})
    );
    assert_eq!(ann.until("revoked").await["type"], "revoked");
    assert!(
        matches!(ann.next().await, Frame::Closed(_)),
        "the socket closes"
    );
    // Ann's held unit goes to the next in line.
    assert!(bob.until("admitted").await["token"].is_string());

    let r = app
        .admin("DELETE", "/activities/drop/users/carol?ban=true", None)
        .await;
    assert_eq!(
        r.body,
        json!({"user_id": "carol", "revoked": true, "banned": true})
    );
    let t = app
        .as_user(
            "carol",
            "GET",
            &format!("/api/activities/drop/tickets/{carol_ticket}"),
            None,
        )
        .await;
    assert_eq!(t.body["status"], "revoked", "{}", t.body);
    app.join_http("drop", "carol")
        .await
        .expect_error(403, "forbidden");
    // Ann was not banned: she may queue again.
    assert!(app.join_http("drop", "ann").await.status < 300);

    app.admin("DELETE", "/activities/drop/users/nobody", None)
        .await
        .expect_error(404, "not_found");
    let r = app
        .admin("DELETE", "/activities/drop/users/dan?ban=true", None)
        .await;
    assert_eq!(
        r.body,
        json!({"user_id": "dan", "revoked": false, "banned": true})
    );
    let mut dan = app.ws("drop", "dan", None).await;
    assert_eq!(dan.next_json().await["code"], "forbidden");
    app.admin("DELETE", "/activities/nope/users/ann", None)
        .await
        .expect_error(404, "not_found");
    app.assert_invariant("drop").await;
}

#[actix_web::test]
async fn a_revoked_pass_fails_verify_and_its_slot_goes_to_the_next_in_line() {
    let app = spawn_app().await;
    assert_eq!(app.create(gate("door", 1, 600)).await.status, 201);
    let ann = app.join_http("door", "ann").await;
    let pass = ann.body["pass"].as_str().expect("pass").to_owned();
    let mut bob = app.ws("door", "bob", None).await;
    assert_eq!(bob.next_json().await["type"], "queued");
    assert_eq!(verify_status(&app, "door", &pass).await, 204);
    let r = app
        .admin("DELETE", "/activities/door/users/ann", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(verify_status(&app, "door", &pass).await, 401, "revoked");
    let bob_pass = bob.until("admitted").await["pass"]
        .as_str()
        .expect("pass")
        .to_owned();
    assert_eq!(verify_status(&app, "door", &bob_pass).await, 204);
    // A pass given up (leaving) is revoked too: its slot is someone else's now.
    let r = app
        .as_user("bob", "POST", "/api/activities/door/join", None)
        .await;
    let ticket = r.body["ticket"].as_str().expect("ticket");
    let left = app
        .as_user(
            "bob",
            "DELETE",
            &format!("/api/activities/door/tickets/{ticket}"),
            None,
        )
        .await;
    assert_eq!(left.status, 200, "{}", left.body);
    assert_eq!(verify_status(&app, "door", &bob_pass).await, 401);
}

/// The waiting page without JavaScript, as `user` (their identity cookie, as the
/// page's login form sets it; `lang` the language cookie): redirects not followed.
struct NoJs<'a> {
    app: &'a Api,
    cookie: String,
    client: awc::Client,
}

impl<'a> NoJs<'a> {
    fn new(app: &'a Api, user: &str, lang: &str) -> NoJs<'a> {
        NoJs {
            app,
            cookie: format!("sluice_id={}; sluice_lang={lang}", app.user_token(user)),
            client: awc::Client::builder().disable_redirects().finish(),
        }
    }

    async fn send(
        &self,
        path: &str,
        form: Option<&[(&str, &str)]>,
    ) -> (u16, awc::http::header::HeaderMap, String) {
        let url = format!("{}{path}", self.app.base);
        let req = match form {
            Some(_) => self.client.post(url),
            None => self.client.get(url),
        }
        .insert_header(("Cookie", self.cookie.as_str()));
        let mut res = match form {
            Some(f) => req.send_form(&f).await,
            None => req.send().await,
        }
        .unwrap_or_else(|e| panic!("{path}: {e}"));
        let body = res.body().await.expect("body");
        let body = String::from_utf8(body.to_vec()).expect("HTML");
        (res.status().as_u16(), res.headers().clone(), body)
    }

    /// The page's form token (a hidden field of every signed-in form).
    async fn csrf(&self, id: &str) -> String {
        let (status, _, html) = self.send(&format!("/a/{id}"), None).await;
        assert_eq!(status, 200, "{html}");
        let at = html
            .find("name=\"csrf\" value=\"")
            .expect("a signed-in form")
            + 19;
        html[at..at + html[at..].find('"').expect("end")].to_owned()
    }

    async fn join(&self, id: &str, invite: &str) -> (u16, awc::http::header::HeaderMap, String) {
        let csrf = self.csrf(id).await;
        let form = [("csrf", csrf.as_str()), ("invite", invite)];
        self.send(&format!("/a/{id}/join"), Some(&form)).await
    }
}

#[actix_web::test]
async fn the_page_without_javascript_joins_an_invite_only_line_with_a_code() {
    let app = spawn_app().await;
    let r = app
        .create(
            json!({"id": "club", "name": "Club", "kind": "sale", "stock": 10,
                       "admission": {"access": "invite", "rate_per_sec": 1000}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = app
        .admin(
            "POST",
            "/activities/club/invites",
            Some(json!({"count": 1})),
        )
        .await;
    let code = r.body["codes"][0].as_str().expect("a code").to_owned();

    // The link's code fills the labelled field.
    let ann = NoJs::new(&app, "ann", "en");
    let (status, _, html) = ann.send(&format!("/a/club?invite={code}"), None).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("<label for=\"nojs-invite\">Invite code</label>"),
        "{html}"
    );
    assert!(html.contains(&format!("name=\"invite\" type=\"text\" value=\"{code}\"")));

    // No code: refused on the page, which says why and asks again.
    let (status, _, html) = ann.join("club", "  ").await;
    assert_eq!(status, 403);
    assert!(html.contains("This line is by invitation only."), "{html}");
    assert!(html.contains("id=\"nojs-invite\""));
    assert!(!html.contains("\"code\":\"forbidden\""), "a page, not JSON");
    let (status, _, html) = ann.join("club", "nope").await;
    assert_eq!(status, 403);
    assert!(html.contains("That invite code is not valid."), "{html}");

    // The code: joined (back to the page with the place's cookie).
    let (status, headers, _) = ann.join("club", &code).await;
    assert_eq!(status, 303);
    assert_eq!(headers.get("location").expect("location"), "/a/club");
    let set = headers.get("set-cookie").expect("the ticket cookie");
    assert!(set.to_str().expect("ascii").starts_with("sluice_ticket="));

    // Someone else with the same code: refused, in their language, code kept.
    let bob = NoJs::new(&app, "bob", "de");
    let (status, headers, html) = bob.join("club", &code).await;
    assert_eq!(status, 403);
    assert!(headers.get("set-cookie").is_none(), "no place");
    assert!(
        html.contains("Dieser Einladungscode wurde bereits von jemand anderem verwendet."),
        "{html}"
    );
    assert!(html.contains(&format!("value=\"{code}\"")));

    // Signing in from an invite link goes back to the link, code and all.
    let eve = NoJs::new(&app, "eve", "en");
    let form = [
        ("username", "eve-nojs"),
        ("password", "correct horse battery staple"),
        ("action", "register"),
        ("invite", code.as_str()),
    ];
    let (status, headers, html) = eve.send("/a/club/login", Some(&form)).await;
    assert_eq!(status, 303, "{html}");
    assert_eq!(
        headers.get("location").expect("location"),
        format!("/a/club?invite={code}").as_str()
    );
}
