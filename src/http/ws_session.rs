//! One WebSocket session: a plain task on the HTTP worker that accepted it, reading the
//! client's frames and writing what the activity put in its `SessionQueue`.
//!
//! Why not an actor per socket (actix-web-actors): that stack costs ~13.4 KB per idle
//! connection here (DEPENDENCIES.md), mostly the HTTP dispatcher's two 8 KiB buffers,
//! against a budget of 6 KiB. This task keeps no buffer while idle: it reads into a
//! stack chunk only when the socket is readable, keeps bytes only for a partial frame,
//! and encodes frames only while writing them. The activity writes into the queue with
//! a short lock instead of one actor message per frame.
//!
//! Behaviour (docs/api.md): joins (or resumes) first, relays facts as text frames, pings
//! every 10 s and drops a client silent for 30 s, closes with 1009 on frames over
//! 4 KiB, answers anything but `{"type":"leave"}` with an `error` frame. A client that
//! stops reading cannot grow memory: positions coalesce in the queue, other messages
//! are bounded there, and a write that cannot finish within 30 s drops the session.

use crate::actors::session::ToSession;
use crate::actors::session_queue::{Drained, SessionQueue};
use crate::domain::activity::Push;
use crate::domain::ids::UserId;
use crate::domain::pow::PowSolution;
use crate::error::{ApiError, ErrorCode};
use crate::http::connection::Conn;
use crate::http::directory::{JoinFailure, SessionLink};
use crate::http::protocol::{encode, error_frame, parse_client, ClientFrame};
use crate::http::state::AppState;
use crate::http::ws_refresh::Refresh;
use actix_codec::{Decoder, Encoder};
use actix_http::ws::{CloseCode, CloseReason, Codec, Frame, Message, ProtocolError};
use actix_web::web::{Bytes, BytesMut, Data};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{sleep_until, timeout, Instant};

const HEARTBEAT: Duration = Duration::from_secs(10);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a closing session waits for the client's own close before dropping it.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// The contract's frame limit; larger frames close the socket with 1009.
pub const MAX_FRAME: usize = 4096;

/// Who connected, to what, as checked by the upgrade.
pub struct SessionSpec {
    pub user: UserId,
    pub ticket: Option<String>,
    pub pow: Option<PowSolution>,
    pub invite: Option<String>,
    /// The way to the activity (here, or relayed to the node that owns it).
    pub activity: Box<dyn SessionLink>,
    pub state: Data<AppState>,
    /// Counted in `WsLimits`; released when the session ends.
    pub ip: IpAddr,
}

struct Session {
    id: u64,
    spec: SessionSpec,
    queue: Arc<SessionQueue>,
    codec: Codec,
    last_heard: Instant,
    window_start: Instant,
    window_count: u32,
    /// The cadence of a waiting socket, kept here too (`ws_refresh`).
    refresh: Refresh,
}

/// What ends a session: a close frame to send, or nothing (the connection is gone).
enum End {
    Close(CloseCode, &'static str),
    Gone,
}

enum Event {
    Queued,
    Readable(io::Result<()>),
    /// The heartbeat, or a repeat of the latest position, is due.
    Timer,
}

impl Drop for Session {
    /// Runs however the session ends, including the server dropping its task.
    fn drop(&mut self) {
        self.spec.activity.detach(self.id, &self.spec.user);
        self.spec.state.ws.close(self.spec.ip);
    }
}

fn close_code(push: &ToSession) -> Option<(CloseCode, &'static str)> {
    match push {
        ToSession::Superseded => Some((CloseCode::Policy, "superseded")),
        ToSession::Restarting => Some((CloseCode::Away, "restarting")),
        ToSession::Push(p) if p.is_final() => Some((CloseCode::Normal, "done")),
        ToSession::Push(_) => None,
    }
}

/// Serves an upgraded connection until it ends. `pending` holds any bytes the client
/// sent right behind its handshake.
pub fn run(io: Conn, pending: BytesMut, spec: SessionSpec) -> impl Future<Output = ()> {
    let refresh = Refresh::new(spec.state.ws.repeat_after);
    let s = Session {
        id: spec.state.next_session_id(),
        spec,
        queue: Arc::new(SessionQueue::default()),
        codec: Codec::new().max_size(MAX_FRAME),
        last_heard: Instant::now(),
        window_start: Instant::now(),
        window_count: 0,
        refresh,
    };
    serve_session(io, pending, s)
}

async fn serve_session(mut io: Conn, pending: BytesMut, mut s: Session) {
    // Everything but the idle wait is boxed: a future is as large as its largest
    // state, and 18,000 idle sessions should not each carry the largest.
    let end = match Box::pin(s.join()).await {
        Ok(()) => s.serve(&mut io, pending).await,
        Err((frame, code, why)) => match Box::pin(s.send_text(&mut io, frame)).await {
            Ok(()) => End::Close(code, why),
            Err(end) => end,
        },
    };
    if let End::Close(code, why) = end {
        Box::pin(s.close(&mut io, code, why)).await;
    }
}

fn busy() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "the activity is busy; reconnect shortly",
    )
}

/// Reads what the socket has (one chunk) into `rbuf`; false at end of stream or error.
fn fill(io: &mut Conn, rbuf: &mut BytesMut) -> bool {
    let mut chunk = [0u8; 4096];
    match io.try_read(&mut chunk) {
        Ok(0) => false,
        Ok(n) => {
            rbuf.extend_from_slice(&chunk[..n]);
            true
        }
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
    }
}

impl Session {
    /// Joins or resumes; the activity puts `queued`/`prequeue` in the queue once durable.
    /// A refusal is the frame to send and how to close.
    async fn join(&mut self) -> Result<(), (String, CloseCode, &'static str)> {
        let (ticket, pow) = (self.spec.ticket.take(), self.spec.pow.take());
        let joined = self.spec.activity.join(
            self.id,
            Arc::clone(&self.queue),
            &self.spec.user,
            ticket,
            pow,
            self.spec.invite.take(),
        );
        let limit = self
            .spec
            .activity
            .join_timeout(self.spec.state.actor_timeout);
        let answer = match limit {
            Some(limit) => timeout(limit, joined).await,
            None => Ok(joined.await),
        };
        let res = match answer {
            Ok(Ok(())) => Ok(()),
            Ok(Err(JoinFailure::Refused(e))) => Err((e, false)),
            Ok(Err(JoinFailure::Busy)) | Err(_) => Err((busy(), true)),
        };
        let (e, timed_out) = match res {
            Ok(()) => return Ok(()),
            Err(refused) => refused,
        };
        Err(match e.code {
            ErrorCode::SoldOut => (
                encode(&ToSession::Push(Push::SoldOut)),
                CloseCode::Normal,
                "sold out",
            ),
            ErrorCode::NotOpen => (
                encode(&ToSession::Push(Push::Closed)),
                CloseCode::Normal,
                "closed",
            ),
            _ if !timed_out => {
                let code = e.code.as_str();
                (error_frame(e.code, &e.message), CloseCode::Policy, code)
            }
            _ => (error_frame(e.code, &e.message), CloseCode::Again, "busy"),
        })
    }

    async fn serve(&mut self, io: &mut Conn, mut rbuf: BytesMut) -> End {
        let mut next_ping = Instant::now() + HEARTBEAT;
        if let Err(end) = Box::pin(self.on_input(io, &mut rbuf)).await {
            return end;
        }
        loop {
            let next_timer = self.refresh.due().map_or(next_ping, |d| d.min(next_ping));
            let event = tokio::select! {
                biased;
                _ = self.queue.woken() => Event::Queued,
                r = io.readable() => Event::Readable(r),
                _ = sleep_until(next_timer) => Event::Timer,
            };
            let step = match event {
                Event::Queued => Box::pin(self.flush_queue(io)).await,
                Event::Readable(Err(_)) => Err(End::Gone),
                Event::Readable(Ok(())) => {
                    if fill(io, &mut rbuf) {
                        Box::pin(self.on_input(io, &mut rbuf)).await
                    } else {
                        Err(End::Gone)
                    }
                }
                Event::Timer => Box::pin(self.on_timer(io, &mut next_ping)).await,
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// A late position's repeat, then the heartbeat, whichever are due.
    async fn on_timer(&mut self, io: &mut Conn, next_ping: &mut Instant) -> Result<(), End> {
        let now = Instant::now();
        if let Some(repeat) = self.refresh.take_due(now) {
            metrics::counter!("sluice_ws_position_repeats_total").increment(1);
            self.send_text(io, repeat).await?;
        }
        if now < *next_ping {
            return Ok(());
        }
        if self.last_heard.elapsed() > CLIENT_TIMEOUT {
            tracing::debug!(user = %self.spec.user, "dropping silent websocket client");
            return Err(End::Gone);
        }
        *next_ping = now + HEARTBEAT;
        self.send(io, Message::Ping(Bytes::new())).await
    }

    /// Decodes and handles every complete frame in `rbuf`; frees it once empty, so an
    /// idle session holds no read buffer.
    async fn on_input(&mut self, io: &mut Conn, rbuf: &mut BytesMut) -> Result<(), End> {
        loop {
            let frame = match self.codec.decode(rbuf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(ProtocolError::Overflow) => {
                    return Err(End::Close(CloseCode::Size, "frame larger than 4 KiB"))
                }
                Err(e) => {
                    tracing::debug!(error = %e, "websocket protocol error");
                    return Err(End::Close(CloseCode::Protocol, "protocol error"));
                }
            };
            self.last_heard = Instant::now();
            self.on_frame(io, frame).await?;
        }
        if rbuf.is_empty() {
            *rbuf = BytesMut::new();
        }
        Ok(())
    }

    async fn on_frame(&mut self, io: &mut Conn, frame: Frame) -> Result<(), End> {
        match frame {
            Frame::Ping(p) => self.send(io, Message::Pong(p)).await,
            Frame::Pong(_) => Ok(()),
            Frame::Close(reason) => {
                // Echo the close; the client ends the connection.
                let _ = self.send(io, Message::Close(reason)).await;
                Err(End::Gone)
            }
            Frame::Text(bytes) => self.on_text(io, bytes).await,
            Frame::Binary(_) | Frame::Continuation(_) => {
                let f = error_frame(
                    ErrorCode::InvalidRequest,
                    "only JSON text frames are accepted",
                );
                self.send_text(io, f).await
            }
        }
    }

    async fn on_text(&mut self, io: &mut Conn, bytes: Bytes) -> Result<(), End> {
        match self.over_budget() {
            Some(true) => return Err(End::Close(CloseCode::Policy, "too many messages")),
            Some(false) => {
                let f = error_frame(ErrorCode::RateLimited, "too many messages; slow down");
                return self.send_text(io, f).await;
            }
            None => {}
        }
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|_| "text frames must be UTF-8".to_owned())
            .and_then(parse_client);
        match parsed {
            Ok(ClientFrame::Leave) => {
                let timeout_after = self.spec.state.actor_timeout;
                let left = self.spec.activity.leave(self.id, &self.spec.user);
                let _ = timeout(timeout_after, left).await;
                Err(End::Close(CloseCode::Normal, "left"))
            }
            Err(m) => {
                let f = error_frame(ErrorCode::InvalidRequest, &m);
                self.send_text(io, f).await
            }
        }
    }

    /// Writes everything queued, in order; a final message ends the session.
    async fn flush_queue(&mut self, io: &mut Conn) -> Result<(), End> {
        let messages = match self.queue.drain() {
            Drained::Overflowed => {
                return Err(End::Close(CloseCode::Policy, "messages not read in time"))
            }
            Drained::Messages(m) if m.is_empty() => return Ok(()),
            Drained::Messages(m) => m,
        };
        let mut out = BytesMut::new();
        let mut end = None;
        let now = Instant::now();
        for m in &messages {
            self.encode(Message::Text(encode(m).into()), &mut out);
            self.refresh.wrote(m, now);
            if let Some((code, why)) = close_code(m) {
                end = Some(End::Close(code, why));
                break;
            }
        }
        drop(messages);
        write(io, &out).await?;
        end.map_or(Ok(()), Err)
    }

    fn encode(&mut self, msg: Message, out: &mut BytesMut) {
        if let Err(e) = self.codec.encode(msg, out) {
            tracing::warn!(error = %e, "cannot encode a websocket frame");
        }
    }

    async fn send(&mut self, io: &mut Conn, msg: Message) -> Result<(), End> {
        let mut out = BytesMut::new();
        self.encode(msg, &mut out);
        write(io, &out).await
    }

    async fn send_text(&mut self, io: &mut Conn, text: String) -> Result<(), End> {
        self.send(io, Message::Text(text.into())).await
    }

    /// Sends a close frame, half-closes, and waits briefly for the client's goodbye so
    /// the kernel does not reset the connection before the client read our last frames.
    async fn close(&mut self, io: &mut Conn, code: CloseCode, why: &'static str) {
        let reason = CloseReason {
            code,
            description: Some(why.to_owned()),
        };
        if self.send(io, Message::Close(Some(reason))).await.is_err() {
            return;
        }
        let _ = io.shutdown().await;
        let mut sink = vec![0u8; 512];
        let _ = timeout(CLOSE_LINGER, async {
            while let Ok(n) = io.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }

    /// Per-connection message budget; past 10x the budget the socket is closed.
    fn over_budget(&mut self) -> Option<bool> {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.window_count = 0;
        }
        self.window_count += 1;
        let limit = self.spec.state.ws.messages_per_sec.max(1);
        if self.window_count > limit * 10 {
            Some(true)
        } else if self.window_count > limit {
            Some(false)
        } else {
            None
        }
    }
}

/// Writes all of `out`; a client that cannot take it within the timeout is gone.
async fn write(io: &mut Conn, out: &[u8]) -> Result<(), End> {
    // Flushed: over TLS, written bytes may wait in the TLS layer until then.
    let written = async {
        io.write_all(out).await?;
        io.flush().await
    };
    match timeout(CLIENT_TIMEOUT, written).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(End::Gone),
    }
}
