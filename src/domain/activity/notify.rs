//! Position updates that scale: the notifier's two schedules.
//!
//! Broadcasting every admission to every waiting session would cost O(n) per admission.
//! Instead each attached place is scheduled twice:
//! - by progress: the notifier counts places removed from the room (`removed`); a place
//!   last told position `p` cannot have moved by 1% (`ceil(p/100)` places) before
//!   `removed` grows by that much, so it is keyed at `removed + ceil(p/100)` in an
//!   ordered set. When the key comes due its exact position is computed (O(log n)) and
//!   sent if it moved by 1%; removals behind it only re-arm the key for the remainder.
//! - by time: a due time 2.5-4.5 s ahead (spread by place, so a crowd's refreshes
//!   do not come in bursts), so every session hears at least every 5 s.
//!
//! Per admission this wakes about `100 + 100 ln(n/100)` sessions (those near the head
//! need every step; far ones rarely), independent of n in practice and never a
//! broadcast. Sends happen once per tick, so a session gets at most one frame a tick.
//! Positions never rise: a place only moves forward and later joins queue behind it.
//!
//! The queue owns the places and calls the notifier with each place's `Schedule`.

use crate::domain::clock::Millis;
use std::collections::BTreeSet;

/// Every waiting session hears its position at least this often.
const REFRESH_MS: u64 = 4_500;
/// Refreshes are spread over this much earlier, by place, so a crowd that joined
/// within a second does not get its refreshes in one burst every 4.5 s.
const REFRESH_SPREAD_MS: u64 = 2_000;

/// How far a place last told `position` must move before it hears again.
pub(super) fn step(position: u64) -> u64 {
    position.div_ceil(100).max(1)
}

/// One place's part of the schedules: what it was told and its keys in them.
#[derive(Debug, Clone, Default)]
pub(super) struct Schedule {
    pub(super) last_pos: u64,
    trigger: Option<u64>,
    due: Option<Millis>,
}

#[derive(Debug, Default)]
pub(super) struct Notifier {
    /// Places removed from the room so far: the progress schedule's clock.
    removed: u64,
    triggers: BTreeSet<(u64, u64)>,
    due: BTreeSet<(Millis, u64)>,
}

impl Notifier {
    /// A place left the room: everyone behind it moved up one.
    pub(super) fn removed_one(&mut self) {
        self.removed += 1;
    }

    /// Arms both schedules for place `seq`, just told `position`.
    pub(super) fn schedule(&mut self, s: &mut Schedule, seq: u64, position: u64, now: Millis) {
        self.unschedule(s, seq);
        let trigger = self.removed + step(position);
        let due = now + REFRESH_MS - seq.wrapping_mul(7_919) % REFRESH_SPREAD_MS;
        s.last_pos = position;
        s.trigger = Some(trigger);
        s.due = Some(due);
        self.triggers.insert((trigger, seq));
        self.due.insert((due, seq));
    }

    pub(super) fn unschedule(&mut self, s: &mut Schedule, seq: u64) {
        if let Some(t) = s.trigger.take() {
            self.triggers.remove(&(t, seq));
        }
        if let Some(d) = s.due.take() {
            self.due.remove(&(d, seq));
        }
    }

    /// Removals happened behind place `seq` (it moved `moved` of its step): waits for
    /// the rest of the step.
    pub(super) fn rearm(&mut self, s: &mut Schedule, seq: u64, moved: u64) {
        let trigger = self.removed + (step(s.last_pos) - moved);
        if let Some(old) = s.trigger.replace(trigger) {
            self.triggers.remove(&(old, seq));
        }
        self.triggers.insert((trigger, seq));
    }

    /// Pops every key due at `now` into `fired` as `(seq, by_time)`; the caller clears
    /// the fired key from the place's schedule (`Schedule::fired`).
    pub(super) fn take_due(&mut self, now: Millis, fired: &mut Vec<(u64, bool)>) {
        while let Some(&(t, seq)) = self.triggers.first() {
            if t > self.removed {
                break;
            }
            self.triggers.pop_first();
            fired.push((seq, false));
        }
        while let Some(&(d, seq)) = self.due.first() {
            if d > now {
                break;
            }
            self.due.pop_first();
            fired.push((seq, true));
        }
    }
}

impl Schedule {
    /// The key `take_due` popped is no longer in the notifier.
    pub(super) fn fired(&mut self, by_time: bool) {
        if by_time {
            self.due = None;
        } else {
            self.trigger = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_hears_again_after_one_percent_of_its_position_left() {
        let (mut n, mut s) = (Notifier::default(), Schedule::default());
        n.schedule(&mut s, 0, 250, 0);
        let mut fired = Vec::new();
        n.removed_one();
        n.removed_one();
        n.take_due(1, &mut fired);
        assert!(fired.is_empty(), "2 of a step of 3");
        n.removed_one();
        n.take_due(1, &mut fired);
        assert_eq!(fired, vec![(0, false)]);
    }

    #[test]
    fn every_place_hears_within_the_refresh_time() {
        let (mut n, mut s) = (Notifier::default(), Schedule::default());
        n.schedule(&mut s, 7, 1_000, 0);
        let mut fired = Vec::new();
        n.take_due(REFRESH_MS, &mut fired);
        assert_eq!(fired, vec![(7, true)]);
    }
}
