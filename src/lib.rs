//! sluice: a fair virtual waiting room and inventory engine.
//!
//! One core, adapters around it (docs/architecture.md):
//!
//! - `domain`: pure decisions, no I/O (the activity: queue, holds, orders,
//!   admission; ledger, pacer, tokens, ids).
//! - `store`: journal + sled, the group-commit writer, recovery, the outbox and its
//!   sinks; the commit port (`store::target::CommitTarget`) and the account port
//!   (`store::accounts::AccountStore`), implemented locally by `Store` and
//!   `SledAccounts`.
//! - `actors`: one `ActivityActor` per activity (the single writer of its state),
//!   the registry, the order flusher; the session-output port
//!   (`actors::session::SessionOutput`), implemented locally by `SessionQueue`.
//! - `http`: routes, identity, limits, WebSocket sessions; handlers reach
//!   activities through the directory port (`http::directory::Directory`),
//!   implemented locally by `LocalDirectory`.
//! - `webhooks`: delivery of the webhook events activities commit (one worker per
//!   receiver, durable cursors, backoff); registrations through the port
//!   `store::webhooks::WebhookStore` (`SledWebhooks` locally).
//! - `cluster`: cluster mode as adapters of those ports (replicated commits, the
//!   relay link, the cluster directory, accounts in Redis). It imports the core;
//!   the core never imports it.
//! - `startup`: builds the application and picks the adapters, once; `config` and
//!   `telemetry` set it up; `tls` serves HTTPS and wss:// with a certificate
//!   reloaded on SIGHUP.
//!
//! A join walks: `http::ws_upgrade` -> `SessionLink::join` -> `ActivityActor`
//! (`Join`) -> `domain::activity::Activity` -> the actor's commit pipeline ->
//! `CommitTarget` -> `queued` pushed through the session's `SessionOutput`.

pub mod actors;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod webhooks;
