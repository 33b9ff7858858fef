//! WebSocket connections to the waiting room, with small buffers so tens of
//! thousands fit in one process.

use std::net::{IpAddr, SocketAddr};

use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;

use super::http::connect_from;

pub type Ws = WebSocketStream<TcpStream>;

/// Why a connection attempt failed.
#[derive(Debug, Clone)]
pub enum ConnectError {
    /// TCP-level: refused, reset, timed out (the server may be restarting).
    Io(String),
    /// The upgrade was answered with an HTTP status instead of 101.
    Status(u16, String),
    /// The handshake failed otherwise.
    Handshake(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "io: {e}"),
            Self::Status(s, body) => write!(f, "http {s}: {body}"),
            Self::Handshake(e) => write!(f, "handshake: {e}"),
        }
    }
}

/// Connects `ws://server{path_and_query}` from `source`, with a 4 KiB read
/// buffer and no write buffer (the defaults cost ~128 KiB per socket).
pub async fn connect(
    server: SocketAddr,
    source: IpAddr,
    path_and_query: &str,
) -> Result<Ws, ConnectError> {
    let stream = connect_from(source, server)
        .await
        .map_err(|e| ConnectError::Io(e.to_string()))?;
    handshake(stream, server, path_and_query).await
}

/// Like [`connect`], with the socket's receive buffer (SO_RCVBUF) set to
/// `rcvbuf` bytes before connecting (so the window is small from the SYN on;
/// Linux doubles the value and keeps a floor). 0 keeps the kernel default.
pub async fn connect_with_rcvbuf(
    server: SocketAddr,
    source: IpAddr,
    path_and_query: &str,
    rcvbuf: u32,
) -> Result<Ws, ConnectError> {
    let io = |e: std::io::Error| ConnectError::Io(e.to_string());
    let socket = TcpSocket::new_v4().map_err(io)?;
    socket.set_reuseaddr(true).map_err(io)?;
    if rcvbuf > 0 {
        socket.set_recv_buffer_size(rcvbuf).map_err(io)?;
    }
    socket.bind(SocketAddr::new(source, 0)).map_err(io)?;
    let stream = socket.connect(server).await.map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    handshake(stream, server, path_and_query).await
}

async fn handshake(
    stream: TcpStream,
    server: SocketAddr,
    path_and_query: &str,
) -> Result<Ws, ConnectError> {
    let url = format!("ws://{server}{path_and_query}");
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024));
    match tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await {
        Ok((ws, _)) => Ok(ws),
        Err(WsError::Http(resp)) => {
            let body = resp
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            Err(ConnectError::Status(
                resp.status().as_u16(),
                crate::protocol::clip(&body),
            ))
        }
        Err(WsError::Io(e)) => Err(ConnectError::Io(e.to_string())),
        Err(e) => Err(ConnectError::Handshake(e.to_string())),
    }
}
