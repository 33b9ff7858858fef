//! Messages between HTTP handlers, sessions and activity actors.

use crate::domain::activity::orders::Purchased;
use crate::domain::activity::{ActivityError, ActivityView, Push, TicketView};
use crate::domain::ids::{SlotId, UserId};
use crate::domain::order::Order;
use crate::domain::spec::{AdmissionPatch, SlotSpec};
use crate::domain::token::TokenClaims;
use actix::prelude::*;

/// Why a call to an activity failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Domain(#[from] ActivityError),
    /// The store could not make the decision durable, or the server is stopping.
    #[error("{0}")]
    Unavailable(&'static str),
}

pub type CallResult<T> = Result<T, CallError>;

/// What a session is told; a fact, delivered after it is durable.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum ToSession {
    Push(Push),
    /// The same user connected elsewhere.
    Superseded,
    /// The server is stopping; reconnect with the ticket shortly.
    Restarting,
}

/// A WebSocket session as the activity sees it.
#[derive(Clone)]
pub struct SessionHandle {
    /// Unique per connection (and across cluster nodes), so a superseded socket's
    /// goodbye cannot detach its successor.
    pub id: u64,
    pub sink: SessionSink,
}

/// Where a session's messages go: its queue on this node, or the link to the cluster
/// node that holds its socket (batched per node per tick).
#[derive(Clone)]
pub enum SessionSink {
    Local(std::sync::Arc<super::session_queue::SessionQueue>),
    Remote(std::sync::Arc<crate::cluster::relay::NodeLink>),
}

impl SessionHandle {
    pub fn push(&self, msg: ToSession) {
        match &self.sink {
            SessionSink::Local(q) => q.push(msg),
            SessionSink::Remote(link) => link.push(self.id, msg),
        }
    }

    pub fn is_local(&self) -> bool {
        matches!(self.sink, SessionSink::Local(_))
    }
}

/// Join or resume. With a session the place is attached and the session receives
/// `queued`/`prequeue`/`admitted`; without, it is an HTTP-polling place.
#[derive(Message)]
#[rtype(result = "CallResult<JoinReply>")]
pub struct Join {
    pub user: UserId,
    pub ticket: Option<String>,
    pub session: Option<SessionHandle>,
    /// Proof-of-work answer, for activities with `join_pow_bits > 0`.
    pub pow: Option<crate::domain::pow::PowSolution>,
}

#[derive(Debug, Clone)]
pub struct JoinReply {
    pub ticket: TicketView,
    pub existing: bool,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach {
    pub user: UserId,
    pub session_id: u64,
}

#[derive(Message)]
#[rtype(result = "CallResult<()>")]
pub struct Leave {
    pub user: UserId,
}

#[derive(Message)]
#[rtype(result = "CallResult<TicketView>")]
pub struct GetTicket {
    pub user: UserId,
    pub ticket: String,
}

#[derive(Message)]
#[rtype(result = "CallResult<TicketView>")]
pub struct LeaveTicket {
    pub user: UserId,
    pub ticket: String,
}

#[derive(Message)]
#[rtype(result = "CallResult<Purchased>")]
pub struct Purchase {
    pub user: UserId,
    pub claims: TokenClaims,
    pub quantity: u32,
    pub slot_id: Option<SlotId>,
}

/// Order calls; `user = None` acts as an operator.
#[derive(Message)]
#[rtype(result = "CallResult<Order>")]
pub enum OrderCall {
    Get { n: u64, user: Option<UserId> },
    Pay { n: u64, user: Option<UserId> },
    Cancel { n: u64, user: Option<UserId> },
}

#[derive(Message)]
#[rtype(result = "CallResult<Vec<Order>>")]
pub struct OrdersOf {
    pub user: UserId,
}

#[derive(Message)]
#[rtype(result = "CallResult<ActivityView>")]
pub enum Admin {
    View { admin: bool },
    AddStock(u32),
    AddSlots(Vec<SlotSpec>),
    Pause,
    Resume,
    Close,
    PatchAdmission(AdmissionPatch),
}

/// Steps time; sent by the actor's own interval, or directly by tests.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Tick;

/// Stop taking joins, tell sessions to reconnect, answer once everything is durable.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Cluster mode: the lease is gone; stop deciding now (see `ActivityActor::step_down`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StepDown;
