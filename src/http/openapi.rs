//! The OpenAPI 3.1 document of the HTTP API, derived at compile time (utoipa) from
//! the `#[utoipa::path]` attributes on the handlers and the `ToSchema` derives on the
//! request and response types. Served at `GET /api/openapi.json`: built once, on the
//! first request, then served as the same bytes; `docs/openapi.json` is a copy that
//! `tests/openapi.rs` keeps equal.
//!
//! The bodies handlers write with `json!` are described in `schemas`.

use crate::http::schemas::{ErrorBody, ErrorCodeName, ErrorDetail};
use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use std::sync::LazyLock;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/openapi.json", web::get().to(serve));
}

static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| Bytes::from(render()));

/// The document as served: pretty JSON with a final newline.
pub fn render() -> String {
    let mut s = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    s.push('\n');
    s
}

/// The OpenAPI document of this server.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openapi_document",
    tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object))
)]
pub(crate) async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT.clone())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sluice",
        description = "A fair virtual waiting room and inventory engine. The contract in prose, with every rule, is docs/api.md; errors are `{\"error\":{\"code\",\"message\"}}` with the HTTP status of their code (docs/api.md section 3), and `429`/`503` carry `Retry-After`.",
        license(name = "MIT", identifier = "MIT")
    ),
    paths(
        crate::http::auth::register,
        crate::http::auth::login,
        crate::http::activities::list,
        crate::http::activities::get,
        crate::http::activities::challenge,
        crate::http::activities::join,
        crate::http::activities::ticket,
        crate::http::activities::leave,
        crate::http::activities::purchase,
        crate::http::orders::list,
        crate::http::orders::get,
        crate::http::orders::pay,
        crate::http::orders::cancel,
        crate::http::ws_route::not_upgraded,
        crate::http::admin::create,
        crate::http::admin::list,
        crate::http::admin::get,
        crate::http::admin::add_stock,
        crate::http::admin::add_slots,
        crate::http::admin::pause,
        crate::http::admin::resume,
        crate::http::admin::close,
        crate::http::admin::patch_admission,
        crate::http::admin::schedule,
        crate::http::admin::shuffle,
        crate::http::admin::events,
        crate::http::admin::event_ticket,
        crate::http::admin::cluster,
        crate::http::admin_orders::get,
        crate::http::admin_orders::pay,
        crate::http::admin_orders::cancel,
        crate::http::audit::list,
        crate::http::webhooks::create,
        crate::http::webhooks::list,
        crate::http::webhooks::remove,
        crate::http::webhooks::deliveries,
        crate::http::report::report,
        crate::http::fairness::fairness,
        crate::http::fairness::log,
        crate::http::ops::healthz,
        crate::http::ops::readyz,
        crate::http::ops::metrics,
        crate::http::gate::jwks,
        crate::http::gate::verify,
        crate::http::gate::enter,
        crate::http::gate::rotate,
        crate::http::gate::invites,
        crate::http::gate::revoke,
        serve,
    ),
    components(schemas(ErrorBody, ErrorDetail, ErrorCodeName)),
    modifiers(&Security),
    tags(
        (name = "accounts", description = "Register and log in (docs/api.md 2)"),
        (name = "activities", description = "Activities, the waiting room, purchases (docs/api.md 5, 6, 8, 10.1)"),
        (name = "orders", description = "Orders (docs/api.md 10)"),
        (name = "admin", description = "Operator API, bearer admin key with the right role (docs/api.md 4, 12; docs/api.md \"Scoped admin keys\")"),
        (name = "shop", description = "The shop's backend: read orders, confirm payment, cancel (docs/api.md \"Payment confirmed by the shop\")"),
        (name = "gate", description = "Gate activities: pass keys, verification, the hand-off to the origin (docs/gate.md)"),
        (name = "operations", description = "Health, readiness, metrics, this document (docs/api.md 12)"),
    )
)]
pub struct ApiDoc;

/// The security schemes: a user's JWT, as a bearer header or (for WebSockets) a query
/// parameter, and an admin key, as a bearer header only.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "user",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "HS256 JWT with `sub` and `exp`, signed with `auth.jwt_secret` (docs/api.md 2)",
                    ))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "user_query",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "access_token",
                "The user's JWT as `?access_token=` (browsers' WebSockets cannot set headers)",
            ))),
        );
        c.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An admin key (`admin.api_key` or one of `admin.keys`) as a bearer token; its role decides what it may do",
                    ))
                    .build(),
            ),
        );
    }
}
