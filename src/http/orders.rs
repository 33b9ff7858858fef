//! Order endpoints: read (owner or operator), list the caller's, pay, cancel.

use crate::actors::messages::OrderCall;
use crate::domain::ids::parse_order_id;
use crate::error::ApiError;
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

async fn list(req: HttpRequest, user: User, st: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let orders = st.directory.orders_of(&req, &user.0).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "orders": orders })))
}

async fn order_call(
    st: &AppState,
    raw: &str,
    make: impl FnOnce(u64) -> OrderCall,
) -> Result<HttpResponse, ApiError> {
    let (activity, n) = parse_order_id(raw).ok_or_else(|| ApiError::not_found("no such order"))?;
    let addr = actor(st, &activity).map_err(|_| ApiError::not_found("no such order"))?;
    let order = call(st, &addr, make(n)).await?;
    Ok(HttpResponse::Ok().json(OrderBody::of(&order)))
}

/// `{"order": ORDER}`, serialized straight from the view (not through a
/// `serde_json::Value`, which allocates a map and a string per field).
#[derive(serde::Serialize)]
pub struct OrderBody {
    order: crate::domain::order::OrderView,
}

impl OrderBody {
    pub fn of(o: &crate::domain::order::Order) -> Self {
        Self { order: o.view() }
    }
}

async fn get(
    caller: Caller,
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = caller.user();
    order_call(&st, &id, |n| OrderCall::Get { n, user }).await
}

async fn pay(
    caller: Caller,
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = caller.user();
    order_call(&st, &id, |n| OrderCall::Pay { n, user }).await
}

async fn cancel(
    caller: Caller,
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = caller.user();
    order_call(&st, &id, |n| OrderCall::Cancel { n, user }).await
}
