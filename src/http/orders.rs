//! Order endpoints: read (owner or operator), list the caller's, pay, cancel.

use crate::actors::messages::OrderCall;
use crate::config::PaymentMode;
use crate::domain::ids::parse_order_id;
use crate::error::{ApiError, ErrorCode};
use crate::http::admin_keys::{ReadOrders, Settle};
use crate::http::calls::{actor, call};
use crate::http::identity::{Caller, User};
use crate::http::state::AppState;
use actix_web::web::{self, Data, Path};
use actix_web::{HttpRequest, HttpResponse};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/orders")
            .route("", web::get().to(list))
            .route("/{id}", web::get().to(get))
            .route("/{id}/pay", web::post().to(pay))
            .route("/{id}/cancel", web::post().to(cancel)),
    );
}

/// The caller's orders in every activity.
#[utoipa::path(
    get,
    path = "/api/orders",
    operation_id = "orders_list",
    tag = "orders",
    responses(
        (status = 200, description = "The orders", body = crate::http::schemas::OrderList),
        (status = 401, description = "`unauthorized`: missing, malformed, badly signed or expired identity token", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("user" = []), ("user_query" = []))
)]
pub(crate) async fn list(
    req: HttpRequest,
    user: User,
    st: Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let orders = st.directory.orders_of(&req, &user.0).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "orders": orders })))
}

/// Calls the actor of the order `raw` names and answers `{"order": ORDER}`.
pub(crate) async fn order_call(
    st: &AppState,
    raw: &str,
    make: impl FnOnce(u64) -> OrderCall,
) -> Result<HttpResponse, ApiError> {
    let (activity, n) = parse_order_id(raw).ok_or_else(|| ApiError::not_found("no such order"))?;
    // An activity between owners is `503` (retry), never `404`: the order exists.
    let addr = actor(st, &activity).map_err(|e| match e.code {
        ErrorCode::NotFound => ApiError::not_found("no such order"),
        _ => e,
    })?;
    let order = call(st, &addr, make(n)).await?;
    Ok(HttpResponse::Ok().json(OrderBody::of(&order)))
}

/// `{"order": ORDER}`, serialized straight from the view (not through a
/// `serde_json::Value`, which allocates a map and a string per field).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct OrderBody {
    order: crate::domain::order::OrderView,
}

impl OrderBody {
    pub fn of(o: &crate::domain::order::Order) -> Self {
        Self { order: o.view() }
    }
}

/// One order (its owner or an operator).
#[utoipa::path(
    get,
    path = "/api/orders/{id}",
    operation_id = "orders_get",
    tag = "orders",
    params(("id" = String, Path, description = "The order id (`{activity_id}.{n}`; opaque)")),
    responses(
        (status = 200, description = "The order", body = OrderBody),
        (status = 401, description = "`unauthorized`: no valid identity token or admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: another user's order", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such order (unknown or malformed id)", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("user" = []), ("user_query" = []), ("admin" = []))
)]
pub(crate) async fn get(
    caller: Caller,
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.may::<ReadOrders>()?;
    let user = caller.user();
    order_call(&st, &id, |n| OrderCall::Get { n, user }).await
}

/// Pays (simulated: `payment.mode = "simulated"` only; `403` for the buyer in
/// `external` mode); paying a paid order returns it unchanged.
#[utoipa::path(
    post,
    path = "/api/orders/{id}/pay",
    operation_id = "orders_pay",
    tag = "orders",
    params(("id" = String, Path, description = "The order id (`{activity_id}.{n}`; opaque)")),
    responses(
        (status = 200, description = "The order, now `paid`", body = OrderBody),
        (status = 401, description = "`unauthorized`: no valid identity token or admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: another user's order; the buyer with `payment.mode = \"external\"`; an admin key without the right", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such order (unknown or malformed id)", body = crate::http::schemas::ErrorBody),
        (status = 409, description = "`conflict`: the order was cancelled", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("user" = []), ("user_query" = []), ("admin" = []))
)]
pub(crate) async fn pay(
    caller: Caller,
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.may::<Settle>()?;
    if let Caller::User(_) = caller {
        buyer_may_pay(&st)?;
    }
    let user = caller.user();
    order_call(&st, &id, |n| OrderCall::Pay {
        n,
        user,
        payment_ref: None,
    })
    .await
}

/// With `payment.mode = "external"` only the shop confirms payment: `403` for the buyer.
pub fn buyer_may_pay(st: &AppState) -> Result<(), ApiError> {
    match st.payment {
        PaymentMode::Simulated => Ok(()),
        PaymentMode::External => Err(ApiError::new(
            ErrorCode::Forbidden,
            "payment is confirmed by the shop (payment.mode = \"external\"), not by the buyer",
        )),
    }
}

/// Cancels; cancelling a cancelled order returns it unchanged.
#[utoipa::path(
    post,
    path = "/api/orders/{id}/cancel",
    operation_id = "orders_cancel",
    tag = "orders",
    params(("id" = String, Path, description = "The order id (`{activity_id}.{n}`; opaque)")),
    responses(
        (status = 200, description = "The order, now `cancelled`", body = OrderBody),
        (status = 401, description = "`unauthorized`: no valid identity token or admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: another user's order; an admin key without the right", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such order (unknown or malformed id)", body = crate::http::schemas::ErrorBody),
        (status = 409, description = "`conflict`: a paid order cannot be cancelled", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`), the activity too busy (`Retry-After: 1`) or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("user" = []), ("user_query" = []), ("admin" = []))
)]
pub(crate) async fn cancel(
    caller: Caller,
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.may::<Settle>()?;
    let user = caller.user();
    order_call(&st, &id, |n| OrderCall::Cancel { n, user }).await
}
