//! TLS served directly: an HTTPS purchase and a wss:// session with real clients, and
//! a certificate reload on SIGHUP while that session stays connected.

use crate::common::*;
use serde_json::json;
use std::time::Duration;

#[actix_web::test]
async fn https_purchase_and_a_wss_session_that_outlives_a_sighup_certificate_reload() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (first_cert, first_key) = self_signed(dir.path(), "first");
    let (second_cert, second_key) = self_signed(dir.path(), "second");
    let (cert, key) = (dir.path().join("served.crt"), dir.path().join("served.key"));
    std::fs::copy(&first_cert, &cert).expect("copy");
    std::fs::copy(&first_key, &key).expect("copy");
    let tls = trusting(&[&first_cert, &second_cert]);
    let sluice = Process::start_tls(
        "sluice-tls",
        &[
            ("SLUICE__SERVER__TLS__CERT_PATH", cert.display().to_string()),
            ("SLUICE__SERVER__TLS__KEY_PATH", key.display().to_string()),
        ],
        tls.clone(),
    )
    .await;
    assert!(sluice.base.starts_with("https://"));
    sluice
        .create_sale("tls", 5, json!({"rate_per_sec": 1000, "max_active": 1}))
        .await;

    let mut buyer = sluice.ws("tls", "buyer", None).await;
    let token = buyer.until("admitted").await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    // `stay` waits behind the buyer (one admitted at a time) across the reload.
    let mut stay = sluice.ws("tls", "stay", None).await;
    stay.until("queued").await;

    // New certificate files, then SIGHUP: new handshakes get the new certificate ...
    assert_eq!(
        served_certificate(sluice.port, tls.clone()).await,
        der_of(&first_cert)
    );
    std::fs::copy(&second_cert, &cert).expect("copy");
    std::fs::copy(&second_key, &key).expect("copy");
    sluice.signal("-HUP");
    let mut reloaded = false;
    for _ in 0..400 {
        if served_certificate(sluice.port, tls.clone()).await == der_of(&second_cert) {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(reloaded, "the new certificate is served after SIGHUP");

    // ... and the session opened before the reload still hears the activity.
    let r = sluice.admin("POST", "/activities/tls/pause", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    stay.until("paused").await;
    sluice.admin("POST", "/activities/tls/resume", None).await;
    stay.until("resumed").await;
    let r = sluice.purchase("tls", "buyer", &token, None).await;
    assert_eq!(r.status, 201, "HTTPS purchase: {}", r.body);
    let stay_token = stay.until("admitted").await["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let r = sluice.purchase("tls", "stay", &stay_token, None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(sluice.view("tls").await["sold"], 2);

    // Plain HTTP on the TLS port is not served.
    let plain = awc::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", sluice.port))
        .send()
        .await;
    assert!(plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()));
}
