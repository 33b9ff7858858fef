//! The pure core: no actix, no tokio, no I/O. Every decision about stock, places,
//! tokens and orders is made here, with time passed in.

pub mod activity;
pub mod clock;
pub mod ids;
pub mod jwt;
pub mod ledger;
pub mod order;
pub mod pacer;
pub mod pass;
pub mod pow;
pub mod spec;
pub mod token;
pub mod waiting_room;
pub mod webhook;
