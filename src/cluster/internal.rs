//! Node-to-node endpoints of cluster mode, under `/internal`, for callers that present
//! the cluster's shared secret (`x-sluice-internal`); nobody else gets past `404`.
//!
//! - `POST /internal/sessions`: a node's batch of session operations for activities
//!   owned here (join with a relayed session, detach, leave), answered in order;
//! - `POST /internal/relay`: an owner's batch of messages for sessions held here.

use super::client::INTERNAL_HEADER;
use super::relay::{OpResult, OpsRequest, RelayBatch, SessionOp};
use super::Cluster;
use crate::actors::activity::ActivityActor;
use crate::actors::messages::{Detach, Join, Leave};
use crate::actors::session::SessionHandle;
use crate::domain::ids::ActivityId;
use crate::error::{ApiError, ErrorCode};
use crate::http::directory::call;
use actix_web::dev::Payload;
use actix_web::web::{self, Data, Json};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use futures_util::future::{ready, Ready};
use std::sync::Arc;
use std::time::Duration;

/// What the internal endpoints work with.
pub struct Peers {
    pub cluster: Arc<Cluster>,
    pub actor_timeout: Duration,
}

pub fn routes(cfg: &mut web::ServiceConfig, peers: Data<Peers>) {
    cfg.service(
        web::scope("/internal")
            .app_data(peers)
            .app_data(web::JsonConfig::default().limit(64 * 1024 * 1024))
            .route("/sessions", web::post().to(sessions))
            .route("/relay", web::post().to(relay)),
    );
}

/// True if `req` carries the cluster's shared secret.
pub fn is_internal(cluster: &Cluster, req: &HttpRequest) -> bool {
    req.headers()
        .get(INTERNAL_HEADER)
        .is_some_and(|presented| cluster.is_internal(presented.as_bytes()))
}

/// A call from another node of this cluster.
pub struct Internal(pub Data<Peers>);

impl FromRequest for Internal {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let peers = req
            .app_data::<Data<Peers>>()
            .filter(|p| is_internal(&p.cluster, req))
            .cloned();
        ready(
            peers
                .map(Internal)
                .ok_or_else(|| ApiError::not_found("no such endpoint")),
        )
    }
}

async fn sessions(Internal(peers): Internal, body: Json<OpsRequest>) -> HttpResponse {
    let req = body.into_inner();
    let cluster = &peers.cluster;
    let link = cluster.relay.link_to(&req.node, &req.advertise);
    // Sent to the actors in order (each activity's mailbox keeps it), answered together.
    let calls = req.ops.into_iter().map(|op| {
        let link = Arc::clone(&link);
        let peers = peers.clone();
        async move {
            let timeout = peers.actor_timeout;
            let res = match op {
                SessionOp::Join {
                    activity,
                    session,
                    user,
                    ticket,
                    pow,
                    invite,
                } => match actor_for(&peers.cluster, &activity).await {
                    None => Err(not_here()),
                    Some(addr) => {
                        let msg = Join {
                            user,
                            ticket,
                            pow,
                            invite,
                            session: Some(SessionHandle {
                                id: session,
                                output: link,
                            }),
                        };
                        call(timeout, &addr, msg).await.map(drop)
                    }
                },
                SessionOp::Detach {
                    activity,
                    session,
                    user,
                } => {
                    if let Some(addr) = peers.cluster.registry.get(&activity) {
                        addr.do_send(Detach {
                            user,
                            session_id: session,
                        });
                    }
                    Ok(())
                }
                SessionOp::Leave { activity, user, .. } => {
                    match actor_for(&peers.cluster, &activity).await {
                        None => Err(not_here()),
                        Some(addr) => call(timeout, &addr, Leave { user }).await,
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
async fn actor_for(cluster: &Cluster, id: &ActivityId) -> Option<actix::Addr<ActivityActor>> {
    for _ in 0..40 {
        if let Some(a) = cluster.registry.get(id) {
            return Some(a);
        }
        if !cluster.holds(id) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

fn not_here() -> ApiError {
    ApiError::new(
        ErrorCode::Unavailable,
        "the activity moved to another node; reconnect shortly",
    )
}

async fn relay(Internal(peers): Internal, body: Json<RelayBatch>) -> HttpResponse {
    peers.cluster.relay.deliver(body.into_inner().items);
    HttpResponse::Ok().json(serde_json::json!({}))
}
