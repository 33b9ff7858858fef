//! The post-event report: `GET /api/admin/activities/{id}/report` (JSON, or the
//! per-minute table as CSV with `?format=csv`) and the operator's report page
//! (`/admin/report?id=...`, charts drawn in inline SVG by an embedded script).

use crate::actors::messages::GetReport;
use crate::error::ApiError;
use crate::http::admin_keys::Read;
use crate::http::calls::call_id;
use crate::http::identity::Admin;
use crate::http::state::AppState;
use actix_web::web::{self, Data, Path, Query};
use actix_web::HttpResponse;
use serde::Deserialize;

const REPORT_HTML: &str = include_str!("assets/report.html");
const REPORT_JS: &str = include_str!("assets/report.js");

/// Registered before the `/api/admin` scope and the `/assets/{file}` route, which
/// would otherwise answer these paths.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/admin/activities/{id}/report", web::get().to(report))
        .route("/admin/report", web::get().to(page))
        .route("/assets/report.js", web::get().to(script));
}

/// `?format=csv`.
#[derive(Deserialize)]
pub(crate) struct Format {
    pub(crate) format: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/admin/activities/{id}/report",
    operation_id = "admin_report",
    tag = "admin",
    params(
        ("id" = String, Path, description = "The activity id"),
        ("format" = Option<String>, Query, description = "`json` (default) or `csv` (per_minute as CSV)")
    ),
    responses(
        (status = 200, description = "The post-event report (or its per-minute CSV)", body = crate::domain::activity::report::ReportView),
        (status = 400, description = "`invalid_request`: unknown format", body = crate::http::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: a shop key", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such activity", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: the activity is busy or moving (`Retry-After`)", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn report(
    _: Admin<Read>,
    st: Data<AppState>,
    id: Path<String>,
    q: Query<Format>,
) -> Result<HttpResponse, ApiError> {
    let r = call_id(&st, &id, GetReport).await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(HttpResponse::Ok().json(r)),
        Some("csv") => Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                format!("attachment; filename=\"{}-per-minute.csv\"", id.as_str()),
            ))
            .body(r.per_minute_csv())),
        Some(other) => Err(ApiError::invalid(format!(
            "format must be json or csv, not {other}"
        ))),
    }
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body)
}

async fn page() -> HttpResponse {
    asset("text/html; charset=utf-8", REPORT_HTML)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", REPORT_JS)
}
