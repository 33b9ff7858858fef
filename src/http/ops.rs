//! Operations endpoints: liveness, readiness (store writable, sink reachable), metrics.

use crate::http::state::AppState;
use actix_web::web::{self, Data};
use actix_web::HttpResponse;
use std::sync::atomic::Ordering;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

/// Liveness.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "ops_healthz",
    tag = "operations",
    responses(
        (status = 200, description = "The process serves", body = crate::http::schemas::Health)
    )
)]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// 200 only when the store can write and the sink (if any) answers; the body says
/// which part is not ready.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "ops_readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = crate::http::schemas::Readiness),
        (status = 503, description = "Not ready (same body)", body = crate::http::schemas::Readiness)
    )
)]
pub(crate) async fn readyz(st: Data<AppState>) -> HttpResponse {
    let store_ok = !st.registry.is_draining() && st.store.probe().await.is_ok();
    let sink = match &st.sink {
        None => "none",
        Some(s) => match tokio::time::timeout(std::time::Duration::from_secs(2), s.ping()).await {
            Ok(Ok(())) => "ok",
            _ => {
                st.sink_reachable.store(false, Ordering::Release);
                "unreachable"
            }
        },
    };
    let cluster = st.directory.reachable();
    let ready = store_ok && sink != "unreachable" && cluster != Some(false);
    let body = serde_json::json!({
        "ready": ready,
        "store": if st.registry.is_draining() { "draining" } else if store_ok { "ok" } else { "cannot write" },
        "sink": sink,
        "outbox_backlog": st.store.outbox_len(),
        "cluster": match cluster { None => "off", Some(true) => "ok", Some(false) => "unreachable" },
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "ops_metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String)
    )
)]
pub(crate) async fn metrics(st: Data<AppState>) -> HttpResponse {
    metrics::gauge!("sluice_outbox_backlog").set(st.store.outbox_len() as f64);
    metrics::gauge!("sluice_journal_bytes").set(st.store.journal_bytes() as f64);
    let mut body = st.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    crate::http::request_metrics::render(&mut body);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}
