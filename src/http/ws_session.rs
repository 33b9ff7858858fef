//! `WsSession`: one WebSocket connection to an activity's waiting room. The only file
//! that uses `actix-web-actors`, so a move to `actix-ws` changes this file alone.
//!
//! Holds no queue state: it joins (or resumes) on start, relays `ToSession` facts as
//! text frames, answers pings, drops a client silent for 30 s, closes with 1009 on
//! frames over 4 KiB, and answers anything but `{"type":"leave"}` with an `error`
//! frame. Outbound memory is bounded without a per-session queue: the activity sends
//! a session at most one position frame per tick, and a client that stops reading
//! stops answering pings and is dropped within 30 s.

use crate::actors::activity::ActivityActor;
use crate::actors::messages::{CallError, Detach, Join, Leave, SessionHandle, ToSession};
use crate::domain::activity::{ActivityError, Push};
use crate::domain::ids::UserId;
use crate::error::{ApiError, ErrorCode};
use crate::http::protocol::{encode, error_frame, parse_client, ClientFrame};
use crate::http::state::AppState;
use actix::prelude::*;
use actix_web::web::Data;
use actix_web_actors::ws;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const HEARTBEAT: Duration = Duration::from_secs(10);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// The contract's frame limit; larger frames close the socket with 1009.
pub const MAX_FRAME: usize = 4096;

pub struct WsSession {
    id: u64,
    user: UserId,
    ticket: Option<String>,
    pow: Option<crate::domain::pow::PowSolution>,
    activity: Addr<ActivityActor>,
    state: Data<AppState>,
    ip: IpAddr,
    last_heard: Instant,
    window_start: Instant,
    window_count: u32,
}

impl WsSession {
    pub fn new(
        user: UserId,
        ticket: Option<String>,
        pow: Option<crate::domain::pow::PowSolution>,
        activity: Addr<ActivityActor>,
        state: Data<AppState>,
        ip: IpAddr,
    ) -> Self {
        Self {
            id: state.next_session_id(),
            user,
            ticket,
            pow,
            activity,
            state,
            ip,
            last_heard: Instant::now(),
            window_start: Instant::now(),
            window_count: 0,
        }
    }

    fn close(ctx: &mut ws::WebsocketContext<Self>, code: ws::CloseCode, why: &str) {
        ctx.close(Some(ws::CloseReason {
            code,
            description: Some(why.to_owned()),
        }));
        ctx.stop();
    }

    /// Per-connection message budget; past 10x the budget the socket is closed.
    fn over_budget(&mut self) -> Option<bool> {
        let now = Instant::now();
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.window_count = 0;
        }
        self.window_count += 1;
        let limit = self.state.ws.messages_per_sec.max(1);
        if self.window_count > limit * 10 {
            Some(true)
        } else if self.window_count > limit {
            Some(false)
        } else {
            None
        }
    }
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(HEARTBEAT, |act, ctx| {
            if Instant::now().duration_since(act.last_heard) > CLIENT_TIMEOUT {
                tracing::debug!(user = %act.user, "dropping silent websocket client");
                ctx.stop();
            } else {
                ctx.ping(b"");
            }
        });
        let join = Join {
            user: self.user.clone(),
            ticket: self.ticket.clone(),
            pow: self.pow.take(),
            session: Some(SessionHandle {
                id: self.id,
                recipient: ctx.address().recipient(),
            }),
        };
        let timeout = self.state.actor_timeout;
        self.activity
            .send(join)
            .timeout(timeout)
            .into_actor(self)
            .map(|res, _act, ctx| match res {
                Ok(Ok(_)) => {}
                Ok(Err(CallError::Domain(ActivityError::SoldOut(_)))) => {
                    ctx.text(encode(&ToSession::Push(Push::SoldOut)));
                    Self::close(ctx, ws::CloseCode::Normal, "sold out");
                }
                Ok(Err(CallError::Domain(ActivityError::NotOpen(_)))) => {
                    ctx.text(encode(&ToSession::Push(Push::Closed)));
                    Self::close(ctx, ws::CloseCode::Normal, "closed");
                }
                Ok(Err(e)) => {
                    let e = ApiError::from(e);
                    ctx.text(error_frame(e.code, &e.message));
                    Self::close(ctx, ws::CloseCode::Policy, e.code.as_str());
                }
                Err(_) => {
                    ctx.text(error_frame(
                        ErrorCode::Unavailable,
                        "the activity is busy; reconnect shortly",
                    ));
                    Self::close(ctx, ws::CloseCode::Again, "busy");
                }
            })
            .wait(ctx);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.activity.do_send(Detach {
            user: self.user.clone(),
            session_id: self.id,
        });
        self.state.ws.close(self.ip);
    }
}

impl Handler<ToSession> for WsSession {
    type Result = ();
    fn handle(&mut self, msg: ToSession, ctx: &mut Self::Context) {
        ctx.text(encode(&msg));
        match msg {
            ToSession::Superseded => Self::close(ctx, ws::CloseCode::Policy, "superseded"),
            ToSession::Restarting => Self::close(ctx, ws::CloseCode::Away, "restarting"),
            ToSession::Push(p) if p.is_final() => Self::close(ctx, ws::CloseCode::Normal, "done"),
            ToSession::Push(_) => {}
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        let msg = match msg {
            Ok(m) => m,
            Err(ws::ProtocolError::Overflow) => {
                return Self::close(ctx, ws::CloseCode::Size, "frame larger than 4 KiB");
            }
            Err(e) => {
                tracing::warn!(error = %e, "websocket protocol error");
                return Self::close(ctx, ws::CloseCode::Protocol, "protocol error");
            }
        };
        match msg {
            ws::Message::Ping(p) => ctx.pong(&p),
            ws::Message::Pong(_) => {}
            ws::Message::Close(reason) => {
                ctx.close(reason);
                ctx.stop();
            }
            ws::Message::Text(text) => {
                match self.over_budget() {
                    Some(true) => {
                        return Self::close(ctx, ws::CloseCode::Policy, "too many messages")
                    }
                    Some(false) => {
                        ctx.text(error_frame(
                            ErrorCode::RateLimited,
                            "too many messages; slow down",
                        ));
                        return;
                    }
                    None => {}
                }
                match parse_client(&text) {
                    Ok(ClientFrame::Leave) => {
                        let leave = Leave {
                            user: self.user.clone(),
                        };
                        self.activity
                            .send(leave)
                            .into_actor(self)
                            .map(|_, _, ctx| Self::close(ctx, ws::CloseCode::Normal, "left"))
                            .wait(ctx);
                    }
                    Err(m) => ctx.text(error_frame(ErrorCode::InvalidRequest, &m)),
                }
            }
            ws::Message::Binary(_) | ws::Message::Continuation(_) => {
                ctx.text(error_frame(
                    ErrorCode::InvalidRequest,
                    "only JSON text frames are accepted",
                ));
            }
            ws::Message::Nop => {}
        }
    }
}

/// Starts a session over an upgrade request.
pub fn start(
    session: WsSession,
    req: &actix_web::HttpRequest,
    stream: actix_web::web::Payload,
) -> Result<actix_web::HttpResponse, actix_web::Error> {
    ws::WsResponseBuilder::new(session, req, stream)
        .frame_size(MAX_FRAME)
        .start()
}
