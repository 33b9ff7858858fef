//! The cadence a waiting socket hears, kept by the node that holds the socket
//! (docs/api.md 7.3).
//!
//! The activity schedules each place's refresh 4.5 s after it last told the place
//! anything. In cluster mode that frame then crosses a node-to-node relay, and on a
//! saturated machine the relay can deliver it seconds late: in 100,000-session join
//! bursts on two cores, clients saw gaps of 11-16 s between frames while the
//! activity's own schedule was on time. So the session also keeps the latest position
//! it wrote and, when `REPEAT_AFTER` passes without a newer one, writes it again,
//! marked `"repeat": true`. It never makes up a value: positions still come only from
//! the activity, so they never rise, and a client can tell a repeat from news.

use crate::actors::session::ToSession;
use crate::domain::activity::Push;
use crate::http::protocol::repeated_position;
use std::time::Duration;
use tokio::time::Instant;

/// How long a waiting socket goes without news before its latest position is
/// repeated: after the activity's refresh (4.5 s, at the first tick after it) with
/// room for a frame's normal delivery (well under 0.1 s on a healthy node), so a
/// timely refresh always comes first and a healthy session never hears a repeat.
/// 4.7 s at the default 50 ms tick.
pub fn repeat_after(tick_ms: u64) -> Duration {
    Duration::from_millis(4_500 + tick_ms + 150)
}

/// The latest position written to a waiting socket, and when to repeat it.
#[derive(Debug)]
pub struct Refresh {
    /// (position, eta_secs, waiting_for_returns) while the socket waits in line.
    latest: Option<(u64, u64, bool)>,
    due: Option<Instant>,
    after: Duration,
}

impl Refresh {
    pub fn new(after: Duration) -> Self {
        Self {
            latest: None,
            due: None,
            after,
        }
    }

    /// `m` was just written to the socket at `now`.
    pub fn wrote(&mut self, m: &ToSession, now: Instant) {
        let waiting = match m {
            ToSession::Push(Push::Queued {
                position, eta_secs, ..
            }) => Some((*position, *eta_secs, false)),
            ToSession::Push(Push::Position {
                position,
                eta_secs,
                waiting_for_returns,
            }) => Some((*position, *eta_secs, *waiting_for_returns)),
            // A pause changes neither the place nor the cadence owed to it.
            ToSession::Push(Push::Paused | Push::Resumed) => return,
            // Admitted, pre-queued (no position until opening), or ended.
            _ => None,
        };
        self.latest = waiting;
        self.due = waiting.map(|_| now + self.after);
    }

    /// When a repeat is due, if the socket waits in line.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// The repeat's text frame if one is due at `now` (then the next is scheduled).
    pub fn take_due(&mut self, now: Instant) -> Option<String> {
        if self.due.is_none_or(|d| d > now) {
            return None;
        }
        let (position, eta_secs, waiting_for_returns) = self.latest?;
        self.due = Some(now + self.after);
        Some(repeated_position(position, eta_secs, waiting_for_returns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPEAT_AFTER: Duration = Duration::from_millis(4_700);

    #[test]
    fn the_default_tick_repeats_after_4_7_s() {
        assert_eq!(repeat_after(50), REPEAT_AFTER);
    }

    fn position(p: u64) -> ToSession {
        ToSession::Push(Push::Position {
            position: p,
            eta_secs: p,
            waiting_for_returns: false,
        })
    }

    fn queued(p: u64) -> ToSession {
        ToSession::Push(Push::Queued {
            ticket: "t".into(),
            receipt: "r".into(),
            position: p,
            eta_secs: p,
            seq: 1,
        })
    }

    fn repeated(r: &mut Refresh, at: Instant) -> Option<u64> {
        let frame: serde_json::Value = serde_json::from_str(&r.take_due(at)?).expect("json");
        assert_eq!(frame["type"], "position");
        assert_eq!(frame["repeat"], true);
        frame["position"].as_u64()
    }

    #[test]
    fn a_waiting_socket_hears_its_latest_position_again_only_when_nothing_newer_came() {
        let t0 = Instant::now();
        let mut r = Refresh::new(REPEAT_AFTER);
        assert_eq!(r.due(), None, "nothing to repeat before the place");
        r.wrote(&queued(40), t0);
        assert_eq!(repeated(&mut r, t0 + REPEAT_AFTER / 2), None);
        // The activity's refresh came in time: the repeat moves with it.
        r.wrote(&position(30), t0 + Duration::from_millis(4_500));
        assert_eq!(repeated(&mut r, t0 + REPEAT_AFTER), None);
        let late = t0 + Duration::from_millis(4_500) + REPEAT_AFTER;
        assert_eq!(
            repeated(&mut r, late),
            Some(30),
            "the latest, never a new value"
        );
        // Then every REPEAT_AFTER while nothing newer comes.
        assert_eq!(repeated(&mut r, late + REPEAT_AFTER / 2), None);
        assert_eq!(repeated(&mut r, late + REPEAT_AFTER), Some(30));
    }

    #[test]
    fn a_pause_keeps_the_cadence_and_admission_or_an_end_stops_it() {
        let t0 = Instant::now();
        let mut r = Refresh::new(REPEAT_AFTER);
        r.wrote(&queued(5), t0);
        r.wrote(&ToSession::Push(Push::Paused), t0 + REPEAT_AFTER / 2);
        assert_eq!(repeated(&mut r, t0 + REPEAT_AFTER), Some(5));
        for end in [
            Push::SoldOut,
            Push::Closed,
            Push::Expired,
            Push::Revoked,
            Push::Admitted {
                token: "k".into(),
                pass: None,
                expires_at_ms: 1,
                expires_in_secs: 1,
                issued_at_ms: 0,
            },
        ] {
            r.wrote(&queued(5), t0);
            r.wrote(&ToSession::Push(end), t0);
            assert_eq!(r.due(), None);
            assert_eq!(repeated(&mut r, t0 + REPEAT_AFTER * 3), None);
        }
        r.wrote(&queued(5), t0);
        r.wrote(&ToSession::Restarting, t0);
        assert_eq!(r.due(), None);
    }

    #[test]
    fn a_pre_queued_socket_hears_no_repeat_until_its_place_in_line() {
        let t0 = Instant::now();
        let mut r = Refresh::new(REPEAT_AFTER);
        r.wrote(
            &ToSession::Push(Push::Prequeue {
                ticket: "t".into(),
                receipt: "r".into(),
                opens_at_ms: 10,
            }),
            t0,
        );
        assert_eq!(r.due(), None);
        r.wrote(&queued(7), t0 + REPEAT_AFTER);
        assert_eq!(repeated(&mut r, t0 + REPEAT_AFTER * 2), Some(7));
    }
}
