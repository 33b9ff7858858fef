//! The shop's calls on orders, server to server under `/api/admin/orders`: read one,
//! confirm its payment (with the payment provider's reference), cancel it. Confirming
//! is how an order gets paid with `payment.mode = "external"`; it goes through the
//! activity's actor and is answered once durable, like the buyer's own call.

use crate::actors::messages::OrderCall;
use crate::domain::order::PaymentRef;
use crate::error::ApiError;
use crate::http::admin_keys::{ReadOrders, Settle};
use crate::http::body::RawBody;
use crate::http::identity::Admin;
use crate::http::orders::order_call;
use crate::http::state::AppState;
use actix_web::web::{self, Data, Path};
use actix_web::HttpResponse;
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/orders/{id}", web::get().to(get))
        .route("/api/admin/orders/{id}/pay", web::post().to(pay))
        .route("/api/admin/orders/{id}/cancel", web::post().to(cancel));
}

/// The optional body of a payment confirmation.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfirmPayment {
    /// The payment provider's reference, 1-128 characters; kept on the order.
    payment_ref: Option<String>,
}

/// No body (or an empty one) confirms without a reference; anything else must be a
/// valid `ConfirmPayment`.
fn payment_ref(body: &[u8]) -> Result<Option<PaymentRef>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let c: ConfirmPayment = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?;
    c.payment_ref
        .map(|r| PaymentRef::parse(&r).map_err(ApiError::invalid))
        .transpose()
}

/// One order (any admin key).
#[utoipa::path(
    get,
    path = "/api/admin/orders/{id}",
    operation_id = "admin_order_get",
    tag = "shop",
    params(("id" = String, Path, description = "The order id")),
    responses(
        (status = 200, description = "The order", body = crate::http::orders::OrderBody),
        (status = 401, description = "`unauthorized`: missing or unknown admin key", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such order", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down, the activity too busy (`Retry-After: 1`) or moving between nodes", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn get(
    _: Admin<ReadOrders>,
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    order_call(&st, &id, |n| OrderCall::Get { n, user: None }).await
}

/// Confirms payment (operator and shop keys): pending -> paid, with `payment_ref`.
/// Paying a paid order answers it unchanged (its first reference kept); a cancelled
/// or expired order stays cancelled: `409`.
#[utoipa::path(
    post,
    path = "/api/admin/orders/{id}/pay",
    operation_id = "admin_order_pay",
    tag = "shop",
    params(("id" = String, Path, description = "The order id")),
    request_body(content = Option<ConfirmPayment>, description = "Optional; no body confirms without a reference"),
    responses(
        (status = 200, description = "The order, `paid`", body = crate::http::orders::OrderBody),
        (status = 400, description = "`invalid_request`: a bad body or `payment_ref` (1-128 characters)", body = crate::http::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`: missing or unknown admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: a viewer key", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such order", body = crate::http::schemas::ErrorBody),
        (status = 409, description = "`conflict`: the order was cancelled (by the buyer, the shop or the payment timeout)", body = crate::http::schemas::ErrorBody),
        (status = 413, description = "`payload_too_large`: body over `server.max_body_bytes`", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down, the activity too busy (`Retry-After: 1`), moving between nodes, or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn pay(
    _: Admin<Settle>,
    st: Data<AppState>,
    id: Path<String>,
    RawBody(body): RawBody,
) -> Result<HttpResponse, ApiError> {
    let payment_ref = payment_ref(&body)?;
    order_call(&st, &id, |n| OrderCall::Pay {
        n,
        user: None,
        payment_ref,
    })
    .await
}

/// Cancels a pending order (operator and shop keys); its units go back. Cancelling a
/// cancelled order answers it unchanged; a paid one: `409`.
#[utoipa::path(
    post,
    path = "/api/admin/orders/{id}/cancel",
    operation_id = "admin_order_cancel",
    tag = "shop",
    params(("id" = String, Path, description = "The order id")),
    responses(
        (status = 200, description = "The order, `cancelled`", body = crate::http::orders::OrderBody),
        (status = 401, description = "`unauthorized`: missing or unknown admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: a viewer key", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such order", body = crate::http::schemas::ErrorBody),
        (status = 409, description = "`conflict`: a paid order cannot be cancelled", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down, the activity too busy (`Retry-After: 1`), moving between nodes, or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn cancel(
    _: Admin<Settle>,
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    order_call(&st, &id, |n| OrderCall::Cancel { n, user: None }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_optional_but_never_ignored() {
        assert_eq!(payment_ref(b"").expect("none"), None);
        assert_eq!(payment_ref(b"{}").expect("none"), None);
        let r = payment_ref(br#"{"payment_ref":"pi_123"}"#).expect("valid");
        assert_eq!(r.as_ref().map(PaymentRef::as_str), Some("pi_123"));
        for bad in [
            &br#"{"payment_ref":""}"#[..],
            br#"{"payment_ref":7}"#,
            br#"{"ref":"x"}"#,
            b"not json",
        ] {
            assert!(
                payment_ref(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!(r#"{{"payment_ref":"{}"}}"#, "x".repeat(129));
        assert!(payment_ref(long.as_bytes()).is_err());
    }
}
