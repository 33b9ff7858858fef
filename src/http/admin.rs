//! Operator endpoints under `/api/admin`: create and steer activities (operator keys),
//! read them (operator and viewer keys), and a live Server-Sent Events stream of every
//! activity's counters for the dashboard, opened with a short-lived ticket.

use crate::actors::messages::Admin as AdminCall;
use crate::domain::spec::{AdmissionPatch, CreateActivity, SlotSpec};
use crate::error::ApiError;
use crate::http::admin_keys::{Read, Right};
use crate::http::calls::{activity_id, call_id};
use crate::http::event_ticket::TTL_MS;
use crate::http::identity::{admin_key_of, allowed, Admin};
use crate::http::state::AppState;
use actix_web::web::{self, Bytes, Data, Json, Path};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use std::time::Duration;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/admin")
            .route("/activities", web::post().to(create))
            .route("/activities", web::get().to(list))
            .route("/events", web::get().to(events))
            .route("/events/ticket", web::post().to(event_ticket))
            .route("/cluster", web::get().to(cluster))
            .route("/activities/{id}", web::get().to(get))
            .route("/activities/{id}/stock", web::post().to(add_stock))
            .route("/activities/{id}/slots", web::post().to(add_slots))
            .route("/activities/{id}/pause", web::post().to(pause))
            .route("/activities/{id}/resume", web::post().to(resume))
            .route("/activities/{id}/close", web::post().to(close))
            .route(
                "/activities/{id}/admission",
                web::patch().to(patch_admission),
            )
            .route("/activities/{id}/schedule", web::patch().to(schedule))
            .route("/activities/{id}/shuffle", web::get().to(shuffle)),
    );
}

/// Creates an activity.
#[utoipa::path(
    post,
    path = "/api/admin/activities",
    operation_id = "admin_create",
    tag = "admin",
    request_body = CreateActivity,
    responses(
        (status = 201, description = "The admin view", body = crate::domain::activity::ActivityView),
        (status = 400, description = "`invalid_request` naming the bad field", body = crate::http::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: the admin key's role may not do this", body = crate::http::schemas::ErrorBody),
        (status = 409, description = "`conflict`: the id exists", body = crate::http::schemas::ErrorBody),
        (status = 413, description = "`payload_too_large`: body over `server.max_body_bytes`", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn create(
    _: Admin,
    req: HttpRequest,
    st: Data<AppState>,
    body: Json<CreateActivity>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (spec, slots) = body
        .clone()
        .validate(st.clock.now_ms())
        .map_err(|e| ApiError::invalid(e.0))?;
    st.directory.create(&req, body, spec, slots).await
}

/// This node's view of the cluster (`{"enabled": false}` without cluster mode; extension).
#[utoipa::path(
    get,
    path = "/api/admin/cluster",
    operation_id = "admin_cluster",
    tag = "admin",
    responses(
        (status = 200, description = "The cluster view (docs/cluster.md)", body = Object),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: the admin key's role may not do this", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn cluster(_: Admin<Read>, st: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(st.directory.status())
}

/// Every activity with the admin fields (extension).
#[utoipa::path(
    get,
    path = "/api/admin/activities",
    operation_id = "admin_list",
    tag = "admin",
    responses(
        (status = 200, description = "Every activity", body = crate::http::schemas::ActivityList),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: the admin key's role may not do this", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn list(_: Admin<Read>, req: HttpRequest, st: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .json(serde_json::json!({ "activities": st.directory.views(&req, true).await }))
}

/// One activity with every counter.
#[utoipa::path(
    get,
    path = "/api/admin/activities/{id}",
    operation_id = "admin_get",
    tag = "admin",
    params(("id" = String, Path, description = "The activity id")),
    responses(
        (status = 200, description = "The admin view", body = crate::domain::activity::ActivityView),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: the admin key's role may not do this", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such activity", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn get(
    _: Admin<Read>,
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let v = call_id(&st, &id, AdminCall::View { admin: true }).await?;
    Ok(HttpResponse::Ok().json(v))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddStock {
    /// Units to release, 1..=100000000.
    add: u32,
}

/// Sale: releases more units.
#[utoipa::path(
    post,
    path = "/api/admin/activities/{id}/stock",
    operation_id = "admin_add_stock",
    tag = "admin",
    params(("id" = String, Path, description = "The activity id")),
    request_body = AddStock,
    responses(
        (status = 200, description = "The admin view", body = crate::domain::activity::ActivityView),
        (status = 400, description = "`invalid_request`: a bad body, or the wrong kind of activity", body = crate::http::schemas::ErrorBody),
        (status = 409, description = "`conflict`: the activity is closed", body = crate::http::schemas::ErrorBody),
        (status = 413, description = "`payload_too_large`: body over `server.max_body_bytes`", body = crate::http::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: the admin key's role may not do this", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such activity", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn add_stock(
    _: Admin,
    st: Data<AppState>,
    id: Path<String>,
    body: Json<AddStock>,
) -> Result<HttpResponse, ApiError> {
    if body.add == 0 || body.add > crate::domain::spec::MAX_CAPACITY {
        return Err(ApiError::invalid(format!(
            "add must be between 1 and {}",
            crate::domain::spec::MAX_CAPACITY
        )));
    }
    let v = call_id(&st, &id, AdminCall::AddStock(body.add)).await?;
    Ok(HttpResponse::Ok().json(v))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddSlots {
    /// New slots, or more capacity for existing ids (their label is kept).
    slots: Vec<SlotSpec>,
}

/// Appointment: adds slots, or capacity to existing ones.
#[utoipa::path(
    post,
    path = "/api/admin/activities/{id}/slots",
    operation_id = "admin_add_slots",
    tag = "admin",
    params(("id" = String, Path, description = "The activity id")),
    request_body = AddSlots,
    responses(
        (status = 200, description = "The admin view", body = crate::domain::activity::ActivityView),
        (status = 400, description = "`invalid_request`: a bad body, or the wrong kind of activity", body = crate::http::schemas::ErrorBody),
        (status = 409, description = "`conflict`: the activity is closed", body = crate::http::schemas::ErrorBody),
        (status = 413, description = "`payload_too_large`: body over `server.max_body_bytes`", body = crate::http::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: the admin key's role may not do this", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such activity", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn add_slots(
    _: Admin,
    st: Data<AppState>,
    id: Path<String>,
    body: Json<AddSlots>,
) -> Result<HttpResponse, ApiError> {
    let v = call_id(&st, &id, AdminCall::AddSlots(body.into_inner().slots)).await?;
    Ok(HttpResponse::Ok().json(v))
}

/// Stops admitting.
#[utoipa::path(
    post,
    path = "/api/admin/activities/{id}/pause",
    operation_id = "admin_pause",
    tag = "admin",
    params(("id" = String, Path, description = "The activity id")),
    responses(
        (status = 200, description = "The admin view", body = crate::domain::activity::ActivityView),
        (status = 409, description = "`conflict`: the activity is closed", body = crate::http::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: the admin key's role may not do this", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such activity", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn pause(
    _: Admin,
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(call_id(&st, &id, AdminCall::Pause).await?))
}

/// Admits again.
#[utoipa::path(
    post,
    path = "/api/admin/activities/{id}/resume",
    operation_id = "admin_resume",
    tag = "admin",
    params(("id" = String, Path, description = "The activity id")),
    responses(
        (status = 200, description = "The admin view", body = crate::domain::activity::ActivityView),
        (status = 409, description = "`conflict`: the activity is closed", body = crate::http::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: the admin key's role may not do this", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such activity", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn resume(
    _: Admin,
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(call_id(&st, &id, AdminCall::Resume).await?))
}

/// Ends the activity for good (idempotent).
#[utoipa::path(
    post,
    path = "/api/admin/activities/{id}/close",
    operation_id = "admin_close",
    tag = "admin",
    params(("id" = String, Path, description = "The activity id")),
    responses(
        (status = 200, description = "The admin view", body = crate::domain::activity::ActivityView),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: the admin key's role may not do this", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such activity", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn close(
    _: Admin,
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(call_id(&st, &id, AdminCall::Close).await?))
}

/// Changes admission settings live (any subset of the `admission` fields).
#[utoipa::path(
    patch,
    path = "/api/admin/activities/{id}/admission",
    operation_id = "admin_patch_admission",
    tag = "admin",
    params(("id" = String, Path, description = "The activity id")),
    request_body = AdmissionPatch,
    responses(
        (status = 200, description = "The admin view", body = crate::domain::activity::ActivityView),
        (status = 400, description = "`invalid_request`: a value out of range or an unknown field", body = crate::http::schemas::ErrorBody),
        (status = 409, description = "`conflict`: the activity is closed", body = crate::http::schemas::ErrorBody),
        (status = 413, description = "`payload_too_large`: body over `server.max_body_bytes`", body = crate::http::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: the admin key's role may not do this", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such activity", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn patch_admission(
    _: Admin,
    st: Data<AppState>,
    id: Path<String>,
    body: Json<AdmissionPatch>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .json(call_id(&st, &id, AdminCall::PatchAdmission(body.into_inner())).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Schedule {
    /// RFC 3339, in the future; `null` opens the activity now. Required.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, required = true)]
    opens_at: Option<Option<String>>,
}

/// Tells a field given as `null` (`Some(None)`) from a missing one (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Sets the opening time of an activity that has not opened (or opened at creation
/// and nobody joined yet): commits to a fairness seed, kept when the time moves again.
#[utoipa::path(
    patch,
    path = "/api/admin/activities/{id}/schedule",
    operation_id = "admin_schedule",
    tag = "admin",
    params(("id" = String, Path, description = "The activity id")),
    request_body = Schedule,
    responses(
        (status = 200, description = "The admin view, with `fairness.commitment`", body = crate::domain::activity::ActivityView),
        (status = 400, description = "`invalid_request`: `opens_at` missing, not RFC 3339, not in the future or not before `closes_at`; an unknown field", body = crate::http::schemas::ErrorBody),
        (status = 409, description = "`conflict`: the activity is closed, opened on its schedule, or has been joined", body = crate::http::schemas::ErrorBody),
        (status = 413, description = "`payload_too_large`: body over `server.max_body_bytes`", body = crate::http::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such activity", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn schedule(
    _: Admin,
    st: Data<AppState>,
    id: Path<String>,
    body: Json<Schedule>,
) -> Result<HttpResponse, ApiError> {
    let Some(opens_at) = body.into_inner().opens_at else {
        return Err(ApiError::invalid(
            "opens_at is required (RFC 3339, or null to open now)",
        ));
    };
    let opens_at = match opens_at {
        None => None,
        Some(s) => Some(
            crate::domain::clock::parse_rfc3339(&s)
                .ok_or_else(|| ApiError::invalid("opens_at must be an RFC 3339 time"))?,
        ),
    };
    // Drawn here, used only if the activity has no seed yet (the domain draws nothing).
    let seed = crate::actors::registry::draw_seed();
    let v = call_id(&st, &id, AdminCall::Schedule { opens_at, seed }).await?;
    Ok(HttpResponse::Ok().json(v))
}

/// The audit of the pre-queue shuffle: seed, algorithm and resulting order.
#[utoipa::path(
    get,
    path = "/api/admin/activities/{id}/shuffle",
    operation_id = "admin_shuffle",
    tag = "admin",
    params(("id" = String, Path, description = "The activity id")),
    responses(
        (status = 200, description = "The shuffle audit", body = crate::http::schemas::ShuffleAudit),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: the admin key's role may not do this", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such activity, or it has not shuffled a pre-queue", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn shuffle(
    _: Admin<Read>,
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = activity_id(&id)?;
    crate::http::calls::actor(&st, &id)?;
    match st.store.shuffle_audit(&id) {
        Ok(Some(v)) => Ok(HttpResponse::Ok().content_type("application/json").body(v)),
        Ok(None) => Err(ApiError::not_found(
            "this activity has not shuffled a pre-queue",
        )),
        Err(e) => {
            tracing::error!(error = %e, "cannot read shuffle audit");
            Err(ApiError::new(
                crate::error::ErrorCode::Unavailable,
                "the store cannot be read",
            ))
        }
    }
}

/// The path of the event-stream ticket (not audited: it changes nothing).
pub const EVENT_TICKET_PATH: &str = "/api/admin/events/ticket";

/// `{"ticket", "expires_in_secs"}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct EventTicket {
    /// Opens `GET /api/admin/events?ticket=...` once, within `expires_in_secs`.
    ticket: String,
    expires_in_secs: u64,
}

/// A single-use, short-lived ticket for the event stream (operator and viewer keys):
/// `EventSource` cannot send the key in a header, and a key never goes in a URL.
#[utoipa::path(
    post,
    path = "/api/admin/events/ticket",
    operation_id = "admin_events_ticket",
    tag = "admin",
    responses(
        (status = 200, description = "The ticket", body = EventTicket),
        (status = 401, description = "`unauthorized`: missing or unknown admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: a shop key", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn event_ticket(admin: Admin<Read>, st: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(EventTicket {
            ticket: st.event_tickets.issue(&admin.key.name, st.clock.now_ms()),
            expires_in_secs: TTL_MS / 1000,
        })
}

#[derive(Deserialize)]
struct TicketQuery {
    ticket: Option<String>,
}

/// The stream's reader: a bearer key with the right to read, or a ticket one issued.
fn stream_reader(req: &HttpRequest, st: &AppState) -> Result<(), ApiError> {
    let ticket = web::Query::<TicketQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.into_inner().ticket);
    let Some(ticket) = ticket else {
        let key = admin_key_of(req)?;
        return allowed::<Read>(&key);
    };
    st.limits.check_admin(req)?;
    let name = st
        .event_tickets
        .redeem(&ticket, st.clock.now_ms())
        .map_err(|e| ApiError::unauthorized(e.to_string()))?;
    // The key may have been removed from the configuration since (a restart).
    match st.admin_keys.named(&name) {
        Some(k) if Read::allows(k.role) => Ok(()),
        _ => Err(ApiError::unauthorized(
            "the event ticket's key no longer exists",
        )),
    }
}

/// `text/event-stream`: one `data:` line a second with every activity's admin view
/// and the outbox backlog. `EventSource` cannot set headers, so it opens the stream
/// with `?ticket=` from `POST /api/admin/events/ticket`.
#[utoipa::path(
    get,
    path = "/api/admin/events",
    operation_id = "admin_events",
    tag = "admin",
    responses(
        (status = 200, description = "`data:` lines, one a second: `{\"ts_ms\", \"activities\":[VIEW], \"outbox_backlog\", \"payment_mode\"}`", content_type = "text/event-stream", body = String),
        (status = 401, description = "`unauthorized`: missing or unknown admin key; a forged, expired or used ticket", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: a shop key", body = crate::http::schemas::ErrorBody)
    ),
    params(("ticket" = Option<String>, Query, description = "A ticket from `POST /api/admin/events/ticket`, instead of the bearer key")),
    security(("admin" = []), ())
)]
pub(crate) async fn events(req: HttpRequest, st: Data<AppState>) -> Result<HttpResponse, ApiError> {
    stream_reader(&req, &st)?;
    let stream = futures_util::stream::unfold((st, req, true), |(st, req, first)| async move {
        if !first {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let body = serde_json::json!({
            "ts_ms": st.clock.now_ms(),
            "activities": st.directory.views(&req, true).await,
            "outbox_backlog": st.store.outbox_len(),
            "payment_mode": st.payment,
        });
        let frame = Bytes::from(format!("data: {body}\n\n"));
        Some((Ok::<_, actix_web::Error>(frame), (st, req, false)))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(stream))
}
