//! Operator commands: pause/resume, close, stock and slot additions, live admission
//! changes, scheduling the opening, and `admin`, the whole of an operator request (a command, then the view).

use super::{Activity, ActivityError, ActivityView, Push};
use crate::domain::clock::Millis;
use crate::domain::spec::{validate_new_slots, AdmissionPatch, Kind, SlotSpec};

/// What an operator (or, for `View { admin: false }`, anyone) asks of an activity.
#[derive(Debug, Clone)]
pub enum AdminCommand {
    /// Only the view; `admin` adds the operator-only fields.
    View {
        admin: bool,
    },
    AddStock(u32),
    AddSlots(Vec<SlotSpec>),
    Pause,
    Resume,
    Close,
    PatchAdmission(AdmissionPatch),
    /// Sets the opening time (`None`: open now). `seed` (32 random bytes drawn by the
    /// caller) becomes the commit-reveal seed only if the activity has none yet.
    Schedule {
        opens_at: Option<Millis>,
        seed: [u8; 32],
    },
}

impl Activity {
    /// Runs `cmd` and answers with the activity view: the admin view after a change,
    /// the asked-for view for `View`.
    pub fn admin(&mut self, cmd: AdminCommand, now: Millis) -> Result<ActivityView, ActivityError> {
        let admin = match cmd {
            AdminCommand::View { admin } => admin,
            AdminCommand::AddStock(n) => self.add_stock(n, now).map(|()| true)?,
            AdminCommand::AddSlots(slots) => self.add_slots(&slots, now).map(|()| true)?,
            AdminCommand::Pause => self.pause(now).map(|()| true)?,
            AdminCommand::Resume => self.resume_admission(now).map(|()| true)?,
            AdminCommand::Close => self.close(now).map(|()| true)?,
            AdminCommand::PatchAdmission(p) => self.patch_admission(&p, now).map(|()| true)?,
            AdminCommand::Schedule { opens_at, seed } => {
                self.schedule(opens_at, seed, now).map(|()| true)?
            }
        };
        Ok(self.view(now, admin))
    }

    pub fn pause(&mut self, now: Millis) -> Result<(), ActivityError> {
        self.require_not_closed(now)?;
        if self.gate.pause() {
            self.fx.record_dirty = true;
            self.broadcast_waiting(Push::Paused);
        }
        Ok(())
    }

    pub fn resume_admission(&mut self, now: Millis) -> Result<(), ActivityError> {
        self.require_not_closed(now)?;
        if self.gate.resume() {
            self.fx.record_dirty = true;
            self.broadcast_waiting(Push::Resumed);
            self.admit(now);
        }
        Ok(())
    }

    pub fn close(&mut self, now: Millis) -> Result<(), ActivityError> {
        if !self.gate.was_closed() {
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
        for user in self.queue.attached_users() {
            self.fx.tell(user, push.clone());
        }
    }

    /// Sale: releases `add` more units; whoever waits is admitted as they appear.
    pub fn add_stock(&mut self, add: u32, now: Millis) -> Result<(), ActivityError> {
        self.require_not_closed(now)?;
        match self.spec.kind {
            Kind::Sale => {}
            Kind::Appointment => {
                return Err(ActivityError::Invalid(
                    "an appointment takes slots, not stock".into(),
                ))
            }
            Kind::Gate => {
                return Err(ActivityError::Invalid(
                    "a gate has no stock: max_active bounds its passes".into(),
                ))
            }
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
            return Err(ActivityError::Invalid(format!(
                "a {} takes no slots",
                if self.spec.kind == Kind::Gate {
                    "gate"
                } else {
                    "sale"
                }
            )));
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

impl Activity {
    /// Sets the opening time, or with `None` opens now. Allowed before opening, and on
    /// an activity that opened at creation as long as nobody has joined it (it goes
    /// back to scheduled). The seed is drawn once: moving or clearing the time keeps
    /// the seed and commitment already published, since a new seed after publication
    /// would void the proof. An activity that opened on its schedule cannot be
    /// rescheduled: its seed is public.
    pub fn schedule(
        &mut self,
        opens_at: Option<Millis>,
        seed: [u8; 32],
        now: Millis,
    ) -> Result<(), ActivityError> {
        self.require_not_closed(now)?;
        if self.gate.is_opened() && (self.fair.seed().is_some() || !self.never_joined()) {
            return Err(ActivityError::Conflict(
                "the activity has opened; its opening time can no longer change".into(),
            ));
        }
        if let Some(o) = opens_at {
            if o <= now {
                return Err(ActivityError::Invalid(
                    "opens_at must be in the future".into(),
                ));
            }
            if self.spec.closes_at.is_some_and(|c| c <= o) {
                return Err(ActivityError::Invalid(
                    "opens_at must be before closes_at".into(),
                ));
            }
        }
        self.spec.opens_at = opens_at;
        self.fx.record_dirty = true;
        match opens_at {
            Some(_) => {
                if self.gate.is_opened() {
                    self.gate.unopen();
                    self.report.unopened();
                    // In the same commit as the record, so a crash cannot keep the
                    // creation time as the report's opening.
                    self.report.flush(now, true, &mut self.fx);
                }
                self.fair.commit(seed);
            }
            None if !self.gate.is_opened() => {
                self.open(now);
                self.admit(now);
            }
            None => {}
        }
        Ok(())
    }

    /// Nobody ever held a place here: no line, no place, no hold, no admission.
    fn never_joined(&self) -> bool {
        self.fair.len() == 0
            && self.queue.len() == 0
            && self.holds.len() == 0
            && self.gate.admitted_total() == 0
    }
}
