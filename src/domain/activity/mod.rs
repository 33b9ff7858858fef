//! One activity's whole state, split by the state each part owns: the queue (places,
//! pre-queue, reconnect grace, position notifier), the holds, the order book, the
//! admission gate and the per-user records, around the stock ledger. `Activity`
//! coordinates them: every method takes `now`, decides, updates memory and records
//! `Effects` (mutations to persist, pushes to deliver); the actor that owns it only
//! persists, replies and delivers. No I/O, no runtime.
//!
//! Files: `joins` (joining, resuming, leaving, polling), `lifecycle` (time-driven
//! changes), `admin` (operator commands), `orders` (purchases and orders), `view`
//! (read models), `restore` (the record and the rebuild from the store).

mod access;
mod admin;
mod effects;
mod error;
pub mod fairness;
mod gate;
mod holds;
mod joins;
mod lifecycle;
mod notify;
mod numbered;
mod order_book;
pub mod orders;
mod queue;
pub mod report;
mod restore;
mod revoke;
mod users;
mod view;

pub use access::{
    BanRecord, InviteRecord, RevokedRecord, BAD_INVITE, INVITE_TAKEN, MAX_INVITES_PER_CALL,
    NO_INVITE,
};

pub use admin::AdminCommand;
pub use effects::{Effects, Hold, Mutation, Outbound, PlaceRecord, Push, ShuffleAudit};
pub use error::ActivityError;
pub use joins::{Joined, JoinedView};
pub use orders::OrderAction;
pub use restore::{ActivityRecord, Restored};
pub use revoke::Revoked;
pub use view::{ActivityView, Phase, SlotView, TicketView};

use super::clock::Millis;
use super::ledger::Ledger;
use super::pass::Passes;
use super::spec::{ActivitySpec, Kind, SlotSpec};
use super::token::{TokenClaims, TokenKey};
use super::webhook::{Event, EventData, EventType};
use access::Access;
use fairness::Fairness;
use gate::Gate;
use holds::Holds;
use order_book::OrderBook;
use queue::Queue;
use report::Report;
use users::Users;

pub struct Activity {
    spec: ActivitySpec,
    ledger: Ledger,
    queue: Queue,
    holds: Holds,
    orders: OrderBook,
    gate: Gate,
    users: Users,
    /// The commit-reveal seed and the public line.
    fair: Fairness,
    /// The post-event report's counters.
    report: Report,
    /// Signs purchase tokens and checks join proofs of work.
    key: TokenKey,
    /// Invite codes, bans and revoked passes.
    access: Access,
    /// Signs a gate's passes (set by the actor that runs the activity).
    passes: Option<Passes>,
    fx: Effects,
    /// The phase as of the last `end_call` (none before the first): a change emits
    /// `activity.phase_changed`.
    phase_seen: Option<Phase>,
}

impl Activity {
    /// A new activity. `seed` (32 random bytes drawn by the caller) becomes the
    /// commit-reveal seed of the pre-queue when the activity opens later.
    pub fn new(
        spec: ActivitySpec,
        slots: &[SlotSpec],
        key: TokenKey,
        now: Millis,
        seed: [u8; 32],
    ) -> Self {
        let mut ledger = Ledger::new();
        for s in slots {
            ledger
                .add(&s.id, &s.label, u64::from(s.capacity))
                .expect("validated capacities fit the ledger");
        }
        let opened = spec.opens_at.is_none_or(|o| o <= now);
        let mut a = Self {
            spec,
            ledger,
            queue: Queue::default(),
            holds: Holds::default(),
            orders: OrderBook::default(),
            gate: Gate::new(opened),
            users: Users::default(),
            fair: Fairness::new((!opened).then_some(seed)),
            report: Report::default(),
            key,
            access: Access::default(),
            passes: None,
            fx: Effects::default(),
            phase_seen: None,
        };
        if opened {
            a.report.opened(now);
        }
        a.fx.record_dirty = true;
        a
    }

    pub fn spec(&self) -> &ActivitySpec {
        &self.spec
    }

    /// The signer of a gate's passes.
    pub fn set_passes(&mut self, passes: Passes) {
        self.passes = Some(passes);
    }

    fn is_gate(&self) -> bool {
        self.spec.kind == Kind::Gate
    }

    /// How long an admission holds: a gate's pass, else a purchase token.
    fn hold_ttl_ms(&self) -> u64 {
        let secs = match &self.spec.gate {
            Some(g) => g.pass_ttl_secs,
            None => self.spec.admission.token_ttl_secs,
        };
        u64::from(secs) * 1000
    }

    /// Something decided since `take_effects` must be written.
    pub fn has_writes(&self) -> bool {
        !self.fx.mutations.is_empty() || self.fx.record_dirty
    }

    /// How many writes are decided and not yet sent to a commit.
    pub fn pending_writes(&self) -> usize {
        self.fx.mutations.len()
    }

    /// Ends a call made at `now`: its webhook events are stamped and recorded, and a
    /// change of phase (by the call, or by time) becomes an event too.
    pub fn end_call(&mut self, now: Millis) {
        let phase = self.phase(now);
        if self.phase_seen.is_some_and(|seen| seen != phase) {
            self.fx.event(
                EventType::PhaseChanged,
                EventData::Phase {
                    activity_id: self.spec.id.to_string(),
                    phase: phase.as_str().to_owned(),
                },
            );
        }
        self.phase_seen = Some(phase);
        for (kind, data) in std::mem::take(&mut self.fx.events) {
            self.fx.mutations.push(Mutation::Event(Event {
                kind,
                at: now,
                data,
            }));
        }
    }

    /// Everything decided since the last call, for the actor to persist and deliver.
    pub fn take_effects(&mut self) -> Effects {
        std::mem::take(&mut self.fx)
    }

    fn is_closed(&self, now: Millis) -> bool {
        self.gate.is_closed(now, self.spec.closes_at)
    }

    /// Nothing left to admit anyone to, now or (for `wait_for_returns`) later.
    fn is_sold_out(&self) -> bool {
        self.ledger.available() == 0
            && self.ledger.held() == 0
            && (!self.spec.admission.wait_for_returns || self.orders.pending() == 0)
    }

    fn grace_ms(&self) -> u64 {
        u64::from(self.spec.admission.reconnect_grace_secs) * 1000
    }

    fn eta_secs(&mut self, position: u64, now: Millis) -> u64 {
        self.gate
            .eta_secs(position, now, self.spec.admission.rate_per_sec)
    }

    /// Checks the ledger and every index against each other; tests and debug builds.
    pub fn check_invariants(&self) -> Result<(), String> {
        if !self.ledger.is_consistent() {
            return Err(format!("ledger inconsistent: {:?}", self.ledger.total()));
        }
        let held = self.holds.units();
        if held != self.ledger.held() {
            return Err(format!(
                "holds {held} != ledger held {}",
                self.ledger.held()
            ));
        }
        let sold = self.orders.sold_units();
        if sold != self.ledger.total().sold {
            return Err(format!(
                "orders {sold} != ledger sold {}",
                self.ledger.total().sold
            ));
        }
        if self.users.any_over(self.spec.per_user_limit) {
            return Err("a user bought more than per_user_limit".into());
        }
        Ok(())
    }
}

/// The purchase token of a hold.
fn token_for(key: &TokenKey, spec: &ActivitySpec, hold: &Hold) -> String {
    key.sign(&TokenClaims {
        activity: spec.id.to_string(),
        user: hold.user.to_string(),
        hold: hold.id,
        expires_at_ms: hold.expires_at,
    })
}

/// A gate's pass for a hold: its id is the pass's `jti`.
fn pass_for(passes: Option<&Passes>, spec: &ActivitySpec, hold: &Hold) -> Option<String> {
    spec.gate.as_ref()?;
    passes?.sign(
        spec.id.as_str(),
        hold.user.as_str(),
        &hold.id.to_string(),
        hold.issued_at,
        hold.expires_at,
    )
}

/// Tells an admitted user their token (or a gate's pass) and how long it holds.
fn admitted_push(
    key: &TokenKey,
    passes: Option<&Passes>,
    spec: &ActivitySpec,
    hold: &Hold,
    now: Millis,
) -> Push {
    let pass = pass_for(passes, spec, hold);
    Push::Admitted {
        token: match pass {
            Some(_) => String::new(),
            None => token_for(key, spec, hold),
        },
        pass,
        expires_at_ms: hold.expires_at,
        expires_in_secs: hold.expires_at.saturating_sub(now).div_ceil(1000),
        issued_at_ms: hold.issued_at,
    }
}

#[cfg(test)]
mod tests;
