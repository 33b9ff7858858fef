//! Values numbered from 1 in turn (an activity's orders), kept densely by number.
//!
//! A `BTreeMap` fed rising keys leaves its nodes about half full: under a sustained
//! sale the order book's node splits were the largest single source of fresh pages
//! faulted in on the request path (docs/performance.md, Session 14). Here a value
//! costs its own size, and storage grows in fixed chunks, so growing never copies
//! what is already there. The chunks are found by their first number in a small map
//! (245 of them for a million orders), so a number far beyond the rest, which a
//! damaged store might hold, costs one chunk and not the numbers before it.

use std::collections::BTreeMap;

/// Values per chunk, allocated once when the first of them arrives (32 KiB for the
/// order book's `Arc<Order>`s).
const CHUNK: usize = 4096;

#[derive(Debug)]
pub(super) struct Numbered<T> {
    /// Chunk `c`, slot `i` holds number `c * CHUNK + i + 1`; `None` is a number never
    /// filled (recovery may find gaps, and numbers out of order).
    chunks: BTreeMap<u64, Vec<Option<T>>>,
}

impl<T> Default for Numbered<T> {
    fn default() -> Self {
        Self {
            chunks: BTreeMap::new(),
        }
    }
}

fn slot_of(n: u64) -> Option<(u64, usize)> {
    let i = n.checked_sub(1)?;
    // The remainder is below CHUNK, so it fits a usize.
    Some((i / CHUNK as u64, (i % CHUNK as u64) as usize))
}

impl<T> Numbered<T> {
    pub(super) fn get(&self, n: u64) -> Option<&T> {
        let (c, i) = slot_of(n)?;
        self.chunks.get(&c)?.get(i)?.as_ref()
    }

    pub(super) fn get_mut(&mut self, n: u64) -> Option<&mut T> {
        let (c, i) = slot_of(n)?;
        self.chunks.get_mut(&c)?.get_mut(i)?.as_mut()
    }

    /// Puts `value` under `n` (1 or more), replacing what was there.
    ///
    /// # Panics
    /// On `n == 0`, which no order carries (they are numbered from 1).
    pub(super) fn insert(&mut self, n: u64, value: T) -> &mut T {
        let (c, i) = slot_of(n).expect("numbers start at 1");
        let chunk = self
            .chunks
            .entry(c)
            .or_insert_with(|| Vec::with_capacity(CHUNK));
        if chunk.len() <= i {
            chunk.resize_with(i + 1, || None);
        }
        chunk[i].insert(value)
    }

    /// The values in number order.
    pub(super) fn values(&self) -> impl Iterator<Item = &T> {
        self.chunks.values().flatten().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_back_by_number_in_order_across_chunks_and_gaps() {
        let mut m = Numbered::default();
        let last = (2 * CHUNK + 3) as u64;
        for n in [3, 1, last, CHUNK as u64, CHUNK as u64 + 1] {
            m.insert(n, n * 10);
        }
        assert_eq!(
            m.values().copied().collect::<Vec<_>>(),
            [
                10,
                30,
                CHUNK as u64 * 10,
                (CHUNK as u64 + 1) * 10,
                last * 10
            ]
        );
        assert_eq!((m.get(2), m.get(last + 1), m.get(0)), (None, None, None));
        m.insert(u64::MAX, 1);
        assert_eq!((m.get(u64::MAX), m.chunks.len()), (Some(&1), 4));
        *m.get_mut(3).expect("filled") += 1;
        m.insert(3, 7);
        assert_eq!((m.get(3), m.values().count()), (Some(&7), 6));
    }

    #[test]
    fn growing_keeps_every_chunk_where_it_was() {
        let mut m = Numbered::default();
        m.insert(1, 1u64);
        let first = m.get(1).map(std::ptr::from_ref);
        for n in 2..=(3 * CHUNK as u64) {
            m.insert(n, n);
        }
        assert_eq!(m.get(1).map(std::ptr::from_ref), first);
        assert_eq!(m.values().count(), 3 * CHUNK);
    }
}
