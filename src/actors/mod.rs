//! The actors: one `ActivityActor` per activity, the `Registry` that finds them, and
//! the `OrderFlusher` that drains the outbox to the sink.

pub mod activity;
pub mod flusher;
pub mod messages;
pub mod registry;
pub mod session;
pub mod session_queue;
