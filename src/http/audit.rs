//! The audit log of admin calls: the middleware that records every call made with an
//! admin key that could change state (any method but `GET`/`HEAD` under `/api/admin/`
//! or `/api/orders/`, failed ones included, with their status), and
//! `GET /api/admin/audit` that reads it.
//!
//! A call is recorded once, by the process the client called: a request a cluster
//! node relayed here is recorded by the node that relayed it (which sees the answer
//! too), so the log of the whole cluster is every node's log merged.

use crate::domain::clock::{parse_rfc3339, rfc3339_ms};
use crate::error::{ApiError, ErrorCode};
use crate::http::identity::{admin_key_in, Admin};
use crate::http::state::AppState;
use crate::store::audit::AuditRecord;
use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::web::{self, Data, Query};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

type Response = Result<ServiceResponse<BoxBody>, actix_web::Error>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/audit", web::get().to(list));
}

/// Calls that may change state; the event-stream ticket changes nothing.
fn audited(method: &Method, path: &str) -> bool {
    method != Method::GET
        && method != Method::HEAD
        && (path.starts_with("/api/admin/") || path.starts_with("/api/orders/"))
        && path != crate::http::admin::EVENT_TICKET_PATH
}

/// Middleware: records audited calls made with a known admin key, durably, before
/// the answer leaves. Calls without a known key (`401`) are not recorded: anyone could
/// fill the log with them.
pub fn record<S>(req: ServiceRequest, srv: &S) -> LocalBoxFuture<'static, Response>
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
    S::Future: 'static,
{
    // Most requests (every purchase and join) are not audited: decided from the
    // method and path alone, before touching the app state.
    if !audited(req.method(), req.path()) {
        return Box::pin(srv.call(req));
    }
    let key = req.app_data::<Data<AppState>>().and_then(|st| {
        if st.directory.relayed_client(req.request()).is_some() {
            return None;
        }
        Some((st.clone(), admin_key_in(st, req.headers())?))
    });
    let Some((st, key)) = key else {
        return Box::pin(srv.call(req));
    };
    let (method, path) = (req.method().to_string(), req.path().to_owned());
    let fut = srv.call(req);
    Box::pin(async move {
        let res = fut.await?;
        let entry = AuditRecord {
            at_ms: st.clock.now_ms(),
            key_name: key.name.clone(),
            method,
            path,
            status: res.status().as_u16(),
        };
        if let Err(e) = st.audit.append(&entry).await {
            // The call itself was decided (and answered by its own commit); the store
            // failing now is reported by /readyz and logged here.
            tracing::error!(error = %e, "cannot record an admin call in the audit log");
        }
        Ok(res)
    })
}

/// One entry as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// RFC 3339 with milliseconds.
    pub at: String,
    pub key_name: String,
    pub method: String,
    pub path: String,
    pub status: u16,
}

impl From<AuditRecord> for AuditEntry {
    fn from(r: AuditRecord) -> Self {
        AuditEntry {
            at: rfc3339_ms(r.at_ms),
            key_name: r.key_name,
            method: r.method,
            path: r.path,
            status: r.status,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    limit: Option<usize>,
}

/// `{"entries": [...]}`, newest first.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
}

/// The newest admin calls that changed state, from every node.
#[utoipa::path(
    get,
    path = "/api/admin/audit",
    operation_id = "admin_audit",
    tag = "admin",
    params(("limit" = Option<usize>, Query, description = "Entries to return, 1-1000 (default 100)")),
    responses(
        (status = 200, description = "Newest first", body = AuditList),
        (status = 400, description = "`invalid_request`: `limit` out of range", body = crate::http::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`: missing or unknown admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: not an operator key", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: the store cannot be read, or a node of the cluster cannot be reached", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn list(
    _: Admin,
    req: HttpRequest,
    st: Data<AppState>,
    q: Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 1000"));
    }
    let mut entries: Vec<AuditEntry> = st
        .audit
        .recent(limit)
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read the audit log");
            ApiError::new(ErrorCode::Unavailable, "the store cannot be read")
        })?
        .into_iter()
        .map(AuditEntry::from)
        .collect();
    let path = format!("/api/admin/audit?limit={limit}");
    for v in st.directory.gather(&req, &path, "entries").await? {
        if let Ok(e) = serde_json::from_value::<AuditEntry>(v) {
            entries.push(e);
        }
    }
    // Stable: one node's entries of the same millisecond keep their order.
    entries.sort_by_key(|e| std::cmp::Reverse(parse_rfc3339(&e.at).unwrap_or(0)));
    entries.truncate(limit);
    Ok(HttpResponse::Ok().json(AuditList { entries }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_calls_that_may_change_state_are_audited() {
        assert!(audited(&Method::POST, "/api/admin/activities"));
        assert!(audited(&Method::PATCH, "/api/admin/activities/a/admission"));
        assert!(audited(&Method::POST, "/api/orders/a.1/pay"));
        assert!(!audited(&Method::GET, "/api/admin/activities"));
        assert!(!audited(&Method::POST, "/api/admin/events/ticket"));
        assert!(!audited(&Method::POST, "/api/activities/a/join"));
    }

    #[test]
    fn times_keep_their_milliseconds_and_parse_back() {
        let at = rfc3339_ms(1_764_000_000_123);
        assert_eq!(at, "2025-11-24T16:00:00.123Z");
        assert_eq!(parse_rfc3339(&at), Some(1_764_000_000_123));
    }
}
