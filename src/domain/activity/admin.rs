//! Operator commands: pause/resume, close, stock and slot additions, live admission
//! changes, and `admin`, the whole of an operator request (a command, then the view).

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
