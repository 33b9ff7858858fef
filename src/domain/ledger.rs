//! The stock ledger: per slot `available`, `held` and `sold`, with
//! `capacity == available + held + sold` kept true by every operation here and nowhere else.
//!
//! Holds are fungible across the slots of an activity: an admission reserves units of
//! the activity, and which slot they sit in is bookkeeping the ledger may rebalance. That
//! is what lets an admitted patient choose any slot with room at purchase time.

use super::ids::SlotId;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    pub capacity: u64,
    pub available: u64,
    pub held: u64,
    pub sold: u64,
}

impl Counts {
    fn unsold(&self) -> u64 {
        self.available + self.held
    }
    pub fn is_consistent(&self) -> bool {
        self.capacity == self.available + self.held + self.sold
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotLedger {
    pub id: SlotId,
    pub label: String,
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("no such slot")]
    UnknownSlot,
    #[error("the slot is full")]
    SlotFull,
    #[error("capacity would exceed the limit")]
    TooLarge,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    slots: Vec<SlotLedger>,
    total: Counts,
}

/// Capacity of one slot and of an activity are capped so no sum can overflow.
pub const MAX_TOTAL: u64 = 1_000_000_000;

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn slots(&self) -> &[SlotLedger] {
        &self.slots
    }
    pub fn total(&self) -> Counts {
        self.total
    }
    pub fn available(&self) -> u64 {
        self.total.available
    }
    pub fn held(&self) -> u64 {
        self.total.held
    }

    pub fn slot_index(&self, id: &SlotId) -> Option<usize> {
        self.slots.iter().position(|s| &s.id == id)
    }

    /// Adds a new slot, or raises the capacity of an existing one by `capacity`.
    pub fn add(&mut self, id: &SlotId, label: &str, capacity: u64) -> Result<(), LedgerError> {
        if self.total.capacity + capacity > MAX_TOTAL {
            return Err(LedgerError::TooLarge);
        }
        let i = match self.slot_index(id) {
            Some(i) => i,
            None => {
                self.slots.push(SlotLedger {
                    id: id.clone(),
                    label: label.to_owned(),
                    counts: Counts::default(),
                });
                self.slots.len() - 1
            }
        };
        let c = &mut self.slots[i].counts;
        c.capacity += capacity;
        c.available += capacity;
        self.total.capacity += capacity;
        self.total.available += capacity;
        Ok(())
    }

    /// Reserves up to `n` units; returns how many were granted.
    pub fn hold(&mut self, n: u64) -> u64 {
        let mut left = n.min(self.total.available);
        let granted = left;
        for s in self.slots.iter_mut() {
            if left == 0 {
                break;
            }
            let take = s.counts.available.min(left);
            s.counts.available -= take;
            s.counts.held += take;
            left -= take;
        }
        self.total.available -= granted;
        self.total.held += granted;
        granted
    }

    /// Returns `n` held units to `available`, preferring `prefer` first.
    pub fn release(&mut self, n: u64, prefer: Option<usize>) {
        let n = n.min(self.total.held);
        let mut left = n;
        let order = prefer
            .into_iter()
            .chain((0..self.slots.len()).rev().filter(|i| Some(*i) != prefer));
        for i in order {
            if left == 0 {
                break;
            }
            let c = &mut self.slots[i].counts;
            let take = c.held.min(left);
            c.held -= take;
            c.available += take;
            left -= take;
        }
        self.total.held -= n;
        self.total.available += n;
    }

    /// Would `sell` succeed? The slot needs `q` units not yet sold; other holders'
    /// reservations can always move to other slots because holds are fungible.
    pub fn can_sell(&self, slot: usize, q: u64) -> Result<(), LedgerError> {
        let s = self.slots.get(slot).ok_or(LedgerError::UnknownSlot)?;
        if s.counts.unsold() >= q {
            Ok(())
        } else {
            Err(LedgerError::SlotFull)
        }
    }

    /// Turns a hold of `held` units into a sale of `q <= held` units from `slot`;
    /// the rest of the hold goes back to `available`.
    pub fn sell(&mut self, slot: usize, held: u64, q: u64) -> Result<(), LedgerError> {
        debug_assert!(q <= held);
        self.can_sell(slot, q)?;
        self.release(held, Some(slot));
        // Other holders' units parked in this slot move to slots with room.
        while self.slots[slot].counts.available < q {
            let other = (0..self.slots.len())
                .find(|&i| i != slot && self.slots[i].counts.available > 0)
                .expect("fungible holds always fit: total unsold covers every hold");
            self.slots[slot].counts.held -= 1;
            self.slots[slot].counts.available += 1;
            self.slots[other].counts.available -= 1;
            self.slots[other].counts.held += 1;
        }
        let c = &mut self.slots[slot].counts;
        c.available -= q;
        c.sold += q;
        self.total.available -= q;
        self.total.sold += q;
        Ok(())
    }

    /// A cancelled order gives its units back to `available`.
    pub fn unsell(&mut self, slot: usize, q: u64) {
        let c = &mut self.slots[slot].counts;
        let q = q.min(c.sold);
        c.sold -= q;
        c.available += q;
        self.total.sold -= q;
        self.total.available += q;
    }

    /// Rebuild-time entry: marks `q` units of `slot` sold without a hold.
    pub fn restore_sold(&mut self, slot: usize, q: u64) {
        let c = &mut self.slots[slot].counts;
        let q = q.min(c.available);
        c.available -= q;
        c.sold += q;
        self.total.available -= q;
        self.total.sold += q;
    }

    pub fn is_consistent(&self) -> bool {
        let mut sum = Counts::default();
        for s in &self.slots {
            if !s.counts.is_consistent() {
                return false;
            }
            sum.capacity += s.counts.capacity;
            sum.available += s.counts.available;
            sum.held += s.counts.held;
            sum.sold += s.counts.sold;
        }
        sum == self.total && self.total.is_consistent()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sid(s: &str) -> SlotId {
        SlotId::parse(s).expect("valid")
    }

    fn two_slots() -> Ledger {
        let mut l = Ledger::new();
        l.add(&sid("a"), "A", 1).expect("add");
        l.add(&sid("b"), "B", 1).expect("add");
        l
    }

    #[test]
    fn holds_are_fungible_between_slots() {
        let mut l = two_slots();
        assert_eq!(l.hold(1), 1); // parked in a
        assert_eq!(l.hold(1), 1); // parked in b
                                  // the holder parked in a buys b: the other hold moves to a.
        l.sell(1, 1, 1).expect("b has an unsold unit");
        assert_eq!(l.slots()[0].counts.held, 1);
        assert_eq!(l.slots()[1].counts.sold, 1);
        assert!(l.sell(1, 1, 1).is_err());
        l.sell(0, 1, 1).expect("a still has one");
        assert!(l.is_consistent());
        assert_eq!(l.total().sold, 2);
    }

    #[test]
    fn hold_is_capped_by_available() {
        let mut l = two_slots();
        assert_eq!(l.hold(5), 2);
        assert_eq!(l.hold(1), 0);
        l.release(2, None);
        assert_eq!(l.available(), 2);
    }

    #[test]
    fn buying_fewer_returns_the_rest() {
        let mut l = Ledger::new();
        l.add(&sid("s"), "s", 5).expect("add");
        assert_eq!(l.hold(3), 3);
        l.sell(0, 3, 1).expect("sell");
        assert_eq!(
            l.total(),
            Counts {
                capacity: 5,
                available: 4,
                held: 0,
                sold: 1
            }
        );
        l.unsell(0, 1);
        assert_eq!(l.available(), 5);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(usize, u64),
        Hold(u64),
        Release(u64),
        Sell(usize, u64, u64),
        Unsell(usize, u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..4usize, 0..5u64).prop_map(|(s, n)| Op::Add(s, n)),
            (0..4u64).prop_map(Op::Hold),
            (0..4u64).prop_map(Op::Release),
            (0..4usize, 1..4u64, 1..4u64).prop_map(|(s, h, q)| Op::Sell(s, h, q)),
            (0..4usize, 0..3u64).prop_map(|(s, q)| Op::Unsell(s, q)),
        ]
    }

    proptest! {
        #[test]
        fn invariant_holds_after_any_sequence(ops in proptest::collection::vec(op(), 1..200)) {
            let mut l = Ledger::new();
            let ids = ["a", "b", "c", "d"].map(sid);
            for o in ops {
                match o {
                    Op::Add(s, n) => { l.add(&ids[s], "x", n).expect("small"); }
                    Op::Hold(n) => { l.hold(n); }
                    Op::Release(n) => l.release(n, None),
                    Op::Sell(s, h, q) => {
                        // Only a real hold may be sold from: take it first.
                        let granted = l.hold(h);
                        if s < l.slots().len() && q <= granted && l.can_sell(s, q).is_ok() {
                            l.sell(s, granted, q).expect("checked");
                        } else {
                            l.release(granted, None);
                        }
                    }
                    Op::Unsell(s, q) => if s < l.slots().len() { l.unsell(s, q) },
                }
                prop_assert!(l.is_consistent(), "{:?}", l);
            }
        }
    }
}
