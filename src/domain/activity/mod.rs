//! One activity's whole state as a plain data structure: stock ledger, waiting room,
//! pre-queue, holds, orders and per-user records. Every method takes `now`, decides,
//! updates memory and records `Effects` (mutations to persist, pushes to deliver); the
//! actor that owns it only persists, replies and delivers. No I/O, no runtime.

mod effects;
mod error;
mod lifecycle;
mod notify;
pub mod orders;
mod restore;
mod view;

pub use effects::{Effects, Hold, Mutation, Outbound, PlaceRecord, Push, ShuffleAudit};
pub use error::ActivityError;
pub use restore::{ActivityRecord, Restored};
pub use view::{ActivityView, Phase, SlotView, TicketView};

use super::clock::Millis;
use super::ids::{new_ticket, UserId};
use super::ledger::Ledger;
use super::order::Order;
use super::pacer::{Pacer, RateMeter};
use super::spec::{ActivitySpec, SlotSpec};
use super::token::{TokenClaims, TokenKey};
use super::waiting_room::WaitingRoom;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A place in the waiting room or pre-queue, with its connection and notification state.
#[derive(Debug, Clone)]
struct Place {
    user: UserId,
    ticket: String,
    joined_at: Millis,
    /// A WebSocket session is attached; detached places expire after the grace period.
    attached: bool,
    deadline: Option<Millis>,
    /// Last position sent and the notifier's schedule keys (see `notify`).
    last_pos: u64,
    trigger: Option<u64>,
    due: Option<Millis>,
}

impl Place {
    fn record(&self) -> PlaceRecord {
        PlaceRecord {
            user: self.user.clone(),
            ticket: self.ticket.clone(),
            joined_at: self.joined_at,
        }
    }
}

/// Where a user stands in this activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Pre(u64),
    Waiting(u64),
    Admitted(u64),
    Ended(End),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Expired,
    SoldOut,
    Closed,
    Left,
    Purchased(u64),
}

#[derive(Debug, Clone)]
struct UserEntry {
    ticket: String,
    stage: Stage,
    /// Units in pending or paid orders, against `per_user_limit`.
    bought: u32,
}

/// What a join or resume found or created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub ticket: String,
    /// True when the user already had this place (a rejoin or resume).
    pub existing: bool,
}

pub struct Activity {
    spec: ActivitySpec,
    ledger: Ledger,
    paused: bool,
    closed: bool,
    opened: bool,
    room: WaitingRoom<Place>,
    pre: BTreeMap<u64, Place>,
    next_pre: u64,
    users: HashMap<UserId, UserEntry>,
    tickets: HashMap<String, UserId>,
    holds: HashMap<u64, Hold>,
    hold_expiry: BTreeSet<(Millis, u64)>,
    next_hold: u64,
    orders: BTreeMap<u64, Order>,
    by_hold: HashMap<u64, u64>,
    pay_deadlines: BTreeSet<(Millis, u64)>,
    next_order: u64,
    pending_orders: u64,
    paid_units: u64,
    cancelled_units: u64,
    grace: BTreeSet<(Millis, UserId)>,
    /// Places removed from the room so far; the notifier's clock (see `notify`).
    removed: u64,
    triggers: BTreeSet<(u64, u64)>,
    due: BTreeSet<(Millis, u64)>,
    pacer: Pacer,
    meter: RateMeter,
    admitted_total: u64,
    expired_total: u64,
    shuffle_seed: Option<String>,
    key: TokenKey,
    fx: Effects,
}

impl Activity {
    pub fn new(spec: ActivitySpec, slots: &[SlotSpec], key: TokenKey, now: Millis) -> Self {
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
            paused: false,
            closed: false,
            opened,
            room: WaitingRoom::new(),
            pre: BTreeMap::new(),
            next_pre: 0,
            users: HashMap::new(),
            tickets: HashMap::new(),
            holds: HashMap::new(),
            hold_expiry: BTreeSet::new(),
            next_hold: 1,
            orders: BTreeMap::new(),
            by_hold: HashMap::new(),
            pay_deadlines: BTreeSet::new(),
            next_order: 1,
            pending_orders: 0,
            paid_units: 0,
            cancelled_units: 0,
            grace: BTreeSet::new(),
            removed: 0,
            triggers: BTreeSet::new(),
            due: BTreeSet::new(),
            pacer: Pacer::default(),
            meter: RateMeter::default(),
            admitted_total: 0,
            expired_total: 0,
            shuffle_seed: None,
            key,
            fx: Effects::default(),
        };
        a.fx.record_dirty = true;
        a
    }

    pub fn spec(&self) -> &ActivitySpec {
        &self.spec
    }

    /// Something decided since `take_effects` must be written.
    pub fn has_writes(&self) -> bool {
        !self.fx.mutations.is_empty() || self.fx.record_dirty
    }

    /// Everything decided since the last call, for the actor to persist and deliver.
    pub fn take_effects(&mut self) -> Effects {
        std::mem::take(&mut self.fx)
    }

    fn push(&mut self, user: &UserId, push: Push) {
        self.fx.pushes.push(Outbound {
            user: user.clone(),
            push,
        });
    }

    fn is_closed(&self, now: Millis) -> bool {
        self.closed || self.spec.closes_at.is_some_and(|c| c <= now)
    }

    /// Nothing left to admit anyone to, now or (for `wait_for_returns`) later.
    fn is_sold_out(&self) -> bool {
        self.ledger.available() == 0
            && self.ledger.held() == 0
            && (!self.spec.admission.wait_for_returns || self.pending_orders == 0)
    }

    fn waiting_count(&self) -> usize {
        self.room.len() + self.pre.len()
    }

    fn grace_ms(&self) -> u64 {
        u64::from(self.spec.admission.reconnect_grace_secs) * 1000
    }

    fn eta_secs(&mut self, position: u64, now: Millis) -> u64 {
        let rate = self.meter.rate(now, self.spec.admission.rate_per_sec);
        (position as f64 / rate).ceil() as u64
    }

    fn token_for(&self, hold: &Hold) -> String {
        self.key.sign(&TokenClaims {
            activity: self.spec.id.to_string(),
            user: hold.user.to_string(),
            hold: hold.id,
            expires_at_ms: hold.expires_at,
        })
    }

    fn admitted_push(&self, hold: &Hold, now: Millis) -> Push {
        Push::Admitted {
            token: self.token_for(hold),
            expires_at_ms: hold.expires_at,
            expires_in_secs: hold.expires_at.saturating_sub(now).div_ceil(1000),
            issued_at_ms: hold.issued_at,
        }
    }

    /// Joins the waiting room, or finds the user's existing place. `attach` says a
    /// WebSocket session is taking the place (it gets the current state pushed);
    /// otherwise the place is kept alive by polling.
    pub fn join(
        &mut self,
        user: &UserId,
        attach: bool,
        now: Millis,
    ) -> Result<Joined, ActivityError> {
        if self.is_closed(now) {
            return Err(ActivityError::NotOpen("the activity is closed".into()));
        }
        if let Some(entry) = self.users.get(user) {
            let (ticket, stage, bought) = (entry.ticket.clone(), entry.stage, entry.bought);
            if !matches!(stage, Stage::Ended(_)) {
                self.reattach(user, stage, attach, now);
                return Ok(Joined {
                    ticket,
                    existing: true,
                });
            }
            if bought >= self.spec.per_user_limit {
                return Err(ActivityError::LimitReached);
            }
            self.tickets.remove(&ticket);
        }
        if self.is_sold_out() {
            return Err(ActivityError::SoldOut("everything has been sold".into()));
        }
        if self.waiting_count() >= self.spec.admission.queue_capacity as usize {
            return Err(ActivityError::QueueFull);
        }
        let ticket = new_ticket();
        let place = Place {
            user: user.clone(),
            ticket: ticket.clone(),
            joined_at: now,
            attached: attach,
            deadline: None,
            last_pos: 0,
            trigger: None,
            due: None,
        };
        let record = place.record();
        let stage = if self.opened {
            let seq = self.room.push(place);
            self.fx
                .mutations
                .push(Mutation::PutPlace { seq, place: record });
            Stage::Waiting(seq)
        } else {
            let n = self.next_pre;
            self.next_pre += 1;
            self.pre.insert(n, place);
            self.fx
                .mutations
                .push(Mutation::PutPre { n, place: record });
            Stage::Pre(n)
        };
        let bought = self.users.get(user).map_or(0, |e| e.bought);
        self.users.insert(
            user.clone(),
            UserEntry {
                ticket: ticket.clone(),
                stage,
                bought,
            },
        );
        self.tickets.insert(ticket.clone(), user.clone());
        self.reattach(user, stage, attach, now);
        self.admit(now);
        Ok(Joined {
            ticket,
            existing: false,
        })
    }

    /// Resumes by ticket: the ticket must be this user's live place.
    pub fn resume(
        &mut self,
        user: &UserId,
        ticket: &str,
        now: Millis,
    ) -> Result<Joined, ActivityError> {
        match self.tickets.get(ticket) {
            Some(owner) if owner == user => self.join(user, true, now),
            Some(_) => Err(ActivityError::Forbidden(
                "that ticket belongs to someone else".into(),
            )),
            None => Err(ActivityError::NotFound("no such ticket".into())),
        }
    }

    /// Marks the place attached or polled and tells an attaching session where it stands.
    fn reattach(&mut self, user: &UserId, stage: Stage, attach: bool, now: Millis) {
        let grace = self.grace_ms();
        let ticket = self
            .users
            .get(user)
            .map(|e| e.ticket.clone())
            .unwrap_or_default();
        match stage {
            Stage::Waiting(seq) => {
                self.set_attached(Some(seq), None, attach, now + grace);
                if attach {
                    let position = self.room.position(seq).unwrap_or(1);
                    let eta_secs = self.eta_secs(position, now);
                    self.push(
                        user,
                        Push::Queued {
                            ticket,
                            position,
                            eta_secs,
                            seq,
                        },
                    );
                    if self.paused {
                        self.push(user, Push::Paused);
                    }
                    self.schedule(seq, position, now);
                }
            }
            Stage::Pre(n) => {
                self.set_attached(None, Some(n), attach, now + grace);
                if attach {
                    let opens_at_ms = self.spec.opens_at.unwrap_or(now);
                    self.push(
                        user,
                        Push::Prequeue {
                            ticket,
                            opens_at_ms,
                        },
                    );
                }
            }
            Stage::Admitted(id) => {
                if attach {
                    if let Some(hold) = self.holds.get(&id) {
                        let p = self.admitted_push(hold, now);
                        self.push(user, p);
                    }
                }
            }
            Stage::Ended(_) => {}
        }
    }

    fn set_attached(&mut self, seq: Option<u64>, pre: Option<u64>, attach: bool, deadline: Millis) {
        let place = match (seq, pre) {
            (Some(s), _) => self.room.get_mut(s),
            (_, Some(n)) => self.pre.get_mut(&n),
            _ => None,
        };
        let Some(place) = place else { return };
        if let Some(old) = place.deadline.take() {
            self.grace.remove(&(old, place.user.clone()));
        }
        place.attached = attach || place.attached;
        if !place.attached {
            place.deadline = Some(deadline);
            self.grace.insert((deadline, place.user.clone()));
        }
    }

    /// A WebSocket session went away: the place is kept for `reconnect_grace_secs`.
    pub fn detach(&mut self, user: &UserId, now: Millis) {
        let Some(stage) = self.users.get(user).map(|e| e.stage) else {
            return;
        };
        let (seq, pre) = match stage {
            Stage::Waiting(s) => (Some(s), None),
            Stage::Pre(n) => (None, Some(n)),
            _ => return,
        };
        if let Some(s) = seq {
            self.unschedule(s);
        }
        let place = match (seq, pre) {
            (Some(s), _) => self.room.get_mut(s),
            (_, Some(n)) => self.pre.get_mut(&n),
            _ => None,
        };
        if let Some(p) = place {
            p.attached = false;
        }
        let deadline = now + self.grace_ms();
        self.set_attached(seq, pre, false, deadline);
    }

    /// Gives the place up (or an unspent token's units back).
    pub fn leave(&mut self, user: &UserId, now: Millis) -> Result<(), ActivityError> {
        let stage = self
            .users
            .get(user)
            .map(|e| e.stage)
            .ok_or_else(|| ActivityError::NotFound("no place to leave".into()))?;
        match stage {
            Stage::Waiting(seq) => {
                self.take_place(seq);
            }
            Stage::Pre(n) => {
                self.take_pre(n);
            }
            Stage::Admitted(id) => self.release_hold(id),
            Stage::Ended(_) => return Ok(()),
        }
        self.end(user, End::Left);
        self.settle(now);
        self.admit(now);
        Ok(())
    }

    fn end(&mut self, user: &UserId, end: End) {
        if let Some(e) = self.users.get_mut(user) {
            e.stage = Stage::Ended(end);
        }
    }

    /// Removes a place from the room, with everything that indexes it.
    fn take_place(&mut self, seq: u64) -> Option<Place> {
        self.unschedule(seq);
        let place = self.room.remove(seq)?;
        self.removed += 1;
        if let Some(d) = place.deadline {
            self.grace.remove(&(d, place.user.clone()));
        }
        self.fx.mutations.push(Mutation::DelPlace { seq });
        Some(place)
    }

    fn take_pre(&mut self, n: u64) -> Option<Place> {
        let place = self.pre.remove(&n)?;
        if let Some(d) = place.deadline {
            self.grace.remove(&(d, place.user.clone()));
        }
        self.fx.mutations.push(Mutation::DelPre { n });
        Some(place)
    }

    fn release_hold(&mut self, id: u64) {
        if let Some(h) = self.holds.remove(&id) {
            self.hold_expiry.remove(&(h.expires_at, id));
            self.ledger.release(u64::from(h.units), None);
            self.fx.mutations.push(Mutation::DelHold { id });
        }
    }

    /// An HTTP-polling client showed it is still there.
    pub fn touch(&mut self, user: &UserId, now: Millis) {
        let Some(stage) = self.users.get(user).map(|e| e.stage) else {
            return;
        };
        let deadline = now + self.grace_ms();
        match stage {
            Stage::Waiting(s) => self.set_attached(Some(s), None, false, deadline),
            Stage::Pre(n) => self.set_attached(None, Some(n), false, deadline),
            _ => {}
        }
    }

    /// The state of a ticket for HTTP polling; only its owner may read it.
    pub fn ticket(
        &mut self,
        user: &UserId,
        ticket: &str,
        now: Millis,
    ) -> Result<TicketView, ActivityError> {
        match self.tickets.get(ticket) {
            Some(owner) if owner == user => {}
            Some(_) => {
                return Err(ActivityError::Forbidden(
                    "that ticket belongs to someone else".into(),
                ))
            }
            None => return Err(ActivityError::NotFound("no such ticket".into())),
        }
        self.touch(user, now);
        let stage = self.users.get(user).map(|e| e.stage);
        Ok(self.ticket_view(ticket, stage, now))
    }

    /// Leaves by ticket (HTTP `DELETE`).
    pub fn leave_ticket(
        &mut self,
        user: &UserId,
        ticket: &str,
        now: Millis,
    ) -> Result<TicketView, ActivityError> {
        self.ticket(user, ticket, now)?;
        self.leave(user, now)?;
        let stage = self.users.get(user).map(|e| e.stage);
        Ok(self.ticket_view(ticket, stage, now))
    }

    /// Checks the join proof of work when the activity asks for one and the user has
    /// no live place yet (rejoining and resuming never cost work).
    pub fn check_pow(
        &self,
        user: &UserId,
        sol: Option<&crate::domain::pow::PowSolution>,
        now: Millis,
    ) -> Result<(), ActivityError> {
        let live = self
            .users
            .get(user)
            .is_some_and(|e| !matches!(e.stage, Stage::Ended(_)));
        if live {
            return Ok(());
        }
        crate::domain::pow::verify(
            &self.key,
            self.spec.id.as_str(),
            user.as_str(),
            self.spec.admission.join_pow_bits,
            sol,
            now,
        )
        .map_err(|e| ActivityError::Invalid(e.to_string()))
    }

    pub fn ticket_of(&self, user: &UserId) -> Option<&str> {
        self.users.get(user).map(|e| e.ticket.as_str())
    }

    /// Checks the ledger and every index against each other; tests and debug builds.
    pub fn check_invariants(&self) -> Result<(), String> {
        if !self.ledger.is_consistent() {
            return Err(format!("ledger inconsistent: {:?}", self.ledger.total()));
        }
        let held: u64 = self.holds.values().map(|h| u64::from(h.units)).sum();
        if held != self.ledger.held() {
            return Err(format!(
                "holds {held} != ledger held {}",
                self.ledger.held()
            ));
        }
        let sold: u64 = self
            .orders
            .values()
            .filter(|o| o.status != crate::domain::order::OrderStatus::Cancelled)
            .map(|o| u64::from(o.quantity))
            .sum();
        if sold != self.ledger.total().sold {
            return Err(format!(
                "orders {sold} != ledger sold {}",
                self.ledger.total().sold
            ));
        }
        for e in self.users.values() {
            if e.bought > self.spec.per_user_limit {
                return Err("a user bought more than per_user_limit".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
