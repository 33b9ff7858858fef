//! Access control: invite codes (each belongs to the first user who joins with it),
//! banned users, and the passes revoked before their expiry (gates). All durable: each
//! change is a mutation of the activity's commit.

use super::{Effects, Mutation};
use crate::domain::clock::Millis;
use crate::domain::ids::UserId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// At most this many codes per request, and per activity.
pub const MAX_INVITES_PER_CALL: u32 = 10_000;
pub const MAX_INVITES: usize = 1_000_000;

/// An invite code as persisted (`user` once claimed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteRecord {
    pub code: String,
    pub user: Option<UserId>,
}

/// A user refused from now on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRecord {
    pub user: UserId,
}

/// A pass revoked before its expiry (by its hold id, the pass's `jti`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedRecord {
    pub expires_at: Millis,
}

/// The refusals' messages, public so the waiting page can say them in its language.
pub const NO_INVITE: &str = "this activity is invite-only: join with an invite code";
pub const BAD_INVITE: &str = "no such invite code";
pub const INVITE_TAKEN: &str = "that invite code belongs to someone else";

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    Banned,
    NoInvite,
    BadInvite,
    InviteTaken,
}

impl Refusal {
    pub(super) fn message(self) -> &'static str {
        match self {
            Refusal::Banned => "you may not join this activity",
            Refusal::NoInvite => NO_INVITE,
            Refusal::BadInvite => BAD_INVITE,
            Refusal::InviteTaken => INVITE_TAKEN,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Access {
    /// code -> (record number, owner once claimed).
    invites: HashMap<String, (u64, Option<UserId>)>,
    /// owner -> code, so a user who claimed a code rejoins without it.
    claimed: HashMap<UserId, String>,
    next_invite: u64,
    banned: HashMap<UserId, u64>,
    next_ban: u64,
    /// hold id -> pass expiry.
    revoked: BTreeMap<u64, Millis>,
    /// Bumped by every change of `revoked`, so the actor republishes only changes.
    revoked_version: u64,
}

impl Access {
    /// Whether `user` may take a new place, claiming `invite` if one is needed.
    pub(super) fn admit_join(
        &mut self,
        user: &UserId,
        invite_only: bool,
        invite: Option<&str>,
        fx: &mut Effects,
    ) -> Result<(), Refusal> {
        if self.banned.contains_key(user) {
            return Err(Refusal::Banned);
        }
        if !invite_only || (invite.is_none() && self.claimed.contains_key(user)) {
            return Ok(());
        }
        let code = invite.ok_or(Refusal::NoInvite)?;
        let (n, owner) = self.invites.get_mut(code).ok_or(Refusal::BadInvite)?;
        match owner {
            Some(o) if o == user => Ok(()),
            Some(_) => Err(Refusal::InviteTaken),
            None => {
                *owner = Some(user.clone());
                let n = *n;
                self.claimed.insert(user.clone(), code.to_owned());
                fx.mutations.push(Mutation::PutInvite {
                    n,
                    invite: InviteRecord {
                        code: code.to_owned(),
                        user: Some(user.clone()),
                    },
                });
                Ok(())
            }
        }
    }

    /// Adds `codes` (fresh random strings from the caller).
    pub(super) fn add_invites(&mut self, codes: &[String], fx: &mut Effects) -> Result<(), String> {
        if self.invites.len() + codes.len() > MAX_INVITES {
            return Err(format!("at most {MAX_INVITES} invite codes per activity"));
        }
        for code in codes {
            let n = self.next_invite;
            self.next_invite += 1;
            self.invites.insert(code.clone(), (n, None));
            fx.mutations.push(Mutation::PutInvite {
                n,
                invite: InviteRecord {
                    code: code.clone(),
                    user: None,
                },
            });
        }
        Ok(())
    }

    /// Bans `user` (idempotent).
    pub(super) fn ban(&mut self, user: &UserId, fx: &mut Effects) {
        if self.banned.contains_key(user) {
            return;
        }
        let n = self.next_ban;
        self.next_ban += 1;
        self.banned.insert(user.clone(), n);
        fx.mutations.push(Mutation::PutBan {
            n,
            ban: BanRecord { user: user.clone() },
        });
    }

    pub(super) fn is_banned(&self, user: &UserId) -> bool {
        self.banned.contains_key(user)
    }

    /// Revokes the pass of hold `id` until it would have expired.
    pub(super) fn revoke_pass(&mut self, id: u64, expires_at: Millis, fx: &mut Effects) {
        self.revoked.insert(id, expires_at);
        self.revoked_version += 1;
        fx.mutations.push(Mutation::PutRevoked {
            hold: id,
            record: RevokedRecord { expires_at },
        });
    }

    /// Forgets revocations of passes that have expired anyway; true if any went.
    pub(super) fn prune_revoked(&mut self, now: Millis, fx: &mut Effects) -> bool {
        let gone: Vec<u64> = self
            .revoked
            .iter()
            .filter(|(_, &exp)| exp <= now)
            .map(|(&id, _)| id)
            .collect();
        if !gone.is_empty() {
            self.revoked_version += 1;
        }
        for id in &gone {
            self.revoked.remove(id);
            fx.mutations.push(Mutation::DelRevoked { hold: *id });
        }
        !gone.is_empty()
    }

    pub(super) fn revoked_version(&self) -> u64 {
        self.revoked_version
    }

    /// The revoked passes' ids (`jti`).
    pub(super) fn revoked_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.revoked.keys().copied()
    }

    /// Recovery.
    pub(super) fn restore(
        &mut self,
        invites: Vec<(u64, InviteRecord)>,
        bans: Vec<(u64, BanRecord)>,
        revoked: Vec<(u64, RevokedRecord)>,
    ) {
        for (n, r) in invites {
            self.next_invite = self.next_invite.max(n + 1);
            if let Some(u) = &r.user {
                self.claimed.insert(u.clone(), r.code.clone());
            }
            self.invites.insert(r.code, (n, r.user));
        }
        for (n, b) in bans {
            self.next_ban = self.next_ban.max(n + 1);
            self.banned.insert(b.user, n);
        }
        for (id, r) in revoked {
            self.revoked.insert(id, r.expires_at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> UserId {
        UserId::parse(s).expect("valid")
    }

    #[test]
    fn a_code_belongs_to_its_first_user_and_bans_refuse_everyone() {
        let (mut a, mut fx) = (Access::default(), Effects::default());
        a.add_invites(&["c1".into()], &mut fx).expect("room");
        assert_eq!(
            a.admit_join(&u("ann"), true, None, &mut fx),
            Err(Refusal::NoInvite)
        );
        assert_eq!(
            a.admit_join(&u("ann"), true, Some("zz"), &mut fx),
            Err(Refusal::BadInvite)
        );
        assert_eq!(a.admit_join(&u("ann"), true, Some("c1"), &mut fx), Ok(()));
        assert_eq!(
            a.admit_join(&u("bob"), true, Some("c1"), &mut fx),
            Err(Refusal::InviteTaken)
        );
        assert_eq!(a.admit_join(&u("ann"), true, Some("c1"), &mut fx), Ok(()));
        assert_eq!(a.admit_join(&u("ann"), true, None, &mut fx), Ok(()));
        assert_eq!(a.admit_join(&u("bob"), false, None, &mut fx), Ok(()));
        a.ban(&u("bob"), &mut fx);
        assert_eq!(
            a.admit_join(&u("bob"), false, None, &mut fx),
            Err(Refusal::Banned)
        );
        let mut restored = Access::default();
        let invites = vec![(
            0,
            InviteRecord {
                code: "c1".into(),
                user: Some(u("ann")),
            },
        )];
        restored.restore(invites, vec![(0, BanRecord { user: u("bob") })], vec![]);
        assert_eq!(
            restored.admit_join(&u("cat"), true, Some("c1"), &mut fx),
            Err(Refusal::InviteTaken)
        );
        assert!(restored.is_banned(&u("bob")));
    }
}
