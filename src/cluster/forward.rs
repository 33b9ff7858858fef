//! Requests about an activity another node owns (its public and admin calls, its
//! tickets, purchases and orders) are forwarded to that node, which answers them
//! under the contract; the client cannot tell which node it reached.

use super::internal::is_internal;
use super::relay::OwnerRef;
use super::{Cluster, Route};
use crate::domain::ids::ActivityId;
use crate::error::{ApiError, ErrorCode};
use crate::http::directory::Answered;
use crate::http::limits::client_ip;
use crate::http::routes::activity_in;
use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::web::Bytes;
use actix_web::{FromRequest, ResponseError};
use std::sync::Arc;

pub enum Decision {
    Local,
    /// Not known here yet: look it up in the cluster, then decide again.
    Lookup(ActivityId),
    Forward(OwnerRef),
    /// The activity exists but is between owners (a failover in progress).
    Moving,
}

pub fn decide(cluster: &Cluster, req: &ServiceRequest) -> Decision {
    let Some(id) = activity_in(req.path()) else {
        return Decision::Local;
    };
    if cluster.runs_here(&id) {
        return Decision::Local;
    }
    let route = cluster.route(&id);
    if is_internal(cluster, req.request()) {
        // Forwarded here, but not (or no longer) owned here: never forward twice.
        return match route {
            Route::Unknown => Decision::Local,
            _ => Decision::Moving,
        };
    }
    match route {
        Route::Owner(o) => Decision::Forward(o),
        Route::Moving => Decision::Moving,
        Route::Unknown => Decision::Lookup(id),
    }
}

/// The answer to a request about an activity not served here.
pub fn answer(cluster: &Arc<Cluster>, req: ServiceRequest, decision: Decision) -> Answered {
    match decision {
        Decision::Forward(owner) => Box::pin(forward(req, owner, Arc::clone(cluster))),
        Decision::Lookup(id) => Box::pin(after_lookup(req, id, Arc::clone(cluster))),
        Decision::Moving | Decision::Local => {
            let res = req.error_response(moving());
            Box::pin(async move { Ok(res) })
        }
    }
}

/// Serves a request about an activity this node had not heard of: after a lookup it
/// is forwarded, refused as moving, or it names nothing in the cluster: `404`.
async fn after_lookup(
    req: ServiceRequest,
    id: ActivityId,
    cluster: Arc<Cluster>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    cluster.lookup(&id).await;
    match decide(&cluster, &req) {
        Decision::Forward(owner) => forward(req, owner, cluster).await,
        Decision::Moving => Ok(req.error_response(moving())),
        Decision::Local | Decision::Lookup(_) => {
            let what = if req.path().starts_with("/api/orders/")
                || req.path().starts_with("/api/admin/orders/")
            {
                "no such order"
            } else {
                "no such activity"
            };
            Ok(req.error_response(ApiError::not_found(what)))
        }
    }
}

pub fn moving() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "the activity is moving to another node; retry shortly",
    )
    .retry_after(1)
}

async fn forward(
    req: ServiceRequest,
    owner: OwnerRef,
    cluster: Arc<Cluster>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let (http, mut payload) = req.into_parts();
    let body = match Bytes::from_request(&http, &mut payload).await {
        Ok(b) => b,
        Err(_) => {
            let e = ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large");
            return Ok(ServiceResponse::new(http, e.error_response()));
        }
    };
    let ip = client_ip(&http);
    let res = super::client::forward(&http, body, &owner.base, cluster.key(), ip).await;
    Ok(ServiceResponse::new(http, res))
}
