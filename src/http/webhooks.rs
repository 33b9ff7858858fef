//! `/api/admin/webhooks`: register, list and remove receivers, and read their recent
//! delivery attempts (docs/api.md, "Webhooks"). The secret is shown once, at creation.

use crate::domain::webhook::{check_url, redacted_url, secret_text, target, EventType};
use crate::error::{ApiError, ErrorCode};
use crate::http::admin_keys::Read;
use crate::http::identity::Admin;
use crate::http::schemas::{WebhookCreated, WebhookList};
use crate::http::state::AppState;
use crate::store::webhooks::{Webhook, WebhooksUnavailable};
use actix_web::web::{self, Data, Json, Path};
use actix_web::HttpResponse;
use rand::RngCore;
use serde::Deserialize;

/// Receivers one deployment may register: each costs a worker and a cursor per activity.
pub const MAX_WEBHOOKS: usize = 100;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/admin/webhooks")
            .route("", web::post().to(create))
            .route("", web::get().to(list))
            .route("/{id}", web::delete().to(remove))
            .route("/{id}/deliveries", web::get().to(deliveries)),
    );
}

/// `POST /api/admin/webhooks`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where events are POSTed: an absolute `http` or `https` URL (private and
    /// loopback addresses allowed); `user:password@` is sent as HTTP Basic
    /// authorization (and never shown again), a `#fragment` is not sent.
    pub url: String,
    /// One or more of `order.created`, `order.paid`, `order.cancelled`,
    /// `activity.phase_changed`, `place.admitted`.
    pub events: Vec<String>,
}

fn unavailable(e: WebhooksUnavailable) -> ApiError {
    ApiError::new(ErrorCode::Unavailable, e.to_string())
}

fn parse_events(names: &[String]) -> Result<Vec<EventType>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::invalid(
            "events must name at least one event type",
        ));
    }
    let mut out = Vec::new();
    for n in names {
        let t = EventType::parse(n).ok_or_else(|| {
            ApiError::invalid(format!(
                "events: unknown event type {:?}; one of {}",
                n.chars().take(64).collect::<String>(),
                EventType::ALL.map(EventType::as_str).join(", ")
            ))
        })?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    out.sort();
    Ok(out)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// Registers a receiver.
#[utoipa::path(
    post,
    path = "/api/admin/webhooks",
    operation_id = "admin_webhook_create",
    tag = "admin",
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "The registration with its signing secret (shown only here)", body = WebhookCreated),
        (status = 400, description = "`invalid_request`: a bad URL, no or unknown event types", body = crate::http::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 409, description = "`conflict`: already 100 receivers", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: the registrations cannot be written", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn create(
    _: Admin,
    st: Data<AppState>,
    body: Json<CreateWebhook>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    check_url(&body.url).map_err(ApiError::invalid)?;
    // What the delivery client must be able to send to, too.
    if target(&body.url)
        .url
        .parse::<actix_web::http::Uri>()
        .is_err()
    {
        return Err(ApiError::invalid("url is not a valid URL"));
    }
    let events = parse_events(&body.events)?;
    if st.webhooks.list().len() >= MAX_WEBHOOKS {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("at most {MAX_WEBHOOKS} webhooks; delete one first"),
        ));
    }
    let id = format!("wh_{}", hex(&random_bytes::<12>()));
    let hook = Webhook {
        id: id.clone(),
        url: body.url,
        events,
        secret: secret_text(&random_bytes::<24>()),
        created_at: st.clock.now_ms(),
    };
    st.webhooks.add(hook.clone()).await.map_err(unavailable)?;
    let shown = redacted_url(&hook.url);
    tracing::info!(webhook = %id, url = %shown, "webhook registered");
    Ok(HttpResponse::Created().json(serde_json::json!({
        "id": hook.id,
        "url": shown,
        "events": crate::webhooks::names(&hook.events),
        "secret": hook.secret,
    })))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Lists the receivers (without secrets) and their delivery health on this node.
#[utoipa::path(
    get,
    path = "/api/admin/webhooks",
    operation_id = "admin_webhook_list",
    tag = "admin",
    responses(
        (status = 200, description = "Every registration", body = WebhookList),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn list(_: Admin<Read>, st: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "webhooks": st.webhooks.views() }))
}

/// Removes a receiver; nothing more is sent to it.
#[utoipa::path(
    delete,
    path = "/api/admin/webhooks/{id}",
    operation_id = "admin_webhook_delete",
    tag = "admin",
    params(("id" = String, Path, description = "The webhook id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such webhook", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: the registrations cannot be written", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn remove(
    _: Admin,
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    if !st.webhooks.remove(&id).await.map_err(unavailable)? {
        return Err(ApiError::not_found("no such webhook"));
    }
    tracing::info!(webhook = %id, "webhook removed");
    Ok(HttpResponse::NoContent().finish())
}

/// Recent delivery attempts to a receiver from this node, newest first.
#[utoipa::path(
    get,
    path = "/api/admin/webhooks/{id}/deliveries",
    operation_id = "admin_webhook_deliveries",
    tag = "admin",
    params(("id" = String, Path, description = "The webhook id")),
    responses(
        (status = 200, description = "Up to the last 100 attempts", body = crate::http::schemas::DeliveryList),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such webhook", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn deliveries(
    _: Admin<Read>,
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    if st.webhooks.get(&id).is_none() {
        return Err(ApiError::not_found("no such webhook"));
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({ "deliveries": st.webhooks.attempts(&id) })))
}
