//! Public activity endpoints: list and view, HTTP-polling join/ticket/leave, purchase.

use crate::actors::messages::{
    Admin as AdminCall, GetTicket, Join, JoinReply, LeaveTicket, Purchase,
};
use crate::domain::activity::orders::Purchased;
use crate::domain::clock::rfc3339;
use crate::domain::ids::{is_ticket_shaped, SlotId, UserId};
use crate::domain::pow::{self, PowSolution};
use crate::error::{ApiError, ErrorCode};
use crate::http::body::RawBody;
use crate::http::calls::{activity_id, actor, call, call_id};
use crate::http::fairness;
use crate::http::identity::User;
use crate::http::state::AppState;
use actix_web::web::{self, Data, Json, Path};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        // The hot routes first: each route tried is a regex match (~7% of a purchase's
        // samples when purchase came last).
        web::scope("/api/activities")
            .route("/{id}/purchase", web::post().to(purchase))
            .route("/{id}/join", web::post().to(join))
            .route("/{id}/tickets/{ticket}", web::get().to(ticket))
            .route("/{id}/tickets/{ticket}", web::delete().to(leave))
            .route("", web::get().to(list))
            .route("/{id}", web::get().to(get))
            .route("/{id}/challenge", web::get().to(challenge))
            .route("/{id}/fairness", web::get().to(fairness::fairness))
            .route("/{id}/fairness/log", web::get().to(fairness::log)),
    );
}

/// Every activity's public view.
#[utoipa::path(
    get,
    path = "/api/activities",
    operation_id = "activities_list",
    tag = "activities",
    responses(
        (status = 200, description = "Every activity", body = crate::http::schemas::ActivityList)
    )
)]
pub(crate) async fn list(req: HttpRequest, st: Data<AppState>) -> HttpResponse {
    let views = st.directory.views(&req, false).await;
    HttpResponse::Ok().json(serde_json::json!({ "activities": views }))
}

/// One activity's public view.
#[utoipa::path(
    get,
    path = "/api/activities/{id}",
    operation_id = "activities_get",
    tag = "activities",
    params(("id" = String, Path, description = "The activity id")),
    responses(
        (status = 200, description = "The activity view", body = crate::domain::activity::ActivityView),
        (status = 404, description = "`not_found`: no such activity", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    )
)]
pub(crate) async fn get(st: Data<AppState>, id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(call_id(&st, &id, AdminCall::View { admin: false }).await?))
}

/// The optional join body: a proof-of-work answer.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JoinBody {
    pow_nonce: Option<String>,
    pow_solution: Option<String>,
    /// Invite code, for invite-only activities.
    invite: Option<String>,
}

pub fn pow_from(nonce: Option<String>, solution: Option<String>) -> Option<PowSolution> {
    match (nonce, solution) {
        (Some(nonce), Some(solution)) => Some(PowSolution { nonce, solution }),
        _ => None,
    }
}

/// Joins the waiting room (HTTP polling).
#[utoipa::path(
    post,
    path = "/api/activities/{id}/join",
    operation_id = "activities_join",
    tag = "activities",
    params(("id" = String, Path, description = "The activity id")),
    request_body(content = Option<JoinBody>, description = "Empty, or a proof-of-work answer (docs/api.md 6.3) and/or an invite code (docs/api.md 17.4)"),
    responses(
        (status = 201, description = "A new place", body = crate::domain::activity::TicketView),
        (status = 200, description = "The user already had a live place (same ticket)", body = crate::domain::activity::TicketView),
        (status = 400, description = "`invalid_request`: a bad body, or a missing or wrong proof of work", body = crate::http::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`: missing, malformed, badly signed or expired identity token", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: an invite-only activity without a valid invite code, or a banned user", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such activity", body = crate::http::schemas::ErrorBody),
        (status = 409, description = "`not_open` (closed), `sold_out`, `limit_reached` (already bought `per_user_limit`)", body = crate::http::schemas::ErrorBody),
        (status = 413, description = "`payload_too_large`: body over `server.max_body_bytes`", body = crate::http::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`; `Retry-After` set", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`queue_full` (`Retry-After: 1`), or `unavailable`: shutting down (`Retry-After: 5`) or too busy", body = crate::http::schemas::ErrorBody)
    ),
    security(("user" = []), ("user_query" = []))
)]
pub(crate) async fn join(
    req: HttpRequest,
    user: User,
    st: Data<AppState>,
    id: Path<String>,
    RawBody(body): RawBody,
) -> Result<HttpResponse, ApiError> {
    let body: JoinBody = if body.iter().all(u8::is_ascii_whitespace) {
        JoinBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?
    };
    let pow = pow_from(body.pow_nonce, body.pow_solution);
    let reply = join_as(&req, &st, user.0, &id, pow, body.invite).await?;
    // 201 for a new place; 200 when the user already had one (same ticket).
    let mut res = if reply.existing {
        HttpResponse::Ok()
    } else {
        HttpResponse::Created()
    };
    Ok(res.json(reply.ticket))
}

/// An HTTP-polling join (no session): limits, the drain, then `Join`. Also the
/// server-rendered page's join.
pub async fn join_as(
    req: &HttpRequest,
    st: &AppState,
    user: UserId,
    raw_id: &str,
    pow: Option<PowSolution>,
    invite: Option<String>,
) -> Result<JoinReply, ApiError> {
    st.limits.check_join(req, &user)?;
    if st.registry.is_draining() {
        return Err(
            ApiError::new(ErrorCode::Unavailable, "the server is restarting").retry_after(5),
        );
    }
    let join = Join {
        user,
        ticket: None,
        session: None,
        pow,
        invite,
    };
    call_id(st, raw_id, join).await
}

/// A proof-of-work challenge bound to the caller (extension).
#[utoipa::path(
    get,
    path = "/api/activities/{id}/challenge",
    operation_id = "activities_challenge",
    tag = "activities",
    params(("id" = String, Path, description = "The activity id")),
    responses(
        (status = 200, description = "The challenge", body = crate::http::schemas::Challenge),
        (status = 401, description = "`unauthorized`: missing, malformed, badly signed or expired identity token", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such activity", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("user" = []), ("user_query" = []))
)]
pub(crate) async fn challenge(
    user: User,
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let view = call_id(&st, &id, AdminCall::View { admin: false }).await?;
    let now = st.clock.now_ms();
    let (nonce, expires) = pow::issue(st.registry.key(), &view.id, user.0.as_str(), now);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "nonce": nonce,
        "bits": view.admission.join_pow_bits,
        "expires_at": rfc3339(expires),
        "algorithm": "find any string s such that SHA-256(nonce + \":\" + s) has `bits` leading zero bits",
    })))
}

pub fn ticket_param(raw: &str) -> Result<String, ApiError> {
    if is_ticket_shaped(raw) {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::not_found("no such ticket"))
    }
}

/// A ticket's state; each poll keeps an HTTP place alive.
#[utoipa::path(
    get,
    path = "/api/activities/{id}/tickets/{ticket}",
    operation_id = "activities_ticket",
    tag = "activities",
    params(("id" = String, Path, description = "The activity id"), ("ticket" = String, Path, description = "The ticket")),
    responses(
        (status = 200, description = "The ticket", body = crate::domain::activity::TicketView),
        (status = 401, description = "`unauthorized`: missing, malformed, badly signed or expired identity token", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: someone else's ticket", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such activity or ticket", body = crate::http::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`; `Retry-After` set", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("user" = []), ("user_query" = []))
)]
pub(crate) async fn ticket(
    req: HttpRequest,
    user: User,
    st: Data<AppState>,
    path: Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    st.limits.check_poll(&req)?;
    let (id, t) = path.into_inner();
    let ticket = ticket_param(&t)?;
    let v = call_id(
        &st,
        &id,
        GetTicket {
            user: user.0,
            ticket,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(v))
}

/// Leaves: gives the place (or an unspent token's units) back. Idempotent.
#[utoipa::path(
    delete,
    path = "/api/activities/{id}/tickets/{ticket}",
    operation_id = "activities_leave",
    tag = "activities",
    params(("id" = String, Path, description = "The activity id"), ("ticket" = String, Path, description = "The ticket")),
    responses(
        (status = 200, description = "The ticket, now `left`", body = crate::domain::activity::TicketView),
        (status = 401, description = "`unauthorized`: missing, malformed, badly signed or expired identity token", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: someone else's ticket", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such activity or ticket", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("user" = []), ("user_query" = []))
)]
pub(crate) async fn leave(
    user: User,
    st: Data<AppState>,
    path: Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, t) = path.into_inner();
    let ticket = ticket_param(&t)?;
    let v = call_id(
        &st,
        &id,
        LeaveTicket {
            user: user.0,
            ticket,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(v))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PurchaseBody {
    /// The purchase token from `admitted` or the ticket.
    token: String,
    /// Default 1; 1..`per_user_limit`, at most the units the token holds.
    quantity: Option<u32>,
    /// Appointments only (required there); refused for a sale.
    slot_id: Option<String>,
}

/// Buys with a purchase token. Idempotent per token.
#[utoipa::path(
    post,
    path = "/api/activities/{id}/purchase",
    operation_id = "activities_purchase",
    tag = "activities",
    params(("id" = String, Path, description = "The activity id")),
    request_body = PurchaseBody,
    responses(
        (status = 201, description = "The order, once durable", body = crate::http::orders::OrderBody),
        (status = 200, description = "The same token again: the same order", body = crate::http::orders::OrderBody),
        (status = 400, description = "`invalid_request`: `quantity` out of 1..`per_user_limit`, a missing or unknown `slot_id` for an appointment, a `slot_id` for a sale, a bad body", body = crate::http::schemas::ErrorBody),
        (status = 401, description = "`unauthorized` (identity) or `token_invalid` (malformed, forged, another activity's, or no longer holding units)", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: the token was issued to another user", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such activity", body = crate::http::schemas::ErrorBody),
        (status = 409, description = "`not_open` (closed), `limit_reached`, `sold_out` (more than the units held, or the slot is full)", body = crate::http::schemas::ErrorBody),
        (status = 410, description = "`token_expired`: the token expired before it was used", body = crate::http::schemas::ErrorBody),
        (status = 413, description = "`payload_too_large`: body over `server.max_body_bytes`", body = crate::http::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`; `Retry-After` set", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("user" = []), ("user_query" = []))
)]
pub(crate) async fn purchase(
    req: HttpRequest,
    user: User,
    st: Data<AppState>,
    id: Path<String>,
    body: Json<PurchaseBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let p = purchase_as(
        &req,
        &st,
        user.0,
        &id,
        &body.token,
        body.quantity,
        body.slot_id,
    )
    .await?;
    let mut res = if p.created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(res.json(crate::http::orders::OrderBody::of(&p.order)))
}

/// A purchase with a token: limits, the token's signature, then `Purchase`. Also the
/// server-rendered page's purchase.
pub async fn purchase_as(
    req: &HttpRequest,
    st: &AppState,
    user: UserId,
    raw_id: &str,
    token: &str,
    quantity: Option<u32>,
    slot_id: Option<String>,
) -> Result<Purchased, ApiError> {
    st.limits.check_purchase(req, &user)?;
    // The activity before the token: an id that names nothing is `404` whatever the
    // body carries (a malformed token there is not `token_invalid`).
    let addr = actor(st, &activity_id(raw_id)?)?;
    let claims = st
        .registry
        .key()
        .verify(token)
        .map_err(|e| ApiError::new(ErrorCode::TokenInvalid, e.to_string()))?;
    let slot_id = slot_id
        .map(|s| SlotId::parse(&s).map_err(|e| ApiError::invalid(e.0)))
        .transpose()?;
    let purchase = Purchase {
        user,
        claims,
        quantity: quantity.unwrap_or(1),
        slot_id,
    };
    call(st, &addr, purchase).await
}
