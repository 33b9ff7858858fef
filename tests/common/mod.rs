//! Test helpers shared by both test binaries (each includes this folder with
//! `#[path = "../common/mod.rs"] mod common;`): `Api`, the one typed client over a
//! base URL, and the three kinds of server it drives, which all deref to it:
//! - `TestApp`: sluice in this process, on a free port, with its own temp store;
//! - `Process`: the real binary (`kill -9`, restart on the same store);
//! - `Node`: a `Process` in cluster mode.
//!
//! Also real proxies to put in front of them (`nginx`, `haproxy`).

// Each binary uses its own part of these helpers.
#![allow(dead_code, unused_imports)]

mod api;
mod app;
mod front;
mod node;
mod process;
mod receiver;
mod ws_user;

pub use api::{buy, check_invariant, Api, Resp, ADMIN_KEY};
pub use app::{spawn_app, spawn_app_manual_clock, spawn_with, test_settings, TestApp};
pub use front::{
    crowd_ip, der_of, haproxy, nginx, nginx_gate, self_signed, served_certificate, trusting,
    ProxyProcess, PROXY_SOURCE,
};
pub use node::{Node, LEASE_MS, RENEW_MS};
pub use process::{free_port, Process};
pub use receiver::{Delivery, Receiver};
pub use ws_user::{Frame, WsUser};
