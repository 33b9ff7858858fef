//! Time-driven changes: opening (the pre-queue in HMAC order), closing, hold and
//! payment expiry, reconnect grace, sold-out, and paced admission.

use super::fairness::Outcome;
use super::holds::Grant;
use super::queue::Spot;
use super::users::{End, Stage};
use super::{admitted_push, Activity, Push};
use crate::domain::clock::{rfc3339, Millis};
use crate::domain::ids::UserId;
use crate::domain::order::CancelReason;
use crate::domain::webhook::{EventData, EventType};

/// Places a line that can no longer move (sold out, closed) ends per tick. Ending all
/// of them in one commit made one write of every place: at 100,000 places its Redis
/// replication ran past the cluster's Redis timeout, the owner stepped down, and the
/// final frames were lost with the commit (seen in the 100,000-session run).
pub(super) const ENDS_PER_TICK: usize = 1_000;

impl Activity {
    /// After a takeover: the activity could not be served from `since` (when its
    /// previous owner was last heard from) until `now`, so every token still
    /// outstanding at `since` gets that time back (persisted with the next commit; a
    /// resumed session's `admitted` carries the new expiry). Nobody meets
    /// `token_expired` because of a failover. Returns how many holds moved.
    pub fn credit_outage(&mut self, since: Millis, now: Millis) -> usize {
        if since >= now {
            return 0;
        }
        self.holds
            .extend_outstanding(since, now - since, &mut self.fx)
    }

    /// One step of time: everything due at `now` happens, in a fixed order.
    pub fn tick(&mut self, now: Millis) {
        if !self.gate.was_closed() && self.spec.closes_at.is_some_and(|c| c <= now) {
            self.close_now();
        }
        if !self.gate.is_opened()
            && !self.gate.was_closed()
            && self.spec.opens_at.is_none_or(|o| o <= now)
        {
            self.open(now);
        }
        self.expire_holds(now);
        self.expire_payments(now);
        self.access.prune_revoked(now, &mut self.fx);
        self.drop_absent(now);
        self.settle(now);
        self.admit(now);
        self.notify(now);
        let over = self.gate.was_closed() || self.is_sold_out();
        self.report.flush(now, over, &mut self.fx);
    }

    /// Opening: the pre-queue is put in the order of its receipts' HMACs under the
    /// committed seed (revealed from now on) and placed ahead of every later join;
    /// attached sessions hear their place in the room.
    pub(super) fn open(&mut self, now: Millis) {
        let seed = self.fair.seed().copied();
        let seed_hex = self.fair.seed_hex().unwrap_or_default();
        self.gate.open(seed_hex.clone());
        self.report.opened(now);
        self.fx.record_dirty = true;
        let Some(seed) = seed else {
            // Opened at creation: no pre-queue was ever possible.
            return;
        };
        let deadline = now + self.grace_ms();
        let moved = self
            .queue
            .open(&seed, seed_hex, now, deadline, &mut self.fx);
        for (user, seq, attached, receipt, joined_at) in moved {
            self.fair.enter(seq, receipt, true, joined_at, &mut self.fx);
            self.users.set_stage(&user, Stage::Waiting(seq));
            if attached {
                self.reattach(&user, Stage::Waiting(seq), true, now);
            }
        }
    }

    /// Ends the activity: waiting users and token holders are told; pending orders
    /// keep their lifecycle.
    pub(super) fn close_now(&mut self) {
        self.gate.close();
        self.fx.record_dirty = true;
        self.end_places(Outcome::Closed, End::Closed, Push::Closed);
        for id in self.holds.ids() {
            if let Some(h) = self.holds.take(id, &mut self.fx) {
                self.ledger.release(u64::from(h.units), None);
                self.finish(&h.user, End::Closed, Push::Closed);
            }
        }
    }

    /// A place in the room left the line without admission (its line says how).
    pub(super) fn end_line(&mut self, spot: Spot, outcome: Outcome) {
        if let Spot::Room(seq) = spot {
            // The time only matters for admissions.
            self.fair.end(seq, outcome, 0, &mut self.fx);
        }
    }

    pub(super) fn finish(&mut self, user: &UserId, end: End, push: Push) {
        self.users.end(user, end);
        self.fx.tell(user, push);
    }

    /// Gives an unspent hold's units back.
    /// A gate's pass is revoked with it (its slot is free for the next in line).
    pub(super) fn release_hold(&mut self, id: u64) {
        if let Some(h) = self.holds.take(id, &mut self.fx) {
            self.ledger.release(u64::from(h.units), None);
            if self.is_gate() {
                self.access.revoke_pass(h.id, h.expires_at, &mut self.fx);
            }
        }
    }

    fn expire_holds(&mut self, now: Millis) {
        while let Some(h) = self.holds.take_expired(now, &mut self.fx) {
            self.ledger.release(u64::from(h.units), None);
            self.gate.expired();
            self.report.expired();
            self.fx.record_dirty = true;
            let push = if self.is_gate() {
                Push::PassExpired
            } else {
                Push::Expired
            };
            self.finish(&h.user, End::Expired, push);
        }
    }

    fn expire_payments(&mut self, now: Millis) {
        while let Some(n) = self.orders.next_overdue(now) {
            // Cannot fail: only pending orders have a deadline.
            let _ = self.cancel_order(n, CancelReason::PaymentTimeout);
        }
    }

    /// Drops places whose user stayed away longer than the reconnect grace.
    fn drop_absent(&mut self, now: Millis) {
        while let Some(user) = self.queue.next_absent(now) {
            let spot = match self.users.stage(&user) {
                Some(Stage::Waiting(seq)) => Spot::Room(seq),
                Some(Stage::Pre(n)) => Spot::Pre(n),
                _ => continue,
            };
            let position = match spot {
                Spot::Room(seq) => self.queue.position(seq),
                Spot::Pre(_) => None,
            };
            self.report.abandoned(now, position);
            self.queue.drop_absent(spot, &mut self.fx);
            self.end_line(spot, Outcome::Dropped);
            self.users.end(&user, End::Left);
        }
    }

    /// When nothing can ever be admitted, everyone waiting learns it, a tick's
    /// share at a time; so does a closed line's rest.
    pub(super) fn settle(&mut self, now: Millis) {
        if self.gate.was_closed() {
            self.end_places(Outcome::Closed, End::Closed, Push::Closed);
            return;
        }
        if !self.is_sold_out() {
            return;
        }
        if self.gate.is_opened() {
            self.report.sold_out(now);
        }
        self.end_places(Outcome::SoldOut, End::SoldOut, Push::SoldOut);
    }

    /// Ends up to `ENDS_PER_TICK` places from the front of the line.
    fn end_places(&mut self, outcome: Outcome, end: End, push: Push) {
        if self.queue.len() == 0 {
            return;
        }
        for (user, spot) in self.queue.take_front(ENDS_PER_TICK, &mut self.fx) {
            self.end_line(spot, outcome);
            self.finish(&user, end, push.clone());
        }
    }

    /// Admits from the head while the pacer, `max_active` and the units allow.
    /// Each admission holds `min(per_user_limit - bought, available)` units.
    pub(super) fn admit(&mut self, now: Millis) {
        if !self.gate.admits(now, self.spec.closes_at) {
            return;
        }
        let rate = self.spec.admission.rate_per_sec;
        self.gate.refill(now, rate);
        let ttl = self.hold_ttl_ms();
        let mut admitted = 0;
        while self.holds.len() < self.spec.admission.max_active as usize
            && self.ledger.available() > 0
            && !self.queue.room_is_empty()
            && self.gate.try_admit(now, rate)
        {
            let Some((seq, user, ticket, joined_at)) = self.queue.pop_front(&mut self.fx) else {
                break;
            };
            self.report.admitted(now, joined_at);
            self.fair.end(seq, Outcome::Admitted, now, &mut self.fx);
            let want = self
                .spec
                .per_user_limit
                .saturating_sub(self.users.bought(&user))
                .max(1);
            let units = self.ledger.hold(u64::from(want)) as u32;
            let hold = self.holds.grant(
                Grant {
                    user,
                    ticket,
                    units,
                    issued_at: now,
                    expires_at: now + ttl,
                    seq,
                },
                &mut self.fx,
            );
            self.users.set_stage(&hold.user, Stage::Admitted(hold.id));
            self.fx.event(
                EventType::PlaceAdmitted,
                EventData::Admitted {
                    activity_id: self.spec.id.to_string(),
                    user_id: hold.user.to_string(),
                    expires_at: rfc3339(hold.expires_at),
                },
            );
            let push = admitted_push(&self.key, self.passes.as_ref(), &self.spec, hold, now);
            self.fx.tell(&hold.user, push);
            admitted += 1;
        }
        if admitted > 0 {
            self.fx.record_dirty = true;
            self.gate.admitted(now, admitted);
        }
    }

    /// Sends the position updates that came due; called once per tick.
    fn notify(&mut self, now: Millis) {
        let waiting_for_returns = self.ledger.available() == 0;
        let rate = self.spec.admission.rate_per_sec;
        let (gate, fx) = (&mut self.gate, &mut self.fx);
        self.queue.notify(now, |user, position| {
            let eta_secs = gate.eta_secs(position, now, rate);
            fx.tell(
                user,
                Push::Position {
                    position,
                    eta_secs,
                    waiting_for_returns,
                },
            );
        });
    }
}
