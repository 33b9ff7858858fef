//! Figures computed from the users' records: join rate, admission latency,
//! position cadence, FIFO order, outcomes and anomalies.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::admin::ActivityView;
use crate::stats::Summary;
use crate::user::record::{Outcome, UserRecord};

/// The FIFO check: admitted users must be exactly the lowest-`seq` users and
/// admission order (by `issued_at_ms`, ties by `seq`) must follow `seq`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FifoCheck {
    pub users_with_seq: usize,
    /// Joined users whose `queued` frame had no `seq` extension.
    pub missing_seq: usize,
    pub duplicate_seqs: usize,
    pub admitted: usize,
    /// Admitted users whose `seq` is not among the `admitted` lowest.
    pub admitted_outside_lowest: usize,
    /// Adjacent pairs in admission order whose `seq` goes down.
    pub order_inversions: usize,
    /// Admitted users whose `admitted` frame had no `issued_at_ms`.
    pub missing_issued_at: usize,
}

impl FifoCheck {
    pub fn holds(&self) -> bool {
        self.missing_seq == 0
            && self.duplicate_seqs == 0
            && self.admitted_outside_lowest == 0
            && self.order_inversions == 0
            && self.missing_issued_at == 0
    }

    pub fn of(records: &[UserRecord]) -> Self {
        let mut check = Self::default();
        let mut seqs: Vec<u64> = Vec::new();
        let mut seen = HashSet::new();
        for r in records {
            match (r.joined_ms, r.seq) {
                (Some(_), Some(s)) => {
                    seqs.push(s);
                    if !seen.insert(s) {
                        check.duplicate_seqs += 1;
                    }
                }
                (Some(_), None) if !r.prequeued => check.missing_seq += 1,
                _ => {}
            }
        }
        check.users_with_seq = seqs.len();
        seqs.sort_unstable();
        let mut admitted: Vec<(f64, u64)> = Vec::new();
        for r in records.iter().filter(|r| r.admitted_ms.is_some()) {
            match (r.issued_at_ms, r.seq) {
                (Some(i), Some(s)) => admitted.push((i, s)),
                (None, _) => check.missing_issued_at += 1,
                _ => {}
            }
        }
        check.admitted = records.iter().filter(|r| r.admitted_ms.is_some()).count();
        let threshold = seqs.get(check.admitted.saturating_sub(1)).copied();
        if let Some(t) = threshold {
            check.admitted_outside_lowest = admitted.iter().filter(|(_, s)| *s > t).count();
        }
        admitted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        check.order_inversions = admitted.windows(2).filter(|w| w[1].1 < w[0].1).count();
        check
    }
}

/// Everything the reports print about a crowd.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CrowdMetrics {
    /// Most admissions in any one-second window of server time (`issued_at_ms`).
    pub peak_admissions_1s: usize,
    pub users: usize,
    pub joined: usize,
    pub never_joined: usize,
    /// Users whose first answer was `sold_out` (they came after the end).
    pub sold_out_before_join: usize,
    /// From the first connect to the last join acknowledgement.
    pub join_window_secs: f64,
    pub join_rate_per_sec: f64,
    /// Connect start to first `queued`/`prequeue`, ms.
    pub join_latency_ms: Summary,
    pub admitted: usize,
    /// Receive time minus `issued_at_ms`, ms.
    pub admission_latency_ms: Summary,
    pub orders: usize,
    pub orders_paid: usize,
    pub orders_left_unpaid: usize,
    pub purchase_sold_out_409: usize,
    pub purchase_transport_errors: usize,
    pub sold_out_frames: usize,
    pub outcomes: BTreeMap<String, usize>,
    pub position_frames: u64,
    pub position_gap_mean_ms: f64,
    pub position_gap_max_ms: f64,
    /// `position` frames that were repeats (the activity's refresh was late), and
    /// the longest gap between the activity's own frames.
    pub position_repeats: u64,
    pub news_gap_max_ms: f64,
    pub position_increases: u64,
    pub connect_errors: u64,
    pub unexpected_closes: u64,
    pub resumes: usize,
    pub fifo: FifoCheck,
    /// Anomaly text -> number of users that reported it.
    pub anomalies: BTreeMap<String, usize>,
    /// Up to 20 users whose run did not end in bought / sold_out / closed.
    pub failed_users: Vec<UserRecord>,
}

impl CrowdMetrics {
    pub fn of(records: &[UserRecord]) -> Self {
        let mut m = Self {
            users: records.len(),
            fifo: FifoCheck::of(records),
            ..Self::default()
        };
        let joined: Vec<&UserRecord> = records.iter().filter(|r| r.joined_ms.is_some()).collect();
        m.joined = joined.len();
        m.never_joined = m.users - m.joined;
        m.sold_out_before_join = records
            .iter()
            .filter(|r| r.joined_ms.is_none() && r.sold_out_frame)
            .count();
        let first_connect = records
            .iter()
            .map(|r| r.connect_ms)
            .filter(|&c| c > 0.0)
            .fold(f64::INFINITY, f64::min);
        let last_join = joined
            .iter()
            .filter_map(|r| r.joined_ms)
            .fold(f64::NEG_INFINITY, f64::max);
        if m.joined > 0 && last_join > first_connect {
            m.join_window_secs = (last_join - first_connect) / 1000.0;
            m.join_rate_per_sec = m.joined as f64 / m.join_window_secs;
        }
        let join_lat: Vec<f64> = records
            .iter()
            .filter_map(UserRecord::join_latency_ms)
            .collect();
        m.join_latency_ms = Summary::of(&join_lat);
        m.admitted = records.iter().filter(|r| r.admitted_ms.is_some()).count();
        let adm_lat: Vec<f64> = records
            .iter()
            .filter_map(UserRecord::admission_latency_ms)
            .collect();
        m.admission_latency_ms = Summary::of(&adm_lat);
        m.peak_admissions_1s = peak_per_second(records.iter().filter_map(|r| r.issued_at_ms));
        let (mut gap_sum, mut gap_n) = (0.0, 0u64);
        for r in records {
            if let Some(o) = &r.order {
                m.orders += 1;
                m.orders_paid += usize::from(o.status == "paid");
                m.orders_left_unpaid += usize::from(o.left_unpaid);
            }
            m.purchase_sold_out_409 += r.purchase_sold_out as usize;
            m.purchase_transport_errors += r.purchase_transport_errors as usize;
            m.sold_out_frames += usize::from(r.sold_out_frame);
            *m.outcomes.entry(r.outcome.name().to_string()).or_default() += 1;
            m.position_frames += u64::from(r.position_frames);
            gap_sum += r.gap_sum_ms;
            gap_n += u64::from(r.gap_count);
            m.position_gap_max_ms = m.position_gap_max_ms.max(r.gap_max_ms);
            m.position_repeats += u64::from(r.position_repeats);
            m.news_gap_max_ms = m.news_gap_max_ms.max(r.news_gap_max_ms);
            m.position_increases += u64::from(r.position_increases);
            m.connect_errors += u64::from(r.connect_errors);
            m.unexpected_closes += u64::from(r.unexpected_closes);
            m.resumes += r.resumes.len();
            let mut seen = HashSet::new();
            for a in &r.anomalies {
                let key = anomaly_key(a);
                if seen.insert(key.clone()) {
                    *m.anomalies.entry(key).or_default() += 1;
                }
            }
        }
        if gap_n > 0 {
            m.position_gap_mean_ms = gap_sum / gap_n as f64;
        }
        m.failed_users = records
            .iter()
            .filter(|r| {
                !matches!(
                    r.outcome,
                    Outcome::Bought | Outcome::SoldOut | Outcome::Closed
                )
            })
            .take(20)
            .cloned()
            .collect();
        m
    }

    /// The admission latencies, for the CDF chart.
    pub fn admission_latencies(records: &[UserRecord]) -> Vec<f64> {
        records
            .iter()
            .filter_map(UserRecord::admission_latency_ms)
            .collect()
    }
}

/// The most timestamps (ms) within any window of one second.
fn peak_per_second(times: impl Iterator<Item = f64>) -> usize {
    let mut t: Vec<f64> = times.collect();
    t.sort_by(f64::total_cmp);
    let mut start = 0;
    let mut best = 0;
    for end in 0..t.len() {
        while t[end] - t[start] >= 1000.0 {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// Groups anomalies that differ only in ids and numbers.
fn anomaly_key(text: &str) -> String {
    let mut key = String::new();
    let mut last_digit = false;
    for c in text.chars().take(120) {
        if c.is_ascii_digit() {
            if !last_digit {
                key.push('#');
            }
            last_digit = true;
        } else {
            key.push(c);
            last_digit = false;
        }
    }
    key
}

/// Violations of `capacity == available + held + sold` (all >= 0), for the
/// activity and each slot; empty when it holds.
pub fn invariant_violations(v: &ActivityView) -> Vec<String> {
    let mut out = Vec::new();
    let check = |out: &mut Vec<String>, name: &str, cap: i64, avail: i64, held: i64, sold: i64| {
        if cap != avail + held + sold || cap < 0 || avail < 0 || held < 0 || sold < 0 {
            out.push(format!(
                "{name}: capacity {cap} != available {avail} + held {held} + sold {sold}"
            ));
        }
    };
    check(
        &mut out,
        "activity",
        v.capacity,
        v.available,
        v.held,
        v.sold,
    );
    for s in &v.slots {
        check(
            &mut out,
            &format!("slot {}", s.id),
            s.capacity,
            s.available,
            s.held,
            s.sold,
        );
        if s.sold > s.capacity {
            out.push(format!(
                "slot {} overbooked: sold {} > capacity {}",
                s.id, s.sold, s.capacity
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_per_second_counts_the_densest_second() {
        let times = [0.0, 100.0, 999.0, 1000.0, 1500.0, 1999.9, 2000.0];
        assert_eq!(peak_per_second(times.into_iter()), 3);
        let times = [0.0, 999.0, 1000.0, 1500.0, 1998.0, 2500.0];
        assert_eq!(peak_per_second(times.into_iter()), 4);
        assert_eq!(peak_per_second(std::iter::empty()), 0);
    }

    fn user(idx: usize, seq: u64, issued: Option<f64>) -> UserRecord {
        UserRecord {
            idx,
            joined_ms: Some(1.0),
            seq: Some(seq),
            admitted_ms: issued.map(|i| i + 1.0),
            issued_at_ms: issued,
            ..UserRecord::default()
        }
    }

    #[test]
    fn fifo_holds_when_lowest_seqs_are_admitted_in_order() {
        let r = vec![
            user(0, 1, Some(10.0)),
            user(1, 2, Some(10.0)),
            user(2, 3, None),
        ];
        let c = FifoCheck::of(&r);
        assert!(c.holds(), "{c:?}");
        assert_eq!(c.admitted, 2);
    }

    #[test]
    fn fifo_flags_a_skipped_user_and_an_inversion() {
        let r = vec![
            user(0, 1, None),
            user(1, 2, Some(20.0)),
            user(2, 3, Some(10.0)),
        ];
        let c = FifoCheck::of(&r);
        assert_eq!(c.admitted_outside_lowest, 1);
        assert_eq!(c.order_inversions, 1);
        assert!(!c.holds());
    }

    #[test]
    fn anomalies_group_by_shape() {
        assert_eq!(
            anomaly_key("pay -> 409 order 123"),
            anomaly_key("pay -> 409 order 98")
        );
    }

    #[test]
    fn invariant_catches_a_leak() {
        let v = ActivityView {
            capacity: 10,
            available: 3,
            held: 2,
            sold: 4,
            ..ActivityView::default()
        };
        assert_eq!(invariant_violations(&v).len(), 1);
    }
}
