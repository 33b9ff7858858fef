//! FIFO across a failover: the strict check ([`FifoCheck`]) with exactly the
//! one exception API.md makes. A place whose user is disconnected when its
//! turn comes gets its token anyway, and the token waits for the user; if the
//! user is not back before the token expires, the next users are admitted
//! and this one never hears `admitted`. Admission order (`issued_at_ms`, the
//! moment of the decision, which a resumed `admitted` repeats) must still
//! follow join order for everyone.

use serde::Serialize;

use crate::metrics::FifoCheck;
use crate::user::record::UserRecord;

/// Slack between a frame's sending and its receipt (the token's issue time
/// is only known to be after the last waiting frame was *sent*).
const FRAME_SLACK_MS: f64 = 1000.0;

#[derive(Debug, Clone, Default, Serialize)]
pub struct FailoverFifo {
    /// Seq, duplicates, order of `issued_at_ms`: no exception applies.
    pub strict: FifoCheck,
    /// Joined users never admitted although a later one was.
    pub skipped: usize,
    /// Of those, away (socket lost, not back) when a later user was admitted,
    /// and not back while their token could still have been waiting: allowed.
    pub skipped_while_away: usize,
    /// Skipped while connected, or back in time to get their token: violations.
    pub skipped_violations: usize,
    /// Up to three violations, for the report.
    pub examples: Vec<String>,
}

impl FailoverFifo {
    /// `token_wait_ms`: how long a token waits for an absent user
    /// (`token_ttl_secs`, which is below the default `reconnect_grace_secs`).
    pub fn of(records: &[UserRecord], token_wait_ms: f64) -> Self {
        let mut check = Self {
            strict: FifoCheck::of(records),
            ..Self::default()
        };
        // Admitted users by seq, and for each index the earliest issue time
        // among it and every later seq.
        let mut admitted: Vec<(u64, f64)> = records
            .iter()
            .filter(|r| r.admitted_ms.is_some())
            .filter_map(|r| Some((r.seq?, r.issued_at_ms?)))
            .collect();
        admitted.sort_by_key(|a| a.0);
        let mut earliest_from = vec![f64::INFINITY; admitted.len() + 1];
        for i in (0..admitted.len()).rev() {
            earliest_from[i] = earliest_from[i + 1].min(admitted[i].1);
        }
        for r in records.iter().filter(|r| r.admitted_ms.is_none()) {
            let (Some(_), Some(seq)) = (r.joined_ms, r.seq) else {
                continue;
            };
            let later = admitted.partition_point(|a| a.0 <= seq);
            if later == admitted.len() {
                continue;
            }
            // By then this user's turn had come: someone behind it got in.
            let passed_at = earliest_from[later];
            check.skipped += 1;
            if away_without_its_token(r, passed_at, token_wait_ms) {
                check.skipped_while_away += 1;
            } else {
                check.skipped_violations += 1;
                if check.examples.len() < 3 {
                    check.examples.push(format!("user {} (seq {seq})", r.idx));
                }
            }
        }
        check
    }

    pub fn holds(&self) -> bool {
        let s = &self.strict;
        s.missing_seq == 0
            && s.duplicate_seqs == 0
            && s.order_inversions == 0
            && s.missing_issued_at == 0
            && self.skipped_violations == 0
    }

    pub fn describe(&self) -> String {
        let s = &self.strict;
        format!(
            "admitted {}, inversions {}, skipped {} ({} while away past their token, {} while connected or back in time {:?}), missing seq {}, duplicate seq {}, missing issued_at_ms {}",
            s.admitted,
            s.order_inversions,
            self.skipped,
            self.skipped_while_away,
            self.skipped_violations,
            self.examples,
            s.missing_seq,
            s.duplicate_seqs,
            s.missing_issued_at
        )
    }
}

/// True when `r` had lost its socket and was not back at `at` (unix ms), and
/// did not come back while a token issued at its turn could still wait.
fn away_without_its_token(r: &UserRecord, at: f64, token_wait_ms: f64) -> bool {
    r.resumes.iter().any(|x| {
        let away = x.dropped_ms <= at && x.back_ms.is_none_or(|b| b >= at);
        // Its turn came after its last waiting frame on the lost socket was sent.
        let earliest_issue = x
            .waiting_frame_ms
            .map_or(f64::NEG_INFINITY, |w| w - FRAME_SLACK_MS);
        let back_in_time = x
            .back_ms
            .is_some_and(|b| b < earliest_issue + token_wait_ms);
        away && !back_in_time
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::record::Resume;

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

    fn away(mut r: UserRecord, dropped: f64, last_frame: f64, back: Option<f64>) -> UserRecord {
        r.resumes.push(Resume {
            cause: "drop".into(),
            dropped_ms: dropped,
            waiting_frame_ms: Some(last_frame),
            back_ms: back,
            first_frame: if back.is_some() { "sold_out" } else { "none" }.into(),
            ..Resume::default()
        });
        r
    }

    const TTL: f64 = 30_000.0;

    #[test]
    fn in_order_admissions_hold() {
        let r = vec![
            user(0, 1, Some(10.0)),
            user(1, 2, Some(20.0)),
            user(2, 3, None),
        ];
        let c = FailoverFifo::of(&r, TTL);
        assert!(c.holds(), "{c:?}");
        assert_eq!(c.skipped, 0);
    }

    #[test]
    fn a_connected_user_skipped_is_a_violation() {
        let r = vec![user(0, 1, None), user(1, 2, Some(20.0))];
        let c = FailoverFifo::of(&r, TTL);
        assert_eq!((c.skipped, c.skipped_violations), (1, 1));
        assert!(!c.holds());
    }

    #[test]
    fn a_user_away_until_its_token_expired_may_be_skipped() {
        // Dropped at 1000, never back; seq 2 admitted at 2000.
        let never_back = away(user(0, 1, None), 1000.0, 900.0, None);
        // Back only at 40000: a token issued after 900 - 1000 ms expired by 29900.
        let back_late = away(user(1, 2, None), 1000.0, 900.0, Some(40_000.0));
        let r = vec![never_back, back_late, user(2, 3, Some(2000.0))];
        let c = FailoverFifo::of(&r, TTL);
        assert_eq!((c.skipped, c.skipped_while_away), (2, 2));
        assert!(c.holds(), "{c:?}");
    }

    #[test]
    fn a_user_back_while_its_token_waited_must_be_admitted() {
        let back_soon = away(user(0, 1, None), 1000.0, 900.0, Some(5000.0));
        let r = vec![back_soon, user(1, 2, Some(2000.0))];
        let c = FailoverFifo::of(&r, TTL);
        assert_eq!(c.skipped_violations, 1);
        assert!(!c.holds());
    }

    #[test]
    fn a_user_back_before_the_later_admission_was_not_away() {
        let back_before = away(user(0, 1, None), 1000.0, 900.0, Some(1500.0));
        let r = vec![back_before, user(1, 2, Some(2000.0))];
        assert_eq!(FailoverFifo::of(&r, TTL).skipped_violations, 1);
    }

    #[test]
    fn admission_order_has_no_exception() {
        let r = vec![user(0, 1, Some(30.0)), user(1, 2, Some(20.0))];
        let c = FailoverFifo::of(&r, TTL);
        assert_eq!(c.strict.order_inversions, 1);
        assert!(!c.holds());
    }
}
