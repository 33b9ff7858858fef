//! A new TCP connection on its way to the HTTP service: the peer address it is
//! served as (the PROXY-protocol source when a trusted load balancer sends one), the
//! TLS handshake when `server.tls` is set, and `Conn`, the stream the HTTP service
//! and WebSocket sessions read. Everything per-connection before the first HTTP byte
//! lives here.

use crate::http::client_addr::TrustedProxies;
use crate::http::proxy_protocol::read_header;
use actix_http::error::DispatchError;
use actix_http::Protocol;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// What a connection needs before HTTP: built once, shared by every worker.
pub struct Accept {
    pub proxies: TrustedProxies,
    /// `server.proxy_protocol`: trusted peers send a PROXY header first.
    pub proxy_protocol: bool,
    /// How long a PROXY header, and then a TLS handshake, may take
    /// (`server.client_request_timeout_ms`).
    pub header_timeout: Duration,
    /// `server.tls`: HTTPS and wss:// on this listener.
    pub tls: Option<TlsAcceptor>,
}

impl Accept {
    /// The stream and the peer it is served as, or an error that closes the
    /// connection unanswered (a trusted peer's missing or bad PROXY header).
    pub async fn accept(
        &self,
        mut io: TcpStream,
    ) -> Result<(Conn, Protocol, Option<SocketAddr>), DispatchError> {
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
        let conn = match &self.tls {
            None => Conn::Plain(io),
            Some(acceptor) => {
                match tokio::time::timeout(self.header_timeout, acceptor.accept(io)).await {
                    Ok(Ok(stream)) => Conn::Tls(Box::new(TlsConn {
                        stream,
                        ahead: Vec::new(),
                        eof: false,
                    })),
                    // A failed handshake is the client's business (a scanner, plain
                    // HTTP on the TLS port): debug, not warn.
                    Ok(Err(e)) => {
                        tracing::debug!(peer = ?peer, error = %e, "TLS handshake failed");
                        return Err(DispatchError::Io(e));
                    }
                    Err(_) => return Err(DispatchError::Io(io::ErrorKind::TimedOut.into())),
                }
            }
        };
        Ok((conn, Protocol::Http1, peer))
    }
}

/// A client connection as the HTTP service and WebSocket sessions see it: the TCP
/// stream, or TLS over it. Sessions wait with `readable` and read with `try_read`,
/// as on a bare socket (see `ws_session`).
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsConn>),
}

/// TLS over TCP, with the plaintext `readable` pulled in ahead of `try_read`.
pub struct TlsConn {
    stream: TlsStream<TcpStream>,
    /// Plaintext read by `readable`, not yet taken by `try_read`.
    ahead: Vec<u8>,
    eof: bool,
}

impl Conn {
    /// Waits until `try_read` has something (data, end of stream or an error).
    pub async fn readable(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.readable().await,
            Conn::Tls(t) => {
                if !t.ahead.is_empty() || t.eof {
                    return Ok(());
                }
                // The chunk lives only inside one poll: an idle session's future
                // carries no buffer.
                std::future::poll_fn(|cx| {
                    let mut chunk = [0u8; 4096];
                    let mut buf = ReadBuf::new(&mut chunk);
                    match Pin::new(&mut t.stream).poll_read(cx, &mut buf) {
                        Poll::Ready(Ok(())) => {
                            if buf.filled().is_empty() {
                                t.eof = true;
                            } else {
                                t.ahead.extend_from_slice(buf.filled());
                            }
                            Poll::Ready(Ok(()))
                        }
                        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                        Poll::Pending => Poll::Pending,
                    }
                })
                .await
            }
        }
    }

    /// Reads what is there without waiting: `WouldBlock` when nothing is, `Ok(0)` at
    /// the end of the stream.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.try_read(buf),
            Conn::Tls(t) => {
                if !t.ahead.is_empty() {
                    let n = buf.len().min(t.ahead.len());
                    buf[..n].copy_from_slice(&t.ahead[..n]);
                    t.ahead.drain(..n);
                    if t.ahead.is_empty() {
                        t.ahead = Vec::new();
                    }
                    return Ok(n);
                }
                if t.eof {
                    return Ok(0);
                }
                let waker = futures_util::task::noop_waker();
                let mut cx = Context::from_waker(&waker);
                let mut rb = ReadBuf::new(buf);
                match Pin::new(&mut t.stream).poll_read(&mut cx, &mut rb) {
                    Poll::Ready(Ok(())) => Ok(rb.filled().len()),
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(t) => {
                if !t.ahead.is_empty() {
                    let n = buf.remaining().min(t.ahead.len());
                    buf.put_slice(&t.ahead[..n]);
                    t.ahead.drain(..n);
                    return Poll::Ready(Ok(()));
                }
                if t.eof {
                    return Poll::Ready(Ok(()));
                }
                Pin::new(&mut t.stream).poll_read(cx, buf)
            }
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(t) => Pin::new(&mut t.stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(t) => Pin::new(&mut t.stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(t) => t.stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(t) => Pin::new(&mut t.stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(t) => Pin::new(&mut t.stream).poll_shutdown(cx),
        }
    }
}

fn refuse(peer: Option<SocketAddr>, why: &dyn std::fmt::Display) -> DispatchError {
    metrics::counter!("sluice_proxy_header_refused_total").increment(1);
    tracing::warn!(peer = ?peer, error = %why, "closing a connection from a trusted proxy: bad PROXY header");
    DispatchError::Io(io::Error::new(io::ErrorKind::InvalidData, why.to_string()))
}
