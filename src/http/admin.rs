//! Operator endpoints under `/api/admin`: create and steer activities, and a live
//! Server-Sent Events stream of every activity's counters for the dashboard.

use crate::actors::messages::Admin as AdminCall;
use crate::domain::spec::{AdmissionPatch, CreateActivity, SlotSpec};
use crate::error::ApiError;
use crate::http::calls::{activity_id, call_id};
use crate::http::identity::Admin;
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
            .route("/activities/{id}/shuffle", web::get().to(shuffle)),
    );
}

async fn create(
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

async fn cluster(_: Admin, st: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(st.directory.status())
}

async fn list(_: Admin, req: HttpRequest, st: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .json(serde_json::json!({ "activities": st.directory.views(&req, true).await }))
}

async fn get(_: Admin, st: Data<AppState>, id: Path<String>) -> Result<HttpResponse, ApiError> {
    let v = call_id(&st, &id, AdminCall::View { admin: true }).await?;
    Ok(HttpResponse::Ok().json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddStock {
    add: u32,
}

async fn add_stock(
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddSlots {
    slots: Vec<SlotSpec>,
}

async fn add_slots(
    _: Admin,
    st: Data<AppState>,
    id: Path<String>,
    body: Json<AddSlots>,
) -> Result<HttpResponse, ApiError> {
    let v = call_id(&st, &id, AdminCall::AddSlots(body.into_inner().slots)).await?;
    Ok(HttpResponse::Ok().json(v))
}

async fn pause(_: Admin, st: Data<AppState>, id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(call_id(&st, &id, AdminCall::Pause).await?))
}

async fn resume(_: Admin, st: Data<AppState>, id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(call_id(&st, &id, AdminCall::Resume).await?))
}

async fn close(_: Admin, st: Data<AppState>, id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(call_id(&st, &id, AdminCall::Close).await?))
}

async fn patch_admission(
    _: Admin,
    st: Data<AppState>,
    id: Path<String>,
    body: Json<AdmissionPatch>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok()
        .json(call_id(&st, &id, AdminCall::PatchAdmission(body.into_inner())).await?))
}

/// The audit of the pre-queue shuffle: seed, algorithm and resulting order.
async fn shuffle(_: Admin, st: Data<AppState>, id: Path<String>) -> Result<HttpResponse, ApiError> {
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

/// `text/event-stream`: one `data:` line a second with every activity's admin view
/// and the outbox backlog. EventSource cannot set headers, so the key may come as
/// `?api_key=`.
async fn events(_: Admin, req: HttpRequest, st: Data<AppState>) -> HttpResponse {
    let stream = futures_util::stream::unfold((st, req, true), |(st, req, first)| async move {
        if !first {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let body = serde_json::json!({
            "ts_ms": st.clock.now_ms(),
            "activities": st.directory.views(&req, true).await,
            "outbox_backlog": st.store.outbox_len(),
        });
        let frame = Bytes::from(format!("data: {body}\n\n"));
        Some((Ok::<_, actix_web::Error>(frame), (st, req, false)))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(stream)
}
