//! `GET /ws/activities/{id}` with `Connection: Upgrade`: served by actix-http's upgrade
//! hook, beside the actix-web app, so the session gets the raw socket and none of the
//! HTTP dispatcher's buffers (see `ws_session`).
//!
//! The checks are the same as any request's, in the same order (identity, activity,
//! draining, query, rate and per-IP limits), and refusals are contract errors written
//! as plain HTTP responses before any upgrade. Plain `GET`s of the path (no upgrade)
//! reach the app's route in `ws_route`.

use crate::domain::ids::is_ticket_shaped;
use crate::domain::ids::ActivityId;
use crate::error::{ApiError, ErrorCode};
use crate::http::calls::activity_id;
use crate::http::client_addr::peer_ip;
use crate::http::connection::Conn;
use crate::http::directory::SessionLink;
use crate::http::identity::user_in;
use crate::http::state::{AppState, WsRefusal};
use crate::http::ws_session::{self, SessionSpec};
use actix_codec::Framed;
use actix_http::{h1, ws, HttpMessage, Method, Request};
use actix_web::dev::{fn_service, ServiceFactory};
use actix_web::web::{self, BytesMut, Data};
use serde::Deserialize;
use std::net::IpAddr;
use tokio::io::AsyncWriteExt;

#[derive(Deserialize)]
pub struct WsQuery {
    pub ticket: Option<String>,
    pub pow_nonce: Option<String>,
    pub pow_solution: Option<String>,
    /// Invite code, for invite-only activities.
    pub invite: Option<String>,
}

/// The upgrade service for `HttpService::upgrade`.
pub fn service(
    state: Data<AppState>,
) -> impl ServiceFactory<
    (Request, Framed<Conn, h1::Codec>),
    Config = (),
    Response = (),
    Error = actix_http::Error,
    InitError = (),
> {
    fn_service(move |(req, framed): (Request, Framed<Conn, h1::Codec>)| {
        // The checks run here, synchronously, so the long-lived future captures only
        // the socket and the session (an async fn keeps its arguments, here the
        // request and the dispatcher's codec, for its whole life).
        let first = match needs_lookup(&state, &req) {
            // An activity this process has not heard of yet: look it up first
            // (boxed: rare, and the request is large).
            Some(id) => Err(Box::new((id, req, framed, state.clone()))),
            None => Ok(answer(&state, req, framed)),
        };
        async move {
            let answer = match first {
                Ok(a) => a,
                Err(lookup) => {
                    Box::pin(async move {
                        let (id, req, framed, state) = *lookup;
                        state.directory.lookup(&id).await;
                        answer(&state, req, framed)
                    })
                    .await
                }
            };
            match answer {
                Answer::Upgrade(up) => {
                    let Upgrade {
                        mut io,
                        response,
                        pending,
                        spec,
                    } = *up;
                    let sent = Box::pin(async {
                        io.write_all(response.as_bytes()).await?;
                        io.flush().await
                    });
                    if sent.await.is_ok() {
                        drop(response);
                        ws_session::run(io, pending, spec).await;
                    } else {
                        // No session was started: release the socket count here.
                        spec.state.ws.close(spec.ip);
                    }
                }
                Answer::Refuse { mut io, response } => {
                    let _ = Box::pin(async {
                        let _ = io.write_all(response.as_bytes()).await;
                        let _ = io.flush().await;
                        let _ = io.shutdown().await;
                    })
                    .await;
                }
            }
            Ok(())
        }
    })
}

enum Answer {
    Upgrade(Box<Upgrade>),
    Refuse { io: Conn, response: String },
}

struct Upgrade {
    io: Conn,
    response: String,
    pending: BytesMut,
    spec: SessionSpec,
}

/// The activity of a WebSocket request, when the directory must look it up before
/// the request can be answered.
fn needs_lookup(st: &AppState, req: &Request) -> Option<ActivityId> {
    let id = ActivityId::parse(req.path().strip_prefix("/ws/activities/")?).ok()?;
    st.directory.needs_lookup(&id).then_some(id)
}

fn answer(st: &Data<AppState>, req: Request, framed: Framed<Conn, h1::Codec>) -> Answer {
    let started = std::time::Instant::now();
    let parts = framed.into_parts();
    let io = parts.io;
    // Keep only what the client sent behind its handshake; the dispatcher's 8 KiB
    // buffers and its codec are freed here.
    let pending = BytesMut::from(&parts.read_buf[..]);
    drop((parts.read_buf, parts.write_buf, parts.codec));
    let ip = st.proxies.client(peer_ip(req.peer_addr()), req.headers());
    let checked = check(st, &req, ip);
    // The request's header values share the dispatcher's read buffer.
    drop(req);
    match checked {
        Ok((spec, accept)) => {
            record(101, started);
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {accept}\r\n\r\n"
            );
            Answer::Upgrade(Box::new(Upgrade {
                io,
                response,
                pending,
                spec,
            }))
        }
        Err(e) => {
            let (status, _) = e.code.status_and_code();
            record(status.as_u16(), started);
            let body = e.body_json();
            let retry = e
                .retry_after
                .map(|s| format!("retry-after: {s}\r\n"))
                .unwrap_or_default();
            let response = format!(
                "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{retry}connection: close\r\n\r\n{body}",
                status.as_str(),
                status.canonical_reason().unwrap_or(""),
                body.len(),
            );
            Answer::Refuse { io, response }
        }
    }
}

/// At most one warning a minute while sockets are refused for the session cap (a
/// crowd would otherwise log one line per refused handshake).
fn warn_full(cap: Option<u32>) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST.load(Ordering::Relaxed);
    if now >= last + 60
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            cap,
            "WebSocket session cap reached (server.max_ws_sessions); refusing new sockets with 503"
        );
    }
}

fn record(status: u16, started: std::time::Instant) {
    crate::http::request_metrics::record("/ws/activities/{id}", status, started.elapsed());
}

/// Everything a session needs, or the contract error to answer; on success the
/// connection is counted against the IP's socket cap.
fn check(
    st: &Data<AppState>,
    req: &Request,
    ip: IpAddr,
) -> Result<(SessionSpec, String), ApiError> {
    let path = req.path();
    let id = path
        .strip_prefix("/ws/activities/")
        .filter(|id| !id.contains('/') && req.method() == Method::GET)
        .ok_or_else(|| ApiError::not_found("no such endpoint"))?;
    if ws::verify_handshake(req.head()).is_err() {
        return Err(ApiError::invalid(
            "expected a WebSocket upgrade (version 13)",
        ));
    }
    let key = req
        .headers()
        .get("sec-websocket-key")
        .ok_or_else(|| ApiError::invalid("missing Sec-WebSocket-Key"))?;
    let accept = ws::hash_key(key.as_bytes());
    let accept = String::from_utf8_lossy(&accept).into_owned();
    let query = req.uri().query().unwrap_or("");
    let user = user_in(st, req.headers(), query)?;
    let (activity, q) = target(st, id, query)?;
    st.limits.check_join_from(ip, &user)?;
    match st.ws.try_open(ip) {
        Ok(()) => {}
        Err(WsRefusal::PerIp) => {
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                "too many open connections from this address",
            )
            .retry_after(10))
        }
        Err(WsRefusal::Full) => {
            warn_full(st.ws.max_total);
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "this server holds as many connections as it can; retry shortly (or another node)",
            )
            .retry_after(1));
        }
    }
    let pow = crate::http::activities::pow_from(q.pow_nonce, q.pow_solution);
    let spec = SessionSpec {
        user,
        ticket: q.ticket,
        pow,
        invite: q.invite,
        activity,
        state: st.clone(),
        ip,
    };
    Ok((spec, accept))
}

/// The activity and the query of a WebSocket request, checked (also for plain `GET`s).
pub fn target(
    st: &AppState,
    raw_id: &str,
    query: &str,
) -> Result<(Box<dyn SessionLink>, WsQuery), ApiError> {
    let id = activity_id(raw_id)?;
    let target = st.directory.session_link(&id)?;
    if st.registry.is_draining() {
        return Err(
            ApiError::new(ErrorCode::Unavailable, "the server is restarting").retry_after(5),
        );
    }
    let q = web::Query::<WsQuery>::from_query(query)
        .map_err(|_| ApiError::invalid("bad query string"))?
        .into_inner();
    if let Some(t) = &q.ticket {
        if !is_ticket_shaped(t) {
            return Err(ApiError::not_found("no such ticket"));
        }
    }
    Ok((target, q))
}
