//! The PROXY protocol (v1 text, v2 binary) a TCP load balancer writes before the
//! client's bytes: read exactly the header, no byte more (the rest of the stream is
//! HTTP or TLS and goes on untouched), parsed with `ppp`, the client's address out.
//! Accepted only from `server.trusted_proxies` (see `connection`).

use ppp::v2::{Addresses as V2, Command};
use ppp::HeaderResult;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature, the first 12 bytes of a binary header.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 header is at most 107 bytes, CRLF included.
const V1_MAX: usize = 107;
/// A v2 header's addresses and TLVs: HAProxy sends a few dozen bytes; anything
/// longer than this is refused rather than buffered.
pub const V2_MAX_BODY: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyHeaderError {
    #[error("no PROXY-protocol signature")]
    Signature,
    #[error("PROXY-protocol header longer than allowed")]
    Oversized,
    #[error("malformed PROXY-protocol header: {0}")]
    Malformed(String),
    #[error("connection closed inside the PROXY-protocol header")]
    Truncated,
}

/// Reads one PROXY header from `io`. `Ok(Some(addr))`: the client's address;
/// `Ok(None)`: a header that names no client (v1 `UNKNOWN`, v2 `LOCAL` as health
/// checks send, or a UNIX/unspecified family): keep the TCP peer.
pub async fn read_header<R: AsyncRead + Unpin>(
    io: &mut R,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut buf = [0u8; 16 + V2_MAX_BODY];
    read_exact(io, &mut buf[..12]).await?;
    if &buf[..12] == V2_SIGNATURE {
        read_exact(io, &mut buf[12..16]).await?;
        let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if len > V2_MAX_BODY {
            return Err(ProxyHeaderError::Oversized);
        }
        read_exact(io, &mut buf[16..16 + len]).await?;
        return client_of(HeaderResult::parse(&buf[..16 + len]));
    }
    if !buf.starts_with(b"PROXY ") {
        return Err(ProxyHeaderError::Signature);
    }
    // v1: one byte at a time up to LF, so nothing after the header is consumed.
    let mut n = 12;
    while buf[n - 1] != b'\n' {
        if n == V1_MAX {
            return Err(ProxyHeaderError::Oversized);
        }
        read_exact(io, &mut buf[n..n + 1]).await?;
        n += 1;
    }
    client_of(HeaderResult::parse(&buf[..n]))
}

async fn read_exact<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut [u8],
) -> Result<(), ProxyHeaderError> {
    io.read_exact(buf)
        .await
        .map(|_| ())
        .map_err(|_| ProxyHeaderError::Truncated)
}

fn client_of(header: HeaderResult<'_>) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let malformed = |e: &dyn std::fmt::Display| ProxyHeaderError::Malformed(e.to_string());
    match header {
        HeaderResult::V1(Ok(h)) => Ok(match h.addresses {
            ppp::v1::Addresses::Tcp4(a) => Some((a.source_address, a.source_port).into()),
            ppp::v1::Addresses::Tcp6(a) => Some((a.source_address, a.source_port).into()),
            ppp::v1::Addresses::Unknown => None,
        }),
        HeaderResult::V2(Ok(h)) => Ok(match (h.command, h.addresses) {
            (Command::Local, _) => None,
            (Command::Proxy, V2::IPv4(a)) => Some((a.source_address, a.source_port).into()),
            (Command::Proxy, V2::IPv6(a)) => Some((a.source_address, a.source_port).into()),
            (Command::Proxy, V2::Unix(_) | V2::Unspecified) => None,
        }),
        HeaderResult::V1(Err(e)) => Err(malformed(&e)),
        HeaderResult::V2(Err(e)) => Err(malformed(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppp::v2::{Builder, Protocol, Version};

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyHeaderError>, Vec<u8>) {
        let mut io = bytes;
        let r = read_header(&mut io).await;
        (r, io.to_vec())
    }

    fn v2(command: Command, src: &str, dst: &str) -> Vec<u8> {
        let addrs: (SocketAddr, SocketAddr) =
            (src.parse().expect("src"), dst.parse().expect("dst"));
        Builder::with_addresses(Version::Two | command, Protocol::Stream, addrs)
            .build()
            .expect("header builds")
    }

    #[tokio::test]
    async fn v1_and_v2_headers_give_the_client_and_leave_the_rest_unread() {
        let (r, rest) =
            read(b"PROXY TCP4 203.0.113.7 10.0.0.1 5555 443\r\nGET / HTTP/1.1\r\n").await;
        assert_eq!(r, Ok(Some("203.0.113.7:5555".parse().expect("addr"))));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let (r, _) = read(b"PROXY TCP6 2001:db8::7 2001:db8::1 5555 443\r\n").await;
        assert_eq!(r, Ok(Some("[2001:db8::7]:5555".parse().expect("addr"))));
        let (r, rest) = read(b"PROXY UNKNOWN\r\nGET").await;
        assert_eq!((r, rest.as_slice()), (Ok(None), &b"GET"[..]));

        let mut bytes = v2(Command::Proxy, "198.51.100.9:4000", "10.0.0.1:443");
        bytes.extend_from_slice(b"\x16\x03\x01");
        let (r, rest) = read(&bytes).await;
        assert_eq!(r, Ok(Some("198.51.100.9:4000".parse().expect("addr"))));
        assert_eq!(rest, b"\x16\x03\x01");
        let (r, _) = read(&v2(Command::Local, "198.51.100.9:4000", "10.0.0.1:443")).await;
        assert_eq!(r, Ok(None), "LOCAL (a health check) names no client");
    }

    #[tokio::test]
    async fn hostile_preambles_are_refused_without_reading_past_the_limit() {
        assert_eq!(
            read(b"GET / HTTP/1.1\r\n\r\n").await.0,
            Err(ProxyHeaderError::Signature)
        );
        assert_eq!(
            read(b"PROXY TCP4 1.2.3.4").await.0,
            Err(ProxyHeaderError::Truncated)
        );
        assert_eq!(read(b"PROX").await.0, Err(ProxyHeaderError::Truncated));
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        assert_eq!(
            read(long.as_bytes()).await.0,
            Err(ProxyHeaderError::Oversized)
        );
        assert!(matches!(
            read(b"PROXY TCP4 999.2.3.4 10.0.0.1 1 2\r\n").await.0,
            Err(ProxyHeaderError::Malformed(_))
        ));
        assert!(matches!(
            read(b"PROXY TCP4 1.2.3.4 10.0.0.1 99999 2\r\n").await.0,
            Err(ProxyHeaderError::Malformed(_))
        ));

        let good = v2(Command::Proxy, "198.51.100.9:4000", "10.0.0.1:443");
        assert_eq!(read(&good[..20]).await.0, Err(ProxyHeaderError::Truncated));
        let mut huge = good[..16].to_vec();
        huge[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(read(&huge).await.0, Err(ProxyHeaderError::Oversized));
        let mut bad_version = good.clone();
        bad_version[12] = 0x31;
        assert!(matches!(
            read(&bad_version).await.0,
            Err(ProxyHeaderError::Malformed(_))
        ));
        let mut short_addresses = good[..16].to_vec();
        short_addresses[15] = 4;
        short_addresses.extend_from_slice(&[1, 2, 3, 4]);
        assert!(matches!(
            read(&short_addresses).await.0,
            Err(ProxyHeaderError::Malformed(_))
        ));
    }
}
