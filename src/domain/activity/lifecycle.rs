//! Time-driven and operator-driven changes: opening (with the pre-queue shuffle),
//! closing, hold and payment expiry, reconnect grace, paced admission, sold-out,
//! pause/resume, stock and slot additions, live admission changes.

use super::{Activity, ActivityError, End, Hold, Mutation, Push, ShuffleAudit, Stage};
use crate::domain::clock::Millis;
use crate::domain::ids::UserId;
use crate::domain::order::CancelReason;
use crate::domain::spec::{validate_new_slots, AdmissionPatch, Kind, SlotSpec};
use rand::seq::SliceRandom;
use rand::{RngCore, SeedableRng};

impl Activity {
    /// One step of time: everything due at `now` happens, in a fixed order.
    pub fn tick(&mut self, now: Millis) {
        if !self.closed && self.spec.closes_at.is_some_and(|c| c <= now) {
            self.close_now();
        }
        if !self.opened && !self.closed && self.spec.opens_at.is_none_or(|o| o <= now) {
            self.open(now);
        }
        self.expire_holds(now);
        self.expire_payments(now);
        self.drop_absent(now);
        self.settle(now);
        self.admit(now);
        self.notify(now);
    }

    /// Opening: the pre-queue is shuffled uniformly (Fisher-Yates driven by a ChaCha
    /// generator seeded from the OS CSPRNG) and placed ahead of every later join.
    fn open(&mut self, now: Millis) {
        self.opened = true;
        self.fx.record_dirty = true;
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        let mut entries: Vec<(u64, super::Place)> =
            std::mem::take(&mut self.pre).into_iter().collect();
        entries.shuffle(&mut rand::rngs::StdRng::from_seed(seed));
        let seed_hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
        self.shuffle_seed = Some(seed_hex.clone());
        let order = entries.iter().map(|(_, p)| p.user.to_string()).collect();
        self.fx.mutations.push(Mutation::PutShuffle(ShuffleAudit {
            at: now,
            seed_hex,
            algorithm: "fisher-yates/chacha12 (rand 0.8 StdRng)".into(),
            order,
        }));
        for (n, mut place) in entries {
            self.fx.mutations.push(Mutation::DelPre { n });
            if let Some(d) = place.deadline {
                self.grace.remove(&(d, place.user.clone()));
            }
            let user = place.user.clone();
            let attached = place.attached;
            let record = place.record();
            place.deadline = None;
            let seq = self.room.push(place);
            self.fx
                .mutations
                .push(Mutation::PutPlace { seq, place: record });
            if let Some(e) = self.users.get_mut(&user) {
                e.stage = Stage::Waiting(seq);
            }
            let grace = self.grace_ms();
            self.set_attached(Some(seq), None, attached, now + grace);
            if attached {
                self.reattach(&user, Stage::Waiting(seq), true, now);
            }
        }
    }

    /// Ends the activity: waiting users and token holders are told; pending orders
    /// keep their lifecycle.
    fn close_now(&mut self) {
        self.closed = true;
        self.fx.record_dirty = true;
        let waiting: Vec<u64> = self.room.iter().map(|(s, _)| s).collect();
        for seq in waiting {
            if let Some(p) = self.take_place(seq) {
                self.finish(&p.user, End::Closed, Push::Closed);
            }
        }
        let pre: Vec<u64> = self.pre.keys().copied().collect();
        for n in pre {
            if let Some(p) = self.take_pre(n) {
                self.finish(&p.user, End::Closed, Push::Closed);
            }
        }
        let holds: Vec<(u64, UserId)> = self
            .holds
            .values()
            .map(|h| (h.id, h.user.clone()))
            .collect();
        for (id, user) in holds {
            self.release_hold(id);
            self.finish(&user, End::Closed, Push::Closed);
        }
    }

    fn finish(&mut self, user: &UserId, end: End, push: Push) {
        self.end(user, end);
        self.push(user, push);
    }

    fn expire_holds(&mut self, now: Millis) {
        while let Some(&(at, id)) = self.hold_expiry.first() {
            if at > now {
                break;
            }
            let Some(user) = self.holds.get(&id).map(|h| h.user.clone()) else {
                self.hold_expiry.pop_first();
                continue;
            };
            self.release_hold(id);
            self.expired_total += 1;
            self.fx.record_dirty = true;
            self.finish(&user, End::Expired, Push::Expired);
        }
    }

    fn expire_payments(&mut self, now: Millis) {
        while let Some(&(at, n)) = self.pay_deadlines.first() {
            if at > now {
                break;
            }
            self.pay_deadlines.pop_first();
            // Cannot fail: only pending orders have a deadline.
            let _ = self.cancel_order(n, CancelReason::PaymentTimeout);
        }
    }

    /// Drops places whose user stayed away longer than the reconnect grace.
    fn drop_absent(&mut self, now: Millis) {
        while let Some((at, user)) = self.grace.first().cloned() {
            if at > now {
                break;
            }
            self.grace.pop_first();
            match self.users.get(&user).map(|e| e.stage) {
                Some(Stage::Waiting(seq)) => {
                    if let Some(p) = self.room.get_mut(seq) {
                        p.deadline = None;
                    }
                    self.take_place(seq);
                }
                Some(Stage::Pre(n)) => {
                    if let Some(p) = self.pre.get_mut(&n) {
                        p.deadline = None;
                    }
                    self.take_pre(n);
                }
                _ => continue,
            }
            self.end(&user, End::Left);
        }
    }

    /// When nothing can ever be admitted, everyone waiting learns it at once.
    pub(super) fn settle(&mut self, _now: Millis) {
        if !self.is_sold_out() || self.waiting_count() == 0 {
            return;
        }
        let waiting: Vec<u64> = self.room.iter().map(|(s, _)| s).collect();
        for seq in waiting {
            if let Some(p) = self.take_place(seq) {
                self.finish(&p.user, End::SoldOut, Push::SoldOut);
            }
        }
        let pre: Vec<u64> = self.pre.keys().copied().collect();
        for n in pre {
            if let Some(p) = self.take_pre(n) {
                self.finish(&p.user, End::SoldOut, Push::SoldOut);
            }
        }
    }

    /// Admits from the head while the pacer, `max_active` and the units allow.
    /// Each admission holds `min(per_user_limit - bought, available)` units.
    pub(super) fn admit(&mut self, now: Millis) {
        if self.paused || !self.opened || self.is_closed(now) {
            return;
        }
        self.pacer.refill(now, self.spec.admission.rate_per_sec);
        let ttl = u64::from(self.spec.admission.token_ttl_secs) * 1000;
        let mut admitted = 0;
        while self.holds.len() < self.spec.admission.max_active as usize
            && self.ledger.available() > 0
            && !self.room.is_empty()
            && self.pacer.try_take(now, self.spec.admission.rate_per_sec)
        {
            let Some((seq, _)) = self.room.front() else {
                break;
            };
            let Some(place) = self.take_place(seq) else {
                break;
            };
            let bought = self.users.get(&place.user).map_or(0, |e| e.bought);
            let want = self.spec.per_user_limit.saturating_sub(bought).max(1);
            let units = self.ledger.hold(u64::from(want)) as u32;
            let hold = Hold {
                id: self.next_hold,
                user: place.user.clone(),
                ticket: place.ticket,
                units,
                issued_at: now,
                expires_at: now + ttl,
                seq,
            };
            self.next_hold += 1;
            self.admitted_total += 1;
            admitted += 1;
            self.hold_expiry.insert((hold.expires_at, hold.id));
            if let Some(e) = self.users.get_mut(&place.user) {
                e.stage = Stage::Admitted(hold.id);
            }
            let push = self.admitted_push(&hold, now);
            self.push(&place.user, push);
            self.fx.mutations.push(Mutation::PutHold(hold.clone()));
            self.holds.insert(hold.id, hold);
        }
        if admitted > 0 {
            self.fx.record_dirty = true;
            self.meter.record(now, admitted);
        }
    }

    pub fn pause(&mut self, now: Millis) -> Result<(), ActivityError> {
        self.require_not_closed(now)?;
        if !self.paused {
            self.paused = true;
            self.fx.record_dirty = true;
            self.broadcast_waiting(Push::Paused);
        }
        Ok(())
    }

    pub fn resume_admission(&mut self, now: Millis) -> Result<(), ActivityError> {
        self.require_not_closed(now)?;
        if self.paused {
            self.paused = false;
            self.fx.record_dirty = true;
            self.broadcast_waiting(Push::Resumed);
            self.admit(now);
        }
        Ok(())
    }

    pub fn close(&mut self, now: Millis) -> Result<(), ActivityError> {
        if !self.closed {
            self.close_now();
        }
        let _ = now;
        Ok(())
    }

    fn require_not_closed(&self, now: Millis) -> Result<(), ActivityError> {
        if self.is_closed(now) {
            Err(ActivityError::Conflict("the activity is closed".into()))
        } else {
            Ok(())
        }
    }

    /// Tells every attached waiting or pre-queued user (one-off operator events only).
    fn broadcast_waiting(&mut self, push: Push) {
        let users: Vec<UserId> = self
            .room
            .iter()
            .map(|(_, p)| p)
            .chain(self.pre.values())
            .filter(|p| p.attached)
            .map(|p| p.user.clone())
            .collect();
        for u in users {
            self.push(&u, push.clone());
        }
    }

    /// Sale: releases `add` more units; whoever waits is admitted as they appear.
    pub fn add_stock(&mut self, add: u32, now: Millis) -> Result<(), ActivityError> {
        self.require_not_closed(now)?;
        if self.spec.kind != Kind::Sale {
            return Err(ActivityError::Invalid(
                "an appointment takes slots, not stock".into(),
            ));
        }
        let id = self.ledger.slots()[0].id.clone();
        self.ledger
            .add(&id, "stock", u64::from(add))
            .map_err(|e| ActivityError::Invalid(format!("stock: {e}")))?;
        self.fx.record_dirty = true;
        self.admit(now);
        Ok(())
    }

    /// Appointment: adds slots or raises an existing slot's capacity by the given amount.
    pub fn add_slots(&mut self, slots: &[SlotSpec], now: Millis) -> Result<(), ActivityError> {
        self.require_not_closed(now)?;
        if self.spec.kind != Kind::Appointment {
            return Err(ActivityError::Invalid(
                "a sale takes stock, not slots".into(),
            ));
        }
        let existing: Vec<SlotSpec> = Vec::new();
        validate_new_slots(slots, &existing).map_err(|e| ActivityError::Invalid(e.0))?;
        let new_ids = slots
            .iter()
            .filter(|s| self.ledger.slot_index(&s.id).is_none())
            .count();
        if self.ledger.slots().len() + new_ids > crate::domain::spec::MAX_SLOTS {
            return Err(ActivityError::Invalid("too many slots".into()));
        }
        let extra: u64 = slots.iter().map(|s| u64::from(s.capacity)).sum();
        if self.ledger.total().capacity + extra > crate::domain::ledger::MAX_TOTAL {
            return Err(ActivityError::Invalid(
                "capacity would exceed the limit".into(),
            ));
        }
        for s in slots {
            self.ledger
                .add(&s.id, &s.label, u64::from(s.capacity))
                .map_err(|e| ActivityError::Invalid(format!("slot {}: {e}", s.id)))?;
        }
        self.fx.record_dirty = true;
        self.admit(now);
        Ok(())
    }

    pub fn patch_admission(
        &mut self,
        patch: &AdmissionPatch,
        now: Millis,
    ) -> Result<(), ActivityError> {
        self.require_not_closed(now)?;
        self.spec.admission = self
            .spec
            .admission
            .patched(patch)
            .map_err(|e| ActivityError::Invalid(e.0))?;
        self.fx.record_dirty = true;
        self.settle(now);
        self.admit(now);
        Ok(())
    }
}
