//! Network clients of the simulator: source addresses, HTTP/1.1, WebSocket.

pub mod addrs;
pub mod http;
pub mod ws;

use std::net::SocketAddr;

/// The `host:port` of an `http://host:port` base URL, resolved.
pub fn resolve_base_url(url: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// URLs are supported, got {url}"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("{authority} has no IPv4 address"))
}

/// Current unix time in milliseconds, fractional.
pub fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}
