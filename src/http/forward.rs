//! Cluster mode: a request about an activity that another node owns (its public and
//! admin calls, its tickets, purchases and orders) is forwarded to that node, which
//! answers it under the contract; the client cannot tell which node it reached.

use crate::cluster::relay::OwnerRef;
use crate::cluster::Route;
use crate::domain::ids::{parse_order_id, ActivityId};
use crate::error::{ApiError, ErrorCode};
use crate::http::internal::internal_caller;
use crate::http::limits::client_ip;
use crate::http::state::AppState;
use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::web::{Bytes, Data};
use actix_web::{FromRequest, ResponseError};

pub enum Decision {
    Local,
    /// Not known here yet: look it up in the cluster, then decide again.
    Lookup(ActivityId),
    Forward(OwnerRef),
    /// The activity exists but is between owners (a failover in progress).
    Moving,
}

/// The activity a path is about, for the paths that name one.
fn activity_of(path: &str) -> Option<ActivityId> {
    if let Some(rest) = path
        .strip_prefix("/api/activities/")
        .or_else(|| path.strip_prefix("/api/admin/activities/"))
    {
        return ActivityId::parse(rest.split('/').next()?).ok();
    }
    let rest = path.strip_prefix("/api/orders/")?;
    parse_order_id(rest.split('/').next()?).map(|(a, _)| a)
}

pub fn decide(req: &ServiceRequest) -> Decision {
    let Some(st) = req.app_data::<Data<AppState>>() else {
        return Decision::Local;
    };
    let Some(cluster) = &st.cluster else {
        return Decision::Local;
    };
    let Some(id) = activity_of(req.path()) else {
        return Decision::Local;
    };
    if st.registry.get(&id).is_some() {
        return Decision::Local;
    }
    let route = cluster.route(&id);
    if internal_caller(req.request()).is_some() {
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

/// Serves a request about an activity this node had not heard of: after a lookup it
/// is forwarded, refused as moving, or it names nothing in the cluster: `404`.
pub async fn after_lookup(
    req: ServiceRequest,
    id: ActivityId,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let cluster = req
        .app_data::<Data<AppState>>()
        .and_then(|st| st.cluster.clone());
    if let Some(c) = cluster {
        c.lookup(&id).await;
    }
    match decide(&req) {
        Decision::Forward(owner) => forward(req, owner).await,
        Decision::Moving => Ok(req.error_response(moving())),
        Decision::Local | Decision::Lookup(_) => {
            let what = if req.path().starts_with("/api/orders/") {
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

pub async fn forward(
    req: ServiceRequest,
    owner: OwnerRef,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let (http, mut payload) = req.into_parts();
    let Some(key) = http
        .app_data::<Data<AppState>>()
        .and_then(|st| st.cluster.as_ref())
        .map(|c| c.key().to_owned())
    else {
        return Ok(ServiceResponse::new(http, moving().error_response()));
    };
    let body = match Bytes::from_request(&http, &mut payload).await {
        Ok(b) => b,
        Err(_) => {
            let e = ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large");
            return Ok(ServiceResponse::new(http, e.error_response()));
        }
    };
    let ip = client_ip(&http);
    let res = crate::cluster::client::forward(&http, body, &owner.base, &key, ip).await;
    Ok(ServiceResponse::new(http, res))
}
