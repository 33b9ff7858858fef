//! What an activity decision produces: mutations to persist and pushes to deliver,
//! both handed to the actor, which makes the first durable before sending the second.

use super::access::{BanRecord, InviteRecord, RevokedRecord};
use super::fairness::LineRecord;
use super::report::{MinuteRecord, ReportRecord};
use crate::domain::clock::Millis;
use crate::domain::ids::UserId;
use crate::domain::order::Order;
use crate::domain::webhook::{Event, EventData, EventType};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A place as persisted (connection state is not: after a restart every place starts
/// its reconnect grace afresh).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceRecord {
    pub user: UserId,
    pub ticket: String,
    pub joined_at: Millis,
}

/// Units reserved for one admitted user until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub id: u64,
    pub user: UserId,
    pub ticket: String,
    pub units: u32,
    pub issued_at: Millis,
    pub expires_at: Millis,
    /// The place's sequence number, for the FIFO audit.
    pub seq: u64,
}

/// The record of a pre-queue shuffle, so an operator can audit it afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShuffleAudit {
    pub at: Millis,
    pub seed_hex: String,
    pub algorithm: String,
    /// User ids in their shuffled (admission) order.
    pub order: Vec<String>,
}

/// One typed state change; the store maps each to keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    PutPlace {
        seq: u64,
        place: PlaceRecord,
    },
    DelPlace {
        seq: u64,
    },
    PutPre {
        n: u64,
        place: PlaceRecord,
    },
    DelPre {
        n: u64,
    },
    PutHold(Hold),
    DelHold {
        id: u64,
    },
    PutOrder(Arc<Order>),
    PutShuffle(ShuffleAudit),
    /// A place of the public line (the fairness log), by sequence number.
    PutLine {
        seq: u64,
        line: LineRecord,
    },
    /// The post-event report's totals.
    PutReport(ReportRecord),
    /// One minute of the post-event report.
    PutMinute {
        minute: u64,
        bucket: MinuteRecord,
    },
    /// A webhook event, committed with the change that caused it.
    Event(Event),
    /// An invite code, new or claimed.
    PutInvite {
        n: u64,
        invite: InviteRecord,
    },
    PutBan {
        n: u64,
        ban: BanRecord,
    },
    /// A gate pass revoked before its expiry, by hold id.
    PutRevoked {
        hold: u64,
        record: RevokedRecord,
    },
    DelRevoked {
        hold: u64,
    },
}

/// A message for one user's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Push {
    Queued {
        ticket: String,
        receipt: String,
        position: u64,
        eta_secs: u64,
        seq: u64,
    },
    Position {
        position: u64,
        eta_secs: u64,
        waiting_for_returns: bool,
    },
    Admitted {
        /// The purchase token (empty for a gate).
        token: String,
        /// A gate's pass.
        pass: Option<String>,
        expires_at_ms: Millis,
        expires_in_secs: u64,
        issued_at_ms: Millis,
    },
    Prequeue {
        ticket: String,
        receipt: String,
        opens_at_ms: Millis,
    },
    Paused,
    Resumed,
    SoldOut,
    Closed,
    /// The user's unspent token expired; the place is gone.
    Expired,
    /// A gate's pass expired; the place is gone.
    PassExpired,
    /// An operator revoked the user's place, token or pass.
    Revoked,
}

impl Push {
    /// Pushes after which the session has nothing more to wait for.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Push::SoldOut | Push::Closed | Push::Expired | Push::PassExpired | Push::Revoked
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    pub user: UserId,
    pub push: Push,
}

#[derive(Debug, Default)]
pub struct Effects {
    pub mutations: Vec<Mutation>,
    pub pushes: Vec<Outbound>,
    /// The activity record (spec, flags, counters) changed and must be rewritten.
    pub record_dirty: bool,
    /// Webhook events of the call in progress, stamped with its `now` when it ends
    /// (`Activity::end_call`) and then recorded as `Mutation::Event`.
    pub(super) events: Vec<(EventType, EventData)>,
}

impl Effects {
    pub fn is_empty(&self) -> bool {
        self.mutations.is_empty() && self.pushes.is_empty() && !self.record_dirty
    }

    /// Emits a webhook event of the call in progress.
    pub(super) fn event(&mut self, kind: EventType, data: EventData) {
        self.events.push((kind, data));
    }

    /// Queues `push` for `user`'s session.
    pub(super) fn tell(&mut self, user: &UserId, push: Push) {
        self.pushes.push(Outbound {
            user: user.clone(),
            push,
        });
    }
}
