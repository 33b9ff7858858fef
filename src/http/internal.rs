//! Node-to-node endpoints of cluster mode, under `/internal`, for callers that present
//! the cluster's shared secret (`x-sluice-internal`); nobody else gets past `404`.
//!
//! - `POST /internal/sessions`: a node's batch of session operations for activities
//!   owned here (join with a relayed session, detach, leave), answered in order;
//! - `POST /internal/relay`: an owner's batch of messages for sessions held here.

use crate::actors::messages::{Detach, Join, Leave, SessionHandle, SessionSink};
use crate::cluster::client::INTERNAL_HEADER;
use crate::cluster::relay::{OpResult, OpsRequest, RelayBatch, SessionOp};
use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::http::calls::call;
use crate::http::state::AppState;
use actix_web::dev::Payload;
use actix_web::web::{self, Data, Json};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use futures_util::future::{ready, Ready};
use std::sync::Arc;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/internal")
            .app_data(web::JsonConfig::default().limit(64 * 1024 * 1024))
            .route("/sessions", web::post().to(sessions))
            .route("/relay", web::post().to(relay)),
    );
}

/// A call from another node of this cluster.
pub struct Internal(pub Arc<Cluster>);

/// The cluster, if `req` carries its shared secret.
pub fn internal_caller(req: &HttpRequest) -> Option<Arc<Cluster>> {
    let st = req.app_data::<Data<AppState>>()?;
    let c = st.cluster.as_ref()?;
    let presented = req.headers().get(INTERNAL_HEADER)?;
    c.is_internal(presented.as_bytes()).then(|| Arc::clone(c))
}

impl FromRequest for Internal {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            internal_caller(req)
                .map(Internal)
                .ok_or_else(|| ApiError::not_found("no such endpoint")),
        )
    }
}

async fn sessions(
    Internal(cluster): Internal,
    st: Data<AppState>,
    body: Json<OpsRequest>,
) -> HttpResponse {
    let req = body.into_inner();
    let link = cluster.relay.link_to(&req.node, &req.advertise);
    // Sent to the actors in order (each activity's mailbox keeps it), answered together.
    let calls = req.ops.into_iter().map(|op| {
        let st = st.clone();
        let link = Arc::clone(&link);
        let cluster = Arc::clone(&cluster);
        async move {
            let res = match op {
                SessionOp::Join {
                    activity,
                    session,
                    user,
                    ticket,
                    pow,
                } => match actor_for(&st, &cluster, &activity).await {
                    None => Err(not_here()),
                    Some(addr) => {
                        let msg = Join {
                            user,
                            ticket,
                            pow,
                            session: Some(SessionHandle {
                                id: session,
                                sink: SessionSink::Remote(link),
                            }),
                        };
                        call(&st, &addr, msg).await.map(drop)
                    }
                },
                SessionOp::Detach {
                    activity,
                    session,
                    user,
                } => {
                    if let Some(addr) = st.registry.get(&activity) {
                        addr.do_send(Detach {
                            user,
                            session_id: session,
                        });
                    }
                    Ok(())
                }
                SessionOp::Leave { activity, user, .. } => {
                    match actor_for(&st, &cluster, &activity).await {
                        None => Err(not_here()),
                        Some(addr) => call(&st, &addr, Leave { user }).await,
                    }
                }
            };
            match res {
                Ok(()) => OpResult::default(),
                Err(e) => OpResult::from_api(&e),
            }
        }
    });
    let results: Vec<OpResult> = futures_util::future::join_all(calls).await;
    HttpResponse::Ok().json(results)
}

/// The activity's actor here; while this node is still rebuilding it (it holds the
/// lease), waits for it a little rather than turning sessions away.
async fn actor_for(
    st: &AppState,
    cluster: &Cluster,
    id: &crate::domain::ids::ActivityId,
) -> Option<actix::Addr<crate::actors::activity::ActivityActor>> {
    for _ in 0..40 {
        if let Some(a) = st.registry.get(id) {
            return Some(a);
        }
        if !cluster.holds(id) {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    None
}

fn not_here() -> ApiError {
    ApiError::new(
        crate::error::ErrorCode::Unavailable,
        "the activity moved to another node; reconnect shortly",
    )
}

async fn relay(Internal(cluster): Internal, body: Json<RelayBatch>) -> HttpResponse {
    cluster.relay.deliver(body.into_inner().items);
    HttpResponse::Ok().json(serde_json::json!({}))
}
