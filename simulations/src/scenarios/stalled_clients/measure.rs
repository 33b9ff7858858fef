//! Pure arithmetic of the stalled-clients scenario: RSS over the stall
//! period, the frames the server owed the stalled users, how their sockets ended.

use std::collections::BTreeMap;

use crate::sampler::Sample;
use crate::user::record::UserRecord;

/// Server RSS (KiB) over a window of samples: first, last and max reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RssWindow {
    pub first_kib: u64,
    pub last_kib: u64,
    pub max_kib: u64,
}

impl RssWindow {
    /// The readings with `from_t <= t_secs <= to_t`; `None` without any.
    pub fn of(samples: &[Sample], from_t: f64, to_t: f64) -> Option<Self> {
        let mut rss = samples
            .iter()
            .filter(|s| s.t_secs >= from_t && s.t_secs <= to_t)
            .filter_map(|s| s.rss_kib);
        let first = rss.next()?;
        let (last, max) = rss.fold((first, first), |(_, m), r| (r, m.max(r)));
        Some(Self {
            first_kib: first,
            last_kib: last,
            max_kib: max,
        })
    }
}

/// Growth from `start_kib` to `to_kib`, in KiB per session (negative: it shrank).
pub fn per_session_kib(start_kib: u64, to_kib: u64, sessions: usize) -> f64 {
    if sessions == 0 {
        return 0.0;
    }
    (to_kib as f64 - start_kib as f64) / sessions as f64
}

/// `position` frames a place starting at `start` gets while it moves up
/// `moves` times by one, under API.md's rule "whenever the place moves by 1%
/// or more" (the 5 s keep-alive frames are not counted).
pub fn position_frames(start: u64, moves: u64) -> u64 {
    let mut last = start;
    let mut pos = start;
    let mut frames = 0;
    for _ in 0..moves.min(start.saturating_sub(1)) {
        pos -= 1;
        if (last - pos) * 100 >= last {
            frames += 1;
            last = pos;
        }
    }
    frames
}

/// Frames the server had for the stalled users at places `1..=stalled` over
/// a stall period with `admissions` admissions and `toggles` pause/resume
/// pairs: positions (1% rule), `admitted` for those whose turn came, and a
/// `paused` and a `resumed` per toggle for each.
pub fn frames_owed(stalled: u64, admissions: u64, toggles: u64) -> FramesOwed {
    let mut owed = FramesOwed::default();
    for p in 1..=stalled {
        owed.positions += position_frames(p, admissions.min(p - 1));
        if p <= admissions {
            owed.admitted += 1;
        }
    }
    owed.notices = stalled * toggles * 2;
    owed
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FramesOwed {
    pub positions: u64,
    pub admitted: u64,
    pub notices: u64,
}

impl FramesOwed {
    pub fn total(&self) -> u64 {
        self.positions + self.admitted + self.notices
    }
}

/// Stalled users by how their socket ended (`StallRecord::end`).
pub fn socket_ends(records: &[UserRecord]) -> BTreeMap<String, usize> {
    let mut ends = BTreeMap::new();
    for r in records {
        let end = r
            .stall
            .as_ref()
            .map_or("no stall record", |s| s.end.as_str());
        *ends.entry(end.to_string()).or_default() += 1;
    }
    ends
}

/// Stalled users whose socket the server had closed or dropped by the drain
/// (anything but `still open` and a failed join).
pub fn closed_by_server(ends: &BTreeMap<String, usize>) -> usize {
    ends.iter()
        .filter(|(e, _)| {
            *e != "still open" && !e.starts_with("never stalled") && *e != "no stall record"
        })
        .map(|(_, n)| n)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::record::StallRecord;

    fn rss(t: f64, kib: Option<u64>) -> Sample {
        Sample {
            t_secs: t,
            rss_kib: kib,
            ..Sample::default()
        }
    }

    #[test]
    fn rss_window_keeps_first_last_and_max_inside() {
        let s = [
            rss(0.0, Some(100)),
            rss(1.0, Some(200)),
            rss(2.0, None),
            rss(3.0, Some(500)),
            rss(4.0, Some(300)),
            rss(5.0, Some(900)),
        ];
        let w = RssWindow::of(&s, 1.0, 4.0).expect("readings inside");
        assert_eq!(
            w,
            RssWindow {
                first_kib: 200,
                last_kib: 300,
                max_kib: 500
            }
        );
        assert!(RssWindow::of(&s, 6.0, 7.0).is_none());
    }

    #[test]
    fn growth_per_session() {
        assert_eq!(per_session_kib(1000, 9000, 8000), 1.0);
        assert_eq!(per_session_kib(9000, 1000, 8000), -1.0);
        assert_eq!(per_session_kib(0, 10, 0), 0.0);
    }

    #[test]
    fn small_places_hear_every_move_large_ones_every_percent() {
        assert_eq!(position_frames(50, 10), 10);
        // From 1000 to 990 is 1%: one frame per 10 moves at first.
        assert_eq!(position_frames(1000, 10), 1);
        assert_eq!(position_frames(1000, 9), 0);
        // Never past position 1.
        assert_eq!(position_frames(5, 100), 4);
        assert_eq!(position_frames(1, 100), 0);
    }

    #[test]
    fn frames_owed_counts_positions_admissions_and_notices() {
        let owed = frames_owed(3, 2, 5);
        // Places 1, 2, 3: 0 + 1 + 2 moves, each a frame.
        assert_eq!(owed.positions, 3);
        assert_eq!(owed.admitted, 2);
        assert_eq!(owed.notices, 30);
        assert_eq!(owed.total(), 35);
    }

    #[test]
    fn socket_ends_are_tallied_and_closes_counted() {
        let rec = |end: &str| UserRecord {
            stall: Some(StallRecord {
                end: end.into(),
                ..StallRecord::default()
            }),
            ..UserRecord::default()
        };
        let records = [
            rec("close 1008: messages not read in time"),
            rec("close 1008: messages not read in time"),
            rec("eof without close frame"),
            rec("still open"),
            rec("never stalled: connect: io"),
            UserRecord::default(),
        ];
        let ends = socket_ends(&records);
        assert_eq!(ends["close 1008: messages not read in time"], 2);
        assert_eq!(ends["no stall record"], 1);
        assert_eq!(closed_by_server(&ends), 3);
    }
}
