//! Throughput of the real server over HTTP on this machine: the no-op endpoint (the
//! HTTP ceiling), HTTP joins, and durable purchases with pre-issued tokens, at a
//! group-commit window of 0 (one flush per commit) and at the configured default.
//!
//! `cargo bench --bench throughput -- [--users N] [--clients C] [--json FILE]`
//! `--prepare URL FILE [--gate]` only prepares a running server for wrk: users joined
//! and admitted, one "JWT TOKEN" line each (with `--gate` the activity is a gate and
//! TOKEN its pass; the join rate is then the rate passes are issued at).
//! The server runs in its own actix system (2 workers); the client is awc with C
//! connections on another thread. Both share the machine, as in production tests.

use awc::Client;
use serde_json::{json, Value};
use sluice::config::Settings;
use sluice::domain::clock::{Clock, SystemClock};
use sluice::domain::ids::UserId;
use sluice::domain::jwt::JwtKey;
use sluice::startup::Application;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Args {
    users: usize,
    clients: usize,
    json: Option<String>,
    /// `--prepare URL FILE`: only create activity `bench` on a running server, join
    /// `users` users and write one "JWT TOKEN" line each (for wrk).
    prepare: Option<(String, String)>,
    /// `--gate`: the prepared activity is a gate, and the file holds passes.
    gate: bool,
}

fn args() -> Args {
    let mut a = Args {
        users: 20_000,
        clients: 64,
        json: None,
        prepare: None,
        gate: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--users" => a.users = it.next().and_then(|v| v.parse().ok()).expect("--users N"),
            "--clients" => a.clients = it.next().and_then(|v| v.parse().ok()).expect("--clients C"),
            "--json" => a.json = it.next(),
            "--prepare" => {
                let url = it.next().expect("--prepare URL FILE");
                let file = it.next().expect("--prepare URL FILE");
                a.prepare = Some((url, file));
            }
            "--gate" => a.gate = true,
            _ => {} // cargo bench passes --bench
        }
    }
    // Every user is admitted and holds a unit at once, and the contract bounds
    // `admission.max_active` at 1,000,000: more would leave users without a token.
    assert!(
        a.users <= 1_000_000,
        "--users is at most 1000000 (admission.max_active)"
    );
    a
}

/// Starts a server with the given commit window on its own thread; returns its port.
fn start_server(window_us: u64) -> (u16, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut s = Settings::defaults();
    s.server.bind = "127.0.0.1:0".into();
    s.server.workers = 2;
    s.store.path = dir.path().to_path_buf();
    s.store.commit_window_us = window_us;
    for l in [
        &mut s.limits.join_per_ip_per_sec,
        &mut s.limits.poll_per_ip_per_sec,
        &mut s.limits.purchase_per_ip_per_sec,
        &mut s.limits.user_per_sec,
    ] {
        *l = 0;
    }
    s.log.level = "warn".into();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = Application::build(s, std::sync::Arc::new(SystemClock))
                .await
                .expect("app builds");
            tx.send(app.port()).expect("report port");
            let _ = app.run_until_stopped().await;
        });
    });
    (rx.recv().expect("server port"), dir)
}

/// Runs `jobs` requests over `clients` concurrent connections; returns req/s and failures.
async fn drive<F, Fut>(clients: usize, jobs: usize, make: F) -> (f64, usize)
where
    F: Fn(usize) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = bool> + 'static,
{
    let next = Rc::new(RefCell::new(0usize));
    let failed = Rc::new(RefCell::new(0usize));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, failed, make) = (next.clone(), failed.clone(), make.clone());
        tasks.push(actix_web::rt::spawn(async move {
            loop {
                let i = {
                    let mut n = next.borrow_mut();
                    if *n >= jobs {
                        return;
                    }
                    *n += 1;
                    *n - 1
                };
                if !make(i).await {
                    *failed.borrow_mut() += 1;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let f = *failed.borrow();
    (jobs as f64 / secs, f)
}

struct Figures {
    noop: f64,
    join: f64,
    purchase: f64,
}

async fn measure(
    base: String,
    users: usize,
    clients: usize,
    tag: &str,
    dump: Option<&str>,
    gate: bool,
) -> Figures {
    let client = Client::builder()
        .connector(awc::Connector::new().limit(0))
        .timeout(Duration::from_secs(60))
        .finish();
    let jwt = JwtKey::new(sluice::config::DEV_JWT_SECRET.as_bytes());
    let exp = SystemClock.now_ms() / 1000 + 3600;
    let admin = format!("Bearer {}", sluice::config::DEV_ADMIN_KEY);
    let r = client
        .post(format!("{base}/api/admin/activities"))
        .insert_header(("Authorization", admin.as_str()))
        .send_json(&if gate {
            json!({"id": "bench", "name": "bench", "kind": "gate",
            "gate": {"origin_url": "http://127.0.0.1/", "pass_ttl_secs": 3600},
            "admission": {"rate_per_sec": 100000, "max_active": 1000000}})
        } else {
            json!({"id": "bench", "name": "bench", "kind": "sale", "stock": users,
            "admission": {"rate_per_sec": 100000, "max_active": 1000000, "token_ttl_secs": 3600}})
        })
        .await
        .expect("create");
    assert_eq!(r.status().as_u16(), 201);

    // Two passes: the first opens the connections and warms caches; the second counts.
    let mut noop = 0.0;
    for _ in 0..2 {
        let (c, b) = (client.clone(), base.clone());
        noop = drive(clients, users, move |_| {
            let (c, b) = (c.clone(), b.clone());
            async move {
                c.get(format!("{b}/healthz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await
        .0;
    }

    let bearers: Rc<Vec<String>> = Rc::new(
        (0..users)
            .map(|i| {
                format!(
                    "Bearer {}",
                    jwt.issue(&UserId::parse(&format!("b{i}")).expect("id"), exp)
                )
            })
            .collect(),
    );
    let tokens: Rc<RefCell<Vec<Option<String>>>> = Rc::new(RefCell::new(vec![None; users]));
    let (join, join_failed) = {
        let (c, b, bearers, tokens) = (
            client.clone(),
            base.clone(),
            bearers.clone(),
            tokens.clone(),
        );
        drive(clients, users, move |i| {
            let (c, b, bearers, tokens) = (c.clone(), b.clone(), bearers.clone(), tokens.clone());
            async move {
                let Ok(mut r) = c
                    .post(format!("{b}/api/activities/bench/join"))
                    .insert_header(("Authorization", bearers[i].as_str()))
                    .send()
                    .await
                else {
                    return false;
                };
                let Ok(v) = r.json::<Value>().await else {
                    return false;
                };
                // A sale's purchase token, or a gate's pass.
                let held = v["token"].as_str().or(v["pass"].as_str());
                tokens.borrow_mut()[i] = held.map(String::from);
                r.status().as_u16() == 201
            }
        })
        .await
    };
    let missing = tokens.borrow().iter().filter(|t| t.is_none()).count();
    assert_eq!(
        (join_failed, missing),
        (0, 0),
        "every join admitted with a token"
    );
    if let Some(path) = dump {
        let lines: Vec<String> = tokens
            .borrow()
            .iter()
            .zip(bearers.iter())
            .map(|(t, b)| {
                format!(
                    "{} {}",
                    &b["Bearer ".len()..],
                    t.as_deref().unwrap_or_default()
                )
            })
            .collect();
        std::fs::write(path, lines.join("\n") + "\n").expect("write token file");
        return Figures {
            noop,
            join,
            purchase: 0.0,
        };
    }

    let (purchase, purchase_failed) = {
        let (c, b, bearers, tokens) = (
            client.clone(),
            base.clone(),
            bearers.clone(),
            tokens.clone(),
        );
        drive(clients, users, move |i| {
            let (c, b, bearers) = (c.clone(), b.clone(), bearers.clone());
            let token = tokens.borrow()[i].clone().expect("token");
            async move {
                c.post(format!("{b}/api/activities/bench/purchase"))
                    .insert_header(("Authorization", bearers[i].as_str()))
                    .send_json(&json!({ "token": token }))
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 201)
            }
        })
        .await
    };
    assert_eq!(purchase_failed, 0, "every purchase created an order");
    let mut r = client
        .get(format!("{base}/api/admin/activities/bench"))
        .insert_header(("Authorization", admin.as_str()))
        .send()
        .await
        .expect("view");
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        v["sold"].as_u64(),
        Some(users as u64),
        "{tag}: sold == purchases"
    );
    Figures {
        noop,
        join,
        purchase,
    }
}

fn main() {
    let a = args();
    if let Some((url, file)) = &a.prepare {
        let f = actix_web::rt::System::new().block_on(measure(
            url.clone(),
            a.users,
            a.clients,
            "prepare",
            Some(file),
            a.gate,
        ));
        println!(
            "prepared {} tokens in {file} (joins {:.0}/s)",
            a.users, f.join
        );
        return;
    }
    let default_window = Settings::defaults().store.commit_window_us;
    let mut rows = Vec::new();
    for window in [0, default_window] {
        let (port, _dir) = start_server(window);
        let base = format!("http://127.0.0.1:{port}");
        let tag = format!("window {window}");
        let f = actix_web::rt::System::new()
            .block_on(measure(base, a.users, a.clients, &tag, None, false));
        println!(
            "commit_window_us={window:>5}  no-op {:>8.0} req/s  join {:>8.0} /s  durable purchase {:>8.0} /s  purchase/no-op {:.2}",
            f.noop,
            f.join,
            f.purchase,
            f.purchase / f.noop
        );
        rows.push(
            json!({"commit_window_us": window, "noop_rps": f.noop, "join_rps": f.join,
                         "purchase_rps": f.purchase, "users": a.users, "clients": a.clients}),
        );
    }
    let speedup = rows[1]["purchase_rps"].as_f64().unwrap_or(0.0)
        / rows[0]["purchase_rps"].as_f64().unwrap_or(1.0);
    println!("group commit speed-up on durable purchases: {speedup:.1}x");
    if let Some(path) = a.json {
        std::fs::write(&path, serde_json::to_vec_pretty(&rows).expect("json")).expect("write json");
    }
}
