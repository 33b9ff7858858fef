//! Just enough of the Redis protocol (RESP2) to ask a loopback redis-server
//! or sentinel a question: one command per connection, 1 s limits.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(1);

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Simple(s) | Self::Bulk(Some(s)) => Some(s),
            _ => None,
        }
    }

    /// A flat array of strings (`SENTINEL MASTER`'s field/value list, an address pair).
    pub fn strings(&self) -> Vec<String> {
        match self {
            Self::Array(Some(v)) => v
                .iter()
                .filter_map(|r| r.text().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Sends `args` to `127.0.0.1:port` and reads one reply.
pub async fn command(port: u16, args: &[&str]) -> Result<Reply, String> {
    let work = async {
        let s = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let mut s = BufReader::new(s);
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.get_mut()
            .write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        read_reply(&mut s).await
    };
    match tokio::time::timeout(LIMIT, work).await {
        Ok(r) => r.map_err(|e| format!("{} on port {port}: {e}", args.join(" "))),
        Err(_) => Err(format!("{} on port {port}: timed out", args.join(" "))),
    }
}

async fn read_line(s: &mut BufReader<TcpStream>) -> Result<String, String> {
    let mut line = String::new();
    let n = s
        .read_line(&mut line)
        .await
        .map_err(|e| format!("read: {e}"))?;
    if n == 0 {
        return Err("connection closed".into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn read_reply(
    s: &mut BufReader<TcpStream>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, String>> + Send + '_>> {
    Box::pin(async move {
        let line = read_line(s).await?;
        let (kind, rest) = line.split_at(line.len().min(1));
        let num = || {
            rest.parse::<i64>()
                .map_err(|_| format!("bad RESP line {line:?}"))
        };
        match kind {
            "+" => Ok(Reply::Simple(rest.to_string())),
            "-" => Ok(Reply::Error(rest.to_string())),
            ":" => Ok(Reply::Int(num()?)),
            "$" => {
                let Ok(len) = usize::try_from(num()?) else {
                    return Ok(Reply::Bulk(None));
                };
                let mut buf = vec![0u8; len + 2];
                s.read_exact(&mut buf)
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                buf.truncate(len);
                Ok(Reply::Bulk(Some(
                    String::from_utf8_lossy(&buf).into_owned(),
                )))
            }
            "*" => {
                let Ok(n) = usize::try_from(num()?) else {
                    return Ok(Reply::Array(None));
                };
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(read_reply(s).await?);
                }
                Ok(Reply::Array(Some(v)))
            }
            _ => Err(format!("bad RESP line {line:?}")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves `reply` once on a free port and returns the port.
    async fn serve(reply: &'static [u8]) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accepts");
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(reply).await;
        });
        port
    }

    #[tokio::test]
    async fn reads_nested_replies() {
        let port = serve(b"*3\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n*-1\r\n").await;
        let r = command(port, &["SENTINEL", "get-master-addr-by-name", "sluice"])
            .await
            .expect("a reply");
        assert_eq!(r.strings(), ["127.0.0.1", "6380"]);
        let port = serve(b"-ERR no such master\r\n").await;
        assert_eq!(
            command(port, &["X"]).await,
            Ok(Reply::Error("ERR no such master".into()))
        );
        let port = serve(b"$-1\r\n").await;
        assert_eq!(command(port, &["GET", "k"]).await, Ok(Reply::Bulk(None)));
    }

    #[tokio::test]
    async fn a_garbled_reply_is_an_error() {
        let port = serve(b"?what\r\n").await;
        assert!(command(port, &["PING"]).await.is_err());
    }
}
