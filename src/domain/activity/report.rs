//! The post-event report: counters, per-minute buckets, a wait-time histogram and
//! where people gave up, each updated in O(1) as events happen (never by rescanning),
//! and persisted at most once a second (plus once the sale is over).

use super::{Activity, Effects, Mutation};
use crate::domain::clock::{rfc3339, Millis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Sub-buckets per power of two of the wait-time histogram: waits are kept to
/// within 1/64 (1.6%) of their value.
const SUB: u64 = 64;
/// Upper bounds of the "gave up at position" buckets (the last is open-ended).
const POSITIONS: [u64; 6] = [10, 100, 1_000, 10_000, 100_000, u64::MAX];
/// The report is written at most this often while the sale runs.
const WRITE_EVERY_MS: u64 = 1_000;

/// Histogram bucket of a wait of `ms`: exact below `SUB`, then `SUB` per octave.
fn bucket(ms: u64) -> u32 {
    if ms < SUB {
        return ms as u32;
    }
    let octave = 63 - u64::from(ms.leading_zeros()) - SUB.trailing_zeros() as u64;
    let sub = (ms >> octave) - SUB;
    ((octave + 1) * SUB + sub) as u32
}

/// The middle of a bucket, in ms.
fn bucket_mid(b: u32) -> u64 {
    let b = u64::from(b);
    if b < SUB {
        return b;
    }
    let octave = b / SUB - 1;
    let sub = b % SUB;
    ((SUB + sub) << octave) + ((1u64 << octave) >> 1)
}

/// One minute of the sale.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteRecord {
    pub joins: u64,
    pub admitted: u64,
    pub orders: u64,
    /// Most places waiting at once during the minute.
    pub waiting: u64,
    pub abandoned: u64,
}

/// The persisted totals (`a/{id}/report`); minutes are kept under their own keys
/// so a write touches only the minutes that changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRecord {
    pub joins: u64,
    pub peak_waiting: u64,
    pub admitted: u64,
    pub orders: u64,
    pub paid: u64,
    pub cancelled: u64,
    pub expired_tokens: u64,
    pub abandoned: u64,
    pub abandoned_prequeue: u64,
    /// Places given up while waiting, by the `POSITIONS` bucket of their position.
    pub gave_up_at: Vec<u64>,
    pub opened_at: Option<Millis>,
    pub sold_out_at: Option<Millis>,
    /// `(bucket, count)` of waits from join (or opening) to admission.
    pub waits: Vec<(u32, u64)>,
    pub max_wait_ms: u64,
}

#[derive(Debug, Default)]
pub(super) struct Report {
    rec: ReportRecord,
    waits: BTreeMap<u32, u64>,
    minutes: BTreeMap<u64, MinuteRecord>,
    dirty: bool,
    dirty_minutes: Vec<u64>,
    last_write: Millis,
}

impl Report {
    fn minute(&mut self, now: Millis) -> &mut MinuteRecord {
        let m = now / 60_000;
        self.dirty = true;
        if self.dirty_minutes.last() != Some(&m) {
            self.dirty_minutes.push(m);
        }
        self.minutes.entry(m).or_default()
    }

    pub(super) fn opened(&mut self, now: Millis) {
        if self.rec.opened_at.is_none() {
            self.rec.opened_at = Some(now);
            self.dirty = true;
        }
    }

    /// Scheduled again before anyone joined: the opening is still to come.
    pub(super) fn unopened(&mut self) {
        if self.rec.opened_at.take().is_some() {
            self.dirty = true;
        }
    }

    pub(super) fn joined(&mut self, now: Millis, waiting: usize) {
        let waiting = waiting as u64;
        self.rec.joins += 1;
        self.rec.peak_waiting = self.rec.peak_waiting.max(waiting);
        let m = self.minute(now);
        m.joins += 1;
        m.waiting = m.waiting.max(waiting);
    }

    /// A place was admitted at `now`, having joined at `joined_at`.
    pub(super) fn admitted(&mut self, now: Millis, joined_at: Millis) {
        let since = joined_at.max(self.rec.opened_at.unwrap_or(joined_at));
        let wait = now.saturating_sub(since);
        self.rec.admitted += 1;
        self.rec.max_wait_ms = self.rec.max_wait_ms.max(wait);
        *self.waits.entry(bucket(wait)).or_default() += 1;
        self.minute(now).admitted += 1;
    }

    /// A place was given up (left or dropped) before admission; `position` is where
    /// it stood in the room, `None` in the pre-queue.
    pub(super) fn abandoned(&mut self, now: Millis, position: Option<u64>) {
        self.rec.abandoned += 1;
        match position {
            None => self.rec.abandoned_prequeue += 1,
            Some(p) => {
                let i = POSITIONS.iter().position(|&up| p <= up).unwrap_or(0);
                if self.rec.gave_up_at.len() < POSITIONS.len() {
                    self.rec.gave_up_at.resize(POSITIONS.len(), 0);
                }
                self.rec.gave_up_at[i] += 1;
            }
        }
        self.minute(now).abandoned += 1;
    }

    pub(super) fn ordered(&mut self, now: Millis) {
        self.rec.orders += 1;
        self.minute(now).orders += 1;
    }

    pub(super) fn paid(&mut self) {
        self.rec.paid += 1;
        self.dirty = true;
    }

    pub(super) fn cancelled(&mut self) {
        self.rec.cancelled += 1;
        self.dirty = true;
    }

    pub(super) fn expired(&mut self) {
        self.rec.expired_tokens += 1;
        self.dirty = true;
    }

    pub(super) fn sold_out(&mut self, now: Millis) {
        if self.rec.sold_out_at.is_none() {
            self.rec.sold_out_at = Some(now);
            self.dirty = true;
        }
    }

    /// Writes what changed, if a second passed since the last write or `now_final`.
    pub(super) fn flush(&mut self, now: Millis, now_final: bool, fx: &mut Effects) {
        if !self.dirty || (!now_final && now < self.last_write + WRITE_EVERY_MS) {
            return;
        }
        self.dirty = false;
        self.last_write = now;
        let mut rec = self.rec.clone();
        rec.waits = self.waits.iter().map(|(&b, &n)| (b, n)).collect();
        fx.mutations.push(Mutation::PutReport(rec));
        for m in std::mem::take(&mut self.dirty_minutes) {
            if let Some(b) = self.minutes.get(&m) {
                fx.mutations.push(Mutation::PutMinute {
                    minute: m,
                    bucket: b.clone(),
                });
            }
        }
    }

    pub(super) fn restore(rec: ReportRecord, minutes: Vec<(u64, MinuteRecord)>) -> Self {
        Self {
            waits: rec.waits.iter().copied().collect(),
            minutes: minutes.into_iter().collect(),
            rec,
            ..Self::default()
        }
    }

    fn percentile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.waits.values().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (&b, &n) in &self.waits {
            seen += n;
            if seen >= rank {
                let ms = bucket_mid(b).min(self.rec.max_wait_ms);
                return Some(secs(ms));
            }
        }
        None
    }

    pub(super) fn view(&self) -> ReportView {
        let r = &self.rec;
        ReportView {
            joins: r.joins,
            peak_waiting: r.peak_waiting,
            admitted: r.admitted,
            orders: r.orders,
            paid: r.paid,
            cancelled: r.cancelled,
            expired_tokens: r.expired_tokens,
            abandoned: r.abandoned,
            wait_secs: WaitSecs {
                p50: self.percentile(0.50),
                p90: self.percentile(0.90),
                p99: self.percentile(0.99),
                max: (r.admitted > 0).then(|| secs(r.max_wait_ms)),
            },
            sold_out_after_secs: match (r.opened_at, r.sold_out_at) {
                (Some(o), Some(s)) => Some(secs(s.saturating_sub(o))),
                _ => None,
            },
            per_minute: self
                .minutes
                .iter()
                .map(|(&m, b)| MinuteView {
                    minute: rfc3339(m * 60_000),
                    joins: b.joins,
                    admitted: b.admitted,
                    orders: b.orders,
                    waiting: b.waiting,
                    abandoned: b.abandoned,
                })
                .collect(),
            wait_histogram: self
                .waits
                .iter()
                .map(|(&b, &n)| (secs(bucket_mid(b)), n))
                .collect(),
            gave_up: GaveUp {
                prequeue: r.abandoned_prequeue,
                positions: POSITIONS
                    .iter()
                    .enumerate()
                    .map(|(i, &up)| PositionBucket {
                        up_to: (up != u64::MAX).then_some(up),
                        count: r.gave_up_at.get(i).copied().unwrap_or(0),
                    })
                    .collect(),
            },
            opened_at: r.opened_at.map(rfc3339),
            sold_out_at: r.sold_out_at.map(rfc3339),
        }
    }
}

/// Milliseconds as seconds, to a tenth.
fn secs(ms: u64) -> f64 {
    (ms as f64 / 100.0).round() / 10.0
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WaitSecs {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MinuteView {
    pub minute: String,
    pub joins: u64,
    pub admitted: u64,
    pub orders: u64,
    /// Extension: most places waiting at once during the minute.
    pub waiting: u64,
    /// Extension: places given up during the minute.
    pub abandoned: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PositionBucket {
    /// Positions up to this one (`null`: any further back).
    pub up_to: Option<u64>,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GaveUp {
    /// Given up in the pre-queue, before opening.
    pub prequeue: u64,
    /// Given up in the room, by where they stood.
    pub positions: Vec<PositionBucket>,
}

/// `GET /api/admin/activities/{id}/report`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReportView {
    pub joins: u64,
    pub peak_waiting: u64,
    pub admitted: u64,
    pub orders: u64,
    pub paid: u64,
    pub cancelled: u64,
    pub expired_tokens: u64,
    pub abandoned: u64,
    pub wait_secs: WaitSecs,
    pub sold_out_after_secs: Option<f64>,
    pub per_minute: Vec<MinuteView>,
    /// Extension: `[seconds, admissions]` per histogram bucket, for the chart.
    pub wait_histogram: Vec<(f64, u64)>,
    /// Extension: where people gave up.
    pub gave_up: GaveUp,
    /// Extension: when the activity opened and sold out (RFC 3339).
    pub opened_at: Option<String>,
    pub sold_out_at: Option<String>,
}

impl ReportView {
    /// `per_minute` as CSV, header first.
    pub fn per_minute_csv(&self) -> String {
        let mut out = String::from("minute,joins,admitted,orders,waiting,abandoned\n");
        for m in &self.per_minute {
            out.push_str(&format!(
                "{},{},{},{},{},{}\n",
                m.minute, m.joins, m.admitted, m.orders, m.waiting, m.abandoned
            ));
        }
        out
    }
}

impl Activity {
    /// The post-event report, as recorded so far.
    pub fn report(&self) -> ReportView {
        self.report.view()
    }

    /// Writes the report now if anything changed (a graceful stop).
    pub fn flush_report(&mut self, now: Millis) {
        self.report.flush(now, true, &mut self.fx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_keep_waits_within_a_sixty_fourth() {
        for ms in [
            0u64,
            1,
            63,
            64,
            65,
            127,
            128,
            1_000,
            59_999,
            3_600_000,
            1 << 40,
        ] {
            let mid = bucket_mid(bucket(ms));
            let err = mid.abs_diff(ms) as f64;
            assert!(err <= (ms as f64 / 64.0).max(0.5), "{ms} -> {mid}");
        }
        assert!(bucket(1_000) < bucket(1_100));
    }

    #[test]
    fn percentiles_come_from_the_recorded_waits() {
        let mut r = Report::default();
        r.opened(0);
        for i in 1..=100u64 {
            r.admitted(i * 1_000, 0);
        }
        let v = r.view();
        let near = |got: Option<f64>, want: f64| {
            let got = got.expect("a value");
            assert!((got - want).abs() <= want / 50.0, "{got} vs {want}");
        };
        near(v.wait_secs.p50, 50.0);
        near(v.wait_secs.p90, 90.0);
        near(v.wait_secs.p99, 99.0);
        assert_eq!(v.wait_secs.max, Some(100.0));
    }

    #[test]
    fn a_write_waits_a_second_unless_the_sale_is_over() {
        let (mut r, mut fx) = (Report::default(), Effects::default());
        r.joined(60_000, 1);
        r.flush(60_000, false, &mut fx);
        assert_eq!(fx.mutations.len(), 2, "totals and the minute");
        r.joined(60_500, 2);
        r.flush(60_500, false, &mut fx);
        assert_eq!(fx.mutations.len(), 2, "not yet");
        r.flush(60_500, true, &mut fx);
        assert_eq!(fx.mutations.len(), 4);
        let csv = r.view().per_minute_csv();
        assert_eq!(
            csv,
            "minute,joins,admitted,orders,waiting,abandoned\n1970-01-01T00:01:00Z,2,0,0,2,0\n"
        );
    }
}
