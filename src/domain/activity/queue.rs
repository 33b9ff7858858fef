//! The queue: places in the waiting room (FIFO, exact positions) and in the pre-queue
//! (before opening), whether a session is attached to each, the reconnect grace of
//! detached ones, and the position notifier's schedules.

use super::fairness::Receipt;
use super::notify::{step, Notifier, Schedule};
use super::{Effects, Mutation, PlaceRecord, ShuffleAudit};
use crate::domain::clock::Millis;
use crate::domain::ids::UserId;
use crate::domain::waiting_room::WaitingRoom;
use std::collections::{BTreeMap, BTreeSet};

/// Where a place is: the waiting room (by sequence number) or the pre-queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Spot {
    Room(u64),
    Pre(u64),
}

/// A place in the waiting room or pre-queue, with its connection and notification state.
#[derive(Debug, Clone)]
struct Place {
    user: UserId,
    ticket: String,
    /// The public receipt (derived from the ticket, so not persisted).
    receipt: Receipt,
    joined_at: Millis,
    /// A WebSocket session is attached; detached places expire after the grace period.
    attached: bool,
    deadline: Option<Millis>,
    schedule: Schedule,
}

impl Place {
    fn record(&self) -> PlaceRecord {
        PlaceRecord {
            user: self.user.clone(),
            ticket: self.ticket.clone(),
            joined_at: self.joined_at,
        }
    }

    /// A place found in the store: detached, its grace running until `deadline`.
    fn restored(p: PlaceRecord, receipt: Receipt, deadline: Millis) -> Self {
        Place {
            user: p.user,
            ticket: p.ticket,
            receipt,
            joined_at: p.joined_at,
            attached: false,
            deadline: Some(deadline),
            schedule: Schedule::default(),
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Queue {
    room: WaitingRoom<Place>,
    pre: BTreeMap<u64, Place>,
    next_pre: u64,
    /// Detached places by the end of their reconnect grace.
    grace: BTreeSet<(Millis, UserId)>,
    notifier: Notifier,
}

impl Queue {
    /// Places waiting in the room and the pre-queue.
    pub(super) fn len(&self) -> usize {
        self.room.len() + self.pre.len()
    }

    pub(super) fn room_is_empty(&self) -> bool {
        self.room.is_empty()
    }

    /// Live places ahead plus one, or `None` if the place is gone.
    pub(super) fn position(&self, seq: u64) -> Option<u64> {
        self.room.position(seq)
    }

    pub(super) fn next_seq(&self) -> u64 {
        self.room.next_seq()
    }

    pub(super) fn next_pre(&self) -> u64 {
        self.next_pre
    }

    /// A new place at the back of the room (or of the pre-queue before opening),
    /// persisted; `attach` and the grace are set by `attach` afterwards.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn join(
        &mut self,
        user: &UserId,
        ticket: String,
        receipt: Receipt,
        attached: bool,
        opened: bool,
        now: Millis,
        fx: &mut Effects,
    ) -> Spot {
        let place = Place {
            user: user.clone(),
            ticket,
            receipt,
            joined_at: now,
            attached,
            deadline: None,
            schedule: Schedule::default(),
        };
        let record = place.record();
        if opened {
            let seq = self.room.push(place);
            fx.mutations.push(Mutation::PutPlace { seq, place: record });
            Spot::Room(seq)
        } else {
            let n = self.next_pre;
            self.next_pre += 1;
            self.pre.insert(n, place);
            fx.mutations.push(Mutation::PutPre { n, place: record });
            Spot::Pre(n)
        }
    }

    /// The public receipt of the place at `spot`.
    pub(super) fn receipt(&self, spot: Spot) -> Option<Receipt> {
        match spot {
            Spot::Room(seq) => self.room.get(seq),
            Spot::Pre(n) => self.pre.get(&n),
        }
        .map(|p| p.receipt)
    }

    fn place_mut(&mut self, spot: Spot) -> Option<&mut Place> {
        match spot {
            Spot::Room(seq) => self.room.get_mut(seq),
            Spot::Pre(n) => self.pre.get_mut(&n),
        }
    }

    /// Marks the place attached (it stays so) or, if no session is attached, restarts
    /// its reconnect grace to end at `deadline`.
    pub(super) fn attach(&mut self, spot: Spot, attach: bool, deadline: Millis) {
        let Self {
            room, pre, grace, ..
        } = self;
        let place = match spot {
            Spot::Room(seq) => room.get_mut(seq),
            Spot::Pre(n) => pre.get_mut(&n),
        };
        let Some(place) = place else { return };
        if let Some(old) = place.deadline.take() {
            grace.remove(&(old, place.user.clone()));
        }
        place.attached = attach || place.attached;
        if !place.attached {
            place.deadline = Some(deadline);
            grace.insert((deadline, place.user.clone()));
        }
    }

    /// The session went away: no more position updates, and the grace starts.
    pub(super) fn detach(&mut self, spot: Spot, deadline: Millis) {
        if let Spot::Room(seq) = spot {
            self.unschedule(seq);
        }
        if let Some(p) = self.place_mut(spot) {
            p.attached = false;
        }
        self.attach(spot, false, deadline);
    }

    /// Removes a place, with everything that indexes it, and persists the removal.
    /// Returns its user and ticket.
    pub(super) fn take(&mut self, spot: Spot, fx: &mut Effects) -> Option<(UserId, String)> {
        let place = match spot {
            Spot::Room(seq) => {
                self.unschedule(seq);
                let place = self.room.remove(seq)?;
                self.notifier.removed_one();
                fx.mutations.push(Mutation::DelPlace { seq });
                place
            }
            Spot::Pre(n) => {
                let place = self.pre.remove(&n)?;
                fx.mutations.push(Mutation::DelPre { n });
                place
            }
        };
        if let Some(d) = place.deadline {
            self.grace.remove(&(d, place.user.clone()));
        }
        Some((place.user, place.ticket))
    }

    /// Removes the place at the head of the room: `(seq, user, ticket, joined_at)`.
    pub(super) fn pop_front(&mut self, fx: &mut Effects) -> Option<(u64, UserId, String, Millis)> {
        let (seq, p) = self.room.front()?;
        let joined_at = p.joined_at;
        let (user, ticket) = self.take(Spot::Room(seq), fx)?;
        Some((seq, user, ticket, joined_at))
    }

    /// Removes up to `n` places, the room's first then the pre-queue's: their users
    /// and where they were.
    pub(super) fn take_front(&mut self, n: usize, fx: &mut Effects) -> Vec<(UserId, Spot)> {
        let spots: Vec<Spot> = self
            .room
            .iter()
            .map(|(s, _)| Spot::Room(s))
            .chain(self.pre.keys().map(|&n| Spot::Pre(n)))
            .take(n)
            .collect();
        spots
            .into_iter()
            .filter_map(|spot| self.take(spot, fx).map(|(user, _)| (user, spot)))
            .collect()
    }

    /// The next user whose reconnect grace ended by `now`; the caller drops their
    /// place with `drop_absent`.
    pub(super) fn next_absent(&mut self, now: Millis) -> Option<UserId> {
        let (at, _) = self.grace.first()?;
        if *at > now {
            return None;
        }
        self.grace.pop_first().map(|(_, user)| user)
    }

    /// Removes a place whose grace entry `next_absent` already took.
    pub(super) fn drop_absent(&mut self, spot: Spot, fx: &mut Effects) {
        if let Some(p) = self.place_mut(spot) {
            p.deadline = None;
        }
        self.take(spot, fx);
    }

    /// Users with a session attached, waiting or pre-queued.
    pub(super) fn attached_users(&self) -> impl Iterator<Item = &UserId> {
        self.room
            .iter()
            .map(|(_, p)| p)
            .chain(self.pre.values())
            .filter(|p| p.attached)
            .map(|p| &p.user)
    }

    /// Opening: the pre-queue is put in order of `HMAC-SHA256(seed, receipt)`
    /// ascending (see `fairness`), audited, and placed ahead of every later join.
    /// Returns `(user, seq, attached, receipt, joined_at)` for each place moved, in its
    /// new order.
    pub(super) fn open(
        &mut self,
        seed: &[u8; 32],
        seed_hex: String,
        now: Millis,
        deadline: Millis,
        fx: &mut Effects,
    ) -> Vec<(UserId, u64, bool, Receipt, Millis)> {
        let mut entries: Vec<([u8; 32], u64, Place)> = std::mem::take(&mut self.pre)
            .into_iter()
            .map(|(n, p)| (p.receipt.rank(seed), n, p))
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        let order = entries.iter().map(|(_, _, p)| p.user.to_string()).collect();
        fx.mutations.push(Mutation::PutShuffle(ShuffleAudit {
            at: now,
            seed_hex,
            algorithm: "sort by HMAC-SHA256(key = seed, message = receipt), ascending".into(),
            order,
        }));
        let mut moved = Vec::with_capacity(entries.len());
        for (_, n, mut place) in entries {
            fx.mutations.push(Mutation::DelPre { n });
            if let Some(d) = place.deadline {
                self.grace.remove(&(d, place.user.clone()));
            }
            let user = place.user.clone();
            let attached = place.attached;
            let receipt = place.receipt;
            let joined_at = place.joined_at;
            let record = place.record();
            place.deadline = None;
            let seq = self.room.push(place);
            fx.mutations.push(Mutation::PutPlace { seq, place: record });
            self.attach(Spot::Room(seq), attached, deadline);
            moved.push((user, seq, attached, receipt, joined_at));
        }
        moved
    }

    /// Arms the position notifier for a place just told `position`.
    pub(super) fn schedule(&mut self, seq: u64, position: u64, now: Millis) {
        if let Some(p) = self.room.get_mut(seq) {
            self.notifier.schedule(&mut p.schedule, seq, position, now);
        }
    }

    fn unschedule(&mut self, seq: u64) {
        if let Some(p) = self.room.get_mut(seq) {
            self.notifier.unschedule(&mut p.schedule, seq);
        }
    }

    /// Tells each attached place whose schedule came due where it is now, through
    /// `tell(user, position)`, if it moved by 1% or its refresh is due; called once a
    /// tick. See `notify` for the schedules.
    pub(super) fn notify(&mut self, now: Millis, mut tell: impl FnMut(&UserId, u64)) {
        let mut fired: Vec<(u64, bool)> = Vec::new();
        self.notifier.take_due(now, &mut fired);
        if fired.is_empty() {
            return;
        }
        for &(seq, by_time) in &fired {
            if let Some(p) = self.room.get_mut(seq) {
                p.schedule.fired(by_time);
            }
        }
        // A place due both ways gets one frame.
        fired.sort_unstable();
        fired.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                earlier.1 |= later.1;
            }
            same
        });
        for (seq, by_time) in fired {
            let Some(position) = self.room.position(seq) else {
                continue;
            };
            let Some(place) = self.room.get_mut(seq) else {
                continue;
            };
            if !place.attached {
                continue;
            }
            let last = place.schedule.last_pos;
            let moved = last.saturating_sub(position);
            if by_time || moved >= step(last) {
                tell(&place.user, position);
                self.notifier
                    .schedule(&mut place.schedule, seq, position, now);
            } else {
                self.notifier.rearm(&mut place.schedule, seq, moved);
            }
        }
    }

    /// Recovery: a waiting-room place found in the store (in sequence order).
    pub(super) fn restore_place(
        &mut self,
        seq: u64,
        p: PlaceRecord,
        receipt: Receipt,
        deadline: Millis,
    ) {
        self.grace.insert((deadline, p.user.clone()));
        self.room
            .insert_at(seq, Place::restored(p, receipt, deadline));
    }

    /// Recovery: a pre-queue place found in the store.
    pub(super) fn restore_pre(
        &mut self,
        n: u64,
        p: PlaceRecord,
        receipt: Receipt,
        deadline: Millis,
    ) {
        self.grace.insert((deadline, p.user.clone()));
        self.next_pre = self.next_pre.max(n + 1);
        self.pre.insert(n, Place::restored(p, receipt, deadline));
    }

    /// Recovery: the record's counters (sequence numbers handed out before a crash).
    pub(super) fn reserve(&mut self, next_seq: u64, next_pre: u64) {
        self.room.reserve_seq(next_seq);
        self.next_pre = self.next_pre.max(next_pre);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(i: usize) -> UserId {
        UserId::parse(&format!("user-{i}")).expect("valid")
    }

    fn prequeue_of(n: usize, fx: &mut Effects) -> Queue {
        let mut q = Queue::default();
        for i in 0..n {
            let r = Receipt::of(&crate::domain::token::TokenKey::new(b"k"), &format!("t{i}"));
            q.join(&u(i), format!("t{i}"), r, false, false, 0, fx);
        }
        q
    }

    #[test]
    fn the_opening_orders_the_prequeue_by_hmac_of_receipts() {
        let mut fx = Effects::default();
        let mut q = prequeue_of(8, &mut fx);
        let seed = [3u8; 32];
        let moved = q.open(&seed, String::new(), 0, 1, &mut fx);
        let got: Vec<[u8; 32]> = moved.iter().map(|(_, _, _, r, _)| r.rank(&seed)).collect();
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(got, sorted);
        assert_eq!(moved.len(), 8);
    }

    #[test]
    fn the_shuffle_audit_lists_users_in_their_new_room_order() {
        let mut fx = Effects::default();
        let mut q = prequeue_of(5, &mut fx);
        let moved = q.open(&[7; 32], "07".into(), 10, 20, &mut fx);
        let audit = fx
            .mutations
            .iter()
            .find_map(|m| match m {
                Mutation::PutShuffle(s) => Some(s.order.clone()),
                _ => None,
            })
            .expect("audited");
        let order: Vec<String> = moved
            .iter()
            .map(|(user, _, _, _, _)| user.to_string())
            .collect();
        assert_eq!(audit, order);
        for (i, (_, seq, _, _, _)) in moved.iter().enumerate() {
            assert_eq!(q.position(*seq), Some(i as u64 + 1));
        }
        assert_eq!((q.len(), q.next_pre()), (5, 5));
    }

    #[test]
    fn a_polled_place_is_dropped_only_after_its_latest_grace() {
        let mut fx = Effects::default();
        let mut q = Queue::default();
        let r = Receipt::of(&crate::domain::token::TokenKey::new(b"k"), "t");
        let spot = q.join(&u(1), "t".into(), r, false, true, 0, &mut fx);
        q.attach(spot, false, 100);
        q.attach(spot, false, 200);
        assert_eq!(q.next_absent(150), None);
        assert_eq!(q.next_absent(200), Some(u(1)));
        q.drop_absent(spot, &mut fx);
        assert_eq!(q.len(), 0);
        assert_eq!(fx.mutations.last(), Some(&Mutation::DelPlace { seq: 0 }));
    }
}
