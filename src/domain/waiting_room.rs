//! The FIFO waiting room: places with increasing sequence numbers and exact positions
//! (live places ahead + 1) in O(log n).
//!
//! Places live in a deque sorted by sequence number; a Fenwick tree over deque indices
//! counts live places, so a position is one prefix sum and a leave from the middle is
//! one point update. Removed places leave holes that are compacted away (with an O(n)
//! rebuild) only once they are at least half of the deque, so every operation is
//! O(log n) amortized and memory stays proportional to the live places.

use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub struct WaitingRoom<T> {
    entries: VecDeque<(u64, Option<T>)>,
    /// 1-based Fenwick tree over `entries` indices; `tree.len() - 1` is its capacity.
    tree: Vec<u32>,
    /// Index of the first entry that may still be live.
    head: usize,
    live: usize,
    next_seq: u64,
}

impl<T> Default for WaitingRoom<T> {
    fn default() -> Self {
        Self {
            entries: VecDeque::new(),
            tree: vec![0; 1],
            head: 0,
            live: 0,
            next_seq: 0,
        }
    }
}

impl<T> WaitingRoom<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.live
    }
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends a place at the back and returns its sequence number.
    pub fn push(&mut self, value: T) -> u64 {
        let seq = self.next_seq;
        self.insert_at(seq, value);
        seq
    }

    /// Re-inserts a place with a known sequence number (recovery); numbers must rise.
    pub fn insert_at(&mut self, seq: u64, value: T) {
        debug_assert!(seq >= self.next_seq, "sequence numbers only grow");
        self.next_seq = seq + 1;
        self.entries.push_back((seq, Some(value)));
        let i = self.entries.len() - 1;
        if i + 1 >= self.tree.len() {
            self.rebuild((self.entries.len() * 2).max(64));
        } else {
            self.add(i, 1);
        }
        self.live += 1;
    }

    /// Raises the next sequence number (recovery of numbers handed out before a crash).
    pub fn reserve_seq(&mut self, next: u64) {
        self.next_seq = self.next_seq.max(next);
    }

    fn index(&self, seq: u64) -> Option<usize> {
        self.entries.binary_search_by_key(&seq, |e| e.0).ok()
    }

    pub fn get(&self, seq: u64) -> Option<&T> {
        self.index(seq).and_then(|i| self.entries[i].1.as_ref())
    }
    pub fn get_mut(&mut self, seq: u64) -> Option<&mut T> {
        let i = self.index(seq)?;
        self.entries[i].1.as_mut()
    }

    /// Live places ahead plus one, or `None` if the place is gone.
    pub fn position(&self, seq: u64) -> Option<u64> {
        let i = self.index(seq)?;
        self.entries[i].1.as_ref()?;
        Some(self.prefix(i))
    }

    pub fn remove(&mut self, seq: u64) -> Option<T> {
        let i = self.index(seq)?;
        let v = self.entries[i].1.take()?;
        self.add_neg(i);
        self.live -= 1;
        self.maybe_compact();
        Some(v)
    }

    pub fn front(&mut self) -> Option<(u64, &T)> {
        while self.head < self.entries.len() && self.entries[self.head].1.is_none() {
            self.head += 1;
        }
        let (seq, v) = self.entries.get(self.head)?;
        Some((*seq, v.as_ref()?))
    }

    pub fn pop_front(&mut self) -> Option<(u64, T)> {
        let (seq, _) = self.front()?;
        self.remove(seq).map(|v| (seq, v))
    }

    /// Live places in order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        self.entries
            .iter()
            .skip(self.head)
            .filter_map(|(s, v)| v.as_ref().map(|v| (*s, v)))
    }

    /// Removes every place, returning them in order.
    pub fn drain(&mut self) -> Vec<(u64, T)> {
        let out = self
            .entries
            .drain(..)
            .filter_map(|(s, v)| v.map(|v| (s, v)))
            .collect();
        self.head = 0;
        self.live = 0;
        self.tree = vec![0; 1];
        out
    }

    fn maybe_compact(&mut self) {
        if self.head >= 1024 && self.head * 2 >= self.entries.len() {
            self.entries.drain(..self.head);
            self.head = 0;
            self.rebuild((self.entries.len() * 2).max(64));
        }
    }

    /// Linear-time Fenwick construction over the live flags.
    fn rebuild(&mut self, capacity: usize) {
        let mut tree = vec![0u32; capacity + 1];
        for (i, e) in self.entries.iter().enumerate() {
            if e.1.is_some() {
                tree[i + 1] += 1;
            }
        }
        for i in 1..=capacity {
            let parent = i + (i & i.wrapping_neg());
            if parent <= capacity {
                tree[parent] += tree[i];
            }
        }
        self.tree = tree;
    }

    fn add(&mut self, i: usize, _one: u32) {
        let mut k = i + 1;
        while k < self.tree.len() {
            self.tree[k] += 1;
            k += k & k.wrapping_neg();
        }
    }

    fn add_neg(&mut self, i: usize) {
        let mut k = i + 1;
        while k < self.tree.len() {
            self.tree[k] -= 1;
            k += k & k.wrapping_neg();
        }
    }

    /// Live entries at indices `0..=i`.
    fn prefix(&self, i: usize) -> u64 {
        let mut k = i + 1;
        let mut sum = 0u64;
        while k > 0 {
            sum += u64::from(self.tree[k]);
            k -= k & k.wrapping_neg();
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn positions_are_live_places_ahead_plus_one() {
        let mut r = WaitingRoom::new();
        let seqs: Vec<u64> = (0..5).map(|i| r.push(i)).collect();
        assert_eq!(r.position(seqs[4]), Some(5));
        r.remove(seqs[1]);
        assert_eq!(r.position(seqs[4]), Some(4));
        assert_eq!(r.position(seqs[1]), None);
        assert_eq!(r.pop_front(), Some((seqs[0], 0)));
        assert_eq!(r.position(seqs[2]), Some(1));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn compaction_keeps_positions_exact() {
        let mut r = WaitingRoom::new();
        for i in 0..5000u32 {
            r.push(i);
        }
        for _ in 0..4000 {
            r.pop_front();
        }
        assert_eq!(r.front().map(|(s, _)| s), Some(4000));
        assert_eq!(r.position(4999), Some(1000));
        let s = r.push(9);
        assert_eq!(r.position(s), Some(1001));
    }

    #[test]
    fn recovery_keeps_gaps_and_numbers() {
        let mut r = WaitingRoom::new();
        r.insert_at(10, "a");
        r.insert_at(500, "b");
        r.reserve_seq(900);
        assert_eq!(r.position(500), Some(2));
        assert_eq!(r.push("c"), 900);
    }

    proptest! {
        #[test]
        fn matches_a_naive_model(ops in proptest::collection::vec((0u8..3, 0usize..64), 1..400)) {
            let mut r = WaitingRoom::new();
            let mut model: Vec<u64> = Vec::new();
            for (op, k) in ops {
                match op {
                    0 => model.push(r.push(())),
                    1 if !model.is_empty() => {
                        let seq = model.remove(k % model.len());
                        prop_assert!(r.remove(seq).is_some());
                    }
                    _ => {
                        let got = r.pop_front().map(|(s, _)| s);
                        let want = if model.is_empty() { None } else { Some(model.remove(0)) };
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(r.len(), model.len());
                for (i, s) in model.iter().enumerate() {
                    prop_assert_eq!(r.position(*s), Some(i as u64 + 1));
                }
            }
        }
    }
}
