//! Loopback source addresses: each gives ~28k ephemeral ports, so sockets
//! are spread over several (127.0.0.1, 127.0.1.1, 127.0.2.1, ...).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The `index`-th loopback source address: 0 -> 127.0.0.1, 1 -> 127.0.1.1,
/// 256 -> 127.1.0.1.
pub fn source_addr(index: usize) -> IpAddr {
    let b1 = ((index / 256) % 256) as u8;
    let b2 = (index % 256) as u8;
    IpAddr::V4(Ipv4Addr::new(127, b1, b2, 1))
}

/// A round-robin over a fixed set of source addresses.
pub struct SourceAddrs {
    addrs: Vec<IpAddr>,
    next: AtomicUsize,
}

impl SourceAddrs {
    /// `count` addresses starting at index `first` (at least one).
    pub fn new(first: usize, count: usize) -> Self {
        let addrs = (first..first + count.max(1)).map(source_addr).collect();
        Self {
            addrs,
            next: AtomicUsize::new(0),
        }
    }

    pub fn next(&self) -> IpAddr {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.addrs[i % self.addrs.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_walk_the_third_octet_first() {
        assert_eq!(source_addr(0).to_string(), "127.0.0.1");
        assert_eq!(source_addr(2).to_string(), "127.0.2.1");
        assert_eq!(source_addr(257).to_string(), "127.1.1.1");
    }

    #[test]
    fn round_robin_wraps() {
        let s = SourceAddrs::new(1, 2);
        let got: Vec<String> = (0..3).map(|_| s.next().to_string()).collect();
        assert_eq!(got, ["127.0.1.1", "127.0.2.1", "127.0.1.1"]);
    }
}
