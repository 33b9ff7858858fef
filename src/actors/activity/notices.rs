//! Pause/resume notices, spread over ticks.
//!
//! Sent at most `NOTICES_PER_TICK` a tick: a broadcast to a crowd of 18,000 would
//! otherwise queue every `admitted` frame of the next ticks behind 18,000 socket
//! writes (measured: admission-to-client p99 ~80 ms, all of it in the ticks right
//! after a resume). Only the latest notice per user is kept.

use crate::domain::activity::{Outbound, Push};
use crate::domain::ids::UserId;
use std::collections::{HashMap, VecDeque};

pub const NOTICES_PER_TICK: usize = 2_000;

#[derive(Default)]
pub struct Notices {
    latest: HashMap<UserId, Push>,
    order: VecDeque<UserId>,
    budget: usize,
}

impl Notices {
    pub fn defer(&mut self, o: Outbound) {
        if self.latest.insert(o.user.clone(), o.push).is_none() {
            self.order.push_back(o.user);
        }
    }

    /// The user's pending notice, taken out (it must go before anything newer).
    pub fn take(&mut self, user: &UserId) -> Option<Push> {
        if self.latest.is_empty() {
            return None;
        }
        self.latest.remove(user)
    }

    /// The next notice within the tick's budget.
    pub fn next(&mut self) -> Option<(UserId, Push)> {
        while self.budget > 0 {
            let user = self.order.pop_front()?;
            if let Some(push) = self.latest.remove(&user) {
                self.budget -= 1;
                return Some((user, push));
            }
        }
        None
    }

    pub fn new_tick(&mut self) {
        self.budget = NOTICES_PER_TICK;
        if self.latest.is_empty() && self.order.capacity() > 1024 {
            self.order = VecDeque::new();
            self.latest = HashMap::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u32) -> UserId {
        UserId::parse(&format!("u{n}")).expect("valid user id")
    }

    #[test]
    fn notices_keep_the_latest_per_user_and_spread_over_ticks() {
        let mut n = Notices::default();
        for i in 0..(NOTICES_PER_TICK as u32 + 10) {
            n.defer(Outbound {
                user: user(i),
                push: Push::Paused,
            });
        }
        n.defer(Outbound {
            user: user(0),
            push: Push::Resumed,
        });
        n.new_tick();
        let first: Vec<_> = std::iter::from_fn(|| n.next()).collect();
        assert_eq!(first.len(), NOTICES_PER_TICK);
        assert_eq!(first[0], (user(0), Push::Resumed));
        assert_eq!(n.next(), None, "the budget is spent until the next tick");
        // A user's own next push takes its pending notice first.
        let last = user(NOTICES_PER_TICK as u32 + 9);
        assert_eq!(n.take(&last), Some(Push::Paused));
        n.new_tick();
        assert_eq!(std::iter::from_fn(|| n.next()).count(), 9);
    }
}
