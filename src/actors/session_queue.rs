//! `SessionQueue`: what an activity has to tell one WebSocket session, waiting to be written.
//!
//! The activity actor pushes into it directly (a short lock, no actor message per
//! frame) and the session's task drains it when woken. It is bounded by design, so a
//! client that stops reading cannot grow server memory: a newer `position` replaces an
//! unsent one (only the latest matters), and past `MAX_PENDING` other messages the
//! session is marked overflowed and closed by its task.
//!
//! A session's first status frame is its place (`queued`, `prequeue` or `admitted`):
//! a `position` computed before the join's commit was durable (an admission tick
//! while the commit waits, e.g. for a Redis replica or under a join burst) would
//! overtake it, so the latest such position is held and goes out right after a
//! `queued` or `prequeue` (dropped after `admitted`). Dropping it instead cost the
//! session a whole refresh period: its next position came up to two periods after
//! the place (measured: 43,000 of 73,000 gaps over 6 s in a 100,000-session join burst).

use crate::actors::session::{SessionOutput, ToSession};
use crate::domain::activity::Push;
use std::collections::VecDeque;
use std::sync::Mutex;
use tokio::sync::Notify;

/// Non-coalescable messages a session may have unsent before it is dropped. A healthy
/// client has at most a few (queued, admitted, a pause/resume pair).
pub const MAX_PENDING: usize = 32;

#[derive(Default)]
pub struct SessionQueue {
    queue: Mutex<Pending>,
    wake: Notify,
}

#[derive(Default)]
struct Pending {
    messages: VecDeque<ToSession>,
    overflowed: bool,
    /// The session's place was pushed: positions may follow.
    placed: bool,
    /// The latest position pushed before the place, sent right after it.
    early: Option<ToSession>,
}

/// What the session task takes out in one go.
pub enum Drained {
    Messages(VecDeque<ToSession>),
    /// The client fell too far behind; close it.
    Overflowed,
}

fn is_position(m: &ToSession) -> bool {
    matches!(m, ToSession::Push(Push::Position { .. }))
}

fn is_place(m: &ToSession) -> bool {
    matches!(
        m,
        ToSession::Push(Push::Queued { .. } | Push::Prequeue { .. } | Push::Admitted { .. })
    )
}

impl SessionOutput for SessionQueue {
    /// One queue per session: the id is the queue's own.
    fn push(&self, _session: u64, msg: ToSession) {
        self.push(msg);
    }
}

impl SessionQueue {
    pub fn push(&self, msg: ToSession) {
        {
            let mut p = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if p.overflowed {
                return;
            }
            if !p.placed && is_position(&msg) {
                p.early = Some(msg);
                return;
            }
            if !p.placed && is_place(&msg) {
                p.placed = true;
                let early = p.early.take();
                let waiting = !matches!(msg, ToSession::Push(Push::Admitted { .. }));
                p.messages.push_back(msg);
                if let Some(position) = early.filter(|_| waiting) {
                    p.messages.push_back(position);
                }
                drop(p);
                self.wake.notify_one();
                return;
            }
            if is_position(&msg) {
                // Coalesce: drop the unsent older position, keep order otherwise.
                if let Some(i) = p.messages.iter().position(is_position) {
                    p.messages.remove(i);
                }
            } else if p.messages.len() >= MAX_PENDING {
                p.overflowed = true;
                p.messages = VecDeque::new();
            }
            if !p.overflowed {
                p.messages.push_back(msg);
            }
        }
        self.wake.notify_one();
    }

    /// Everything unsent, leaving the queue empty (and its buffer freed).
    pub fn drain(&self) -> Drained {
        let mut p = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if p.overflowed {
            return Drained::Overflowed;
        }
        Drained::Messages(std::mem::take(&mut p.messages))
    }

    /// Resolves after the next `push` (or at once if one happened since the last wait).
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(n: u64) -> ToSession {
        ToSession::Push(Push::Position {
            position: n,
            eta_secs: 0,
            waiting_for_returns: false,
        })
    }

    fn queued() -> ToSession {
        ToSession::Push(Push::Queued {
            ticket: "t".into(),
            receipt: "r".into(),
            position: 10,
            eta_secs: 0,
            seq: 1,
        })
    }

    /// A queue whose place was pushed and taken.
    fn placed() -> SessionQueue {
        let o = SessionQueue::default();
        o.push(queued());
        assert_eq!(taken(&o).len(), 1);
        o
    }

    fn taken(o: &SessionQueue) -> Vec<String> {
        match o.drain() {
            Drained::Messages(m) => m.iter().map(crate::http::protocol::encode).collect(),
            Drained::Overflowed => vec!["overflowed".into()],
        }
    }

    #[test]
    fn positions_coalesce_to_the_latest_and_keep_order() {
        let o = placed();
        o.push(pos(9));
        o.push(ToSession::Push(Push::Paused));
        o.push(pos(8));
        o.push(pos(7));
        let got = taken(&o);
        assert_eq!(got.len(), 2);
        assert!(got[0].contains("paused"));
        assert!(got[1].contains(r#""position":7"#));
        assert!(taken(&o).is_empty());
    }

    #[test]
    fn a_client_that_never_reads_holds_bounded_memory() {
        let o = placed();
        for n in 0..100_000 {
            o.push(pos(n));
        }
        assert_eq!(taken(&o).len(), 1);
        for _ in 0..MAX_PENDING {
            o.push(ToSession::Push(Push::Paused));
        }
        o.push(ToSession::Push(Push::Resumed));
        assert_eq!(taken(&o), vec!["overflowed".to_owned()]);
        o.push(pos(1));
        assert_eq!(taken(&o), vec!["overflowed".to_owned()]);
    }

    #[test]
    fn no_position_goes_out_before_the_place_and_the_latest_follows_it() {
        let o = SessionQueue::default();
        o.push(pos(9));
        o.push(ToSession::Push(Push::Paused));
        let got = taken(&o);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("paused"));
        o.push(pos(8));
        o.push(queued());
        let got = taken(&o);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].contains("queued"), "{got:?}");
        assert!(got[1].contains(r#""position":8"#), "{got:?}");
        o.push(pos(7));
        let got = taken(&o);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains(r#""position":7"#), "{got:?}");
    }

    #[test]
    fn a_position_held_for_the_place_is_dropped_after_admitted() {
        let o = SessionQueue::default();
        o.push(pos(2));
        o.push(ToSession::Push(Push::Admitted {
            token: "t".into(),
            pass: None,
            expires_at_ms: 1_000,
            expires_in_secs: 1,
            issued_at_ms: 0,
        }));
        let got = taken(&o);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(got[0].contains("admitted"), "{got:?}");
    }

    #[tokio::test]
    async fn a_push_before_waiting_is_not_lost() {
        let o = placed();
        o.push(pos(3));
        o.woken().await;
        assert_eq!(taken(&o).len(), 1);
    }
}
