//! Position cadence across a failover. A waiting user hears at least every
//! 5 s (+1 s slack); sessions on surviving nodes "may see a short pause"
//! while the activity has no owner, so a gap that overlaps the failover is
//! allowed until 5 s (+1 s) after the failover ended, and no longer.

use serde::Serialize;

use crate::user::record::{UserRecord, POSITION_GAP_LIMIT_MS};

#[derive(Debug, Clone, Default, Serialize)]
pub struct FailoverCadence {
    /// Gaps between waiting frames over the limit, all users.
    pub over_limit: usize,
    /// Of those, pauses overlapping the failover that ended in time.
    pub excused: usize,
    /// The others (including gaps counted but not kept per user).
    pub violations: usize,
    pub max_excused_ms: f64,
    /// Longest kept gap that was not excused.
    pub max_violation_ms: f64,
    /// Where the kept violations fall: ended before the kill, overlapped the
    /// failover but ended too late, began after it (none without a failover).
    pub before_kill: usize,
    pub late_after_failover: usize,
    pub after_failover: usize,
    /// Gaps over the limit between a place frame and the first position after it.
    pub first_after_place: usize,
    /// When the kept gaps that began after the failover began, in seconds after it
    /// ended: (earliest, latest).
    pub after_failover_starts_s: Option<(f64, f64)>,
    /// Gaps over the limit by the node the socket was on (index in the node list).
    pub by_node: std::collections::BTreeMap<usize, usize>,
}

impl FailoverCadence {
    /// `failover`: (kill, failover over) in unix ms, when it completed.
    pub fn of(records: &[UserRecord], failover: Option<(f64, f64)>) -> Self {
        let mut c = Self::default();
        for r in records {
            c.over_limit += r.long_gap_count as usize;
            c.first_after_place += r.long_first_gaps as usize;
            for (node, &n) in r
                .long_gaps_by_node
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
            {
                *c.by_node.entry(node).or_default() += n as usize;
            }
            c.violations += (r.long_gap_count as usize).saturating_sub(r.long_gaps.len());
            for &[end, gap] in &r.long_gaps {
                if pause_of_failover(end - gap, end, failover) {
                    c.excused += 1;
                    c.max_excused_ms = c.max_excused_ms.max(gap);
                } else {
                    c.violations += 1;
                    c.max_violation_ms = c.max_violation_ms.max(gap);
                    if let Some((killed, served)) = failover {
                        if end <= killed {
                            c.before_kill += 1;
                        } else if end - gap >= served {
                            c.after_failover += 1;
                            let at = (end - gap - served) / 1000.0;
                            c.after_failover_starts_s = Some(match c.after_failover_starts_s {
                                Some((lo, hi)) => (lo.min(at), hi.max(at)),
                                None => (at, at),
                            });
                        } else {
                            c.late_after_failover += 1;
                        }
                    }
                }
            }
        }
        c
    }

    pub fn holds(&self) -> bool {
        self.violations == 0
    }
}

/// A gap from `start` to `end` overlaps the failover and ended within the
/// cadence limit after it.
fn pause_of_failover(start: f64, end: f64, failover: Option<(f64, f64)>) -> bool {
    failover.is_some_and(|(killed, served)| {
        start < served && end > killed && end <= served + POSITION_GAP_LIMIT_MS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_gaps(gaps: &[[f64; 2]]) -> UserRecord {
        let mut r = UserRecord::default();
        for &[end, gap] in gaps {
            r.waiting_gap(end, gap);
        }
        r
    }

    #[test]
    fn gaps_by_node_survive_the_workers_line_and_add_up() {
        let mut r = UserRecord::default();
        r.waiting_gap_on(20_000.0, 7_000.0, 6);
        r.waiting_gap_on(30_000.0, 1_000.0, 2);
        // As a load-generator process sends it to the parent.
        let line = serde_json::to_string(&crate::worker::WorkerEvent::Record(Box::new(r)))
            .expect("serializes");
        let back = match serde_json::from_str(&line).expect("parses") {
            crate::worker::WorkerEvent::Record(r) => *r,
            _ => panic!("not a record"),
        };
        let c = FailoverCadence::of(&[back.clone(), back], None);
        assert_eq!(c.by_node.into_iter().collect::<Vec<_>>(), vec![(6, 2)]);
    }

    #[test]
    fn a_pause_over_the_failover_is_allowed_until_the_limit_after_it() {
        // Kill at 10 s, failover over at 14 s.
        let w = Some((10_000.0, 14_000.0));
        let ok = with_gaps(&[[19_500.0, 12_000.0]]); // 7.5 s .. 19.5 s
        let late = with_gaps(&[[20_500.0, 12_000.0]]); // ends 6.5 s after
        let before = with_gaps(&[[9_000.0, 7_000.0]]); // before the kill
        let c = FailoverCadence::of(&[ok, late, before], w);
        assert_eq!((c.over_limit, c.excused, c.violations), (3, 1, 2));
        assert_eq!(
            (c.before_kill, c.late_after_failover, c.after_failover),
            (1, 1, 0)
        );
        assert_eq!(c.max_excused_ms, 12_000.0);
        assert!(!c.holds());
    }

    #[test]
    fn without_a_failover_every_long_gap_counts() {
        let c = FailoverCadence::of(&[with_gaps(&[[19_500.0, 7_000.0]])], None);
        assert_eq!(c.violations, 1);
    }

    #[test]
    fn short_gaps_are_not_kept() {
        let c = FailoverCadence::of(&[with_gaps(&[[5_000.0, 5_900.0]])], None);
        assert!(c.holds());
        assert_eq!(c.over_limit, 0);
    }
}
