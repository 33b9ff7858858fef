//! Joining, resuming, leaving and polling a place: the per-user records and the queue
//! kept in step, and `join_or_resume`, the whole of a join request.

use super::fairness::{Outcome, Receipt};
use super::queue::Spot;
use super::users::{End, Stage};
use super::{admitted_push, Activity, ActivityError, Push, TicketView};
use crate::domain::clock::Millis;
use crate::domain::ids::{new_ticket, UserId};
use crate::domain::pow::PowSolution;

/// What a join or resume found or created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    pub ticket: String,
    /// True when the user already had this place (a rejoin or resume).
    pub existing: bool,
}

/// What `join_or_resume` answers: the ticket's state, and whether the place existed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedView {
    pub ticket: TicketView,
    /// True when the user already had this place (a rejoin or resume).
    pub existing: bool,
}

fn spot(stage: Stage) -> Option<Spot> {
    match stage {
        Stage::Waiting(seq) => Some(Spot::Room(seq)),
        Stage::Pre(n) => Some(Spot::Pre(n)),
        Stage::Admitted(_) | Stage::Ended(_) => None,
    }
}

impl Activity {
    /// A join request, whole: with a `ticket`, only its owner may use it (403/404) and
    /// an ended place makes this a fresh join; then the proof of work (a live place
    /// needs none); then the join or resume (a resume always attaches); then the
    /// ticket's state.
    pub fn join_or_resume(
        &mut self,
        user: &UserId,
        ticket: Option<&str>,
        pow: Option<&PowSolution>,
        attach: bool,
        now: Millis,
    ) -> Result<JoinedView, ActivityError> {
        if let Some(t) = ticket {
            self.ticket(user, t, now)
                .map_err(|e| self.after_the_end(e, now))?;
        }
        self.check_pow(user, pow, now)?;
        let joined = match ticket {
            Some(t) => self.resume(user, t, now),
            None => self.join(user, attach, now),
        }?;
        let ticket = self.ticket(user, &joined.ticket, now)?;
        Ok(JoinedView {
            ticket,
            existing: joined.existing,
        })
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
            let stage = entry.stage();
            if stage.is_live() {
                let ticket = entry.ticket().to_owned();
                self.reattach(user, stage, attach, now);
                return Ok(Joined {
                    ticket,
                    existing: true,
                });
            }
            if entry.bought() >= self.spec.per_user_limit {
                return Err(ActivityError::LimitReached);
            }
            self.users.retire_ticket(user);
        }
        if self.is_sold_out() {
            return Err(ActivityError::SoldOut("everything has been sold".into()));
        }
        if self.queue.len() >= self.spec.admission.queue_capacity as usize {
            return Err(ActivityError::QueueFull);
        }
        let ticket = new_ticket();
        let receipt = Receipt::of(&self.key, &ticket);
        let stage = match self.queue.join(
            user,
            ticket.clone(),
            receipt,
            attach,
            self.gate.is_opened(),
            now,
            &mut self.fx,
        ) {
            Spot::Room(seq) => {
                self.fair.enter(seq, receipt, false, now, &mut self.fx);
                Stage::Waiting(seq)
            }
            Spot::Pre(n) => Stage::Pre(n),
        };
        self.report.joined(now, self.queue.len());
        self.users.place(user, ticket.clone(), stage);
        self.reattach(user, stage, attach, now);
        self.admit(now);
        Ok(Joined {
            ticket,
            existing: false,
        })
    }

    /// Access control before a join: banned users are refused, and an invite-only
    /// activity needs a valid code (claimed by this user on first use). A user with a
    /// live place (a rejoin or resume) passes.
    pub fn check_access(
        &mut self,
        user: &UserId,
        invite: Option<&str>,
    ) -> Result<(), ActivityError> {
        if self.users.is_live(user) {
            return Ok(());
        }
        let invite_only = self.spec.admission.access == crate::domain::spec::Access::Invite;
        self.access
            .admit_join(user, invite_only, invite, &mut self.fx)
            .map_err(|r| ActivityError::Forbidden(r.message().into()))
    }

    /// Resumes by ticket: the ticket must be this user's live place. A line that
    /// ended forgets its tickets, so a session back after the end (its final frame
    /// lost to a failover or a dropped socket) hears how the line ended instead.
    pub fn resume(
        &mut self,
        user: &UserId,
        ticket: &str,
        now: Millis,
    ) -> Result<Joined, ActivityError> {
        self.users
            .check_owner(user, ticket)
            .map_err(|e| self.after_the_end(e, now))?;
        self.join(user, true, now)
    }

    /// An unknown ticket of a line that ended is answered with how it ended.
    pub(super) fn after_the_end(&self, e: ActivityError, now: Millis) -> ActivityError {
        match e {
            ActivityError::NotFound(_) if self.is_closed(now) => {
                ActivityError::NotOpen("the activity is closed".into())
            }
            ActivityError::NotFound(_) if self.is_sold_out() => {
                ActivityError::SoldOut("everything has been sold".into())
            }
            e => e,
        }
    }

    /// Marks the place attached or polled and tells an attaching session where it stands.
    pub(super) fn reattach(&mut self, user: &UserId, stage: Stage, attach: bool, now: Millis) {
        let deadline = now + self.grace_ms();
        if let Some(spot) = spot(stage) {
            self.queue.attach(spot, attach, deadline);
        }
        if !attach {
            return;
        }
        match stage {
            Stage::Waiting(seq) => {
                let ticket = self.users.ticket(user).unwrap_or_default().to_owned();
                let receipt = self.receipt_at(Spot::Room(seq), &ticket).hex();
                let position = self.queue.position(seq).unwrap_or(1);
                let eta_secs = self.eta_secs(position, now);
                self.fx.tell(
                    user,
                    Push::Queued {
                        ticket,
                        receipt,
                        position,
                        eta_secs,
                        seq,
                    },
                );
                if self.gate.is_paused() {
                    self.fx.tell(user, Push::Paused);
                }
                self.queue.schedule(seq, position, now);
            }
            Stage::Pre(n) => {
                let ticket = self.users.ticket(user).unwrap_or_default().to_owned();
                let receipt = self.receipt_at(Spot::Pre(n), &ticket).hex();
                let opens_at_ms = self.spec.opens_at.unwrap_or(now);
                self.fx.tell(
                    user,
                    Push::Prequeue {
                        ticket,
                        receipt,
                        opens_at_ms,
                    },
                );
            }
            Stage::Admitted(id) => {
                if let Some(hold) = self.holds.get(id) {
                    let p = admitted_push(&self.key, self.passes.as_ref(), &self.spec, hold, now);
                    self.fx.tell(user, p);
                }
            }
            Stage::Ended(_) => {}
        }
    }

    /// A WebSocket session went away: the place is kept for `reconnect_grace_secs`.
    pub fn detach(&mut self, user: &UserId, now: Millis) {
        let Some(spot) = self.users.stage(user).and_then(spot) else {
            return;
        };
        self.queue.detach(spot, now + self.grace_ms());
    }

    /// Gives the place up (or an unspent token's units back).
    pub fn leave(&mut self, user: &UserId, now: Millis) -> Result<(), ActivityError> {
        let stage = self
            .users
            .stage(user)
            .ok_or_else(|| ActivityError::NotFound("no place to leave".into()))?;
        match stage {
            Stage::Waiting(seq) => {
                let position = self.queue.position(seq);
                self.queue.take(Spot::Room(seq), &mut self.fx);
                self.fair.end(seq, Outcome::Left, now, &mut self.fx);
                self.report.abandoned(now, position);
            }
            Stage::Pre(n) => {
                self.queue.take(Spot::Pre(n), &mut self.fx);
                self.report.abandoned(now, None);
            }
            Stage::Admitted(id) => self.release_hold(id),
            Stage::Ended(_) => return Ok(()),
        }
        self.users.end(user, End::Left);
        self.settle(now);
        self.admit(now);
        Ok(())
    }

    /// An HTTP-polling client showed it is still there.
    pub fn touch(&mut self, user: &UserId, now: Millis) {
        let Some(spot) = self.users.stage(user).and_then(spot) else {
            return;
        };
        self.queue.attach(spot, false, now + self.grace_ms());
    }

    /// The state of a ticket for HTTP polling; only its owner may read it.
    pub fn ticket(
        &mut self,
        user: &UserId,
        ticket: &str,
        now: Millis,
    ) -> Result<TicketView, ActivityError> {
        self.users.check_owner(user, ticket)?;
        self.touch(user, now);
        let stage = self.users.stage(user);
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
        let stage = self.users.stage(user);
        Ok(self.ticket_view(ticket, stage, now))
    }

    /// Checks the join proof of work when the activity asks for one and the user has
    /// no live place yet (rejoining and resuming never cost work).
    pub fn check_pow(
        &self,
        user: &UserId,
        sol: Option<&PowSolution>,
        now: Millis,
    ) -> Result<(), ActivityError> {
        if self.users.is_live(user) {
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

    /// The receipt of the place at `spot`, or derived from its ticket.
    pub(super) fn receipt_at(&self, spot: Spot, ticket: &str) -> Receipt {
        self.queue
            .receipt(spot)
            .unwrap_or_else(|| Receipt::of(&self.key, ticket))
    }

    pub fn ticket_of(&self, user: &UserId) -> Option<&str> {
        self.users.ticket(user)
    }
}
