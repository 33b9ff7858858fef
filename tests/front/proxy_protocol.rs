//! The PROXY protocol: HAProxy (TCP mode, `send-proxy-v2`) in front of the real
//! binary carries each client's address to the limits and the logs; hostile
//! preambles and forwarding headers close the connection or get a contract error,
//! and the server goes on undisturbed.

use crate::common::*;
use futures_util::future::join_all;
use serde_json::json;
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[actix_web::test]
#[ignore = "needs haproxy: scripts/test.sh installs it"]
async fn haproxy_send_proxy_v2_carries_the_client_to_the_limits_and_the_logs() {
    let logs = tempfile::tempdir().expect("temp dir");
    let log = logs.path().join("sluice.log");
    let sluice = Process::start_logged(
        "sluice",
        &[
            ("SLUICE__SERVER__TRUSTED_PROXIES", PROXY_SOURCE.into()),
            ("SLUICE__SERVER__PROXY_PROTOCOL", "true".into()),
            ("SLUICE__SERVER__MAX_WS_PER_IP", "2".into()),
            ("SLUICE__LIMITS__JOIN_PER_IP_PER_SEC", "3".into()),
            ("SLUICE__LOG__FORMAT", "json".into()),
            ("SLUICE__LOG__LEVEL", "sluice=debug".into()),
        ],
        Some(&log),
    )
    .await;
    sluice
        .create_sale("lb", 100, json!({"rate_per_sec": 1000, "max_active": 100}))
        .await;
    let lb = haproxy(sluice.port).await;
    let (a, b) = (crowd_ip(0), crowd_ip(1));
    let from_a = sluice.at(lb.port, Some(a));
    let from_b = sluice.at(lb.port, Some(b));

    // A floods: limited as A (3 per second), not as the load balancer.
    let joins = join_all((0..10).map(|n| {
        let from_a = &from_a;
        async move { from_a.join_http("lb", &format!("a{n}")).await.status }
    }))
    .await;
    assert!(
        joins.iter().filter(|s| **s == 429).count() >= 5,
        "{joins:?}"
    );
    assert_eq!(from_b.join_http("lb", "b0").await.status, 201, "B is not A");

    // The WebSocket cap per IP counts A's sockets, not the load balancer's.
    let from_c = sluice.at(lb.port, Some(crowd_ip(2)));
    let mut first = from_c.ws("lb", "c1", None).await;
    let mut second = from_c.ws("lb", "c2", None).await;
    first.until("queued").await;
    second.until("queued").await;
    let url = format!(
        "{}/ws/activities/lb?access_token={}",
        from_c.ws_base,
        from_c.user_token("c3")
    );
    let third = from_c.client.ws(url).connect().await;
    assert!(
        matches!(&third, Err(awc::error::WsClientError::InvalidResponseStatus(s)) if s.as_u16() == 429),
        "a third socket from one client is over server.max_ws_per_ip"
    );
    let mut other = from_b.ws("lb", "b1", None).await;
    other.until("queued").await;

    // The request span names the client, as HAProxy saw it.
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.lines()
            .any(|l| l.contains(&format!("\"client\":\"{a}\"")) && l.contains("/join")),
        "no log line names client {a}:\n{}",
        text.lines().rev().take(5).collect::<Vec<_>>().join("\n")
    );
    assert!(
        !text.contains(&format!("\"client\":\"{PROXY_SOURCE}\"")),
        "the load balancer is nobody's client"
    );
}

/// Writes `bytes` from `source` to the server and reads what comes back until it
/// closes the connection.
async fn exchange(port: u16, source: &str, bytes: &[u8]) -> Vec<u8> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("source address"))
        .expect("bind");
    let mut io = socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("connect");
    let _ = io.write_all(bytes).await;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), io.read_to_end(&mut out))
        .await
        .expect("the server answers or closes")
        .ok();
    out
}

const GET: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";

#[actix_web::test]
async fn hostile_proxy_preambles_close_the_connection_and_disturb_nothing() {
    let app = spawn_with(false, |s| {
        s.server.trusted_proxies = vec!["127.0.0.1".into()];
        s.server.proxy_protocol = true;
        // A trusted peer that sends nothing is dropped after this long.
        s.server.client_request_timeout_ms = 300;
    })
    .await;
    let port = app.port;
    let outside = app.at(port, Some(IpAddr::from([127, 0, 0, 5])));
    outside
        .create_sale("calm", 10, json!({"rate_per_sec": 1000, "max_active": 10}))
        .await;

    let with = |header: &[u8]| [header, GET].concat();
    let ok = exchange(
        port,
        "127.0.0.1",
        &with(b"PROXY TCP4 203.0.113.9 127.0.0.1 5000 80\r\n"),
    )
    .await;
    assert!(
        ok.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&ok)
    );

    let mut v2_huge = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff".to_vec();
    v2_huge.extend(std::iter::repeat_n(0u8, 2000));
    let mut v2_truncated = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c".to_vec();
    v2_truncated.extend_from_slice(&[203, 0, 113]);
    let mut v2_bad_family = b"\r\n\r\n\0\r\nQUIT\n\x21\x71\x00\x0c".to_vec();
    v2_bad_family.extend_from_slice(&[0; 12]);
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("no header", GET.to_vec()),
        ("wrong signature", with(b"PROXY-ish TCP4 1.2.3.4\r\n")),
        ("truncated v1", b"PROXY TCP4 203.0.113.9 127.0".to_vec()),
        (
            "oversized v1",
            with(format!("PROXY TCP4 {}\r\n", "9".repeat(300)).as_bytes()),
        ),
        (
            "bad v1 address",
            with(b"PROXY TCP4 300.1.1.1 127.0.0.1 1 2\r\n"),
        ),
        ("oversized v2", v2_huge),
        ("truncated v2", v2_truncated),
        ("bad v2 family", with(&v2_bad_family)),
        ("silence", Vec::new()),
        ("binary noise", (0..=255u8).cycle().take(5000).collect()),
    ];
    for (what, bytes) in &hostile {
        let got = exchange(port, "127.0.0.1", bytes).await;
        assert!(
            got.is_empty(),
            "{what}: answered {}",
            String::from_utf8_lossy(&got)
        );
    }

    // From a peer that is not trusted, a PROXY header is not HTTP: a 4xx (400, or 408
    // while the parser waits for a request line that never comes), and its address is
    // never taken.
    let got = exchange(
        port,
        "127.0.0.6",
        &with(b"PROXY TCP4 203.0.113.9 127.0.0.1 5000 80\r\n"),
    )
    .await;
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 4"),
        "{}",
        String::from_utf8_lossy(&got)
    );

    // Nothing else was disturbed.
    assert_eq!(
        outside.request("GET", "/healthz", None, None).await.status,
        200
    );
    assert_eq!(outside.join_http("calm", "after").await.status, 201);
    let v = outside.view("calm").await;
    check_invariant(&v);
}

#[actix_web::test]
async fn hostile_forwarding_headers_get_answers_and_never_pick_the_address() {
    let app = spawn_with(false, |s| {
        s.server.trusted_proxies = vec!["127.0.0.1".into()];
        s.limits.join_per_ip_per_sec = 2;
    })
    .await;
    app.create_sale("h", 100, json!({"rate_per_sec": 1000, "max_active": 100}))
        .await;
    let long_chain = vec!["10.9.9.9"; 2000].join(",");
    let many: String = (0..80)
        .map(|n| format!("x-forwarded-for: 10.0.0.{n}\r\n"))
        .collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "garbage",
            b"x-forwarded-for: \x01\xfe not an ip\r\n".to_vec(),
        ),
        (
            "ports and brackets",
            b"forwarded: for=\"[2001:db8::1]:99999\";by=x\r\n".to_vec(),
        ),
        (
            "long chain",
            format!("x-forwarded-for: {long_chain}\r\n").into_bytes(),
        ),
        ("many headers", many.into_bytes()),
        (
            "unterminated quote",
            b"forwarded: for=\"203.0.113.1\r\n".to_vec(),
        ),
        (
            "obfuscated",
            b"forwarded: for=_secret, for=unknown\r\n".to_vec(),
        ),
    ];
    for (what, header) in &cases {
        let req = [
            b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n".as_slice(),
            header,
            b"\r\n",
        ]
        .concat();
        let got = exchange(app.port, "127.0.0.1", &req).await;
        let head = String::from_utf8_lossy(&got[..got.len().min(12)]).into_owned();
        assert!(
            head == "HTTP/1.1 200" || head == "HTTP/1.1 400" || head == "HTTP/1.1 431",
            "{what}: {head}"
        );
    }
    // From an untrusted peer, a new forged address per request changes nothing: the
    // join limit holds for 127.0.0.7.
    let mut statuses = Vec::new();
    for n in 0..6 {
        let join = format!(
            "POST /api/activities/h/join HTTP/1.1\r\nhost: x\r\nconnection: close\r\nauthorization: Bearer {}\r\nx-forwarded-for: 198.51.100.{n}\r\nforwarded: for=198.51.100.{n}\r\ncontent-length: 0\r\n\r\n",
            app.user_token(&format!("u{n}"))
        );
        let got = exchange(app.port, "127.0.0.7", join.as_bytes()).await;
        statuses.push(String::from_utf8_lossy(&got[9..12]).into_owned());
    }
    assert!(
        statuses.iter().filter(|s| *s == "429").count() >= 3,
        "{statuses:?}"
    );
    assert_eq!(app.request("GET", "/healthz", None, None).await.status, 200);
}
