//! The client's address, resolved once per request or connection: the TCP peer (or
//! the source a trusted load balancer gave in a PROXY-protocol header), or behind
//! trusted proxies (`server.trusted_proxies`) the right-most untrusted address of
//! `Forwarded` (RFC 7239) or else `X-Forwarded-For`, or on a request another cluster
//! node relayed the client that node saw. Every per-IP limit, the WebSocket cap per
//! IP, the request span and the logs read it through `client_ip`.
//!
//! Headers are read only from trusted peers, walked from the right (the entries the
//! nearest proxy appended come last), and never allocate; anything that does not
//! parse ends the walk at the nearest address already known, so a client can neither
//! choose its address nor crash the parser.

use actix_http::header::HeaderMap;
use actix_web::{HttpMessage, HttpRequest};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// At most this many forwarded entries are looked at: a longer chain is cut at the
/// nearest address already known (real chains have a few hops).
pub const MAX_HOPS: usize = 16;

/// A request's client when it is not its TCP peer (behind a trusted proxy, or relayed
/// by a cluster node); absent, the peer is the client. Inserted only then, so a server
/// with no proxy configured adds nothing per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The client of `req`, as resolved by the request middleware (see the module doc).
pub fn client_ip(req: &HttpRequest) -> IpAddr {
    match req.extensions().get::<ClientAddr>() {
        Some(c) => c.0,
        None => peer_ip(req.peer_addr()),
    }
}

/// The IP of a socket address, IPv4-mapped IPv6 written as IPv4 (a dual-stack
/// listener reports `::ffff:a.b.c.d`); unspecified when there is none (a test
/// request).
pub fn peer_ip(peer: Option<SocketAddr>) -> IpAddr {
    peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip().to_canonical())
}

/// One address or CIDR range of `server.trusted_proxies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn parse(s: &str) -> Result<Net, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has a bad prefix length (0-{max})"))?,
        };
        Ok(Net { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// `server.trusted_proxies`: the peers whose forwarding headers (and PROXY-protocol
/// headers) are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Box<[Net]>,
}

/// A forwarded entry: an address, or something that is not one (`unknown`, an
/// obfuscated `_name`, garbage).
type Hop = Option<IpAddr>;

impl TrustedProxies {
    /// Parses addresses and CIDR ranges; the error names the bad entry.
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<TrustedProxies, String> {
        let nets = list
            .iter()
            .map(|s| Net::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedProxies { nets: nets.into() })
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// The client of a request that arrived from `peer` with `headers`: `peer` itself
    /// unless it is trusted; then the right-most untrusted address of `Forwarded`
    /// `for=` (or, with no such entry, of `X-Forwarded-For`); every entry trusted: the
    /// left-most; an entry that is not an address, or more than `MAX_HOPS` entries:
    /// the nearest address reached before it.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if self.nets.is_empty() || !self.trusts(peer) {
            return peer;
        }
        if let Some(ip) = self.walk(peer, forwarded_for(headers)) {
            return ip;
        }
        self.walk(peer, x_forwarded_for(headers)).unwrap_or(peer)
    }

    /// `None` when `hops` is empty.
    fn walk(&self, peer: IpAddr, hops: impl Iterator<Item = Hop>) -> Option<IpAddr> {
        let mut nearest = None;
        for (n, hop) in hops.enumerate() {
            let Some(ip) = hop.filter(|_| n < MAX_HOPS) else {
                return Some(nearest.unwrap_or(peer));
            };
            if !self.trusts(ip) {
                return Some(ip);
            }
            nearest = Some(ip);
        }
        nearest
    }
}

/// The values of every `name` header, right-most entry first (comma-separated
/// entries, later headers after earlier ones). A value that is not visible ASCII is
/// one bad entry.
fn entries<'a>(headers: &'a HeaderMap, name: &'static str) -> impl Iterator<Item = &'a str> + 'a {
    headers.get_all(name).rev().flat_map(|v| {
        let text = v.to_str().unwrap_or("\u{0}");
        text.rsplit(',')
    })
}

/// `for=` of each `Forwarded` element, right-most first.
fn forwarded_for(headers: &HeaderMap) -> impl Iterator<Item = Hop> + '_ {
    entries(headers, "forwarded").filter_map(|element| {
        element.split(';').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("for")
                .then(|| node_ip(v.trim()))
        })
    })
}

fn x_forwarded_for(headers: &HeaderMap) -> impl Iterator<Item = Hop> + '_ {
    entries(headers, "x-forwarded-for").map(|e| node_ip(e.trim()))
}

/// The address of a forwarded node: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`, any of them in double quotes.
fn node_ip(raw: &str) -> Hop {
    let s = raw
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(raw);
    let ip = if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || port_ok(after.strip_prefix(':')?)) {
            return None;
        }
        IpAddr::V6(inside.parse().ok()?)
    } else if let Ok(ip) = s.parse::<IpAddr>() {
        ip
    } else {
        let (host, port) = s.rsplit_once(':')?;
        if !port_ok(port) {
            return None;
        }
        IpAddr::V4(host.parse().ok()?)
    };
    Some(ip.to_canonical())
}

/// A port as RFC 7239 allows it: digits, or an obfuscated `_name`.
fn port_ok(p: &str) -> bool {
    p.parse::<u16>().is_ok()
        || (p.starts_with('_')
            && p.len() > 1
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-'))
}

/// Resolves a request's client once, for the request middleware: a cluster node's
/// relay first (the most trusted source), then the proxies. Inserts `ClientAddr` only
/// when the client is not the peer.
pub fn resolve(req: &HttpRequest, relayed: Option<IpAddr>, proxies: &TrustedProxies) -> IpAddr {
    let peer = peer_ip(req.peer_addr());
    let client = relayed.unwrap_or_else(|| proxies.client(peer, req.headers()));
    if client != peer {
        req.extensions_mut().insert(ClientAddr(client));
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_http::header::{HeaderName, HeaderValue};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn headers(list: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(
                HeaderName::from_static(k),
                HeaderValue::from_bytes(v).expect("valid header bytes"),
            );
        }
        h
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::parse(&["10.0.0.0/8", "192.168.1.7", "fd00::/8"]).expect("valid")
    }

    #[test]
    fn ranges_and_single_addresses_are_trusted_and_nothing_else() {
        let p = proxies();
        assert!(p.trusts(ip("10.200.3.4")));
        assert!(p.trusts(ip("192.168.1.7")));
        assert!(!p.trusts(ip("192.168.1.8")));
        assert!(p.trusts(ip("fd12::1")));
        assert!(p.trusts(ip("::ffff:10.1.1.1")), "mapped IPv4 is IPv4");
        assert!(!p.trusts(ip("11.0.0.1")));
        let all = TrustedProxies::parse(&["0.0.0.0/0"]).expect("valid");
        assert!(all.trusts(ip("1.2.3.4")) && !all.trusts(ip("::1")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/", "::/129", ""] {
            assert!(TrustedProxies::parse(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let h = headers(&[
            ("x-forwarded-for", b"1.1.1.1"),
            ("forwarded", b"for=2.2.2.2"),
        ]);
        assert_eq!(proxies().client(ip("8.8.8.8"), &h), ip("8.8.8.8"));
        assert_eq!(
            TrustedProxies::default().client(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_right_most_untrusted_address_is_the_client() {
        let p = proxies();
        let h = headers(&[("x-forwarded-for", b"6.6.6.6, 5.5.5.5, 10.0.0.2")]);
        assert_eq!(
            p.client(ip("10.0.0.1"), &h),
            ip("5.5.5.5"),
            "6.6.6.6 is the client's own claim"
        );
        let h = headers(&[
            ("x-forwarded-for", b"6.6.6.6"),
            ("x-forwarded-for", b"5.5.5.5"),
        ]);
        assert_eq!(
            p.client(ip("10.0.0.1"), &h),
            ip("5.5.5.5"),
            "later headers are nearer"
        );
        let h = headers(&[("x-forwarded-for", b"10.0.0.3, 10.0.0.2")]);
        assert_eq!(
            p.client(ip("10.0.0.1"), &h),
            ip("10.0.0.3"),
            "all trusted: the left-most"
        );
        let h = headers(&[]);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for_in_all_its_forms() {
        let p = proxies();
        for (value, want) in [
            (
                &b"for=192.0.2.60;proto=http;by=203.0.113.43"[..],
                "192.0.2.60",
            ),
            (b"For=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"),
            (b"for=\"192.0.2.43:47011\", for=10.0.0.9", "192.0.2.43"),
            (b"proto=https;for=198.51.100.17", "198.51.100.17"),
            (b"for=\"[2001:db8::1]\"", "2001:db8::1"),
            (b"for=\"192.0.2.43:_hidden\"", "192.0.2.43"),
        ] {
            let h = headers(&[("forwarded", value), ("x-forwarded-for", b"7.7.7.7")]);
            assert_eq!(
                p.client(ip("10.0.0.1"), &h),
                ip(want),
                "{}",
                String::from_utf8_lossy(value)
            );
        }
        let h = headers(&[
            ("forwarded", b"proto=https"),
            ("x-forwarded-for", b"7.7.7.7"),
        ]);
        assert_eq!(
            p.client(ip("10.0.0.1"), &h),
            ip("7.7.7.7"),
            "no for=: X-Forwarded-For"
        );
    }

    #[test]
    fn x_forwarded_for_forms_with_ports_and_ipv6() {
        let p = proxies();
        for (value, want) in [
            ("203.0.113.5:1234", "203.0.113.5"),
            ("2001:db8::5", "2001:db8::5"),
            ("[2001:db8::5]:443", "2001:db8::5"),
            ("  203.0.113.9  ", "203.0.113.9"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
        ] {
            let h = headers(&[("x-forwarded-for", value.as_bytes())]);
            assert_eq!(p.client(ip("10.0.0.1"), &h), ip(want), "{value}");
        }
    }

    #[test]
    fn garbage_ends_the_walk_at_the_nearest_known_address() {
        let p = proxies();
        for value in [
            &b"unknown"[..],
            b"not-an-ip",
            b"",
            b",,,",
            b"1.2.3.4:99999",
            b"[2001:db8::1",
            b"[2001:db8::1]x",
            b"1.2.3.4.5",
            b"\xff\xfe",
            b"for=1.2.3.4",
            b"_hidden",
        ] {
            let h = headers(&[("x-forwarded-for", value)]);
            assert_eq!(p.client(ip("10.0.0.1"), &h), ip("10.0.0.1"), "{value:?}");
            let h = headers(&[("x-forwarded-for", value), ("x-forwarded-for", b"10.0.0.5")]);
            assert_eq!(p.client(ip("10.0.0.1"), &h), ip("10.0.0.5"), "{value:?}");
        }
        let h = headers(&[("forwarded", b"for=\"[::1\";by=x, for=unknown")]);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn too_many_hops_stop_at_the_limit() {
        let p = proxies();
        let mut chain = vec!["9.9.9.9".to_owned()];
        chain.extend((0..40).map(|n| format!("10.0.0.{n}")));
        let h = headers(&[("x-forwarded-for", chain.join(",").as_bytes())]);
        let nearest_at_limit = format!("10.0.0.{}", 40 - MAX_HOPS);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip(&nearest_at_limit));
        let huge = "1,".repeat(10_000);
        let h = headers(&[("x-forwarded-for", huge.as_bytes())]);
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }
}
