//! Messages between HTTP handlers, sessions and activity actors.

use crate::domain::activity::fairness::{FairnessReveal, LogPage};
use crate::domain::activity::orders::{OrderAction, Purchased};
use crate::domain::activity::report::ReportView;
use crate::domain::activity::AdminCommand;
use crate::domain::activity::{ActivityError, ActivityView, TicketView};
use crate::domain::clock::Millis;
use crate::domain::ids::{SlotId, UserId};
use crate::domain::order::{Order, PaymentRef};
use crate::domain::spec::{AdmissionPatch, SlotSpec};
use crate::domain::token::TokenClaims;
use actix::prelude::*;

pub use super::session::{SessionHandle, ToSession};

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

impl From<crate::store::CommitFailure> for CallError {
    fn from(f: crate::store::CommitFailure) -> Self {
        match f {
            crate::store::CommitFailure::Unavailable(why)
            | crate::store::CommitFailure::Diverged(why) => CallError::Unavailable(why),
        }
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
    /// Invite code, for invite-only activities.
    pub invite: Option<String>,
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

/// Order calls; `user = None` acts as an operator (or the shop, which may give its
/// payment reference).
#[derive(Message)]
#[rtype(result = "CallResult<Order>")]
pub enum OrderCall {
    Get {
        n: u64,
        user: Option<UserId>,
    },
    Pay {
        n: u64,
        user: Option<UserId>,
        payment_ref: Option<PaymentRef>,
    },
    Cancel {
        n: u64,
        user: Option<UserId>,
    },
}

impl OrderCall {
    /// The order number, the domain's action, and who acts (`None`: an operator).
    pub fn into_parts(self) -> (u64, OrderAction, Option<UserId>) {
        match self {
            OrderCall::Get { n, user } => (n, OrderAction::Get, user),
            OrderCall::Pay {
                n,
                user,
                payment_ref,
            } => (n, OrderAction::Pay(payment_ref), user),
            OrderCall::Cancel { n, user } => (n, OrderAction::Cancel, user),
        }
    }
}

#[derive(Message)]
#[rtype(result = "CallResult<Vec<Order>>")]
pub struct OrdersOf {
    pub user: UserId,
}

#[derive(Message)]
#[rtype(result = "CallResult<ActivityView>")]
pub enum Admin {
    View {
        admin: bool,
    },
    AddStock(u32),
    AddSlots(Vec<SlotSpec>),
    Pause,
    Resume,
    Close,
    PatchAdmission(AdmissionPatch),
    Schedule {
        opens_at: Option<Millis>,
        seed: [u8; 32],
    },
}

impl From<Admin> for AdminCommand {
    fn from(a: Admin) -> Self {
        match a {
            Admin::View { admin } => AdminCommand::View { admin },
            Admin::AddStock(n) => AdminCommand::AddStock(n),
            Admin::AddSlots(s) => AdminCommand::AddSlots(s),
            Admin::Pause => AdminCommand::Pause,
            Admin::Resume => AdminCommand::Resume,
            Admin::Close => AdminCommand::Close,
            Admin::PatchAdmission(p) => AdminCommand::PatchAdmission(p),
            Admin::Schedule { opens_at, seed } => AdminCommand::Schedule { opens_at, seed },
        }
    }
}

/// Adds invite codes (drawn by the caller); answers them once durable.
#[derive(Message)]
#[rtype(result = "CallResult<Vec<String>>")]
pub struct AddInvites {
    pub codes: Vec<String>,
}

/// Revokes a user's place, token or pass, and with `ban` refuses their later joins.
#[derive(Message)]
#[rtype(result = "CallResult<crate::domain::activity::Revoked>")]
pub struct Revoke {
    pub user: UserId,
    pub ban: bool,
}

/// The fairness commitment, and the seed once the activity has opened.
#[derive(Message)]
#[rtype(result = "CallResult<FairnessReveal>")]
pub struct GetFairness;

/// One page of the public line (fairness log): up to `limit` lines from sequence
/// number `from` on, answered once everything they show is durable.
#[derive(Message)]
#[rtype(result = "CallResult<LogPage>")]
pub struct FairnessLog {
    pub from: u64,
    pub limit: usize,
}

/// The post-event report, as recorded so far.
#[derive(Message)]
#[rtype(result = "CallResult<ReportView>")]
pub struct GetReport;

/// Steps time; sent by the actor's own interval, or directly by tests.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Tick;

/// Stop taking joins, tell sessions to reconnect, answer once everything is durable.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

/// The activity is no longer this process's to decide (cluster mode: its lease is
/// gone); stop now (see `ActivityActor::step_down`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StepDown;

/// Every webhook receiver has passed the activity's events numbered below `below`:
/// delete them (all but the newest) in the activity's next commit, so in cluster mode
/// the replica drops them too.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PruneEvents {
    pub below: u64,
}
