//! A small HTTP/1.1 client over tokio TCP: JSON bodies, keep-alive pool,
//! sockets bound to the simulator's source addresses.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

use super::addrs::SourceAddrs;

/// Longest a single request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response body accepted (activity views with many slots are small).
const MAX_BODY: usize = 8 * 1024 * 1024;

/// A response: status and raw body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// `Retry-After` in seconds, when the server set it.
    pub retry_after: Option<u64>,
}

impl Response {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The contract's `error.code`, if the body is an error.
    pub fn error_code(&self) -> Option<String> {
        self.json()?
            .get("error")?
            .get("code")?
            .as_str()
            .map(str::to_string)
    }

    pub fn body_text(&self) -> String {
        crate::protocol::clip(&String::from_utf8_lossy(&self.body))
    }
}

/// Transport-level failure (no HTTP status was read).
#[derive(Debug, Clone)]
pub struct HttpError(pub String);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Conn = BufReader<TcpStream>;

/// A client for one server; cheap to share behind an `Arc`.
pub struct HttpClient {
    server: SocketAddr,
    sources: Arc<SourceAddrs>,
    idle: Mutex<Vec<Conn>>,
    max_idle: usize,
}

impl HttpClient {
    pub fn new(server: SocketAddr, sources: Arc<SourceAddrs>, max_idle: usize) -> Self {
        Self {
            server,
            sources,
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// Sends one request; retries once on a fresh socket when a pooled
    /// keep-alive socket turns out to be closed.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, HttpError> {
        let head = self.head(method, path, bearer, body);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let pooled = self.take_idle();
        let was_pooled = pooled.is_some();
        let conn = match pooled {
            Some(c) => c,
            None => self.open().await?,
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange(conn, &head, &body)).await {
            Ok(Ok((resp, conn))) => {
                if let Some(c) = conn {
                    self.put_idle(c);
                }
                Ok(resp)
            }
            Ok(Err(e)) if was_pooled && e.before_response => {
                let conn = self.open().await?;
                match tokio::time::timeout(REQUEST_TIMEOUT, exchange(conn, &head, &body)).await {
                    Ok(Ok((resp, conn))) => {
                        if let Some(c) = conn {
                            self.put_idle(c);
                        }
                        Ok(resp)
                    }
                    Ok(Err(e)) => Err(HttpError(e.message)),
                    Err(_) => Err(HttpError(format!("{method} {path}: timed out"))),
                }
            }
            Ok(Err(e)) => Err(HttpError(e.message)),
            Err(_) => Err(HttpError(format!("{method} {path}: timed out"))),
        }
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Result<Response, HttpError> {
        self.request("GET", path, bearer, None).await
    }

    pub async fn post(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<Response, HttpError> {
        self.request("POST", path, bearer, Some(body)).await
    }

    fn head(
        &self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> String {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n",
            self.server
        );
        if let Some(b) = bearer {
            head.push_str(&format!("Authorization: Bearer {b}\r\n"));
        }
        match body {
            Some(b) => head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.to_string().len()
            )),
            None if method != "GET" => head.push_str("Content-Length: 0\r\n"),
            None => {}
        }
        head.push_str("\r\n");
        head
    }

    fn take_idle(&self) -> Option<Conn> {
        self.idle.lock().ok()?.pop()
    }

    fn put_idle(&self, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < self.max_idle {
                idle.push(conn);
            }
        }
    }

    async fn open(&self) -> Result<Conn, HttpError> {
        let stream = connect_from(self.sources.next(), self.server)
            .await
            .map_err(|e| HttpError(format!("connect {}: {e}", self.server)))?;
        Ok(BufReader::with_capacity(4096, stream))
    }
}

/// A TCP connection from a chosen loopback source address.
pub async fn connect_from(
    source: std::net::IpAddr,
    server: SocketAddr,
) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    // Lets bind() reuse ports still in TIME_WAIT from earlier runs.
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

struct ExchangeError {
    message: String,
    /// True when nothing of a response was read (safe to retry on a new socket).
    before_response: bool,
}

fn err(before_response: bool, message: impl Into<String>) -> ExchangeError {
    ExchangeError {
        message: message.into(),
        before_response,
    }
}

/// Writes one request and reads its response; returns the connection when
/// it may be reused.
async fn exchange(
    mut conn: Conn,
    head: &str,
    body: &str,
) -> Result<(Response, Option<Conn>), ExchangeError> {
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body.as_bytes());
    conn.get_mut()
        .write_all(&out)
        .await
        .map_err(|e| err(true, format!("write: {e}")))?;

    let mut line = String::new();
    let n = conn
        .read_line(&mut line)
        .await
        .map_err(|e| err(true, format!("read status: {e}")))?;
    if n == 0 {
        return Err(err(true, "connection closed before the response"));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| err(false, format!("bad status line: {}", line.trim())))?;

    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut close = false;
    let mut retry_after = None;
    loop {
        line.clear();
        let n = conn
            .read_line(&mut line)
            .await
            .map_err(|e| err(false, format!("read header: {e}")))?;
        if n == 0 {
            return Err(err(false, "connection closed inside the headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':') {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.parse().ok(),
                "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                "retry-after" => retry_after = value.parse().ok(),
                _ => {}
            }
        }
    }

    let body = if chunked {
        read_chunked(&mut conn).await?
    } else if let Some(len) = content_length {
        if len > MAX_BODY {
            return Err(err(false, format!("body of {len} bytes is too large")));
        }
        let mut buf = vec![0; len];
        conn.read_exact(&mut buf)
            .await
            .map_err(|e| err(false, format!("read body: {e}")))?;
        buf
    } else {
        close = true;
        let mut buf = Vec::new();
        (&mut conn)
            .take(MAX_BODY as u64)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| err(false, format!("read body: {e}")))?;
        buf
    };
    let reuse = if close { None } else { Some(conn) };
    Ok((
        Response {
            status,
            body,
            retry_after,
        },
        reuse,
    ))
}

async fn read_chunked(conn: &mut Conn) -> Result<Vec<u8>, ExchangeError> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        conn.read_line(&mut line)
            .await
            .map_err(|e| err(false, format!("read chunk size: {e}")))?;
        let size_text = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| err(false, format!("bad chunk size: {}", line.trim())))?;
        if size == 0 {
            // Trailers, then the final empty line.
            loop {
                line.clear();
                let n = conn
                    .read_line(&mut line)
                    .await
                    .map_err(|e| err(false, format!("read trailer: {e}")))?;
                if n == 0 || line.trim_end().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(err(false, "chunked body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        conn.read_exact(&mut body[start..])
            .await
            .map_err(|e| err(false, format!("read chunk: {e}")))?;
        let mut crlf = [0u8; 2];
        conn.read_exact(&mut crlf)
            .await
            .map_err(|e| err(false, format!("read chunk end: {e}")))?;
    }
}
