//! API tests: one binary (links once), one module per feature area.

mod helpers;
#[path = "../common/ws_user.rs"]
mod ws_user;

mod contract_errors;
mod durability;
mod lifecycle;
mod ops;
mod sinks;
mod waiting_room;
