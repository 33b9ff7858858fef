//! Schemas of the OpenAPI document for the bodies handlers write with `json!` (their
//! shape is the contract of `docs/api.md`); nothing serializes them. Kept apart from
//! `openapi` so handlers can name them without importing the document, which
//! imports the handlers.

use utoipa::ToSchema;

/// Every error: `{"error":{"code","message"}}` (docs/api.md 3).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// What to program against.
    code: ErrorCodeName,
    /// For a person; may change.
    message: String,
}

/// The error codes of docs/api.md section 3 (the `code` strings of `ErrorCode`).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = ErrorCode)]
#[allow(non_camel_case_types)]
pub enum ErrorCodeName {
    invalid_request,
    unauthorized,
    forbidden,
    not_found,
    conflict,
    sold_out,
    limit_reached,
    not_open,
    token_expired,
    token_invalid,
    payload_too_large,
    rate_limited,
    queue_full,
    unavailable,
    internal,
}

/// `201` of `POST /api/auth/register`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Registered {
    user_id: String,
}

/// `200` of `POST /api/auth/login`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LoggedIn {
    /// An HS256 identity token (use as `Authorization: Bearer`).
    access_token: String,
    /// Seconds the token is valid (`auth.token_lifetime_secs`).
    expires_in: u64,
    /// The token's `sub` (extension).
    user_id: String,
}

/// `{"activities":[VIEW, ...]}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ActivityList {
    activities: Vec<crate::domain::activity::ActivityView>,
}

/// `{"orders":[ORDER, ...]}`: the caller's orders in every activity.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct OrderList {
    orders: Vec<crate::domain::order::OrderView>,
}

/// A proof-of-work challenge bound to the caller, valid 120 s (docs/api.md 6.3).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Challenge {
    nonce: String,
    /// Leading zero bits required (`admission.join_pow_bits`).
    bits: u8,
    /// RFC 3339.
    expires_at: String,
    algorithm: String,
}

/// `{"status":"ok"}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Health {
    status: String,
}

/// `GET /readyz` (docs/api.md 12).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Readiness {
    ready: bool,
    /// `ok`, `cannot write` or `draining`.
    store: String,
    /// `none`, `ok` or `unreachable`.
    sink: String,
    /// Order records waiting for the sink.
    outbox_backlog: u64,
    /// `off`, `ok` or `unreachable`.
    cluster: String,
}

/// The pre-queue shuffle audit (docs/api.md 9.2).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ShuffleAudit {
    /// The opening time, Unix ms.
    at: u64,
    seed_hex: String,
    algorithm: String,
    /// User ids in their resulting admission order.
    order: Vec<String>,
}

/// `201` of `POST /api/admin/webhooks`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WebhookCreated {
    id: String,
    url: String,
    events: Vec<String>,
    /// `whsec_` + base64 of the signing key; shown only here.
    secret: String,
}

/// `200` of `GET /api/admin/webhooks`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WebhookList {
    webhooks: Vec<crate::webhooks::WebhookView>,
}

/// `200` of `GET /api/admin/webhooks/{id}/deliveries`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DeliveryList {
    deliveries: Vec<crate::webhooks::Attempt>,
}
