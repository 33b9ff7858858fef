//! Cluster mode's `Directory`: activities running here are served by the local
//! directory it wraps; the others are reached on their owners (requests forwarded,
//! sessions relayed, lists and orders gathered from every live node).

use super::forward::{self, Decision};
use super::internal::{self, is_internal, Peers};
use super::session_link::RemoteLink;
use super::{Cluster, Route};
use crate::domain::ids::{ActivityId, UserId};
use crate::domain::spec::{ActivitySpec, CreateActivity, SlotSpec};
use crate::error::{ApiError, ErrorCode};
use crate::http::directory::{Directory, Intercepted, LocalDirectory, SessionLink, Views};
use crate::http::limits::client_ip;
use actix::Addr;
use actix_web::dev::ServiceRequest;
use actix_web::http::header::{HeaderValue, AUTHORIZATION};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;
use std::net::IpAddr;
use std::sync::Arc;

pub struct ClusterDirectory {
    pub local: LocalDirectory,
    pub cluster: Arc<Cluster>,
}

impl ClusterDirectory {
    /// Placement: an activity is created on its rendezvous node, so activities spread
    /// over the cluster; a request another node forwarded here is created here.
    async fn create_placed(
        &self,
        req: &HttpRequest,
        body: CreateActivity,
        spec: ActivitySpec,
        slots: Vec<SlotSpec>,
    ) -> Result<HttpResponse, ApiError> {
        let c = &self.cluster;
        let forwarded = is_internal(c, req);
        if let Some((node, base)) = c
            .preferred(&spec.id)
            .filter(|(n, _)| !forwarded && *n != c.node_id)
        {
            tracing::info!(activity_id = %spec.id, node = %node, "creating activity on its node");
            let json = serde_json::to_vec(&body).map_err(|e| ApiError::invalid(e.to_string()))?;
            let res =
                super::client::forward(req, json.into(), &base, c.key(), client_ip(req)).await;
            c.refresh().await;
            return Ok(res);
        }
        tracing::info!(activity_id = %spec.id, kind = ?spec.kind, "creating activity (owned here)");
        let view = c.create(spec, slots).await?;
        Ok(HttpResponse::Created().json(view))
    }

    /// Views from every other live node (a peer asked for its own list gets only its
    /// own: `is_internal`).
    async fn gather_views(&self, req: &HttpRequest, admin: bool) -> Views {
        let mut views = self.local.local_views(admin).await;
        if !is_internal(&self.cluster, req) {
            let c = &self.cluster;
            let path = if admin {
                "/api/admin/activities"
            } else {
                "/api/activities"
            };
            let bearer = HeaderValue::from_str(&format!("Bearer {}", c.key())).ok();
            let auth = if admin { bearer.as_ref() } else { None };
            for (node, base) in c.peers() {
                match super::client::get_json::<serde_json::Value>(&base, path, c.key(), auth).await
                {
                    Ok(v) => {
                        for view in v["activities"].as_array().cloned().unwrap_or_default() {
                            if let Some(id) = view["id"].as_str() {
                                views.entry(id.to_owned()).or_insert(view);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(node = %node, error = %e, "cannot list a node's activities")
                    }
                }
            }
        }
        views.into_values().collect()
    }

    /// `field` of `GET path_and_query` on every other live node, as an operator.
    async fn gather_lists(
        &self,
        req: &HttpRequest,
        path_and_query: &str,
        field: &str,
    ) -> Result<Vec<serde_json::Value>, ApiError> {
        if is_internal(&self.cluster, req) {
            return Ok(Vec::new());
        }
        let c = &self.cluster;
        let bearer = HeaderValue::from_str(&format!("Bearer {}", c.key())).ok();
        let mut out = Vec::new();
        for (node, base) in c.peers() {
            let theirs = super::client::get_json::<serde_json::Value>(
                &base,
                path_and_query,
                c.key(),
                bearer.as_ref(),
            )
            .await;
            match theirs {
                Ok(v) => out.extend(v[field].as_array().cloned().unwrap_or_default()),
                Err(e) => {
                    tracing::warn!(node = %node, error = %e, "cannot gather a node's list");
                    return Err(ApiError::new(
                        ErrorCode::Unavailable,
                        "a node of the cluster cannot be reached; retry shortly",
                    )
                    .retry_after(1));
                }
            }
        }
        Ok(out)
    }

    async fn gather_orders(
        &self,
        req: &HttpRequest,
        user: &UserId,
    ) -> Result<Vec<serde_json::Value>, ApiError> {
        let mut orders: Vec<serde_json::Value> = self
            .local
            .local_orders(user)
            .await?
            .iter()
            .map(|o| serde_json::to_value(o).unwrap_or_default())
            .collect();
        if is_internal(&self.cluster, req) {
            return Ok(orders);
        }
        let c = &self.cluster;
        let auth = req.headers().get(AUTHORIZATION);
        for (node, base) in c.peers() {
            let theirs =
                super::client::get_json::<serde_json::Value>(&base, "/api/orders", c.key(), auth)
                    .await;
            match theirs {
                Ok(v) => orders.extend(v["orders"].as_array().cloned().unwrap_or_default()),
                Err(e) => {
                    tracing::warn!(node = %node, error = %e, "cannot list a node's orders");
                    return Err(ApiError::new(
                        ErrorCode::Unavailable,
                        "a node of the cluster cannot be reached; retry shortly",
                    )
                    .retry_after(1));
                }
            }
        }
        Ok(orders)
    }
}

impl Directory for ClusterDirectory {
    fn intercept(&self, req: ServiceRequest) -> Intercepted {
        match forward::decide(&self.cluster, &req) {
            Decision::Local => Intercepted::Serve(req),
            other => Intercepted::Answered(forward::answer(&self.cluster, req, other)),
        }
    }

    fn actor(
        &self,
        id: &ActivityId,
    ) -> Result<Addr<crate::actors::activity::ActivityActor>, ApiError> {
        self.local
            .registry
            .get(id)
            .ok_or_else(|| match self.cluster.route(id) {
                // Known to the cluster but not running here (it just moved): retry, not 404.
                Route::Unknown => ApiError::not_found("no such activity"),
                _ => forward::moving(),
            })
    }

    fn needs_lookup(&self, id: &ActivityId) -> bool {
        !self.cluster.runs_here(id) && matches!(self.cluster.route(id), Route::Unknown)
    }

    fn lookup<'a>(&'a self, id: &'a ActivityId) -> LocalBoxFuture<'a, ()> {
        Box::pin(self.cluster.lookup(id))
    }

    fn session_link(&self, id: &ActivityId) -> Result<Box<dyn SessionLink>, ApiError> {
        if let Some(link) = self.local.link_here(id) {
            return Ok(link);
        }
        match self.cluster.route(id) {
            Route::Owner(owner) => Ok(Box::new(RemoteLink {
                activity: id.clone(),
                owner,
                relay: Arc::clone(&self.cluster.relay),
            })),
            Route::Moving => Err(forward::moving()),
            Route::Unknown => Err(ApiError::not_found("no such activity")),
        }
    }

    fn create<'a>(
        &'a self,
        req: &'a HttpRequest,
        body: CreateActivity,
        spec: ActivitySpec,
        slots: Vec<SlotSpec>,
    ) -> LocalBoxFuture<'a, Result<HttpResponse, ApiError>> {
        Box::pin(self.create_placed(req, body, spec, slots))
    }

    fn views<'a>(&'a self, req: &'a HttpRequest, admin: bool) -> LocalBoxFuture<'a, Views> {
        Box::pin(self.gather_views(req, admin))
    }

    fn orders_of<'a>(
        &'a self,
        req: &'a HttpRequest,
        user: &'a UserId,
    ) -> LocalBoxFuture<'a, Result<Vec<serde_json::Value>, ApiError>> {
        Box::pin(self.gather_orders(req, user))
    }

    fn gather<'a>(
        &'a self,
        req: &'a HttpRequest,
        path_and_query: &'a str,
        field: &'a str,
    ) -> LocalBoxFuture<'a, Result<Vec<serde_json::Value>, ApiError>> {
        Box::pin(self.gather_lists(req, path_and_query, field))
    }

    fn relayed_client(&self, req: &HttpRequest) -> Option<IpAddr> {
        let v = req.headers().get(super::client::CLIENT_IP_HEADER)?;
        if !is_internal(&self.cluster, req) {
            return None;
        }
        v.to_str().ok()?.parse().ok()
    }

    fn routes(&self, cfg: &mut web::ServiceConfig) {
        let peers = web::Data::new(Peers {
            cluster: Arc::clone(&self.cluster),
            actor_timeout: self.local.actor_timeout,
        });
        internal::routes(cfg, peers);
    }

    fn status(&self) -> serde_json::Value {
        self.cluster.describe()
    }

    fn reachable(&self) -> Option<bool> {
        Some(self.cluster.is_healthy())
    }

    fn leave(&self) -> LocalBoxFuture<'_, ()> {
        Box::pin(self.cluster.leave())
    }
}
