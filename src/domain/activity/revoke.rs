//! Operator access commands: invite codes, and revoking (and banning) a user: the
//! place, unspent token or pass goes, held units go to the next in line.

use super::fairness::Outcome;
use super::queue::Spot;
use super::users::{End, Stage};
use super::{Activity, ActivityError, Push};
use crate::domain::clock::Millis;
use crate::domain::ids::UserId;
use serde::Serialize;

/// What `DELETE /api/admin/activities/{id}/users/{user_id}` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Revoked {
    pub user_id: String,
    /// The user had a place, token or pass, and lost it.
    pub revoked: bool,
    /// Later joins are refused.
    pub banned: bool,
}

impl Activity {
    /// Adds invite codes (drawn by the caller) for an invite-only activity.
    pub fn add_invites(&mut self, codes: &[String], now: Millis) -> Result<(), ActivityError> {
        if self.is_closed(now) {
            return Err(ActivityError::Conflict("the activity is closed".into()));
        }
        self.access
            .add_invites(codes, &mut self.fx)
            .map_err(ActivityError::Invalid)
    }

    /// Takes away `user`'s place, token or pass (the session hears `revoked`), and
    /// with `ban` refuses their later joins. `404` for a user with nothing to revoke,
    /// unless banning.
    pub fn revoke(
        &mut self,
        user: &UserId,
        ban: bool,
        now: Millis,
    ) -> Result<Revoked, ActivityError> {
        let live = self.users.stage(user).filter(|s| s.is_live());
        if live.is_none() && !ban {
            return Err(ActivityError::NotFound(
                "that user has no place, token or pass here".into(),
            ));
        }
        match live {
            Some(Stage::Waiting(seq)) => {
                let position = self.queue.position(seq);
                self.queue.take(Spot::Room(seq), &mut self.fx);
                self.end_line(Spot::Room(seq), Outcome::Dropped);
                self.report.abandoned(now, position);
            }
            Some(Stage::Pre(n)) => {
                self.queue.take(Spot::Pre(n), &mut self.fx);
                self.report.abandoned(now, None);
            }
            Some(Stage::Admitted(id)) => self.release_hold(id),
            Some(Stage::Ended(_)) | None => {}
        }
        if live.is_some() {
            self.finish(user, End::Revoked, Push::Revoked);
        }
        if ban {
            self.access.ban(user, &mut self.fx);
        }
        self.settle(now);
        self.admit(now);
        Ok(Revoked {
            user_id: user.to_string(),
            revoked: live.is_some(),
            banned: self.access.is_banned(user),
        })
    }

    /// Changes whenever `revoked_passes` does.
    pub fn revoked_version(&self) -> u64 {
        self.access.revoked_version()
    }

    /// Ids (`jti`) of this gate's passes revoked before their expiry.
    pub fn revoked_passes(&self) -> std::collections::HashSet<String> {
        self.access.revoked_ids().map(|id| id.to_string()).collect()
    }
}
