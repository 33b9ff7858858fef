//! What every handler can reach: the registry, keys, limits, and health inputs.

use crate::actors::registry::Registry;
use crate::domain::clock::Clock;
use crate::domain::jwt::JwtKey;
use crate::http::limits::RateLimits;
use crate::store::Store;
use metrics_exporter_prometheus::PrometheusHandle;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct AppState {
    pub registry: Arc<Registry>,
    pub store: Store,
    pub jwt: JwtKey,
    /// SHA-256 of the admin key: compared in constant time whatever the input length.
    pub admin_key_hash: [u8; 32],
    pub clock: Arc<dyn Clock>,
    pub actor_timeout: Duration,
    pub sink: Option<Arc<crate::actors::flusher::SinkSlot>>,
    pub sink_reachable: Arc<AtomicBool>,
    pub metrics: Option<PrometheusHandle>,
    pub ws: WsLimits,
    pub limits: RateLimits,
    pub accounts: crate::http::auth::Accounts,
    pub session_ids: AtomicU64,
    /// Cluster mode only.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

impl AppState {
    pub fn hash_key(key: &str) -> [u8; 32] {
        Sha256::digest(key.as_bytes()).into()
    }

    pub fn next_session_id(&self) -> u64 {
        self.session_ids.fetch_add(1, Ordering::Relaxed)
    }
}

/// Open WebSocket sessions per client IP, so one host cannot take every socket.
pub struct WsLimits {
    pub max_per_ip: u32,
    pub messages_per_sec: u32,
    open: Mutex<HashMap<IpAddr, u32>>,
}

impl WsLimits {
    pub fn new(max_per_ip: u32, messages_per_sec: u32) -> Self {
        Self {
            max_per_ip,
            messages_per_sec,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a new connection; false when the IP already has its maximum.
    pub fn try_open(&self, ip: IpAddr) -> bool {
        let mut open = self.open.lock().expect("ws counter lock is never poisoned");
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return false;
        }
        *n += 1;
        metrics::gauge!("sluice_ws_sessions").increment(1.0);
        true
    }

    pub fn close(&self, ip: IpAddr) {
        let mut open = self.open.lock().expect("ws counter lock is never poisoned");
        if let Some(n) = open.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&ip);
            }
            metrics::gauge!("sluice_ws_sessions").decrement(1.0);
        }
    }
}
