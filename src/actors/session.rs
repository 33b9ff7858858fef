//! The session-output port: how an activity tells a connected session something.
//!
//! The actor holds every session as a `SessionHandle` and only ever calls `push`; the
//! local `SessionQueue` implements `SessionOutput`, and so does cluster mode's relay
//! link to the node that holds the socket.

use crate::domain::activity::Push;
use std::sync::Arc;

/// What a session is told; a fact, delivered after it is durable.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum ToSession {
    Push(Push),
    /// The same user connected elsewhere.
    Superseded,
    /// The server is stopping; reconnect with the ticket shortly.
    Restarting,
}

/// Where a session's messages go. Implementations must not block: the activity's
/// single thread calls `push` for every session it tells something.
pub trait SessionOutput: Send + Sync {
    /// Queues `msg` for the session `session` (the id of `SessionHandle`).
    fn push(&self, session: u64, msg: ToSession);
}

/// A WebSocket session as the activity sees it.
#[derive(Clone)]
pub struct SessionHandle {
    /// Unique per connection (and across cluster nodes), so a superseded socket's
    /// goodbye cannot detach its successor.
    pub id: u64,
    pub output: Arc<dyn SessionOutput>,
}

impl SessionHandle {
    pub fn push(&self, msg: ToSession) {
        self.output.push(self.id, msg);
    }
}
