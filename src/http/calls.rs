//! Reaching activity actors from handlers: by id, with a deadline, errors mapped to
//! the contract.

use crate::actors::activity::ActivityActor;
use crate::actors::messages::CallResult;
use crate::domain::ids::ActivityId;
use crate::error::{ApiError, ErrorCode};
use crate::http::state::AppState;
use actix::prelude::*;

/// Parses a path id; anything that is not a valid id names nothing: 404.
pub fn activity_id(raw: &str) -> Result<ActivityId, ApiError> {
    ActivityId::parse(raw).map_err(|_| ApiError::not_found("no such activity"))
}

pub fn actor(st: &AppState, id: &ActivityId) -> Result<Addr<ActivityActor>, ApiError> {
    st.registry.get(id).ok_or_else(|| match &st.cluster {
        // Known to the cluster but not running here (it just moved): retry, not 404.
        Some(c) if !matches!(c.route(id), crate::cluster::Route::Unknown) => {
            crate::http::forward::moving()
        }
        _ => ApiError::not_found("no such activity"),
    })
}

/// Sends with backpressure: a full mailbox makes the caller wait up to the actor
/// timeout, then the answer is `503 unavailable` with `Retry-After`. The answer
/// comes once it is durable, so the deadline covers that wait too.
pub async fn call<M, T>(st: &AppState, addr: &Addr<ActivityActor>, msg: M) -> Result<T, ApiError>
where
    M: Message<Result = CallResult<T>> + Send + 'static,
    T: Send + 'static,
    ActivityActor: Handler<M>,
{
    match addr.send(msg).timeout(st.actor_timeout).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(MailboxError::Timeout) => Err(ApiError::new(
            ErrorCode::Unavailable,
            "the activity is busy; retry shortly",
        )
        .retry_after(1)),
        Err(MailboxError::Closed) => Err(ApiError::new(
            ErrorCode::Unavailable,
            "the activity is not running",
        )),
    }
}

/// Looks the activity up by its raw path id and calls it.
pub async fn call_id<M, T>(st: &AppState, raw_id: &str, msg: M) -> Result<T, ApiError>
where
    M: Message<Result = CallResult<T>> + Send + 'static,
    T: Send + 'static,
    ActivityActor: Handler<M>,
{
    let id = activity_id(raw_id)?;
    let addr = actor(st, &id)?;
    call(st, &addr, msg).await
}
