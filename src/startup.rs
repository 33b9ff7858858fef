//! Builds the application: store, sink, activity actors, every route in one place,
//! and shutdown as an input (signals, or `Application::shutdown` in tests).

use crate::actors::activity::ActorDeps;
use crate::actors::flusher::{OrderFlusher, SinkSlot};
use crate::actors::registry::Registry;
use crate::cluster::Cluster;
use crate::config::{Settings, SinkKind};
use crate::domain::clock::Clock;
use crate::domain::jwt::JwtKey;
use crate::domain::token::TokenKey;
use crate::error::ApiError;
use crate::http::forward::{self, Decision};
use crate::http::limits::RateLimits;
use crate::http::state::{AppState, WsLimits};
use crate::http::{
    activities, admin, auth, internal, ops, orders, pages, request_metrics, ws_route, ws_upgrade,
};
use crate::store::{CommitSettings, Store};
use actix_http::HttpService;
use actix_server::{Server, ServerHandle};
use actix_service::map_config;
use actix_web::body::BoxBody;
use actix_web::dev::ServiceResponse;
use actix_web::dev::{AppConfig, Service};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{web, App, HttpRequest};
use futures_util::future::LocalBoxFuture;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tracing::Instrument;

pub struct Application {
    port: u16,
    server: Server,
    handle: ServerHandle,
    state: web::Data<AppState>,
    flusher_stop: Arc<AtomicBool>,
    flusher: Option<tokio::task::JoinHandle<()>>,
}

/// The process-wide Prometheus recorder (installed once, shared by every app).
fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let secs = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ];
            let sizes = [
                1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
            ];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("seconds".into()), &secs)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("sluice_commit_jobs".into()), &sizes)
                })
                .ok()
                .and_then(|b| b.install_recorder().ok())
        })
        .clone()
}

fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let e = match &err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::new(
                crate::error::ErrorCode::PayloadTooLarge,
                "the request body is too large",
            )
        }
        JsonPayloadError::ContentType => {
            ApiError::invalid("the body must be JSON (Content-Type: application/json)")
        }
        JsonPayloadError::Deserialize(d) => ApiError::invalid(format!("invalid JSON body: {d}")),
        other => ApiError::invalid(format!("invalid body: {other}")),
    };
    e.into()
}

/// Binds `server.bind` with a listen backlog of 4096: the kernel default of 128 drops a
/// crowd's SYNs, which clients retry only after 1 s.
fn listen(bind: &str) -> anyhow::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let addr = std::net::ToSocketAddrs::to_socket_addrs(bind)
        .map_err(|e| anyhow::anyhow!("server.bind {bind}: {e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("server.bind {bind} names no address"))?;
    let bound = (|| {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(4096)?;
        std::io::Result::Ok(std::net::TcpListener::from(socket))
    })();
    bound.map_err(|e| anyhow::anyhow!("cannot bind server.bind {bind}: {e}"))
}

fn path_error(err: PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::not_found(format!("no such resource: {err}")).into()
}

fn query_error(err: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::invalid(format!("invalid query string: {err}")).into()
}

/// A bounded route label for metrics, from the path alone: re-running the router's
/// matcher for it (`match_pattern`) cost about 7% of a purchase's CPU.
fn route_label(path: &str) -> &'static str {
    let mut seg = path.trim_start_matches('/').split('/');
    match (seg.next(), seg.next(), seg.next(), seg.next(), seg.next()) {
        (Some("api"), Some("activities"), Some(_), Some(action), _) => match action {
            "join" => "/api/activities/{id}/join",
            "purchase" => "/api/activities/{id}/purchase",
            "tickets" => "/api/activities/{id}/tickets/{ticket}",
            "challenge" => "/api/activities/{id}/challenge",
            _ => "other",
        },
        (Some("api"), Some("activities"), Some(_), None, _) => "/api/activities/{id}",
        (Some("api"), Some("activities"), None, _, _) => "/api/activities",
        (Some("api"), Some("orders"), Some(_), Some("pay"), _) => "/api/orders/{id}/pay",
        (Some("api"), Some("orders"), Some(_), Some("cancel"), _) => "/api/orders/{id}/cancel",
        (Some("api"), Some("orders"), Some(_), None, _) => "/api/orders/{id}",
        (Some("api"), Some("orders"), None, _, _) => "/api/orders",
        (Some("api"), Some("admin"), _, _, _) => "/api/admin",
        (Some("api"), Some("auth"), Some("login"), None, _) => "/api/auth/login",
        (Some("api"), Some("auth"), Some("register"), None, _) => "/api/auth/register",
        (Some("ws"), Some("activities"), Some(_), None, _) => "/ws/activities/{id}",
        (Some("healthz"), None, _, _, _) => "/healthz",
        (Some("readyz"), None, _, _, _) => "/readyz",
        (Some("metrics"), None, _, _, _) => "/metrics",
        (Some("a"), Some(_), None, _, _) => "/a/{id}",
        (Some("admin"), None, _, _, _) => "/admin",
        (Some("assets"), Some(_), None, _, _) => "/assets/{file}",
        _ => "other",
    }
}

/// The activity a request is about, for its span: `/api/activities/{id}/...`,
/// `/api/admin/activities/{id}/...`, `/ws/activities/{id}`.
fn activity_in_path(path: &str) -> Option<&str> {
    let rest = path
        .strip_prefix("/api/activities/")
        .or_else(|| path.strip_prefix("/api/admin/activities/"))
        .or_else(|| path.strip_prefix("/ws/activities/"))?;
    rest.split('/')
        .next()
        .filter(|s| !s.is_empty() && s.len() <= 64)
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found("no such endpoint"))
}

impl Application {
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Application> {
        let store = Store::open(
            &settings.store.path,
            CommitSettings {
                window: settings.commit_window(),
                max_batch: settings.store.commit_max_batch,
                queue: settings.store.commit_queue,
                checkpoint: Duration::from_millis(settings.store.checkpoint_ms),
            },
        )?;
        let sink = match settings.sink.kind {
            SinkKind::None => None,
            SinkKind::Postgres => Some(Arc::new(SinkSlot::new("postgres", &settings.sink.url))),
            SinkKind::Redis => Some(Arc::new(SinkSlot::new("redis", &settings.sink.url))),
        };
        if let Some(slot) = &sink {
            // Only a warning: selling goes on and the flusher retries.
            if let Err(e) = slot.get().await {
                tracing::warn!(error = %format!("{e:#}"), "order sink unreachable at start; orders wait in the outbox");
            }
        }
        let deps = ActorDeps {
            store: store.clone(),
            clock: Arc::clone(&clock),
            tick: Duration::from_millis(settings.server.tick_ms),
            outbox: sink.is_some(),
        };
        let arbiter = actix::Arbiter::new();
        let registry = Arc::new(Registry::new(
            deps,
            TokenKey::new(settings.tokens.secret.as_bytes()),
            arbiter.handle(),
        ));
        // In cluster mode activities are not restored from this node's store: the
        // cluster decides who owns what, and an owner rebuilds from the replica.
        let cluster = if settings.cluster.enabled {
            let relay_arbiter = actix::Arbiter::new();
            let c =
                Cluster::connect(&settings, Arc::clone(&registry), relay_arbiter.handle()).await?;
            // The arbiter lives as long as the process: its handle keeps it running.
            std::mem::forget(relay_arbiter);
            Some(c)
        } else {
            let restored = registry.restore_all()?;
            tracing::info!(activities = restored, path = %settings.store.path.display(), "store opened");
            None
        };

        let flusher_stop = Arc::new(AtomicBool::new(false));
        let sink_reachable = Arc::new(AtomicBool::new(true));
        let flusher = sink.as_ref().map(|s| {
            let f = OrderFlusher::new(store.clone(), Arc::clone(s), settings.sink.batch_size);
            let reachable = Arc::clone(&f.reachable);
            let stop = Arc::clone(&flusher_stop);
            let h = actix_web::rt::spawn(f.run(stop));
            (h, reachable)
        });
        let (flusher, sink_reachable) = match flusher {
            Some((h, r)) => (Some(h), r),
            None => (None, sink_reachable),
        };

        let state = web::Data::new(AppState {
            registry,
            store,
            jwt: JwtKey::new(settings.auth.jwt_secret.as_bytes()),
            admin_key_hash: AppState::hash_key(&settings.admin.api_key),
            clock,
            actor_timeout: Duration::from_millis(settings.server.actor_timeout_ms),
            sink,
            sink_reachable,
            metrics: metrics_handle(),
            ws: WsLimits::new(
                settings.server.max_ws_per_ip,
                settings.server.ws_messages_per_sec,
                crate::http::state::session_cap(settings.server.max_ws_sessions),
            ),
            limits: RateLimits::new(&settings.limits, governor::clock::DefaultClock::default()),
            accounts: crate::http::auth::Accounts::new(&settings.auth)?,
            // Random high bits: session ids must not collide across cluster nodes.
            session_ids: AtomicU64::new((u64::from(rand::random::<u32>()) << 32) | 1),
            cluster: cluster.clone(),
        });
        if let Some(c) = &cluster {
            c.start();
        }

        let trim = state.clone();
        actix_web::rt::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(30));
            loop {
                every.tick().await;
                trim.limits.trim();
            }
        });

        let max_body = settings.server.max_body_bytes;
        let app_state = state.clone();
        let app = move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(
                    web::JsonConfig::default()
                        .limit(max_body)
                        .error_handler(json_error),
                )
                .app_data(web::PathConfig::default().error_handler(path_error))
                .app_data(web::QueryConfig::default().error_handler(query_error))
                .app_data(web::PayloadConfig::default().limit(max_body))
                // Cluster mode: calls about activities owned elsewhere go there.
                .wrap_fn(
                    |req,
                     srv|
                     -> LocalBoxFuture<
                        'static,
                        Result<ServiceResponse<BoxBody>, actix_web::Error>,
                    > {
                        match forward::decide(&req) {
                            Decision::Local => {
                                let fut = srv.call(req);
                                Box::pin(async move {
                                    fut.await.map(ServiceResponse::map_into_boxed_body)
                                })
                            }
                            Decision::Forward(owner) => Box::pin(forward::forward(req, owner)),
                            Decision::Lookup(id) => Box::pin(forward::after_lookup(req, id)),
                            Decision::Moving => {
                                let res = req.error_response(forward::moving());
                                Box::pin(async move { Ok(res) })
                            }
                        }
                    },
                )
                .wrap_fn(|req, srv| {
                    let started = Instant::now();
                    let route = route_label(req.path());
                    // Fields are formatted only when the span is enabled (info level).
                    let span = tracing::info_span!(
                        "request",
                        request_id = %format_args!("{:016x}", rand::random::<u64>()),
                        activity_id = %activity_in_path(req.path()).unwrap_or("-"),
                        method = %req.method(),
                        route = %route
                    );
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
                        request_metrics::record(route, status, elapsed);
                        Ok(res)
                    }
                    .instrument(span)
                })
                .configure(ops::routes)
                .configure(auth::routes)
                .configure(admin::routes)
                .configure(activities::routes)
                .configure(orders::routes)
                .configure(ws_route::routes)
                .configure(internal::routes)
                .configure(pages::routes)
                .default_service(web::to(not_found))
        };
        let listener = listen(&settings.server.bind)?;
        let local = listener.local_addr()?;
        let request_timeout = Duration::from_millis(settings.server.client_request_timeout_ms);
        let upgrade_state = state.clone();
        // actix-web's `HttpServer` is this, minus the upgrade hook: WebSocket upgrades go
        // to `ws_upgrade` with the raw socket (see `ws_session` for why).
        let builder = actix_server::Server::build();
        let graceful = builder.graceful_shutdown_signal();
        let mut server = builder
            .listen("sluice", listener, move || {
                let graceful = graceful.clone();
                HttpService::build()
                    .graceful_shutdown_signal(move || {
                        let signal = graceful.clone();
                        async move { signal.notified().await }
                    })
                    .client_request_timeout(request_timeout)
                    .client_disconnect_timeout(Duration::from_secs(1))
                    .local_addr(local)
                    .upgrade(ws_upgrade::service(upgrade_state.clone()))
                    .finish(map_config(app(), |_| AppConfig::default()))
                    .tcp()
            })?
            .disable_signals()
            .shutdown_timeout(5)
            .max_concurrent_connections(50_000);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let port = local.port();
        let server = server.run();
        let handle = server.handle();
        Ok(Application {
            port,
            server,
            handle,
            state,
            flusher_stop,
            flusher,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// A handle that stops the application gracefully from anywhere.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            handle: self.handle.clone(),
            state: self.state.clone(),
        }
    }

    /// Serves until stopped, then drains the outbox a last time and closes the store.
    pub async fn run_until_stopped(mut self) -> std::io::Result<()> {
        let res = self.server.await;
        self.flusher_stop.store(true, Ordering::Release);
        if let Some(f) = self.flusher.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), f).await;
        }
        self.state.store.shutdown();
        tracing::info!("stopped; all state durable");
        res
    }
}

/// Graceful stop: no new joins, sessions told `restarting`, everything decided made
/// durable, then the server stops.
#[derive(Clone)]
pub struct Stopper {
    handle: ServerHandle,
    state: web::Data<AppState>,
}

impl Stopper {
    pub async fn stop(&self) {
        tracing::info!("shutting down");
        self.state.registry.drain().await;
        if let Some(c) = &self.state.cluster {
            c.leave().await;
        }
        self.handle.stop(true).await;
    }

    /// Stops on SIGTERM or SIGINT.
    pub async fn on_signals(self) {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        self.stop().await;
    }
}
