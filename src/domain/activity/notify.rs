//! Position updates that scale.
//!
//! Broadcasting every admission to every waiting session would cost O(n) per admission.
//! Instead each attached place is scheduled twice:
//! - by progress: the activity counts places removed from the room (`removed`); a place
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

use super::{Activity, Push};
use crate::domain::clock::Millis;

/// Every waiting session hears its position at least this often.
const REFRESH_MS: u64 = 4_500;
/// Refreshes are spread over this much earlier, by place, so a crowd that joined
/// within a second does not get its refreshes in one burst every 4.5 s.
const REFRESH_SPREAD_MS: u64 = 2_000;

fn step(position: u64) -> u64 {
    position.div_ceil(100).max(1)
}

impl Activity {
    /// Arms both schedules for a place just told `position`.
    pub(super) fn schedule(&mut self, seq: u64, position: u64, now: Millis) {
        self.unschedule(seq);
        let trigger = self.removed + step(position);
        let due = now + REFRESH_MS - seq.wrapping_mul(7_919) % REFRESH_SPREAD_MS;
        if let Some(p) = self.room.get_mut(seq) {
            p.last_pos = position;
            p.trigger = Some(trigger);
            p.due = Some(due);
            self.triggers.insert((trigger, seq));
            self.due.insert((due, seq));
        }
    }

    pub(super) fn unschedule(&mut self, seq: u64) {
        if let Some(p) = self.room.get_mut(seq) {
            if let Some(t) = p.trigger.take() {
                self.triggers.remove(&(t, seq));
            }
            if let Some(d) = p.due.take() {
                self.due.remove(&(d, seq));
            }
        }
    }

    /// Sends the position updates that came due; called once per tick.
    pub(super) fn notify(&mut self, now: Millis) {
        let mut fired: Vec<(u64, bool)> = Vec::new();
        while let Some(&(t, seq)) = self.triggers.first() {
            if t > self.removed {
                break;
            }
            self.triggers.pop_first();
            if let Some(p) = self.room.get_mut(seq) {
                p.trigger = None;
            }
            fired.push((seq, false));
        }
        while let Some(&(d, seq)) = self.due.first() {
            if d > now {
                break;
            }
            self.due.pop_first();
            if let Some(p) = self.room.get_mut(seq) {
                p.due = None;
            }
            fired.push((seq, true));
        }
        if fired.is_empty() {
            return;
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
        let waiting_for_returns = self.ledger.available() == 0;
        for (seq, by_time) in fired {
            let Some(position) = self.room.position(seq) else {
                continue;
            };
            let Some(place) = self.room.get(seq) else {
                continue;
            };
            if !place.attached {
                continue;
            }
            let (last, user) = (place.last_pos, place.user.clone());
            let moved = last.saturating_sub(position);
            if by_time || moved >= step(last) {
                let eta_secs = self.eta_secs(position, now);
                self.push(
                    &user,
                    Push::Position {
                        position,
                        eta_secs,
                        waiting_for_returns,
                    },
                );
                self.schedule(seq, position, now);
            } else {
                // Removals happened behind this place: wait for the rest of the step.
                let trigger = self.removed + (step(last) - moved);
                if let Some(p) = self.room.get_mut(seq) {
                    if let Some(old) = p.trigger.replace(trigger) {
                        self.triggers.remove(&(old, seq));
                    }
                }
                self.triggers.insert((trigger, seq));
            }
        }
    }
}
