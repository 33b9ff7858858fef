//! Public fairness endpoints: the commitment (and, after opening, the seed), and the
//! public line as NDJSON, streamed page by page from the activity's actor.

use crate::actors::messages::{FairnessLog, GetFairness};
use crate::error::ApiError;
use crate::http::calls::{activity_id, actor, call, call_id};
use crate::http::state::AppState;
use actix_web::web::{Bytes, Data, Path};
use actix_web::HttpResponse;

/// Lines per actor call: a page is one short turn of the actor and one chunk of the
/// response, so a line of 100,000 places never sits in memory at once.
const PAGE: usize = 1000;

#[utoipa::path(
    get,
    path = "/api/activities/{id}/fairness",
    operation_id = "activity_fairness",
    tag = "activities",
    params(("id" = String, Path, description = "The activity id")),
    responses(
        (status = 200, description = "The commitment, and the seed once the activity opened (null before)", body = crate::domain::activity::fairness::FairnessReveal),
        (status = 404, description = "`not_found`: no such activity", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: the activity is busy or moving (`Retry-After`)", body = crate::http::schemas::ErrorBody)
    )
)]
pub(crate) async fn fairness(
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(call_id(&st, &id, GetFairness).await?))
}

/// `application/x-ndjson`, one line per place in line order. Each page is read
/// through the actor, which answers once what it shows is durable.
#[utoipa::path(
    get,
    path = "/api/activities/{id}/fairness/log",
    operation_id = "activity_fairness_log",
    tag = "activities",
    params(("id" = String, Path, description = "The activity id")),
    responses(
        (status = 200, description = "NDJSON: one line per place, in line order", content_type = "application/x-ndjson", body = crate::domain::activity::fairness::LogLine),
        (status = 404, description = "`not_found`: no such activity", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: the activity is busy or moving (`Retry-After`)", body = crate::http::schemas::ErrorBody)
    )
)]
pub(crate) async fn log(st: Data<AppState>, id: Path<String>) -> Result<HttpResponse, ApiError> {
    let id = activity_id(&id)?;
    let addr = actor(&st, &id)?;
    // The first page is read before answering, so a missing activity is a 404.
    let first = call(
        &st,
        &addr,
        FairnessLog {
            from: 0,
            limit: PAGE,
        },
    )
    .await?;
    let stream = futures_util::stream::unfold(
        (st, addr, Some(first), false),
        |(st, addr, page, done)| async move {
            if done {
                return None;
            }
            let page = match page {
                Some(p) => p,
                None => return None,
            };
            let mut chunk = Vec::with_capacity(page.lines.len() * 96);
            for line in &page.lines {
                serde_json::to_writer(&mut chunk, line).expect("log lines serialize");
                chunk.push(b'\n');
            }
            let next = match page.next {
                Some(from) => {
                    match call(&st, &addr, FairnessLog { from, limit: PAGE }).await {
                        Ok(p) => Some(p),
                        Err(e) => {
                            // Headers are sent: end the body short rather than lie.
                            tracing::warn!(error = %e, "fairness log cut short");
                            return Some((
                                Err(actix_web::error::ErrorServiceUnavailable("log cut short")),
                                (st, addr, None, true),
                            ));
                        }
                    }
                }
                None => None,
            };
            let done = next.is_none();
            Some((Ok(Bytes::from(chunk)), (st, addr, next, done)))
        },
    );
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(stream))
}
