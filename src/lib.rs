//! sluice: a fair virtual waiting room and inventory engine.
//!
//! - `domain`: pure data structures and decisions (waiting room, ledger, tokens, orders).
//! - `store`: sled layout, the group-commit writer, recovery, the outbox and its sinks.
//! - `actors`: one `ActivityActor` per activity, the registry, the order flusher.
//! - `http`: routes, identity, errors, WebSocket sessions.
//! - `startup`: builds the application; `config` and `telemetry` set it up; `tls`
//!   serves HTTPS and wss:// with a certificate reloaded on SIGHUP.

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
