//! The HTTP edge: routes, identity, limits, error mapping, WebSocket sessions.
//! Handlers parse and check input, call an actor found through the `Directory`, and
//! shape the reply; they never touch the store's layout, a sink, or another node.

pub mod activities;
pub mod admin;
pub mod admin_keys;
pub mod admin_orders;
pub mod audit;
pub mod auth;
pub mod body;
pub mod calls;
pub mod client_addr;
pub mod connection;
pub mod directory;
pub mod event_ticket;
pub mod fairness;
pub mod gate;
pub mod identity;
pub mod limits;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod orders;
pub mod page_forms;
pub mod page_identity;
pub mod page_nojs;
pub mod page_render;
pub mod page_text;
pub mod pages;
pub mod passwords;
pub mod protocol;
pub mod proxy_protocol;
pub mod report;
pub mod request_metrics;
pub mod routes;
pub mod schemas;
pub mod state;
pub mod webhooks;
pub mod ws_refresh;
pub mod ws_route;
pub mod ws_session;
pub mod ws_upgrade;
