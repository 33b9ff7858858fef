//! Rate limits with governor, per route class: per client IP, per user, and global.
//! Over a limit: `429 rate_limited` with `Retry-After`. Keyed state is trimmed by
//! `RateLimits::trim` (run periodically) so a flood of distinct keys cannot grow
//! memory without bound.

use crate::config::LimitSettings;
use crate::domain::ids::UserId;
use crate::error::{ApiError, ErrorCode};
use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;

type KeyedLimiter<K, C> =
    RateLimiter<K, HashMapStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One keyed limit; `None` inside means unlimited (configured as 0).
pub struct Keyed<K: Hash + Eq + Clone, C: Clock> {
    limiter: Option<KeyedLimiter<K, C>>,
    clock: C,
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> Keyed<K, C> {
    pub fn new(per_sec: u32, clock: C) -> Self {
        let limiter = NonZeroU32::new(per_sec).map(|n| {
            RateLimiter::new(
                Quota::per_second(n),
                HashMapStateStore::default(),
                clock.clone(),
            )
        });
        Self { limiter, clock }
    }

    /// `Err(seconds)` to wait when over the limit.
    pub fn check(&self, key: &K) -> Result<(), u64> {
        match &self.limiter {
            None => Ok(()),
            Some(l) => l.check_key(key).map_err(|nu| {
                nu.wait_time_from(self.clock.now())
                    .as_secs_f64()
                    .ceil()
                    .max(1.0) as u64
            }),
        }
    }

    /// Forgets keys whose limit has fully replenished.
    pub fn trim(&self) {
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    pub fn len(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct RateLimits<C: Clock = DefaultClock> {
    join_ip: Keyed<IpAddr, C>,
    poll_ip: Keyed<IpAddr, C>,
    purchase_ip: Keyed<IpAddr, C>,
    login_ip: Keyed<IpAddr, C>,
    admin_ip: Keyed<IpAddr, C>,
    user: Keyed<UserId, C>,
    global: Option<RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>>,
    clock: C,
}

fn limited(secs: u64) -> ApiError {
    ApiError::new(ErrorCode::RateLimited, "too many requests; slow down").retry_after(secs)
}

fn ip(req: &HttpRequest) -> IpAddr {
    client_ip(req)
}

/// Where the client address comes from (one place for every per-IP rule).
pub use crate::http::client_addr::client_ip;

impl<C: Clock + Clone> RateLimits<C> {
    pub fn new(s: &LimitSettings, clock: C) -> Self {
        Self {
            join_ip: Keyed::new(s.join_per_ip_per_sec, clock.clone()),
            poll_ip: Keyed::new(s.poll_per_ip_per_sec, clock.clone()),
            purchase_ip: Keyed::new(s.purchase_per_ip_per_sec, clock.clone()),
            login_ip: Keyed::new(s.login_per_ip_per_sec, clock.clone()),
            admin_ip: Keyed::new(s.admin_per_ip_per_sec, clock.clone()),
            user: Keyed::new(s.user_per_sec, clock.clone()),
            global: NonZeroU32::new(s.global_per_sec)
                .map(|n| RateLimiter::direct_with_clock(Quota::per_second(n), clock.clone())),
            clock,
        }
    }

    fn global(&self) -> Result<(), ApiError> {
        match &self.global {
            None => Ok(()),
            Some(g) => g.check().map_err(|nu| {
                limited(
                    nu.wait_time_from(self.clock.now())
                        .as_secs_f64()
                        .ceil()
                        .max(1.0) as u64,
                )
            }),
        }
    }

    pub fn check_ip_user(
        &self,
        ip_limit: &Keyed<IpAddr, C>,
        addr: IpAddr,
        user: Option<&UserId>,
    ) -> Result<(), ApiError> {
        self.global()?;
        ip_limit.check(&addr).map_err(limited)?;
        if let Some(u) = user {
            self.user.check(u).map_err(limited)?;
        }
        Ok(())
    }

    pub fn check_join(&self, req: &HttpRequest, user: &UserId) -> Result<(), ApiError> {
        self.check_join_from(ip(req), user)
    }
    pub fn check_join_from(&self, ip: IpAddr, user: &UserId) -> Result<(), ApiError> {
        self.check_ip_user(&self.join_ip, ip, Some(user))
    }
    pub fn check_poll(&self, req: &HttpRequest) -> Result<(), ApiError> {
        self.check_ip_user(&self.poll_ip, ip(req), None)
    }
    pub fn check_purchase(&self, req: &HttpRequest, user: &UserId) -> Result<(), ApiError> {
        self.check_ip_user(&self.purchase_ip, ip(req), Some(user))
    }
    pub fn check_login(&self, req: &HttpRequest) -> Result<(), ApiError> {
        self.check_ip_user(&self.login_ip, ip(req), None)
    }
    pub fn check_admin(&self, req: &HttpRequest) -> Result<(), ApiError> {
        self.check_ip_user(&self.admin_ip, ip(req), None)
    }

    /// Drops replenished keys from every keyed limiter.
    pub fn trim(&self) {
        for k in [
            &self.join_ip,
            &self.poll_ip,
            &self.purchase_ip,
            &self.login_ip,
            &self.admin_ip,
        ] {
            k.trim();
        }
        self.user.trim();
    }

    pub fn tracked_keys(&self) -> usize {
        [
            &self.join_ip,
            &self.poll_ip,
            &self.purchase_ip,
            &self.login_ip,
            &self.admin_ip,
        ]
        .iter()
        .map(|k| k.len())
        .sum::<usize>()
            + self.user.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn ipn(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n))
    }

    #[test]
    fn limits_hold_per_key_with_a_right_retry_after() {
        let clock = FakeRelativeClock::default();
        let k = Keyed::new(2, clock.clone());
        assert!(k.check(&ipn(1)).is_ok());
        assert!(k.check(&ipn(1)).is_ok());
        assert_eq!(k.check(&ipn(1)), Err(1));
        assert!(k.check(&ipn(2)).is_ok(), "other keys are independent");
        clock.advance(Duration::from_millis(500));
        assert!(
            k.check(&ipn(1)).is_ok(),
            "one cell replenished after 1/rate"
        );
    }

    #[test]
    fn retry_after_reflects_a_slow_rate() {
        let clock = FakeRelativeClock::default();
        let k: Keyed<u32, _> = Keyed::new(1, clock.clone());
        assert!(k.check(&1).is_ok());
        assert_eq!(k.check(&1), Err(1));
        clock.advance(Duration::from_millis(999));
        assert_eq!(k.check(&1), Err(1));
        clock.advance(Duration::from_millis(1));
        assert!(k.check(&1).is_ok());
    }

    #[test]
    fn memory_stays_bounded_after_many_distinct_keys() {
        let clock = FakeRelativeClock::default();
        let k = Keyed::new(5, clock.clone());
        for n in 0..100_000 {
            let _ = k.check(&ipn(n));
        }
        assert_eq!(k.len(), 100_000);
        clock.advance(Duration::from_secs(2));
        k.trim();
        assert_eq!(k.len(), 0);
    }

    #[test]
    fn zero_means_unlimited() {
        let k: Keyed<u32, _> = Keyed::new(0, FakeRelativeClock::default());
        for _ in 0..1000 {
            assert!(k.check(&1).is_ok());
        }
    }
}
