//! One simulated user: a WebSocket session in the waiting room, then a
//! purchase over HTTP. What it saw is kept in a [`record::UserRecord`].

pub mod purchase;
pub mod record;
pub mod route;
pub mod session;
pub mod stalled;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use crate::client::addrs::SourceAddrs;
use crate::client::http::HttpClient;
use crate::plan::{Behaviour, WorkerPlan};
use route::Route;

/// Live counters a worker reports as progress.
#[derive(Default)]
pub struct Counters {
    /// Users that got their first `queued` or `prequeue`.
    pub joined: AtomicUsize,
    /// Users that finished without ever joining (connect failures).
    pub never_joined: AtomicUsize,
    /// Users whose session is over.
    pub finished: AtomicUsize,
    /// Resumes completed (first frame after a reconnect with ticket).
    pub resumed: AtomicUsize,
    /// Users admitted at least once.
    pub admitted: AtomicUsize,
    /// The worker's timer lag (see `worker::Progress`).
    pub lag_max_ms: AtomicU32,
    pub lag_episodes: AtomicU32,
}

impl Counters {
    pub fn bump(counter: &AtomicUsize) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// One server node users may talk to (a cluster has several; every other
/// scenario has one).
pub struct Node {
    pub addr: SocketAddr,
    /// Keep-alive HTTP client for purchases, payments and challenges.
    pub http: HttpClient,
}

/// What every user of a worker shares.
pub struct Ctx {
    pub activity_id: String,
    pub jwt_secret: String,
    /// At least one; user `idx` starts on `nodes[idx % nodes.len()]` (see [`Route`]).
    pub nodes: Vec<Node>,
    pub sources: Arc<SourceAddrs>,
    /// Bounds WebSocket handshakes in flight (the server's backlog is ~1024).
    pub handshakes: Semaphore,
    pub deadline: Instant,
    pub behaviour: Behaviour,
    /// Storm epoch: each increment asks the selected users to drop and resume.
    pub control: watch::Receiver<u64>,
    pub counters: Counters,
}

impl Ctx {
    /// `servers` must not be empty.
    pub fn new(plan: &WorkerPlan, servers: &[SocketAddr], control: watch::Receiver<u64>) -> Self {
        let sources = Arc::new(SourceAddrs::new(plan.source_first, plan.source_count));
        // Idle keep-alive sockets are file descriptors too (20,000 per process).
        let max_idle = (256 / servers.len().max(1)).max(32);
        let nodes = servers
            .iter()
            .map(|&addr| Node {
                addr,
                http: HttpClient::new(addr, sources.clone(), max_idle),
            })
            .collect();
        let left_ms = (plan.deadline_unix_ms - crate::client::now_ms()).max(0.0);
        Self {
            activity_id: plan.activity_id.clone(),
            jwt_secret: plan.jwt_secret.clone(),
            nodes,
            sources,
            handshakes: Semaphore::new(plan.handshakes.max(1)),
            deadline: Instant::now() + Duration::from_millis(left_ms as u64),
            behaviour: plan.behaviour.clone(),
            control,
            counters: Counters::default(),
        }
    }

    pub fn past_deadline(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// The node `route` points at.
    pub fn node(&self, route: Route) -> &Node {
        &self.nodes[route.node() % self.nodes.len()]
    }
}

/// Percent-encodes a query value (tickets are opaque strings).
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
