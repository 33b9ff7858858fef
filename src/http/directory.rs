//! The directory port: how HTTP reaches activities.
//!
//! Handlers never decide where an activity runs. They ask the `Directory` for an
//! activity's actor, for a WebSocket session's link to it, to create one, to list
//! them, or for a user's orders. `LocalDirectory` serves everything from this process;
//! cluster mode's directory (`cluster::directory`) wraps it and reaches the other
//! nodes. `startup` chooses one, once.

use crate::actors::activity::ActivityActor;
use crate::actors::messages::{Admin, CallResult, Detach, Join, JoinReply, Leave, OrdersOf};
use crate::actors::registry::Registry;
use crate::actors::session::SessionHandle;
use crate::actors::session_queue::SessionQueue;
use crate::domain::activity::ActivityView;
use crate::domain::ids::{ActivityId, UserId};
use crate::domain::order::OrderView;
use crate::domain::pow::PowSolution;
use crate::domain::spec::{ActivitySpec, CreateActivity, SlotSpec};
use crate::error::{ApiError, ErrorCode};
use crate::store::{CommitTarget, Store};
use actix::prelude::*;
use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// A response made without the app's handlers (a request forwarded to another node).
pub type Answered = LocalBoxFuture<'static, Result<ServiceResponse<BoxBody>, actix_web::Error>>;

/// What the directory does with a request before routing.
pub enum Intercepted {
    /// Served by this process's handlers.
    Serve(ServiceRequest),
    /// Answered by the directory (forwarded, or refused while the activity moves).
    Answered(Answered),
}

/// Every activity's view, by id, as one node sees them.
pub type Views = Vec<serde_json::Value>;

pub trait Directory: Send + Sync {
    /// A request about an activity served elsewhere is answered here; others are
    /// handed back to be served by this process.
    fn intercept(&self, req: ServiceRequest) -> Intercepted;

    /// The actor of an activity served by this process: `404` if there is no such
    /// activity, `503` while it moves between processes.
    fn actor(&self, id: &ActivityId) -> Result<Addr<ActivityActor>, ApiError>;

    /// True if `session_link` may only be decided after `lookup` (an activity this
    /// process has not heard of yet).
    fn needs_lookup(&self, id: &ActivityId) -> bool;

    /// Learns where an activity is, if anywhere.
    fn lookup<'a>(&'a self, id: &'a ActivityId) -> LocalBoxFuture<'a, ()>;

    /// How a WebSocket session reaches its activity.
    fn session_link(&self, id: &ActivityId) -> Result<Box<dyn SessionLink>, ApiError>;

    /// Creates an activity (where it should run) and answers the operator's request.
    fn create<'a>(
        &'a self,
        req: &'a HttpRequest,
        body: CreateActivity,
        spec: ActivitySpec,
        slots: Vec<SlotSpec>,
    ) -> LocalBoxFuture<'a, Result<HttpResponse, ApiError>>;

    /// Every activity's view, for the operator (`admin`) or the public.
    fn views<'a>(&'a self, req: &'a HttpRequest, admin: bool) -> LocalBoxFuture<'a, Views>;

    /// Every order of `user`, in every activity.
    fn orders_of<'a>(
        &'a self,
        req: &'a HttpRequest,
        user: &'a UserId,
    ) -> LocalBoxFuture<'a, Result<Vec<serde_json::Value>, ApiError>>;

    /// The `field` list of `GET path_and_query` (an admin call) from every other
    /// process serving this application; none when there are none. A request that is
    /// itself such a gathering gets none, so lists are never gathered twice.
    fn gather<'a>(
        &'a self,
        req: &'a HttpRequest,
        path_and_query: &'a str,
        field: &'a str,
    ) -> LocalBoxFuture<'a, Result<Vec<serde_json::Value>, ApiError>>;

    /// The client of a request relayed by a trusted peer process, if it is one.
    fn relayed_client(&self, req: &HttpRequest) -> Option<IpAddr>;

    /// Node-to-node routes, if any.
    fn routes(&self, cfg: &mut web::ServiceConfig);

    /// `GET /api/admin/cluster`.
    fn status(&self) -> serde_json::Value;

    /// For `/readyz`: `None` when there is nothing beyond this process to check.
    fn reachable(&self) -> Option<bool>;

    /// Shutdown, after every activity drained: give up what this process held.
    fn leave(&self) -> LocalBoxFuture<'_, ()>;
}

/// Why a session could not join.
pub enum JoinFailure {
    /// The activity refused: the contract error to tell the client.
    Refused(ApiError),
    /// The activity could not be reached in time.
    Busy,
}

/// A WebSocket session's way to its activity: its own actor here, or a relay to the
/// node that owns it.
pub trait SessionLink {
    /// Joins (or resumes, with `ticket`) and attaches the session's queue: the
    /// activity pushes `queued`/`prequeue`/`admitted` into it once durable.
    fn join(
        &self,
        session: u64,
        queue: Arc<SessionQueue>,
        user: &UserId,
        ticket: Option<String>,
        pow: Option<PowSolution>,
        invite: Option<String>,
    ) -> LocalBoxFuture<'static, Result<(), JoinFailure>>;

    /// How long the session waits for `join`, given the local actor timeout. `None`:
    /// the link bounds the wait itself (a relayed join waits while its owner works).
    fn join_timeout(&self, local: Duration) -> Option<Duration> {
        Some(local)
    }

    /// The session ended (its place waits for a reconnect).
    fn detach(&self, session: u64, user: &UserId);

    /// The user left the line.
    fn leave(&self, session: u64, user: &UserId) -> LocalBoxFuture<'static, ()>;
}

/// Sends with backpressure: a full mailbox makes the caller wait up to `timeout`, then
/// the answer is `503 unavailable` with `Retry-After`. The answer comes once it is
/// durable, so the deadline covers that wait too.
pub async fn call<M, T>(
    timeout: Duration,
    addr: &Addr<ActivityActor>,
    msg: M,
) -> Result<T, ApiError>
where
    M: Message<Result = CallResult<T>> + Send + 'static,
    T: Send + 'static,
    ActivityActor: Handler<M>,
{
    match addr.send(msg).timeout(timeout).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(MailboxError::Timeout) => Err(ApiError::new(
            ErrorCode::Unavailable,
            "the activity is busy; retry shortly",
        )
        .retry_after(1)),
        Err(MailboxError::Closed) => Err(ApiError::new(
            ErrorCode::Unavailable,
            "the activity is not running",
        )),
    }
}

/// Every activity runs in this process.
pub struct LocalDirectory {
    pub registry: Arc<Registry>,
    pub actor_timeout: Duration,
}

impl LocalDirectory {
    /// Creates an activity here, committing to `target`.
    pub async fn create_here(
        &self,
        spec: ActivitySpec,
        slots: Vec<SlotSpec>,
        target: Arc<dyn CommitTarget>,
    ) -> Result<ActivityView, ApiError> {
        Ok(self.registry.create(spec, slots, target).await?)
    }

    /// The views of the activities running here, by id.
    pub async fn local_views(
        &self,
        admin: bool,
    ) -> std::collections::BTreeMap<String, serde_json::Value> {
        let mut views = std::collections::BTreeMap::new();
        for (id, addr) in self.registry.all() {
            if let Ok(v) = call(self.actor_timeout, &addr, Admin::View { admin }).await {
                views.insert(id.to_string(), serde_json::to_value(v).unwrap_or_default());
            }
        }
        views
    }

    /// The orders of `user` in the activities running here.
    pub async fn local_orders(&self, user: &UserId) -> Result<Vec<OrderView>, ApiError> {
        let mut orders = Vec::new();
        for (_, addr) in self.registry.all() {
            let mine = call(self.actor_timeout, &addr, OrdersOf { user: user.clone() }).await?;
            orders.extend(mine.iter().map(|o| o.view()));
        }
        Ok(orders)
    }

    /// The link of a session to an activity running here.
    pub fn link_here(&self, id: &ActivityId) -> Option<Box<dyn SessionLink>> {
        let addr = self.registry.get(id)?;
        Some(Box::new(LocalLink { addr }))
    }

    fn store(&self) -> &Store {
        self.registry.store()
    }
}

impl Directory for LocalDirectory {
    fn intercept(&self, req: ServiceRequest) -> Intercepted {
        Intercepted::Serve(req)
    }

    fn actor(&self, id: &ActivityId) -> Result<Addr<ActivityActor>, ApiError> {
        self.registry
            .get(id)
            .ok_or_else(|| ApiError::not_found("no such activity"))
    }

    fn needs_lookup(&self, _: &ActivityId) -> bool {
        false
    }

    fn lookup<'a>(&'a self, _: &'a ActivityId) -> LocalBoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn session_link(&self, id: &ActivityId) -> Result<Box<dyn SessionLink>, ApiError> {
        self.link_here(id)
            .ok_or_else(|| ApiError::not_found("no such activity"))
    }

    fn create<'a>(
        &'a self,
        _: &'a HttpRequest,
        _: CreateActivity,
        spec: ActivitySpec,
        slots: Vec<SlotSpec>,
    ) -> LocalBoxFuture<'a, Result<HttpResponse, ApiError>> {
        Box::pin(async move {
            tracing::info!(activity_id = %spec.id, kind = ?spec.kind, "creating activity");
            let target: Arc<dyn CommitTarget> = Arc::new(self.store().clone());
            let view = self.create_here(spec, slots, target).await?;
            Ok(HttpResponse::Created().json(view))
        })
    }

    fn views<'a>(&'a self, _: &'a HttpRequest, admin: bool) -> LocalBoxFuture<'a, Views> {
        Box::pin(async move { self.local_views(admin).await.into_values().collect() })
    }

    fn orders_of<'a>(
        &'a self,
        _: &'a HttpRequest,
        user: &'a UserId,
    ) -> LocalBoxFuture<'a, Result<Vec<serde_json::Value>, ApiError>> {
        Box::pin(async move {
            let orders = self.local_orders(user).await?;
            Ok(orders
                .iter()
                .map(|o| serde_json::to_value(o).unwrap_or_default())
                .collect())
        })
    }

    fn gather<'a>(
        &'a self,
        _: &'a HttpRequest,
        _: &'a str,
        _: &'a str,
    ) -> LocalBoxFuture<'a, Result<Vec<serde_json::Value>, ApiError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn relayed_client(&self, _: &HttpRequest) -> Option<IpAddr> {
        None
    }

    fn routes(&self, _: &mut web::ServiceConfig) {}

    fn status(&self) -> serde_json::Value {
        serde_json::json!({ "enabled": false })
    }

    fn reachable(&self) -> Option<bool> {
        None
    }

    fn leave(&self) -> LocalBoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// A session of an activity running in this process: straight to its actor.
pub struct LocalLink {
    addr: Addr<ActivityActor>,
}

impl SessionLink for LocalLink {
    fn join(
        &self,
        session: u64,
        queue: Arc<SessionQueue>,
        user: &UserId,
        ticket: Option<String>,
        pow: Option<PowSolution>,
        invite: Option<String>,
    ) -> LocalBoxFuture<'static, Result<(), JoinFailure>> {
        let join = Join {
            user: user.clone(),
            ticket,
            pow,
            invite,
            session: Some(SessionHandle {
                id: session,
                output: queue,
            }),
        };
        let sent = self.addr.send(join);
        Box::pin(async move {
            match sent.await {
                Ok(r) => r
                    .map(|_: JoinReply| ())
                    .map_err(|e| JoinFailure::Refused(e.into())),
                Err(_) => Err(JoinFailure::Busy),
            }
        })
    }

    fn detach(&self, session: u64, user: &UserId) {
        // Losing it is harmless: the place then expires after the grace period
        // anyway, as if the session had gone without a word.
        self.addr.do_send(Detach {
            user: user.clone(),
            session_id: session,
        });
    }

    fn leave(&self, _: u64, user: &UserId) -> LocalBoxFuture<'static, ()> {
        let sent = self.addr.send(Leave { user: user.clone() });
        Box::pin(async move {
            let _ = sent.await;
        })
    }
}
