//! A new TCP connection on its way to the HTTP service: the peer address it is
//! served as (the PROXY-protocol source when a trusted load balancer sends one) and
//! the stream the HTTP service reads. Everything per-connection before the first
//! HTTP byte lives here.

use crate::http::client_addr::TrustedProxies;
use crate::http::proxy_protocol::read_header;
use actix_http::error::DispatchError;
use actix_http::Protocol;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// What a connection needs before HTTP: built once, shared by every worker.
pub struct Accept {
    pub proxies: TrustedProxies,
    /// `server.proxy_protocol`: trusted peers send a PROXY header first.
    pub proxy_protocol: bool,
    /// How long a PROXY header may take (`server.client_request_timeout_ms`).
    pub header_timeout: Duration,
}

impl Accept {
    /// The stream and the peer it is served as, or an error that closes the
    /// connection unanswered (a trusted peer's missing or bad PROXY header).
    pub async fn accept(
        &self,
        mut io: TcpStream,
    ) -> Result<(TcpStream, Protocol, Option<SocketAddr>), DispatchError> {
        let _ = io.set_nodelay(true);
        let mut peer = io.peer_addr().ok();
        let trusted_lb = self.proxy_protocol && peer.is_some_and(|p| self.proxies.trusts(p.ip()));
        if trusted_lb {
            let header = tokio::time::timeout(self.header_timeout, read_header(&mut io)).await;
            match header {
                Ok(Ok(Some(client))) => peer = Some(client),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => return Err(refuse(peer, &e)),
                Err(_) => return Err(refuse(peer, &"PROXY-protocol header timed out")),
            }
        }
        Ok((io, Protocol::Http1, peer))
    }
}

fn refuse(peer: Option<SocketAddr>, why: &dyn std::fmt::Display) -> DispatchError {
    metrics::counter!("sluice_proxy_header_refused_total").increment(1);
    tracing::warn!(peer = ?peer, error = %why, "closing a connection from a trusted proxy: bad PROXY header");
    DispatchError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        why.to_string(),
    ))
}
