//! Auditable fairness over the real API: the commitment before opening (kept across a
//! restart), the seed revealed at opening, receipts on every place, and the public
//! log checked by `scripts/verify-fairness.py` after a sale driven over WebSocket.

use crate::common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sluice::actors::messages::Tick;
use sluice::domain::clock::{rfc3339, Clock};
use sluice::domain::ids::ActivityId;

fn now_ms(app: &TestApp) -> u64 {
    app.clock.as_ref().expect("manual clock").now_ms()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One step of the activity's time, now (rather than on its next interval tick).
async fn tick(app: &TestApp, id: &str) {
    let id = ActivityId::parse(id).expect("id");
    let addr = app.state.registry.get(&id).expect("running here");
    addr.send(Tick).await.expect("tick");
}

/// Runs the verifier script; its verdict line and whether it passed.
async fn verify(args: Vec<String>) -> (String, bool) {
    let out = actix_web::rt::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/verify-fairness.py"
            ))
            .args(args)
            .output()
            .expect("python3 runs")
    })
    .await
    .expect("verifier finished");
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(line.lines().count(), 1, "one verdict line: {line}");
    (line, out.status.success())
}

fn receipt_of(frame: &Value) -> String {
    let r = frame["receipt"].as_str().expect("a receipt").to_owned();
    assert_eq!(r.len(), 24, "{frame}");
    assert_ne!(Some(r.as_str()), frame["ticket"].as_str());
    r
}

#[actix_web::test]
async fn the_commitment_is_published_at_creation_and_survives_a_restart() {
    let app = spawn_app().await;
    let opens = sluice::domain::clock::SystemClock.now_ms() + 3_600_000;
    let r = app
        .create(
            json!({"id":"later","name":"Later","kind":"sale","stock":5,"opens_at": rfc3339(opens)}),
        )
        .await;
    assert_eq!(r.status, 201);
    let commitment = r.body["fairness"]["commitment"]
        .as_str()
        .expect("a commitment from creation on")
        .to_owned();
    assert_eq!(commitment.len(), 64);
    let public = app.view("later").await;
    assert_eq!(public["fairness"]["commitment"], commitment.as_str());
    let (status, body) = app.get_text("/api/activities/later/fairness").await;
    let f: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (status, &f["commitment"], &f["seed"]),
        (200, &json!(commitment), &Value::Null)
    );
    let joined = app.join_http("later", "early-bird").await;
    assert_eq!(joined.body["status"], "prequeue");
    let receipt = receipt_of(&joined.body);

    app.stop().await;
    let app = app.reopen().await;
    let f: Value = serde_json::from_str(&app.get_text("/api/activities/later/fairness").await.1)
        .expect("json");
    assert_eq!(
        f["commitment"],
        commitment.as_str(),
        "same seed after a restart"
    );
    assert_eq!(f["seed"], Value::Null, "still secret");
    assert_eq!(
        app.view("later").await["fairness"]["commitment"],
        commitment.as_str()
    );
    let again = app.join_http("later", "early-bird").await;
    assert_eq!(
        again.body["receipt"],
        receipt.as_str(),
        "the place keeps its receipt"
    );
    // An activity open from creation has nothing to commit to.
    let open = app.create_sale("now", 1, json!({})).await;
    assert!(open.get("fairness").is_none(), "{open}");
}

#[actix_web::test]
async fn a_sale_driven_over_websocket_passes_the_verifier_and_a_doctored_log_fails() {
    let app = spawn_app_manual_clock().await;
    let opens = now_ms(&app) + 3_000;
    let r = app
        .create(
            json!({"id":"drop","name":"Drop","kind":"sale","stock":5,"opens_at": rfc3339(opens),
            "admission":{"rate_per_sec":100,"max_active":2,"reconnect_grace_secs":1}}),
        )
        .await;
    assert_eq!(r.status, 201);
    let commitment = r.body["fairness"]["commitment"]
        .as_str()
        .expect("c")
        .to_owned();

    // Twelve join before opening; one gives up before the line exists.
    let mut pre = Vec::new();
    let mut tickets = Vec::new();
    for i in 0..12 {
        let mut s = app.ws("drop", &format!("pre{i:02}"), None).await;
        let f = s.until("prequeue").await;
        receipt_of(&f);
        tickets.push(f["ticket"].as_str().expect("ticket").to_owned());
        pre.push(s);
    }
    let path = format!("/api/activities/drop/tickets/{}", tickets[11]);
    assert_eq!(
        app.as_user("pre11", "DELETE", &path, None).await.status,
        200
    );
    drop(pre.pop());
    let (_, f) = app.get_text("/api/activities/drop/fairness").await;
    assert!(f.contains("\"seed\":null"), "{f}");

    app.advance(3_000);
    tick(&app, "drop").await;
    let mut admitted = Vec::new();
    for s in pre.iter_mut() {
        let q = s.until("queued").await;
        receipt_of(&q);
        if q["position"].as_u64() <= Some(2) {
            admitted.push(s.user.clone());
        }
    }
    let f: Value =
        serde_json::from_str(&app.get_text("/api/activities/drop/fairness").await.1).expect("json");
    let seed = f["seed"].as_str().expect("revealed at opening");
    let digest = Sha256::digest(
        (0..32)
            .map(|i| u8::from_str_radix(&seed[2 * i..2 * i + 2], 16).expect("hex"))
            .collect::<Vec<u8>>(),
    );
    assert_eq!(hex(&digest), commitment);

    // Later joiners: over WebSocket, one by HTTP polling that never polls again
    // (dropped after the grace), one who leaves; a few milliseconds apart, so
    // their join times differ.
    let mut late = Vec::new();
    let mut late_tickets = Vec::new();
    for i in 0..3 {
        app.advance(7);
        let mut s = app.ws("drop", &format!("late{i}"), None).await;
        let q = s.until("queued").await;
        receipt_of(&q);
        late_tickets.push(q["ticket"].as_str().expect("ticket").to_owned());
        late.push(s);
    }
    app.advance(7);
    let polled = app.join_http("drop", "poller").await;
    assert_eq!(polled.status, 201);
    let t = polled.body["ticket"].as_str().expect("ticket");
    let view = app
        .as_user(
            "poller",
            "GET",
            &format!("/api/activities/drop/tickets/{t}"),
            None,
        )
        .await;
    assert_eq!(view.body["receipt"], polled.body["receipt"]);
    let path = format!("/api/activities/drop/tickets/{}", late_tickets[2]);
    assert_eq!(
        app.as_user("late2", "DELETE", &path, None).await.status,
        200
    );

    // The first two buy; the rest move up as units allow.
    for s in pre.iter_mut().filter(|s| admitted.contains(&s.user)) {
        let token = s.until("admitted").await["token"]
            .as_str()
            .expect("t")
            .to_owned();
        assert_eq!(
            app.purchase("drop", &s.user.clone(), &token, None)
                .await
                .status,
            201
        );
    }
    app.advance(2_000);
    tick(&app, "drop").await;
    app.assert_invariant("drop").await;

    let (status, log) = app.get_text("/api/activities/drop/fairness/log").await;
    assert_eq!(status, 200);
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect();
    assert_eq!(lines.len(), 11 + 4, "every place in the line once: {log}");
    let outcomes: Vec<&str> = lines
        .iter()
        .map(|l| l["outcome"].as_str().expect("o"))
        .collect();
    assert!(
        outcomes.contains(&"left") && outcomes.contains(&"dropped"),
        "{outcomes:?}"
    );
    assert!(outcomes.contains(&"admitted"), "{outcomes:?}");
    assert_eq!(lines.iter().filter(|l| l["prequeue"] == true).count(), 11);
    // Every line says when its place joined (RFC 3339, milliseconds); the later
    // joiners' times are the clock's at their joins, in line order.
    let joined: Vec<&str> = lines
        .iter()
        .map(|l| l["joined_at"].as_str().expect("joined_at on every line"))
        .collect();
    assert!(
        joined.iter().all(|j| j.len() == 24 && j.ends_with('Z')),
        "{joined:?}"
    );
    let late_joined: Vec<u64> = joined[11..]
        .iter()
        .map(|j| sluice::domain::clock::parse_rfc3339(j).expect("RFC 3339"))
        .collect();
    assert_eq!(
        late_joined,
        vec![opens + 7, opens + 14, opens + 21, opens + 28],
        "{joined:?}"
    );

    let (verdict, ok) = verify(vec![app.base.clone(), "drop".into()]).await;
    assert!(ok, "{verdict}");
    assert!(verdict.starts_with("PASS"), "{verdict}");

    // Saved copies: as published they pass; doctored they fail.
    let dir = tempfile::tempdir().expect("dir");
    let save = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.to_string_lossy().into_owned()
    };
    let fairness_text = app.get_text("/api/activities/drop/fairness").await.1;
    let files = |f: &str, l: &str| {
        vec![
            "--fairness".into(),
            f.to_owned(),
            "--log".into(),
            l.to_owned(),
        ]
    };
    let (f_ok, l_ok) = (save("f.json", &fairness_text), save("log.ndjson", &log));
    assert!(verify(files(&f_ok, &l_ok)).await.1, "saved copies pass");

    let mut swapped: Vec<&str> = log.lines().collect();
    swapped.swap(0, 1);
    let l_bad = save("swapped.ndjson", &(swapped.join("\n") + "\n"));
    let (verdict, ok) = verify(files(&f_ok, &l_bad)).await;
    assert!(!ok && verdict.starts_with("FAIL"), "{verdict}");

    // Two later joiners swapped (neither admitted, so only their join times
    // give it away).
    let mut swapped: Vec<&str> = log.lines().collect();
    let late_unadmitted: Vec<usize> = (11..lines.len())
        .filter(|&i| lines[i]["admitted_at"].is_null())
        .collect();
    assert!(late_unadmitted.len() >= 2, "{log}");
    swapped.swap(late_unadmitted[0], late_unadmitted[1]);
    let l_bad = save("late-swapped.ndjson", &(swapped.join("\n") + "\n"));
    let (verdict, ok) = verify(files(&f_ok, &l_bad)).await;
    assert!(!ok && verdict.contains("joined_at"), "{verdict}");

    // Each other way a log can be doctored fails for its own reason.
    let doctored = |i: usize, line: String| {
        let mut all: Vec<String> = log.lines().map(str::to_owned).collect();
        all[i] = line;
        all.join("\n") + "\n"
    };
    // An admission moved back in time (not the first: it has nothing before it).
    let admitted: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i]["admitted_at"].is_string())
        .collect();
    assert!(admitted.len() >= 2, "{log}");
    let mut earlier = lines[admitted[1]].clone();
    earlier["admitted_at"] = json!("2000-01-01T00:00:00Z");
    let l_bad = save(
        "earlier.ndjson",
        &doctored(admitted[1], earlier.to_string()),
    );
    let (verdict, ok) = verify(files(&f_ok, &l_bad)).await;
    assert!(
        !ok && verdict.contains("admitted_at goes back in time"),
        "{verdict}"
    );
    // One receipt listed twice (a place given another's receipt).
    let mut twice = lines[1].clone();
    twice["receipt"] = lines[0]["receipt"].clone();
    let l_bad = save("twice.ndjson", &doctored(1, twice.to_string()));
    let (verdict, ok) = verify(files(&f_ok, &l_bad)).await;
    assert!(!ok && verdict.contains("appears twice"), "{verdict}");
    // A pre-queue place moved behind the later joiners.
    let mut moved: Vec<&str> = log.lines().collect();
    let last_pre = moved.remove(10);
    moved.push(last_pre);
    let l_bad = save("moved.ndjson", &(moved.join("\n") + "\n"));
    let (verdict, ok) = verify(files(&f_ok, &l_bad)).await;
    assert!(
        !ok && verdict.contains("a pre-queue place after a later joiner"),
        "{verdict}"
    );

    let wrong = fairness_text.replace(seed, &"0".repeat(64));
    let f_bad = save("wrong.json", &wrong);
    let (verdict, ok) = verify(files(&f_bad, &l_ok)).await;
    assert!(!ok && verdict.contains("commitment"), "{verdict}");

    // Hiding the commitment does not turn a pre-queue into an unchecked line.
    let f_none = save("none.json", r#"{"commitment":null,"seed":null}"#);
    let (verdict, ok) = verify(files(&f_none, &l_ok)).await;
    assert!(
        !ok && verdict.contains("pre-queue without a commitment"),
        "{verdict}"
    );
    let later_only: String = log
        .lines()
        .filter(|l| l.contains(r#""prequeue":false"#))
        .map(|l| format!("{l}\n"))
        .collect();
    let (verdict, ok) = verify(files(&f_none, &save("later.ndjson", &later_only))).await;
    assert!(ok && verdict.contains("open from creation"), "{verdict}");
}

#[actix_web::test]
async fn opens_at_set_later_commits_and_keeps_its_seed_across_a_restart_and_a_move() {
    let mut app = Process::start("sluice", &[]).await;
    let path = "/activities/later/schedule";
    let at = |ms: u64| json!({ "opens_at": rfc3339(ms) });
    let created = app
        .create_sale("later", 5, json!({"rate_per_sec": 1000, "max_active": 100}))
        .await;
    assert!(created.get("fairness").is_none(), "open now: {created}");

    let opens = sluice::domain::clock::SystemClock.now_ms() + 3_600_000;
    let r = app.admin("PATCH", path, Some(at(opens))).await;
    assert_eq!(
        (r.status, &r.body["phase"]),
        (200, &json!("scheduled")),
        "{}",
        r.body
    );
    let commitment = r.body["fairness"]["commitment"]
        .as_str()
        .expect("a commitment from the PATCH on")
        .to_owned();
    assert_eq!(
        app.view("later").await["fairness"]["commitment"],
        commitment.as_str()
    );
    for u in ["pre-1", "pre-2", "pre-3"] {
        assert_eq!(app.join_http("later", u).await.body["status"], "prequeue");
    }

    app.kill9();
    app.restart().await;
    let f: Value = serde_json::from_str(&app.get_text("/api/activities/later/fairness").await.1)
        .expect("json");
    assert_eq!(
        (&f["commitment"], &f["seed"]),
        (&json!(commitment), &Value::Null)
    );
    let moved = app.admin("PATCH", path, Some(at(opens + 3_600_000))).await;
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(moved.body["opens_at"], rfc3339(opens + 3_600_000).as_str());
    assert_eq!(
        moved.body["fairness"]["commitment"],
        commitment.as_str(),
        "moving keeps it"
    );

    // Bad input changes nothing.
    let past = sluice::domain::clock::SystemClock.now_ms() - 1_000;
    app.admin("PATCH", path, Some(at(past)))
        .await
        .expect_error(400, "invalid_request");
    app.admin("PATCH", path, Some(json!({"opens_at": "soon"})))
        .await
        .expect_error(400, "invalid_request");
    app.admin("PATCH", path, Some(json!({})))
        .await
        .expect_error(400, "invalid_request");
    app.admin("PATCH", path, Some(json!({"opens_at": null, "seed": "00"})))
        .await
        .expect_error(400, "invalid_request");
    app.raw(
        "PATCH",
        &format!("/api/admin{path}"),
        Some(ADMIN_KEY),
        "{".into(),
        "application/json",
    )
    .await
    .expect_error(400, "invalid_request");
    app.admin(
        "PATCH",
        "/activities/nothing-here/schedule",
        Some(at(opens)),
    )
    .await
    .expect_error(404, "not_found");
    assert_eq!(app.view("later").await["phase"], "scheduled");

    // `null` opens now and reveals the seed committed to at the first PATCH.
    let opened = app
        .admin("PATCH", path, Some(json!({"opens_at": null})))
        .await;
    assert_eq!(
        (opened.status, &opened.body["phase"]),
        (200, &json!("open")),
        "{}",
        opened.body
    );
    let f: Value = serde_json::from_str(&app.get_text("/api/activities/later/fairness").await.1)
        .expect("json");
    let seed = f["seed"].as_str().expect("revealed").to_owned();
    let seed_bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&seed[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    assert_eq!(hex(&Sha256::digest(&seed_bytes)), commitment);
    app.admin("PATCH", path, Some(at(opens)))
        .await
        .expect_error(409, "conflict");
    app.join_http("later", "late-1").await;
    for _ in 0..400 {
        if app.view("later").await["admitted_total"] == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(app.view("later").await["admitted_total"], 4);
    let (verdict, ok) = verify(vec![app.base.clone(), "later".into()]).await;
    assert!(ok && verdict.starts_with("PASS"), "{verdict}");

    // An activity open from creation that someone joined cannot be scheduled.
    app.create_sale("busy", 5, json!({})).await;
    app.join_http("busy", "someone").await;
    app.admin("PATCH", "/activities/busy/schedule", Some(at(opens)))
        .await
        .expect_error(409, "conflict");
}

#[actix_web::test]
async fn a_log_longer_than_a_page_streams_every_place_once() {
    // 2,500 places: two full pages of 1,000 lines and a partial third.
    const PLACES: usize = 2_500;
    let app = spawn_app().await;
    app.create_sale("long", 1, json!({"rate_per_sec": 1, "max_active": 1}))
        .await;
    let mut receipts = std::collections::HashMap::new();
    let users: Vec<String> = (0..PLACES).map(|i| format!("u{i:04}")).collect();
    for batch in users.chunks(50) {
        let joins = batch.iter().map(|u| app.join_http("long", u));
        for (u, r) in batch
            .iter()
            .zip(futures_util::future::join_all(joins).await)
        {
            assert_eq!(r.status, 201, "{u}: {}", r.body);
            let receipt = receipt_of(&r.body);
            assert!(
                receipts.insert(receipt, u.clone()).is_none(),
                "unique receipts"
            );
        }
    }

    let (status, log) = app.get_text("/api/activities/long/fairness/log").await;
    assert_eq!(status, 200);
    assert!(log.ends_with('\n'), "whole lines only");
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for l in log.lines() {
        let v: Value = serde_json::from_str(l).expect("NDJSON");
        *seen
            .entry(v["receipt"].as_str().expect("receipt").to_owned())
            .or_default() += 1;
    }
    assert_eq!(log.lines().count(), PLACES, "one line per place");
    assert_eq!(seen.len(), PLACES);
    for r in receipts.keys() {
        assert_eq!(seen.get(r), Some(&1), "receipt {r} exactly once");
    }
    let (verdict, ok) = verify(vec![app.base.clone(), "long".into()]).await;
    assert!(ok, "{verdict}");
    assert!(
        verdict.starts_with(&format!("PASS: {PLACES} places")),
        "{verdict}"
    );
}
