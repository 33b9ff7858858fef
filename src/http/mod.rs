//! The HTTP edge: routes, identity, limits, error mapping, WebSocket sessions.
//! Handlers parse and check input, call an actor, and shape the reply; they never
//! touch the store's layout or a sink.

pub mod activities;
pub mod admin;
pub mod auth;
pub mod calls;
pub mod forward;
pub mod identity;
pub mod internal;
pub mod limits;
pub mod ops;
pub mod orders;
pub mod pages;
pub mod protocol;
pub mod request_metrics;
pub mod state;
pub mod ws_route;
pub mod ws_session;
pub mod ws_upgrade;
