//! The app's middleware: the directory's say on where a request is served, and the
//! request span (with the client address, resolved here once) and metrics.

use crate::http::client_addr;
use crate::http::directory::Intercepted;
use crate::http::request_metrics;
use crate::http::routes::classify;
use crate::http::state::AppState;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::web::Data;
use futures_util::future::LocalBoxFuture;
use std::time::Instant;
use tracing::Instrument;

type Response = Result<ServiceResponse<BoxBody>, actix_web::Error>;

/// Requests the directory answers itself (cluster mode: about an activity another
/// node owns) never reach the handlers.
pub fn directory<S, B>(req: ServiceRequest, srv: &S) -> LocalBoxFuture<'static, Response>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    let directory = req
        .app_data::<Data<AppState>>()
        .map(|st| std::sync::Arc::clone(&st.directory));
    let req = match directory {
        Some(d) => match d.intercept(req) {
            Intercepted::Serve(req) => req,
            Intercepted::Answered(answered) => return answered,
        },
        None => req,
    };
    let fut = srv.call(req);
    Box::pin(async move { fut.await.map(ServiceResponse::map_into_boxed_body) })
}

/// One span per request (its fields formatted only when enabled, at info level) and
/// the request metrics, labelled by route. Resolves the request's client first
/// (`client_addr`): a cluster node's relay, else the trusted proxies' headers, else
/// the peer; everything after reads it with `client_ip`.
pub fn observe<S, B>(
    req: ServiceRequest,
    srv: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<B>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let started = Instant::now();
    let client = match req.app_data::<Data<AppState>>() {
        Some(st) => client_addr::resolve(
            req.request(),
            st.directory.relayed_client(req.request()),
            &st.proxies,
        ),
        None => client_addr::peer_ip(req.peer_addr()),
    };
    let route = classify(req.path());
    let span = tracing::info_span!(
        "request",
        request_id = %format_args!("{:016x}", rand::random::<u64>()),
        activity_id = %route.activity.unwrap_or("-"),
        client = %client,
        method = %req.method(),
        route = %route.label
    );
    let label = route.label;
    let fut = srv.call(req);
    async move {
        let res = fut.await?;
        let status = res.status().as_u16();
        let elapsed = started.elapsed();
        tracing::debug!(
            status,
            elapsed_us = elapsed.as_micros() as u64,
            "request done"
        );
        request_metrics::record(label, status, elapsed);
        Ok(res)
    }
    .instrument(span)
}
