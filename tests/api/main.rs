//! API tests: one binary (links once), one module per feature area.

#[path = "../common/mod.rs"]
mod common;

mod contract_errors;
mod durability;
mod fairness;
mod gate;
mod lifecycle;
mod ops;
mod report;
mod shop;
mod sinks;
mod waiting_room;
mod webhooks;
