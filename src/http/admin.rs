//! Operator endpoints under `/api/admin`: create and steer activities, and a live
//! Server-Sent Events stream of every activity's counters for the dashboard.

use crate::actors::messages::Admin as AdminCall;
use crate::cluster::client::forward;
use crate::domain::spec::{AdmissionPatch, CreateActivity, SlotSpec};
use crate::error::ApiError;
use crate::http::calls::{activity_id, call, call_id};
use crate::http::identity::Admin;
use crate::http::internal::internal_caller;
use crate::http::limits::client_ip;
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
    if let Some(c) = &st.cluster {
        // Created on its rendezvous node, so activities spread over the cluster.
        let forwarded = internal_caller(&req).is_some();
        if let Some((node, base)) = c
            .preferred(&spec.id)
            .filter(|(n, _)| !forwarded && *n != c.node_id)
        {
            tracing::info!(activity_id = %spec.id, node = %node, "creating activity on its node");
            let json = serde_json::to_vec(&body).map_err(|e| ApiError::invalid(e.to_string()))?;
            let res = forward(&req, json.into(), &base, c.key(), client_ip(&req)).await;
            c.refresh().await;
            return Ok(res);
        }
        tracing::info!(activity_id = %spec.id, kind = ?spec.kind, "creating activity (owned here)");
        return Ok(HttpResponse::Created().json(c.create(spec, slots).await?));
    }
    tracing::info!(activity_id = %spec.id, kind = ?spec.kind, "creating activity");
    let view = st.registry.create(spec, slots, None).await?;
    Ok(HttpResponse::Created().json(view))
}

async fn cluster(_: Admin, st: Data<AppState>) -> HttpResponse {
    match &st.cluster {
        Some(c) => HttpResponse::Ok().json(c.describe()),
        None => HttpResponse::Ok().json(serde_json::json!({"enabled": false})),
    }
}

/// Every activity's view, for the operator (`admin = true`) or the public.
/// Views of every activity running here; in cluster mode (unless `local_only`, as
/// for a peer's fan-out) also those of every other live node, by id.
pub async fn all_views(st: &AppState, admin: bool) -> Vec<serde_json::Value> {
    all_views_from(st, admin, false).await
}

pub async fn all_views_from(
    st: &AppState,
    admin: bool,
    local_only: bool,
) -> Vec<serde_json::Value> {
    let mut views = std::collections::BTreeMap::new();
    for (id, addr) in st.registry.all() {
        if let Ok(v) = call(st, &addr, AdminCall::View { admin }).await {
            views.insert(id.to_string(), serde_json::to_value(v).unwrap_or_default());
        }
    }
    if let (Some(c), false) = (&st.cluster, local_only) {
        let path = if admin {
            "/api/admin/activities"
        } else {
            "/api/activities"
        };
        let bearer =
            actix_web::http::header::HeaderValue::from_str(&format!("Bearer {}", c.key())).ok();
        let auth = if admin { bearer.as_ref() } else { None };
        for (node, base) in c.peers() {
            match crate::cluster::client::get_json::<serde_json::Value>(&base, path, c.key(), auth)
                .await
            {
                Ok(v) => {
                    for view in v["activities"].as_array().cloned().unwrap_or_default() {
                        if let Some(id) = view["id"].as_str() {
                            views.entry(id.to_owned()).or_insert(view);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(node = %node, error = %e, "cannot list a node's activities")
                }
            }
        }
    }
    views.into_values().collect()
}

async fn list(_: Admin, req: HttpRequest, st: Data<AppState>) -> HttpResponse {
    let local_only = internal_caller(&req).is_some();
    HttpResponse::Ok()
        .json(serde_json::json!({ "activities": all_views_from(&st, true, local_only).await }))
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
    let key = crate::store::layout::activity_key(&id, "shuffle");
    match st.store.get(&key) {
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
async fn events(_: Admin, st: Data<AppState>) -> HttpResponse {
    let stream = futures_util::stream::unfold((st, true), |(st, first)| async move {
        if !first {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let body = serde_json::json!({
            "ts_ms": st.clock.now_ms(),
            "activities": all_views(&st, true).await,
            "outbox_backlog": st.store.outbox_len(),
        });
        let frame = Bytes::from(format!("data: {body}\n\n"));
        Some((Ok::<_, actix_web::Error>(frame), (st, false)))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(stream)
}
