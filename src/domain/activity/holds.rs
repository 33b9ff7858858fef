//! Holds: units reserved for admitted users until their token expires, indexed by
//! expiry, and the hold id counter (one id per admission).

use super::{Effects, Hold, Mutation};
use crate::domain::clock::Millis;
use crate::domain::ids::UserId;
use std::collections::{BTreeSet, HashMap};

#[derive(Debug)]
pub(super) struct Holds {
    by_id: HashMap<u64, Hold>,
    expiry: BTreeSet<(Millis, u64)>,
    /// Ids start at 1 and are never reused: the id of a purchase token.
    next_id: u64,
}

impl Default for Holds {
    fn default() -> Self {
        Self {
            by_id: HashMap::new(),
            expiry: BTreeSet::new(),
            next_id: 1,
        }
    }
}

/// What an admission reserves, before it has an id.
pub(super) struct Grant {
    pub user: UserId,
    pub ticket: String,
    pub units: u32,
    pub issued_at: Millis,
    pub expires_at: Millis,
    pub seq: u64,
}

impl Holds {
    pub(super) fn get(&self, id: u64) -> Option<&Hold> {
        self.by_id.get(&id)
    }

    /// Holds issued and neither spent nor expired (the active tokens).
    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(super) fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Units held in all holds (checked against the ledger).
    pub(super) fn units(&self) -> u64 {
        self.by_id.values().map(|h| u64::from(h.units)).sum()
    }

    /// Creates the next hold and persists it.
    pub(super) fn grant(&mut self, g: Grant, fx: &mut Effects) -> &Hold {
        let hold = Hold {
            id: self.next_id,
            user: g.user,
            ticket: g.ticket,
            units: g.units,
            issued_at: g.issued_at,
            expires_at: g.expires_at,
            seq: g.seq,
        };
        self.next_id += 1;
        self.expiry.insert((hold.expires_at, hold.id));
        fx.mutations.push(Mutation::PutHold(hold.clone()));
        self.by_id.entry(hold.id).or_insert(hold)
    }

    /// Removes a hold (spent, released or expired); its units are the caller's to settle.
    pub(super) fn take(&mut self, id: u64, fx: &mut Effects) -> Option<Hold> {
        let h = self.by_id.remove(&id)?;
        self.expiry.remove(&(h.expires_at, id));
        fx.mutations.push(Mutation::DelHold { id });
        Some(h)
    }

    /// Removes the next hold whose token expired by `now`, if any.
    pub(super) fn take_expired(&mut self, now: Millis, fx: &mut Effects) -> Option<Hold> {
        while let Some(&(at, id)) = self.expiry.first() {
            if at > now {
                return None;
            }
            if self.by_id.contains_key(&id) {
                return self.take(id, fx);
            }
            self.expiry.pop_first();
        }
        None
    }

    /// Failover credit: every hold still outstanding at `since` (its expiry after it)
    /// expires `credit` ms later, persisted. Returns how many moved.
    pub(super) fn extend_outstanding(
        &mut self,
        since: Millis,
        credit: u64,
        fx: &mut Effects,
    ) -> usize {
        let moved: Vec<(Millis, u64)> = self.expiry.range((since + 1, 0)..).copied().collect();
        for (at, id) in &moved {
            self.expiry.remove(&(*at, *id));
            if let Some(h) = self.by_id.get_mut(id) {
                h.expires_at = at + credit;
                self.expiry.insert((h.expires_at, *id));
                fx.mutations.push(Mutation::PutHold(h.clone()));
            }
        }
        moved.len()
    }

    /// Ids of every hold, for closing.
    pub(super) fn ids(&self) -> Vec<u64> {
        self.by_id.keys().copied().collect()
    }

    /// Recovery: a hold found in the store, with the units the ledger granted it.
    pub(super) fn restore(&mut self, hold: Hold) {
        self.next_id = self.next_id.max(hold.id + 1);
        self.expiry.insert((hold.expires_at, hold.id));
        self.by_id.insert(hold.id, hold);
    }

    /// Recovery: ids up to `id` were handed out (by a hold since spent).
    pub(super) fn reserve_id(&mut self, id: u64) {
        self.next_id = self.next_id.max(id + 1);
    }

    /// Recovery: the record's counter, before holds and orders raise it.
    pub(super) fn set_next_id(&mut self, next: u64) {
        self.next_id = next;
    }

    /// One past the highest place sequence number any hold came from.
    pub(super) fn next_seq(&self) -> u64 {
        self.by_id.values().map(|h| h.seq + 1).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(at: Millis, ttl: u64) -> Grant {
        Grant {
            user: UserId::parse("ann").expect("valid"),
            ticket: "t".into(),
            units: 2,
            issued_at: at,
            expires_at: at + ttl,
            seq: 4,
        }
    }

    #[test]
    fn holds_expire_in_expiry_order_and_spent_ones_never_expire() {
        let (mut holds, mut fx) = (Holds::default(), Effects::default());
        let late = holds.grant(grant(0, 300), &mut fx).id;
        let early = holds.grant(grant(0, 100), &mut fx).id;
        let spent = holds.grant(grant(0, 50), &mut fx).id;
        assert_eq!((late, early, spent), (1, 2, 3));
        assert!(holds.take(spent, &mut fx).is_some());
        assert_eq!(holds.take_expired(99, &mut fx), None);
        assert_eq!(holds.take_expired(300, &mut fx).map(|h| h.id), Some(early));
        assert_eq!(holds.take_expired(300, &mut fx).map(|h| h.id), Some(late));
        assert_eq!((holds.len(), holds.next_id()), (0, 4));
    }

    #[test]
    fn a_failover_credit_moves_only_holds_outstanding_when_the_owner_went_silent() {
        let (mut holds, mut fx) = (Holds::default(), Effects::default());
        let before = holds.grant(grant(0, 100), &mut fx).id;
        let during = holds.grant(grant(0, 300), &mut fx).id;
        let after = holds.grant(grant(0, 900), &mut fx).id;
        fx = Effects::default();
        assert_eq!(holds.extend_outstanding(200, 500, &mut fx), 2);
        assert_eq!(fx.mutations.len(), 2);
        let expiry = |id| holds.get(id).map(|h| h.expires_at);
        assert_eq!(
            (expiry(before), expiry(during), expiry(after)),
            (Some(100), Some(800), Some(1400))
        );
        // Expiry order follows the new times: `during` outlives its old deadline.
        assert_eq!(holds.take_expired(799, &mut fx).map(|h| h.id), Some(before));
        assert_eq!(holds.take_expired(799, &mut fx), None);
        assert_eq!(holds.take_expired(800, &mut fx).map(|h| h.id), Some(during));
    }
}
