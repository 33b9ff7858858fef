//! Admission pacing: a token bucket for `rate_per_sec`, and a smoothed measure of the
//! admission rate that ETAs are computed from.

use super::clock::Millis;
use std::collections::VecDeque;

/// Admission pacing in two parts. A token bucket holding a tenth of a second of
/// admissions spreads them evenly over ticks; a log of the last second's admissions
/// makes the contract exact: in any window of one second, at most `rate_per_sec`
/// users are admitted (the bucket alone would let its initial burst exceed that).
#[derive(Debug, Clone, Default)]
pub struct Pacer {
    allowance: f64,
    last_ms: Millis,
    /// Admission times within the last second, oldest first (at most `rate` entries).
    recent: VecDeque<Millis>,
    /// No admission before this (after a restart or takeover, see `hold_off`).
    quiet_until: Millis,
}

impl Pacer {
    pub fn refill(&mut self, now: Millis, rate_per_sec: u32) {
        let cap = (f64::from(rate_per_sec) / 10.0).max(1.0);
        if self.last_ms == 0 {
            // A fresh bucket starts full: the first admissions need not wait a tick.
            self.allowance = cap;
        }
        let dt = now.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.last_ms = now;
        self.allowance = (self.allowance + dt * f64::from(rate_per_sec)).min(cap);
    }

    /// The admission log of the last second is not persisted: after a restart or a
    /// cluster takeover, admissions wait out one second so that the previous process's
    /// last second and this one's first never add up to more than `rate_per_sec`.
    pub fn hold_off(&mut self, now: Millis) {
        self.quiet_until = now + 1000;
    }

    /// Takes one admission at `now` if both the bucket and the one-second window allow.
    pub fn try_take(&mut self, now: Millis, rate_per_sec: u32) -> bool {
        if now < self.quiet_until {
            return false;
        }
        while self.recent.front().is_some_and(|&t| t + 1000 <= now) {
            self.recent.pop_front();
        }
        if self.allowance >= 1.0 && self.recent.len() < rate_per_sec as usize {
            self.allowance -= 1.0;
            self.recent.push_back(now);
            true
        } else {
            false
        }
    }
}

/// Exponentially weighted admissions per second over 1-second windows. ETAs divide by
/// this, so they follow what really happens (slow buyers, returns) without jumping.
#[derive(Debug, Clone, Default)]
pub struct RateMeter {
    window_start: Millis,
    count: u32,
    ewma: f64,
    windows: u32,
}

const ALPHA: f64 = 0.3;

impl RateMeter {
    pub fn record(&mut self, now: Millis, n: u32) {
        self.roll(now);
        self.count += n;
    }

    fn roll(&mut self, now: Millis) {
        if self.window_start == 0 {
            self.window_start = now;
        }
        while now >= self.window_start + 1000 {
            let sample = f64::from(self.count);
            self.ewma = if self.windows == 0 {
                sample
            } else {
                ALPHA * sample + (1.0 - ALPHA) * self.ewma
            };
            self.windows = self.windows.saturating_add(1);
            self.count = 0;
            self.window_start += 1000;
            // After a long idle gap, skip empty windows in one step.
            if now >= self.window_start + 60_000 {
                self.window_start = now - now % 1000;
                self.ewma = 0.0;
            }
        }
    }

    /// Admissions per second to plan with: the configured rate until a few windows have
    /// been measured, then the smoothed measure, never above the configured rate.
    pub fn rate(&mut self, now: Millis, configured: u32) -> f64 {
        self.roll(now);
        let configured = f64::from(configured.max(1));
        if self.windows < 3 {
            configured
        } else {
            self.ewma.clamp(0.05, configured)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_rate_per_second_and_caps_bursts() {
        let mut p = Pacer::default();
        p.refill(1, 10);
        p.refill(10_000, 10);
        assert_eq!((0..100).filter(|_| p.try_take(10_000, 10)).count(), 1);
        let mut taken = 0;
        for t in 1..=20 {
            let now = 10_000 + t * 50;
            p.refill(now, 10);
            taken += (0..100).filter(|_| p.try_take(now, 10)).count();
        }
        assert_eq!(taken, 10);
    }

    #[test]
    fn no_one_second_window_ever_exceeds_the_rate() {
        let rate = 200;
        let mut p = Pacer::default();
        let mut times = Vec::new();
        for tick in 1..=200u64 {
            let now = tick * 50;
            p.refill(now, rate);
            while p.try_take(now, rate) {
                times.push(now);
            }
        }
        for (i, &t) in times.iter().enumerate() {
            let in_window = times[i..].iter().take_while(|&&u| u < t + 1000).count();
            assert!(
                in_window <= rate as usize,
                "{in_window} admissions in the second from {t}"
            );
        }
        assert!(
            times.len() >= 1800,
            "the rate is still reached on average: {}",
            times.len()
        );
    }

    #[test]
    fn meter_starts_at_the_configured_rate_then_follows_reality() {
        let mut m = RateMeter::default();
        assert_eq!(m.rate(1, 50), 50.0);
        for s in 0..10 {
            m.record(1 + s * 1000, 5);
        }
        let r = m.rate(10_001, 50);
        assert!((4.0..=6.0).contains(&r), "{r}");
    }
}
