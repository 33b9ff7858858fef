//! A stalled user: joins with a small receive buffer, reads frames until its
//! `queued`, then stops reading its socket entirely (no polling, so no pong
//! either) while keeping it open. At the control signal (or the deadline) it
//! reads again: whatever the kernel buffered, then how the server ended the
//! socket (a close frame and its code, end of stream, a reset), in a
//! [`StallRecord`].

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::record::{Outcome, StallRecord, UserRecord};
use super::route::Route;
use super::{encode_query, Counters, Ctx};
use crate::client::now_ms;
use crate::client::ws::{self, Ws};
use crate::protocol::ServerFrame;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for the `queued` frame.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest drain once reading again: the buffered frames, then the server's end.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);
/// A drained socket that stays silent this long is still open on the server.
const DRAIN_QUIET: Duration = Duration::from_secs(3);

/// Runs one stalled user; `rcvbuf` is its socket's SO_RCVBUF (0 = default).
pub async fn run_user(ctx: Arc<Ctx>, idx: usize, user: String, rcvbuf: u32) -> UserRecord {
    let mut rec = UserRecord::new(idx, user);
    let mut stall = StallRecord::default();
    let mut control = ctx.control.clone();
    let seen = *control.borrow_and_update();
    match join(&ctx, &mut rec, &mut stall, rcvbuf).await {
        Ok(mut ws) => {
            // The stall: the socket is not polled at all until the signal.
            if *control.borrow() == seen {
                tokio::select! {
                    _ = control.changed() => {}
                    _ = tokio::time::sleep_until(ctx.deadline) => {}
                }
            }
            drain(&mut ws, &mut stall).await;
            rec.outcome = Outcome::Closed;
        }
        Err(e) => {
            rec.anomaly(e.clone());
            stall.end = format!("never stalled: {e}");
            rec.outcome = Outcome::ConnectFailed;
        }
    }
    rec.stall = Some(stall);
    if rec.joined_ms.is_none() {
        Counters::bump(&ctx.counters.never_joined);
    }
    Counters::bump(&ctx.counters.finished);
    rec
}

/// Connects and reads up to the first `queued` frame.
async fn join(
    ctx: &Ctx,
    rec: &mut UserRecord,
    stall: &mut StallRecord,
    rcvbuf: u32,
) -> Result<Ws, String> {
    let jwt = crate::jwt::mint(
        &ctx.jwt_secret,
        &rec.user,
        (now_ms() / 1000.0) as u64 + 6 * 3600,
    );
    let path = format!(
        "/ws/activities/{}?access_token={}",
        encode_query(&ctx.activity_id),
        encode_query(&jwt)
    );
    let route = Route::home(rec.idx, ctx.nodes.len());
    let mut ws = {
        let _permit = ctx
            .handshakes
            .acquire()
            .await
            .map_err(|_| "semaphore closed".to_string())?;
        rec.connect_ms = now_ms();
        let connect =
            ws::connect_with_rcvbuf(ctx.node(route).addr, ctx.sources.next(), &path, rcvbuf);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, connect).await {
            Ok(Ok(ws)) => ws,
            Ok(Err(e)) => {
                rec.connect_errors += 1;
                return Err(format!("connect: {e}"));
            }
            Err(_) => return Err("connect: handshake timed out".into()),
        }
    };
    let until = Instant::now() + JOIN_TIMEOUT;
    loop {
        let msg = tokio::time::timeout_at(until, ws.next())
            .await
            .map_err(|_| "no queued frame within 30 s".to_string())?;
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("socket error before queued: {e}")),
            None => return Err("socket ended before queued".into()),
        };
        stall.frames_before += 1;
        if let Ok(ServerFrame::Queued {
            ticket,
            position,
            seq,
        }) = ServerFrame::parse(text.as_str())
        {
            rec.joined_ms = Some(now_ms());
            rec.join_node = Some(route.node());
            rec.ticket = Some(ticket);
            rec.seq = seq;
            rec.first_position = Some(position);
            rec.last_position = Some(position);
            Counters::bump(&ctx.counters.joined);
            return Ok(ws);
        }
    }
}

/// Reads again: counts the frames that were buffered, notes how the socket ended.
async fn drain(ws: &mut Ws, stall: &mut StallRecord) {
    let until = Instant::now() + DRAIN_LIMIT;
    loop {
        let quiet = (Instant::now() + DRAIN_QUIET).min(until);
        let msg = match tokio::time::timeout_at(quiet, ws.next()).await {
            Ok(m) => m,
            Err(_) => {
                stall.end = "still open".into();
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                return;
            }
        };
        match msg {
            Some(Ok(Message::Text(t))) => match ServerFrame::parse(t.as_str()) {
                Ok(ServerFrame::Position { .. }) => stall.drained_positions += 1,
                Ok(ServerFrame::Paused | ServerFrame::Resumed) => stall.drained_notices += 1,
                _ => stall.drained_other += 1,
            },
            Some(Ok(Message::Close(frame))) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                stall.close_code = code;
                stall.end = close_description(code, frame.as_ref().map(|f| f.reason.as_str()));
                return;
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                stall.end = error_description(&e);
                return;
            }
            None => {
                stall.end = "eof without close frame".into();
                return;
            }
        }
    }
}

/// `close 1008: messages not read in time`.
pub fn close_description(code: Option<u16>, reason: Option<&str>) -> String {
    match (code, reason.filter(|r| !r.is_empty())) {
        (Some(c), Some(r)) => format!("close {c}: {r}"),
        (Some(c), None) => format!("close {c}"),
        (None, _) => "close without code".into(),
    }
}

fn error_description(e: &WsError) -> String {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    match e {
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            "eof without close frame".into()
        }
        WsError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionReset => "reset".into(),
        // Our automatic pong (to a buffered ping) hit a socket the server had closed.
        WsError::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe => {
            "broken pipe (server had closed)".into()
        }
        WsError::ConnectionClosed | WsError::AlreadyClosed => "eof after close".into(),
        other => format!("error: {}", crate::protocol::clip(&other.to_string())),
    }
}

/// The code the server closes an unread socket with.
pub const NOT_READ_CODE: u16 = 1008;

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    #[test]
    fn close_descriptions_name_code_and_reason() {
        assert_eq!(
            close_description(Some(1008), Some("messages not read in time")),
            "close 1008: messages not read in time"
        );
        assert_eq!(close_description(Some(1000), Some("")), "close 1000");
        assert_eq!(close_description(None, None), "close without code");
        assert_eq!(u16::from(CloseCode::Policy), NOT_READ_CODE);
    }
}
