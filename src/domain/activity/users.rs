//! Per-user records: each user's ticket, where they stand, and how many units they
//! have bought (against `per_user_limit`), with the ticket -> user index.

use super::ActivityError;
use crate::domain::ids::UserId;
use std::collections::HashMap;

/// Where a user stands in this activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    Pre(u64),
    Waiting(u64),
    Admitted(u64),
    Ended(End),
}

impl Stage {
    pub(super) fn is_live(self) -> bool {
        !matches!(self, Stage::Ended(_))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    Expired,
    SoldOut,
    Closed,
    Left,
    /// Removed by an operator.
    Revoked,
    Purchased(u64),
}

#[derive(Debug, Clone)]
pub(super) struct UserEntry {
    ticket: String,
    stage: Stage,
    /// Units in pending or paid orders, against `per_user_limit`.
    bought: u32,
}

impl UserEntry {
    pub(super) fn ticket(&self) -> &str {
        &self.ticket
    }
    pub(super) fn stage(&self) -> Stage {
        self.stage
    }
    pub(super) fn bought(&self) -> u32 {
        self.bought
    }
}

/// Every user who ever joined or bought; ended users stay (their purchases count
/// against the limit and their ticket still reads as ended).
#[derive(Debug, Default)]
pub(super) struct Users {
    by_user: HashMap<UserId, UserEntry>,
    /// Live and ended tickets; a fresh join after an ended place retires the old one.
    by_ticket: HashMap<String, UserId>,
}

impl Users {
    pub(super) fn get(&self, user: &UserId) -> Option<&UserEntry> {
        self.by_user.get(user)
    }

    pub(super) fn stage(&self, user: &UserId) -> Option<Stage> {
        self.by_user.get(user).map(|e| e.stage)
    }

    pub(super) fn ticket(&self, user: &UserId) -> Option<&str> {
        self.by_user.get(user).map(|e| e.ticket.as_str())
    }

    pub(super) fn bought(&self, user: &UserId) -> u32 {
        self.by_user.get(user).map_or(0, |e| e.bought)
    }

    /// The user has a place, pre-queue place or hold.
    pub(super) fn is_live(&self, user: &UserId) -> bool {
        self.by_user.get(user).is_some_and(|e| e.stage.is_live())
    }

    /// A ticket may only be used by the user it was issued to.
    pub(super) fn check_owner(&self, user: &UserId, ticket: &str) -> Result<(), ActivityError> {
        match self.by_ticket.get(ticket) {
            Some(owner) if owner == user => Ok(()),
            Some(_) => Err(ActivityError::Forbidden(
                "that ticket belongs to someone else".into(),
            )),
            None => Err(ActivityError::NotFound("no such ticket".into())),
        }
    }

    /// Records a new place under a new ticket; units already bought still count.
    pub(super) fn place(&mut self, user: &UserId, ticket: String, stage: Stage) {
        self.by_ticket.insert(ticket.clone(), user.clone());
        match self.by_user.get_mut(user) {
            Some(e) => {
                e.ticket = ticket;
                e.stage = stage;
            }
            None => {
                self.by_user.insert(
                    user.clone(),
                    UserEntry {
                        ticket,
                        stage,
                        bought: 0,
                    },
                );
            }
        }
    }

    /// Forgets the user's (ended) ticket before a fresh join issues another.
    pub(super) fn retire_ticket(&mut self, user: &UserId) {
        if let Some(e) = self.by_user.get(user) {
            self.by_ticket.remove(&e.ticket);
        }
    }

    pub(super) fn set_stage(&mut self, user: &UserId, stage: Stage) {
        if let Some(e) = self.by_user.get_mut(user) {
            e.stage = stage;
        }
    }

    pub(super) fn end(&mut self, user: &UserId, end: End) {
        self.set_stage(user, Stage::Ended(end));
    }

    /// A purchase ends the user's turn and counts against the limit.
    pub(super) fn purchased(&mut self, user: &UserId, quantity: u32, order: u64) {
        if let Some(e) = self.by_user.get_mut(user) {
            e.bought += quantity;
            e.stage = Stage::Ended(End::Purchased(order));
        }
    }

    /// A cancelled order's units no longer count against the limit.
    pub(super) fn refund(&mut self, user: &UserId, quantity: u32) {
        if let Some(e) = self.by_user.get_mut(user) {
            e.bought = e.bought.saturating_sub(quantity);
        }
    }

    /// Recovery: an order found in the store (`units` is 0 for a cancelled one).
    /// Recovery: an order found in the store, `ticket` the one that bought it (empty
    /// in stores written before orders kept it). The latest purchase's ticket
    /// answers as it did; a live place or hold restored after takes the user over.
    pub(super) fn restore_order(&mut self, user: &UserId, order: u64, units: u32, ticket: &str) {
        let e = self
            .by_user
            .entry(user.clone())
            .or_insert_with(|| UserEntry {
                ticket: String::new(),
                stage: Stage::Ended(End::Purchased(order)),
                bought: 0,
            });
        e.bought += units;
        if !ticket.is_empty() {
            e.ticket = ticket.to_owned();
            e.stage = Stage::Ended(End::Purchased(order));
            self.by_ticket.insert(ticket.to_owned(), user.clone());
        }
    }

    /// Recovery: a place or hold found in the store.
    pub(super) fn restore_place(&mut self, user: &UserId, ticket: &str, stage: Stage) {
        let e = self
            .by_user
            .entry(user.clone())
            .or_insert_with(|| UserEntry {
                ticket: String::new(),
                stage,
                bought: 0,
            });
        e.ticket = ticket.to_owned();
        e.stage = stage;
        self.by_ticket.insert(ticket.to_owned(), user.clone());
    }

    /// Someone holds more than `limit` units (a broken invariant).
    pub(super) fn any_over(&self, limit: u32) -> bool {
        self.by_user.values().any(|e| e.bought > limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> UserId {
        UserId::parse(s).expect("valid")
    }

    #[test]
    fn a_ticket_answers_only_its_owner() {
        let mut users = Users::default();
        users.place(&u("ann"), "t1".into(), Stage::Waiting(0));
        assert_eq!(users.check_owner(&u("ann"), "t1"), Ok(()));
        assert!(matches!(
            users.check_owner(&u("bob"), "t1"),
            Err(ActivityError::Forbidden(_))
        ));
        assert!(matches!(
            users.check_owner(&u("ann"), "t2"),
            Err(ActivityError::NotFound(_))
        ));
    }

    #[test]
    fn units_bought_survive_a_new_place_and_a_cancellation_gives_them_back() {
        let mut users = Users::default();
        users.place(&u("ann"), "t1".into(), Stage::Admitted(1));
        users.purchased(&u("ann"), 2, 7);
        assert_eq!(
            users.stage(&u("ann")),
            Some(Stage::Ended(End::Purchased(7)))
        );
        users.retire_ticket(&u("ann"));
        users.place(&u("ann"), "t2".into(), Stage::Waiting(3));
        assert_eq!(users.bought(&u("ann")), 2);
        assert!(
            users.check_owner(&u("ann"), "t1").is_err(),
            "old ticket retired"
        );
        users.refund(&u("ann"), 2);
        assert_eq!(users.bought(&u("ann")), 0);
    }
}
