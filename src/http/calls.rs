//! Reaching activity actors from handlers: by id, through the directory, with a
//! deadline, errors mapped to the contract.

use crate::actors::activity::ActivityActor;
use crate::actors::messages::CallResult;
use crate::domain::ids::ActivityId;
use crate::error::ApiError;
use crate::http::state::AppState;
use actix::prelude::*;

/// Parses a path id; anything that is not a valid id names nothing: 404.
pub fn activity_id(raw: &str) -> Result<ActivityId, ApiError> {
    ActivityId::parse(raw).map_err(|_| ApiError::not_found("no such activity"))
}

pub fn actor(st: &AppState, id: &ActivityId) -> Result<Addr<ActivityActor>, ApiError> {
    st.directory.actor(id)
}

/// `directory::call` with the configured deadline.
pub async fn call<M, T>(st: &AppState, addr: &Addr<ActivityActor>, msg: M) -> Result<T, ApiError>
where
    M: Message<Result = CallResult<T>> + Send + 'static,
    T: Send + 'static,
    ActivityActor: Handler<M>,
{
    crate::http::directory::call(st.actor_timeout, addr, msg).await
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
