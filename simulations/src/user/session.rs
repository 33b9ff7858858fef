//! The WebSocket side of a user: connect (or resume with `ticket`), follow
//! the frames, buy when admitted.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio_tungstenite::tungstenite::Message;

use super::record::{Outcome, Resume, UserRecord, POSITION_GAP_LIMIT_MS};
use super::route::Route;
use super::{encode_query, purchase, Counters, Ctx};
use crate::client::now_ms;
use crate::client::ws::{self, ConnectError, Ws};
use crate::protocol::ServerFrame;

/// Reconnects allowed per user before it gives up.
const MAX_RECONNECTS: u32 = 60;
/// Consecutive failed connection attempts allowed (a restart takes seconds).
const MAX_CONNECT_FAILURES: u32 = 120;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// How a session ended.
enum End {
    Done,
    /// Reconnect with the ticket after a delay; the cause goes in the record.
    Reconnect(Duration, &'static str),
    /// The server answered `unavailable` (busy, or the activity is between
    /// owners): come back to the same node after a backoff.
    Retry,
}

/// Per-user state that lives across reconnects.
struct Place {
    jwt: String,
    /// Storm epoch this user has already answered.
    storm_seen: u64,
    /// Set between a drop and the first frame of the next session.
    pending_resume: Option<Resume>,
    /// When the previous frame arrived while waiting (for the cadence).
    last_frame_ms: Option<f64>,
    /// The previous waiting frame was the place frame (`queued`), not a position.
    after_place_frame: bool,
    /// When the last frame from the activity itself came (not a repeat).
    last_news_ms: Option<f64>,
    /// The node this user talks to now.
    route: Route,
}

/// Runs one user to the end and returns what it saw.
pub async fn run_user(ctx: Arc<Ctx>, idx: usize, user: String) -> UserRecord {
    let exp = (now_ms() / 1000.0) as u64 + 6 * 3600;
    let mut place = Place {
        jwt: crate::jwt::mint(&ctx.jwt_secret, &user, exp),
        storm_seen: *ctx.control.borrow(),
        pending_resume: None,
        last_frame_ms: None,
        after_place_frame: false,
        last_news_ms: None,
        route: Route::home(idx, ctx.nodes.len()),
    };
    let mut rec = UserRecord::new(idx, user);
    // Consecutive attempts that did not get a session going.
    let mut failures = 0u32;
    loop {
        if ctx.past_deadline() {
            rec.outcome = Outcome::Timeout;
            break;
        }
        let delay = match connect(&ctx, &mut rec, &place).await {
            Ok(ws) => match session(&ctx, &mut rec, &mut place, ws).await {
                End::Done => break,
                End::Reconnect(delay, cause) => {
                    failures = 0;
                    start_resume(&mut rec, &mut place, cause);
                    if cause != "storm" {
                        // The node may be gone: come back through the next one.
                        place.route.fail_over();
                    }
                    if rec.resumes.len() as u32 >= MAX_RECONNECTS {
                        rec.anomaly("too many reconnects");
                        rec.outcome = Outcome::ConnectFailed;
                        break;
                    }
                    delay
                }
                End::Retry => {
                    failures += 1;
                    if rec.ticket.is_some() || rec.prequeued {
                        start_resume(&mut rec, &mut place, "unavailable");
                    }
                    if failures > MAX_CONNECT_FAILURES {
                        rec.anomaly("still unavailable after every retry");
                        rec.outcome = Outcome::ConnectFailed;
                        break;
                    }
                    backoff(failures)
                }
            },
            Err(e) => {
                failures += 1;
                match after_connect_error(&mut rec, &mut place, &e, failures) {
                    Some(delay) => delay,
                    None => break,
                }
            }
        };
        tokio::time::sleep(delay).await;
    }
    if let Some(mut resume) = place.pending_resume.take() {
        // Reconnected (or tried to) but never heard back.
        resume.first_frame = "none".into();
        rec.resumes.push(resume);
    }
    if rec.joined_ms.is_none() {
        Counters::bump(&ctx.counters.never_joined);
    }
    Counters::bump(&ctx.counters.finished);
    rec
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100 * u64::from(failures.min(10)))
}

/// A failed connection attempt: the delay before the next, or `None` to give up.
fn after_connect_error(
    rec: &mut UserRecord,
    place: &mut Place,
    e: &ConnectError,
    failures: u32,
) -> Option<Duration> {
    rec.connect_errors += 1;
    let retry = match e {
        ConnectError::Io(_) | ConnectError::Handshake(_) => true,
        ConnectError::Status(s, _) => *s == 503 || *s == 429,
    };
    if !retry || failures > MAX_CONNECT_FAILURES {
        rec.anomaly(format!("connect: {e}"));
        rec.outcome = Outcome::ConnectFailed;
        return None;
    }
    let holds_place = rec.ticket.is_some() || rec.prequeued;
    if holds_place && !matches!(e, ConnectError::Status(..)) {
        // A node that does not answer at all may be dead; one that answers
        // 503 is alive and asks us to come back.
        place.route.fail_over();
    }
    Some(backoff(failures))
}

/// Notes the place held before a reconnect; the next frame completes it.
/// The silence since the last waiting frame counts as a gap.
fn start_resume(rec: &mut UserRecord, place: &mut Place, cause: &'static str) {
    let waiting_frame_ms = place.last_frame_ms.take();
    place.last_news_ms = None;
    if let Some(last) = waiting_frame_ms {
        let now = now_ms();
        rec.waiting_gap_on(now, now - last, place.route.node());
    }
    if place.pending_resume.is_none() {
        place.pending_resume = Some(Resume {
            cause: cause.to_string(),
            ticket_before: rec.ticket.clone(),
            position_before: rec.last_position,
            node_before: place.route.node(),
            dropped_ms: now_ms(),
            waiting_frame_ms,
            ..Resume::default()
        });
    }
}

async fn connect(ctx: &Ctx, rec: &mut UserRecord, place: &Place) -> Result<Ws, ConnectError> {
    let mut path = format!(
        "/ws/activities/{}?access_token={}",
        encode_query(&ctx.activity_id),
        encode_query(&place.jwt)
    );
    if let Some(t) = &rec.ticket {
        path.push_str("&ticket=");
        path.push_str(&encode_query(t));
    } else if ctx.behaviour.pow_bits > 0 {
        let http = &ctx.node(place.route).http;
        let (nonce, solution) = crate::pow::fetch_and_solve(http, &ctx.activity_id, &place.jwt)
            .await
            .map_err(ConnectError::Io)?;
        path.push_str(&format!(
            "&pow_nonce={}&pow_solution={}",
            encode_query(&nonce),
            encode_query(&solution)
        ));
    }
    let _permit = ctx
        .handshakes
        .acquire()
        .await
        .map_err(|_| ConnectError::Io("semaphore closed".into()))?;
    if rec.connect_ms == 0.0 {
        // Join latency starts when the handshake may start, not while the
        // ramp holds it back.
        rec.connect_ms = now_ms();
    }
    match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        ws::connect(ctx.node(place.route).addr, ctx.sources.next(), &path),
    )
    .await
    {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Io("handshake timed out".into())),
    }
}

async fn session(ctx: &Ctx, rec: &mut UserRecord, place: &mut Place, mut ws: Ws) -> End {
    let mut control = ctx.control.clone();
    let deadline = tokio::time::sleep_until(ctx.deadline);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(text))) => {
                    let now = now_ms();
                    match ServerFrame::parse(text.as_str()) {
                        Ok(frame) => {
                            if let Some(end) = on_frame(ctx, rec, place, &mut ws, frame, now).await {
                                return end;
                            }
                        }
                        Err(e) => rec.anomaly(e),
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    rec.unexpected_closes += 1;
                    rec.anomaly(format!("close without a final frame: {frame:?}"));
                    return after_drop(rec, "drop");
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    rec.unexpected_closes += 1;
                    rec.anomaly(format!("socket error: {e}"));
                    return after_drop(rec, "drop");
                }
                None => {
                    rec.unexpected_closes += 1;
                    rec.anomaly("socket ended without a final frame");
                    return after_drop(rec, "drop");
                }
            },
            changed = control.changed(), if ctx.behaviour.storm_every > 0 => {
                if changed.is_err() {
                    continue;
                }
                let epoch = *control.borrow_and_update();
                let waiting = rec.ticket.is_some() && rec.admitted_ms.is_none();
                if epoch != place.storm_seen && waiting && rec.idx.is_multiple_of(ctx.behaviour.storm_every) {
                    place.storm_seen = epoch;
                    // Drop without a close handshake, as a flaky network would.
                    drop(ws);
                    return End::Reconnect(Duration::ZERO, "storm");
                }
                place.storm_seen = epoch;
            }
            _ = &mut deadline => {
                if let Some(last) = place.last_frame_ms {
                    // Silence until the deadline is a gap too.
                    let now = now_ms();
                    rec.waiting_gap_on(now, now - last, place.route.node());
                }
                rec.outcome = Outcome::Timeout;
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                return End::Done;
            }
        }
    }
}

/// A lost socket: resume with the ticket if we hold one.
fn after_drop(rec: &mut UserRecord, cause: &'static str) -> End {
    if rec.ticket.is_some() || rec.prequeued {
        End::Reconnect(Duration::from_millis(200), cause)
    } else {
        rec.outcome = Outcome::ConnectFailed;
        End::Done
    }
}

/// Applies one frame; `Some` ends the session.
async fn on_frame(
    ctx: &Ctx,
    rec: &mut UserRecord,
    place: &mut Place,
    ws: &mut Ws,
    frame: ServerFrame,
    now: f64,
) -> Option<End> {
    if let ServerFrame::Error { code, .. } = &frame {
        if code == "unavailable" {
            // Not an answer to the join or resume: it is still pending.
            rec.unavailable_frames += 1;
            return Some(End::Retry);
        }
    }
    if let Some(mut resume) = place.pending_resume.take() {
        resume.first_frame = frame.kind().to_string();
        resume.node_after = place.route.node();
        resume.back_ms = Some(now);
        if let ServerFrame::Queued {
            ticket, position, ..
        } = &frame
        {
            resume.ticket_after = Some(ticket.clone());
            resume.position_after = Some(*position);
        }
        rec.resumes.push(resume);
        Counters::bump(&ctx.counters.resumed);
    }
    match frame {
        ServerFrame::Queued {
            ticket,
            position,
            seq,
        } => {
            if rec.joined_ms.is_none() {
                rec.joined_ms = Some(now);
                rec.join_node = Some(place.route.node());
                Counters::bump(&ctx.counters.joined);
            }
            if rec.prequeued && rec.opening_position.is_none() {
                rec.opening_position = Some(position);
                rec.opened_ms = Some(now);
            }
            if rec.ticket.as_deref().is_some_and(|t| t != ticket) {
                rec.anomaly(format!(
                    "ticket changed on resume: {:?} -> {ticket}",
                    rec.ticket
                ));
            }
            rec.ticket = Some(ticket);
            rec.seq = rec.seq.or(seq);
            rec.first_position = rec.first_position.or(Some(position));
            rec.last_position = Some(position);
            place.last_frame_ms = Some(now);
            place.last_news_ms = Some(now);
            place.after_place_frame = true;
            None
        }
        ServerFrame::Position {
            position,
            waiting_for_returns,
            repeat,
        } => {
            rec.position_frames += 1;
            if repeat {
                rec.position_repeats += 1;
            } else {
                if let Some(last) = place.last_news_ms {
                    rec.news_gap_max_ms = rec.news_gap_max_ms.max(now - last);
                }
                place.last_news_ms = Some(now);
            }
            if waiting_for_returns {
                rec.waiting_for_returns_frames += 1;
            }
            if rec.last_position.is_some_and(|last| position > last) {
                rec.position_increases += 1;
            }
            if let Some(last) = place.last_frame_ms {
                rec.waiting_gap_on(now, now - last, place.route.node());
                if place.after_place_frame && now - last > POSITION_GAP_LIMIT_MS {
                    rec.long_first_gaps += 1;
                }
            }
            place.after_place_frame = false;
            place.last_frame_ms = Some(now);
            rec.last_position = Some(position);
            None
        }
        ServerFrame::Prequeue => {
            if rec.joined_ms.is_none() {
                rec.joined_ms = Some(now);
                rec.join_node = Some(place.route.node());
                Counters::bump(&ctx.counters.joined);
            }
            rec.prequeued = true;
            None
        }
        ServerFrame::Admitted {
            token,
            issued_at_ms,
        } => {
            if rec.admitted_ms.is_none() {
                rec.admitted_ms = Some(now);
                rec.issued_at_ms = issued_at_ms;
                rec.admitted_node = Some(place.route.node());
                Counters::bump(&ctx.counters.admitted);
            }
            rec.admissions += 1;
            place.last_frame_ms = None;
            purchase::buy(ctx, rec, &place.jwt, &token, &mut place.route).await;
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
            Some(End::Done)
        }
        ServerFrame::SoldOut => {
            rec.sold_out_frame = true;
            rec.outcome = Outcome::SoldOut;
            Some(End::Done)
        }
        ServerFrame::Closed => {
            rec.outcome = Outcome::Closed;
            Some(End::Done)
        }
        ServerFrame::Superseded => {
            rec.anomaly("superseded");
            rec.outcome = Outcome::Superseded;
            Some(End::Done)
        }
        ServerFrame::Restarting => {
            rec.restarting_frames += 1;
            Some(End::Reconnect(Duration::from_millis(500), "restarting"))
        }
        ServerFrame::Paused => {
            rec.paused_frames += 1;
            None
        }
        ServerFrame::Resumed => {
            rec.resumed_frames += 1;
            None
        }
        ServerFrame::Error { code, message } => {
            rec.anomaly(format!("error frame {code}: {message}"));
            None
        }
        ServerFrame::Unknown => {
            rec.anomaly("frame of unknown type");
            None
        }
    }
}
