//! The front door: sluice behind real proxies and load balancers (nginx, HAProxy with
//! the PROXY protocol), hostile forwarding headers and preambles, TLS, and the OpenAPI
//! document. One binary (links once), one module per concern.

#[path = "../common/mod.rs"]
mod common;

mod deploy;
mod gate;
mod proxies;
mod proxy_protocol;
mod tls;
