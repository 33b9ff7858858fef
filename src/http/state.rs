//! What every handler can reach: the registry, keys, limits, and health inputs.

use crate::actors::registry::Registry;
use crate::domain::clock::Clock;
use crate::domain::jwt::JwtKey;
use crate::http::client_addr::TrustedProxies;
use crate::http::directory::Directory;
use crate::http::limits::RateLimits;
use crate::store::accounts::AccountStore;
use crate::store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct AppState {
    /// Only for the drain flag and the shutdown: handlers reach activities through
    /// `directory`.
    pub registry: Arc<Registry>,
    pub directory: Arc<dyn Directory>,
    pub store: Store,
    pub jwt: JwtKey,
    /// Every admin key, as digests compared in constant time.
    pub admin_keys: crate::http::admin_keys::AdminKeys,
    /// Tickets that open the admin event stream without a key in the URL.
    pub event_tickets: crate::http::event_ticket::EventTickets,
    /// Admin calls that changed state, durable in the store.
    pub audit: crate::store::audit::AuditLog,
    /// `payment.mode`: who may mark an order paid.
    pub payment: crate::config::PaymentMode,
    pub clock: Arc<dyn Clock>,
    pub actor_timeout: Duration,
    pub sink: Option<Arc<crate::actors::flusher::SinkSlot>>,
    pub sink_reachable: Arc<AtomicBool>,
    pub metrics: Option<PrometheusHandle>,
    pub ws: WsLimits,
    pub limits: RateLimits,
    /// `server.trusted_proxies`: whose forwarding headers name the client.
    pub proxies: TrustedProxies,
    pub passwords: crate::http::passwords::Passwords,
    pub account_store: Arc<dyn AccountStore>,
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    pub session_ids: AtomicU64,
    /// Gate passes: signing keys, revoked passes, the JWKS.
    pub passes: crate::domain::pass::Passes,
    pub signing_keys: Arc<dyn crate::store::signing_keys::SigningKeyStore>,
}

impl AppState {
    pub fn next_session_id(&self) -> u64 {
        self.session_ids.fetch_add(1, Ordering::Relaxed)
    }
}

/// Open WebSocket sessions per client IP, so one host cannot take every socket, and
/// in all, so the process keeps descriptors for what it cannot refuse: cluster links
/// to and from other nodes, the store's files, HTTP calls.
pub struct WsLimits {
    pub max_per_ip: u32,
    pub messages_per_sec: u32,
    /// `None`: no cap (the open-file limit is unknown or unlimited).
    pub max_total: Option<u32>,
    /// When a waiting socket's latest position is repeated (`ws_refresh`).
    pub repeat_after: std::time::Duration,
    open: Mutex<OpenSessions>,
}

#[derive(Default)]
struct OpenSessions {
    per_ip: HashMap<IpAddr, u32>,
    total: u32,
}

/// Why a new session was not counted.
#[derive(Debug, PartialEq, Eq)]
pub enum WsRefusal {
    PerIp,
    Full,
}

/// Descriptors kept back from WebSocket sessions when the cap comes from the
/// open-file limit: 1,024, or a quarter of a smaller limit. Measured: a cluster node
/// at 20,000 sockets under a 20,000 limit could no longer accept its owner's relay
/// connection, and every session it held stopped hearing from the activity.
fn reserved_files(limit: u64) -> u64 {
    (limit / 4).min(1024)
}

/// The session cap: `configured`, or with 0 the soft open-file limit less
/// `reserved_files`.
pub fn session_cap(configured: u32) -> Option<u32> {
    if configured > 0 {
        return Some(configured);
    }
    open_files_limit().map(cap_for_limit)
}

fn cap_for_limit(limit: u64) -> u32 {
    u32::try_from((limit - reserved_files(limit)).max(1)).unwrap_or(u32::MAX)
}

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits` (no FFI: the crate forbids
/// `unsafe`). `None` where there is no such file or the limit is unlimited.
fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl WsLimits {
    pub fn new(max_per_ip: u32, messages_per_sec: u32, max_total: Option<u32>) -> Self {
        Self {
            max_per_ip,
            messages_per_sec,
            max_total,
            repeat_after: crate::http::ws_refresh::repeat_after(50),
            open: Mutex::new(OpenSessions::default()),
        }
    }

    /// For a server ticking every `tick_ms`.
    pub fn with_tick(mut self, tick_ms: u64) -> Self {
        self.repeat_after = crate::http::ws_refresh::repeat_after(tick_ms);
        self
    }

    /// Counts a new connection, unless the IP or the process already has its maximum.
    pub fn try_open(&self, ip: IpAddr) -> Result<(), WsRefusal> {
        let mut open = self.open.lock().expect("ws counter lock is never poisoned");
        if self.max_total.is_some_and(|max| open.total >= max) {
            return Err(WsRefusal::Full);
        }
        let n = open.per_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return Err(WsRefusal::PerIp);
        }
        *n += 1;
        open.total += 1;
        metrics::gauge!("sluice_ws_sessions").increment(1.0);
        Ok(())
    }

    pub fn close(&self, ip: IpAddr) {
        let mut open = self.open.lock().expect("ws counter lock is never poisoned");
        if let Some(n) = open.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&ip);
            }
            open.total -= 1;
            metrics::gauge!("sluice_ws_sessions").decrement(1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_capped_per_ip_and_in_all() {
        let ws = WsLimits::new(2, 10, Some(3));
        let (a, b) = (IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 2]));
        assert_eq!(ws.try_open(a), Ok(()));
        assert_eq!(ws.try_open(a), Ok(()));
        assert_eq!(ws.try_open(a), Err(WsRefusal::PerIp));
        assert_eq!(ws.try_open(b), Ok(()));
        assert_eq!(ws.try_open(b), Err(WsRefusal::Full));
        ws.close(a);
        assert_eq!(ws.try_open(b), Ok(()));
    }

    #[test]
    fn the_default_cap_leaves_descriptors_for_the_process() {
        assert_eq!(session_cap(5), Some(5));
        assert_eq!(cap_for_limit(20_000), 18_976);
        // A common default soft limit still leaves room for sessions.
        assert_eq!(cap_for_limit(1024), 768);
        assert_eq!(cap_for_limit(1), 1);
        // This process has some open-file limit on Linux; the cap sits below it.
        if let (Some(cap), Some(limit)) = (session_cap(0), open_files_limit()) {
            assert!(u64::from(cap) < limit);
        }
    }
}
