//! Builds the application: store, sink, activity actors, the directory and account
//! store (local, or cluster mode's, chosen here once), the app and its server, and
//! shutdown as an input (signals, or `Application::shutdown` in tests).

use crate::actors::activity::ActorDeps;
use crate::actors::flusher::{OrderFlusher, SinkSlot};
use crate::actors::messages::PruneEvents;
use crate::actors::registry::Registry;
use crate::cluster::directory::ClusterDirectory;
use crate::cluster::Cluster;
use crate::config::{Settings, SinkKind};
use crate::domain::clock::Clock;
use crate::domain::ids::ActivityId;
use crate::domain::jwt::JwtKey;
use crate::domain::pass::Passes;
use crate::domain::token::TokenKey;
use crate::error::ApiError;
use crate::http::admin_keys::AdminKeys;
use crate::http::client_addr::TrustedProxies;
use crate::http::connection::Accept;
use crate::http::directory::{Directory, LocalDirectory};
use crate::http::event_ticket::EventTickets;
use crate::http::limits::RateLimits;
use crate::http::state::{session_cap, AppState, WsLimits};
use crate::http::{audit, middleware, routes, ws_upgrade};
use crate::store::accounts::{AccountStore, SledAccounts};
use crate::store::audit::AuditLog;
use crate::store::signing_keys::{SigningKeyStore, SledSigningKeys};
use crate::store::webhooks::{EventSignal, SledWebhooks, WebhookStore};
use crate::store::{CommitSettings, Store};
use crate::tls::Certificates;
use crate::webhooks::{HubDeps, Webhooks};
use actix_http::HttpService;
use actix_server::{Server, ServerHandle};
use actix_service::{fn_service, map_config, ServiceFactoryExt};
use actix_web::dev::AppConfig;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{web, App, HttpRequest};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

pub struct Application {
    port: u16,
    server: Server,
    handle: ServerHandle,
    state: web::Data<AppState>,
    flusher_stop: Arc<AtomicBool>,
    flusher: Option<tokio::task::JoinHandle<()>>,
    webhooks: tokio::task::JoinHandle<()>,
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

fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    Ok(Store::open(
        &settings.store.path,
        CommitSettings {
            window: settings.commit_window(),
            max_batch: settings.store.commit_max_batch,
            queue: settings.store.commit_queue,
            checkpoint: Duration::from_millis(settings.store.checkpoint_ms),
        },
    )?)
}

/// The configured order sink, connected lazily: one that is down at start-up only
/// warns (selling goes on, the flusher retries, the outbox keeps the orders).
async fn order_sink(settings: &Settings) -> Option<Arc<SinkSlot>> {
    let slot = match settings.sink.kind {
        SinkKind::None => return None,
        SinkKind::Postgres => Arc::new(SinkSlot::new("postgres", &settings.sink.url)),
        SinkKind::Redis => Arc::new(SinkSlot::new("redis", &settings.sink.url)),
    };
    if let Err(e) = slot.get().await {
        tracing::warn!(error = %format!("{e:#}"), "order sink unreachable at start; orders wait in the outbox");
    }
    Some(slot)
}

/// The outbox's drain to the sink, and the flag /readyz reads.
struct Flusher {
    task: Option<tokio::task::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    reachable: Arc<AtomicBool>,
}

fn start_flusher(settings: &Settings, store: &Store, sink: Option<&Arc<SinkSlot>>) -> Flusher {
    let stop = Arc::new(AtomicBool::new(false));
    let Some(sink) = sink else {
        return Flusher {
            task: None,
            stop,
            reachable: Arc::new(AtomicBool::new(true)),
        };
    };
    let f = OrderFlusher::new(store.clone(), Arc::clone(sink), settings.sink.batch_size);
    let reachable = Arc::clone(&f.reachable);
    let task = actix_web::rt::spawn(f.run(Arc::clone(&stop)));
    Flusher {
        task: Some(task),
        stop,
        reachable,
    }
}

/// Webhook delivery: the hub handlers register receivers with, and its supervisor
/// task (one worker per receiver, for the activities this process runs).
struct WebhookDelivery {
    hub: Arc<Webhooks>,
    task: tokio::task::JoinHandle<()>,
}

fn start_webhooks(
    settings: &Settings,
    registry: &Arc<Registry>,
    registrations: Arc<dyn WebhookStore>,
    signal: Arc<EventSignal>,
    clock: &Arc<dyn Clock>,
) -> WebhookDelivery {
    let runs = Arc::clone(registry);
    let prunes = Arc::clone(registry);
    let hub = Webhooks::new(HubDeps {
        store: registry.store().clone(),
        registrations,
        signal,
        settings: settings.webhooks.clone(),
        owned: Arc::new(move || {
            runs.all()
                .into_iter()
                .map(|(id, _)| id.to_string())
                .collect()
        }),
        prune: Arc::new(move |activity, below| {
            let actor = ActivityId::parse(activity)
                .ok()
                .and_then(|id| prunes.get(&id));
            if let Some(actor) = actor {
                actor.do_send(PruneEvents { below });
            }
        }),
        clock: Arc::clone(clock),
        tls: crate::tls::client_config(&settings.webhooks.ca_file)
            .map_err(|e| {
                tracing::warn!(error = %format!("{e:#}"), "webhooks.ca_file unusable; https:// receivers will fail");
            })
            .ok(),
    });
    let task = actix_web::rt::spawn(Arc::clone(&hub).run());
    WebhookDelivery { hub, task }
}

/// The ports HTTP reaches activities, accounts, signing keys and webhook
/// registrations through.
struct Adapters {
    directory: Arc<dyn Directory>,
    accounts: Arc<dyn AccountStore>,
    keys: Arc<dyn SigningKeyStore>,
    webhooks: Arc<dyn WebhookStore>,
}

/// Installs the stored pass keys (creating the first on first start) before any
/// activity can admit, and keeps them current (another node may rotate them).
async fn install_keys(
    keys: &Arc<dyn SigningKeyStore>,
    passes: &Passes,
    now: crate::domain::clock::Millis,
) -> anyhow::Result<()> {
    let records = keys
        .load_or_create(now)
        .await
        .map_err(|e| anyhow::anyhow!("gate pass signing keys: {e}"))?;
    passes.install(records);
    let (keys, passes) = (Arc::clone(keys), passes.clone());
    actix_web::rt::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(2));
        loop {
            every.tick().await;
            if let Ok(records) = keys.current().await {
                if !records.is_empty() && records != passes.records() {
                    passes.install(records);
                }
            }
        }
    });
    Ok(())
}

/// The ports HTTP reaches activities, accounts, pass keys and webhook registrations
/// through: this process
/// alone, or in cluster mode the cluster's. The only place that asks which.
async fn adapters(
    settings: &Settings,
    registry: Arc<Registry>,
    passes: &Passes,
) -> anyhow::Result<Adapters> {
    let now = registry.now();
    let local = LocalDirectory {
        registry: Arc::clone(&registry),
        actor_timeout: Duration::from_millis(settings.server.actor_timeout_ms),
    };
    if !settings.cluster.enabled {
        let keys: Arc<dyn SigningKeyStore> =
            Arc::new(SledSigningKeys::new(registry.store().clone()));
        install_keys(&keys, passes, now).await?;
        let restored = registry.restore_all()?;
        tracing::info!(activities = restored, path = %settings.store.path.display(), "store opened");
        let accounts = Arc::new(SledAccounts::new(registry.store().clone()));
        let webhooks = Arc::new(SledWebhooks {
            store: registry.store().clone(),
        });
        return Ok(Adapters {
            directory: Arc::new(local),
            accounts,
            keys,
            webhooks,
        });
    }
    // In cluster mode activities are not restored from this node's store: the cluster
    // decides who owns what, and an owner rebuilds from the replica.
    let relay_arbiter = actix::Arbiter::new();
    let cluster = Cluster::connect(settings, registry, relay_arbiter.handle()).await?;
    // The arbiter lives as long as the process: its handle keeps it running.
    std::mem::forget(relay_arbiter);
    let keys: Arc<dyn SigningKeyStore> = Arc::new(cluster.signing_keys());
    install_keys(&keys, passes, now).await?;
    cluster.start();
    let accounts = Arc::new(cluster.accounts());
    let webhooks = Arc::new(cluster.webhooks());
    Ok(Adapters {
        directory: Arc::new(ClusterDirectory { local, cluster }),
        accounts,
        keys,
        webhooks,
    })
}

/// Binds `server.bind` and serves `state` on it (over TLS with `tls`): the app for
/// requests, the raw WebSocket session for upgrades.
fn serve(
    settings: &Settings,
    state: &web::Data<AppState>,
    tls: Option<&Arc<Certificates>>,
) -> anyhow::Result<(u16, Server)> {
    let max_body = settings.server.max_body_bytes;
    let app_state = state.clone();
    let app = move || {
        let directory = Arc::clone(&app_state.directory);
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
            .wrap_fn(middleware::directory)
            .wrap_fn(audit::record)
            .wrap_fn(middleware::observe)
            .configure(move |cfg| routes::configure(cfg, directory.as_ref()))
    };
    let listener = listen(&settings.server.bind)?;
    let local = listener.local_addr()?;
    let request_timeout = Duration::from_millis(settings.server.client_request_timeout_ms);
    let upgrade_state = state.clone();
    let accept = Arc::new(Accept {
        proxies: state.proxies.clone(),
        proxy_protocol: settings.server.proxy_protocol,
        header_timeout: request_timeout,
        tls: tls
            .map(|certs| certs.server_config().map(TlsAcceptor::from))
            .transpose()?,
    });
    // actix-web's `HttpServer` is this, minus the upgrade hook: WebSocket upgrades go
    // to `ws_upgrade` with the raw socket (see `ws_session` for why).
    let builder = actix_server::Server::build();
    let graceful = builder.graceful_shutdown_signal();
    let mut server = builder
        .listen("sluice", listener, move || {
            let graceful = graceful.clone();
            let accept = Arc::clone(&accept);
            let connection = fn_service(move |io: TcpStream| {
                let accept = Arc::clone(&accept);
                async move { accept.accept(io).await }
            });
            let http = HttpService::build()
                .graceful_shutdown_signal(move || {
                    let signal = graceful.clone();
                    async move { signal.notified().await }
                })
                .client_request_timeout(request_timeout)
                .client_disconnect_timeout(Duration::from_secs(1))
                .local_addr(local)
                .upgrade(ws_upgrade::service(upgrade_state.clone()))
                .finish(map_config(app(), |_| AppConfig::default()));
            connection.and_then(http)
        })?
        .disable_signals()
        .shutdown_timeout(5)
        .max_concurrent_connections(50_000);
    if settings.server.workers > 0 {
        server = server.workers(settings.server.workers);
    }
    Ok((local.port(), server.run()))
}

impl Application {
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Application> {
        let store = open_store(&settings)?;
        let sink = order_sink(&settings).await;
        let hooks = EventSignal::new();
        let deps = ActorDeps {
            store: store.clone(),
            clock: Arc::clone(&clock),
            tick: Duration::from_millis(settings.server.tick_ms),
            outbox: sink.is_some(),
            hooks: Arc::clone(&hooks),
            passes: Passes::new(&settings.server.public_url()),
        };
        let passes = deps.passes.clone();
        let arbiter = actix::Arbiter::new();
        let registry = Arc::new(Registry::new(
            deps,
            TokenKey::new(settings.tokens.secret.as_bytes()),
            arbiter.handle(),
        ));
        let Adapters {
            directory,
            accounts: account_store,
            keys: signing_keys,
            webhooks: registrations,
        } = adapters(&settings, Arc::clone(&registry), &passes).await?;
        let flusher = start_flusher(&settings, &store, sink.as_ref());
        let webhooks = start_webhooks(&settings, &registry, registrations, hooks, &clock);

        let audit = AuditLog::open(store.clone())?;
        let state = web::Data::new(AppState {
            registry,
            directory,
            store,
            jwt: JwtKey::new(settings.auth.jwt_secret.as_bytes()),
            admin_keys: AdminKeys::from_settings(&settings.admin),
            event_tickets: EventTickets::new(settings.tokens.secret.as_bytes()),
            audit,
            payment: settings.payment.mode,
            clock,
            actor_timeout: Duration::from_millis(settings.server.actor_timeout_ms),
            sink,
            sink_reachable: flusher.reachable,
            metrics: metrics_handle(),
            ws: WsLimits::new(
                settings.server.max_ws_per_ip,
                settings.server.ws_messages_per_sec,
                session_cap(settings.server.max_ws_sessions),
            )
            .with_tick(settings.server.tick_ms),
            limits: RateLimits::new(&settings.limits, governor::clock::DefaultClock::default()),
            proxies: TrustedProxies::parse(&settings.server.trusted_proxies)
                .map_err(|e| anyhow::anyhow!("server.trusted_proxies: {e}"))?,
            passwords: crate::http::passwords::Passwords::new(&settings.auth)?,
            account_store,
            webhooks: webhooks.hub,
            // Random high bits: session ids must not collide across cluster nodes.
            session_ids: AtomicU64::new((u64::from(rand::random::<u32>()) << 32) | 1),
            passes,
            signing_keys,
        });

        let trim = state.clone();
        actix_web::rt::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(30));
            loop {
                every.tick().await;
                trim.limits.trim();
            }
        });

        let tls = match settings.server.tls.enabled() {
            false => None,
            true => {
                let t = &settings.server.tls;
                let certs = Certificates::load(t.cert_path.as_ref(), t.key_path.as_ref())?;
                actix_web::rt::spawn(crate::tls::reload_on_sighup(Arc::clone(&certs)));
                Some(certs)
            }
        };
        let (port, server) = serve(&settings, &state, tls.as_ref())?;
        let handle = server.handle();
        Ok(Application {
            port,
            server,
            handle,
            state,
            flusher_stop: flusher.stop,
            flusher: flusher.task,
            webhooks: webhooks.task,
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
        // Delivery resumes from the durable cursors at the next start.
        self.webhooks.abort();
        let _ = (&mut self.webhooks).await;
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
        self.state.directory.leave().await;
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
