//! The admission gate: whether the activity has opened, is paused or closed, how
//! fast it may admit (the pacer) and how fast it does (the meter, for ETAs), the
//! admission and expiry totals, and the seed of the opening shuffle.

use crate::domain::clock::Millis;
use crate::domain::pacer::{Pacer, RateMeter};

#[derive(Debug, Default)]
pub(super) struct Gate {
    opened: bool,
    paused: bool,
    /// Closed by an operator (`closes_at` passing closes it too, see `is_closed`).
    closed: bool,
    pacer: Pacer,
    meter: RateMeter,
    admitted_total: u64,
    expired_total: u64,
    shuffle_seed: Option<String>,
}

/// The gate's persisted part (the pacer and meter start afresh after a restart).
pub(super) struct GateRecord {
    pub opened: bool,
    pub paused: bool,
    pub closed: bool,
    pub admitted_total: u64,
    pub expired_total: u64,
    pub shuffle_seed: Option<String>,
}

impl Gate {
    pub(super) fn new(opened: bool) -> Self {
        Self {
            opened,
            ..Self::default()
        }
    }

    pub(super) fn is_opened(&self) -> bool {
        self.opened
    }
    pub(super) fn is_paused(&self) -> bool {
        self.paused
    }
    /// Closed by an operator or by the close time having passed.
    pub(super) fn is_closed(&self, now: Millis, closes_at: Option<Millis>) -> bool {
        self.closed || closes_at.is_some_and(|c| c <= now)
    }
    /// Closed by an operator (or by a tick after the close time).
    pub(super) fn was_closed(&self) -> bool {
        self.closed
    }
    pub(super) fn admitted_total(&self) -> u64 {
        self.admitted_total
    }
    pub(super) fn expired_total(&self) -> u64 {
        self.expired_total
    }
    pub(super) fn shuffle_seed(&self) -> Option<&String> {
        self.shuffle_seed.as_ref()
    }

    /// Opens, remembering the seed the pre-queue was shuffled with.
    pub(super) fn open(&mut self, shuffle_seed: String) {
        self.opened = true;
        self.shuffle_seed = Some(shuffle_seed);
    }

    /// Back to scheduled: only for an activity that opened at creation and that
    /// nobody joined (see `Activity::schedule`).
    pub(super) fn unopen(&mut self) {
        self.opened = false;
        self.shuffle_seed = None;
    }

    pub(super) fn close(&mut self) {
        self.closed = true;
    }

    /// Pauses; false if it already was.
    pub(super) fn pause(&mut self) -> bool {
        !std::mem::replace(&mut self.paused, true)
    }

    /// Resumes; false if it was not paused.
    pub(super) fn resume(&mut self) -> bool {
        std::mem::replace(&mut self.paused, false)
    }

    /// Admission may proceed at all (the pace aside).
    pub(super) fn admits(&self, now: Millis, closes_at: Option<Millis>) -> bool {
        !self.paused && self.opened && !self.is_closed(now, closes_at)
    }

    /// Tops the pacer up for `now`, before a round of `try_admit`.
    pub(super) fn refill(&mut self, now: Millis, rate_per_sec: u32) {
        self.pacer.refill(now, rate_per_sec);
    }

    /// Takes one admission from the pacer, if the pace allows it.
    pub(super) fn try_admit(&mut self, now: Millis, rate_per_sec: u32) -> bool {
        self.pacer.try_take(now, rate_per_sec)
    }

    /// Counts a round of admissions (for the total and the measured rate).
    pub(super) fn admitted(&mut self, now: Millis, n: u32) {
        self.admitted_total += u64::from(n);
        self.meter.record(now, n);
    }

    pub(super) fn expired(&mut self) {
        self.expired_total += 1;
    }

    /// Seconds until `position` is admitted at the measured rate.
    pub(super) fn eta_secs(&mut self, position: u64, now: Millis, rate_per_sec: u32) -> u64 {
        let rate = self.meter.rate(now, rate_per_sec);
        (position as f64 / rate).ceil() as u64
    }

    pub(super) fn record(&self) -> GateRecord {
        GateRecord {
            opened: self.opened,
            paused: self.paused,
            closed: self.closed,
            admitted_total: self.admitted_total,
            expired_total: self.expired_total,
            shuffle_seed: self.shuffle_seed.clone(),
        }
    }

    /// Recovery: the persisted part back, and no admission for the next second (the
    /// previous process's last second of admissions is not known).
    pub(super) fn restore(rec: GateRecord, now: Millis) -> Self {
        let mut gate = Self {
            opened: rec.opened,
            paused: rec.paused,
            closed: rec.closed,
            admitted_total: rec.admitted_total,
            expired_total: rec.expired_total,
            shuffle_seed: rec.shuffle_seed,
            ..Self::default()
        };
        gate.pacer.hold_off(now);
        gate
    }

    /// Recovery: the total is at least `n` (admissions do not rewrite the record).
    pub(super) fn raise_admitted_total(&mut self, n: u64) {
        self.admitted_total = self.admitted_total.max(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_and_resume_report_whether_they_changed_anything() {
        let mut gate = Gate::new(true);
        assert!(gate.pause());
        assert!(!gate.pause());
        assert!(!gate.admits(0, None));
        assert!(gate.resume());
        assert!(!gate.resume());
        assert!(gate.admits(0, None));
    }

    #[test]
    fn the_close_time_closes_without_an_operator() {
        let gate = Gate::new(true);
        assert!(!gate.is_closed(99, Some(100)));
        assert!(gate.is_closed(100, Some(100)));
        assert!(!gate.was_closed());
    }

    #[test]
    fn a_restored_gate_admits_nobody_for_a_second() {
        let rec = Gate::new(true).record();
        let mut gate = Gate::restore(rec, 5_000);
        gate.refill(5_000, 100);
        assert!(!gate.try_admit(5_999, 100));
        assert!(gate.try_admit(6_000, 100));
    }
}
