//! `ActivityActor` stepped by `Tick`: a real actor over a real store in a temp dir,
//! on a manual clock, its own interval too far away to fire. Time moves only when a
//! test advances the clock and sends `Tick`; sessions are `SessionQueue`s.

use super::{ActivityActor, ActorDeps};
use crate::actors::messages::{Admin, Detach, GetTicket, Join, SessionHandle, Tick, ToSession};
use crate::actors::session_queue::{Drained, SessionQueue};
use crate::domain::activity::{Activity, ActivityView, Push};
use crate::domain::clock::{ManualClock, Millis};
use crate::domain::ids::UserId;
use crate::domain::spec::CreateActivity;
use crate::domain::token::TokenKey;
use crate::store::{CommitSettings, Store};
use actix::prelude::*;
use serde_json::json;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

const T0: Millis = 1_764_583_200_000;

/// How long a push may take to arrive before the test counts it as a hang (not a
/// timing check: pushes follow the store's commit, which takes microseconds).
const HANG: Duration = Duration::from_secs(10);

/// The one place an actor is built: deps over `store` and `clock`, an interval tick a
/// day long (so only the test's `Tick`s step it), no outbox, committing to the store.
fn start_actor(activity: Activity, store: &Store, clock: &ManualClock) -> Addr<ActivityActor> {
    let deps = ActorDeps {
        store: store.clone(),
        clock: Arc::new(clock.clone()),
        tick: Duration::from_secs(86_400),
        outbox: false,
        hooks: crate::store::webhooks::EventSignal::new(),
        passes: crate::domain::pass::Passes::new("http://sluice.test"),
    };
    let target: Arc<dyn crate::store::CommitTarget> = Arc::new(store.clone());
    ActivityActor::new(activity, &deps, target).start()
}

/// One activity on its actor, its store and its clock.
struct Bench {
    addr: Addr<ActivityActor>,
    clock: ManualClock,
    next_session: u64,
    _store: Store,
    _dir: tempfile::TempDir,
}

impl Bench {
    /// Starts a sale of `stock` units at `T0`, `admission` as in its create body
    /// (`POST /api/admin/activities`).
    fn sale(stock: u32, admission: serde_json::Value) -> Bench {
        let body: CreateActivity = serde_json::from_value(json!({
            "id": "sale", "name": "Sale", "kind": "sale", "stock": stock, "admission": admission
        }))
        .expect("test body parses");
        let (spec, slots) = body.validate(T0).expect("test body is valid");
        let clock = ManualClock::new(T0);
        let activity = Activity::new(spec, &slots, TokenKey::new(b"test-key"), T0, [9; 32]);
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(
            dir.path(),
            CommitSettings {
                window: Duration::ZERO,
                max_batch: 64,
                queue: 1024,
                checkpoint: Duration::from_secs(60),
            },
        )
        .expect("store opens");
        Bench {
            addr: start_actor(activity, &store, &clock),
            clock,
            next_session: 1,
            _store: store,
            _dir: dir,
        }
    }

    /// Moves the clock by `ms`, then steps the actor once.
    async fn tick_after(&self, ms: u64) {
        self.clock.advance_ms(ms);
        self.addr.send(Tick).await.expect("actor runs");
    }

    /// `user` joins over a WebSocket-like session; returns the session.
    async fn join(&mut self, user: &str) -> Session {
        let queue = Arc::new(SessionQueue::default());
        let handle = SessionHandle {
            id: self.next_session,
            output: Arc::clone(&queue) as _,
        };
        self.next_session += 1;
        let reply = self
            .addr
            .send(Join {
                invite: None,
                user: uid(user),
                ticket: None,
                session: Some(handle.clone()),
                pow: None,
            })
            .await
            .expect("actor runs")
            .expect("join accepted");
        Session {
            user: user.to_owned(),
            id: handle.id,
            ticket: reply.ticket.ticket,
            queue,
            unread: VecDeque::new(),
        }
    }

    /// `user` joins and is admitted at once (the bucket and a unit allow it).
    async fn join_admitted(&mut self, user: &str) -> Session {
        let mut s = self.join(user).await;
        s.admitted().await;
        s
    }

    /// The operator's view, once everything decided so far is durable.
    async fn view(&self) -> ActivityView {
        self.admin(Admin::View { admin: true }).await
    }

    async fn admin(&self, call: Admin) -> ActivityView {
        self.addr
            .send(call)
            .await
            .expect("actor runs")
            .expect("admin call accepted")
    }

    /// The ticket's status as a poller would see it (polling also keeps a detached
    /// place alive, so only read tickets whose grace is not under test).
    async fn status(&self, s: &Session) -> &'static str {
        self.addr
            .send(GetTicket {
                user: uid(&s.user),
                ticket: s.ticket.clone(),
            })
            .await
            .expect("actor runs")
            .expect("own ticket")
            .status
    }

    async fn detach(&self, s: &Session) {
        self.addr
            .send(Detach {
                user: uid(&s.user),
                session_id: s.id,
            })
            .await
            .expect("actor runs");
    }
}

fn uid(user: &str) -> UserId {
    UserId::parse(user).expect("valid user id")
}

/// What the actor pushed to one session, read in order.
struct Session {
    user: String,
    id: u64,
    ticket: String,
    queue: Arc<SessionQueue>,
    unread: VecDeque<ToSession>,
}

impl Session {
    /// The next push (waiting for it: pushes go out once their commit is durable).
    async fn next(&mut self) -> Push {
        loop {
            match self.unread.pop_front() {
                Some(ToSession::Push(p)) => return p,
                Some(other) => panic!("{}: unexpected {other:?}", self.user),
                None => {}
            }
            match self.queue.drain() {
                Drained::Messages(m) if !m.is_empty() => self.unread = m,
                Drained::Messages(_) => tokio::time::timeout(HANG, self.queue.woken())
                    .await
                    .unwrap_or_else(|_| panic!("{}: no push within {HANG:?}", self.user)),
                Drained::Overflowed => panic!("{}: session overflowed", self.user),
            }
        }
    }

    /// Skips pushes until one that `is` accepts; returns it.
    async fn until(&mut self, is: impl Fn(&Push) -> bool) -> Push {
        loop {
            let p = self.next().await;
            if is(&p) {
                return p;
            }
        }
    }

    async fn admitted(&mut self) -> Push {
        self.until(|p| matches!(p, Push::Admitted { .. })).await
    }
}

#[actix_rt::test]
async fn admission_at_the_configured_rate_happens_only_when_ticked() {
    let mut bench = Bench::sale(5, json!({"rate_per_sec": 10, "max_active": 100}));
    // A full bucket admits the first at once; ten a second is one per 100 ms after.
    bench.join_admitted("u0").await;
    let mut second = bench.join("u1").await;
    let mut third = bench.join("u2").await;
    assert_eq!(bench.view().await.admitted_total, 1);

    bench.clock.advance_ms(1_000);
    assert_eq!(
        bench.view().await.admitted_total,
        1,
        "time passing admits nobody until a tick"
    );
    bench.tick_after(0).await;
    second.admitted().await;
    assert_eq!(bench.view().await.admitted_total, 2);

    bench.tick_after(0).await;
    assert_eq!(
        bench.view().await.admitted_total,
        2,
        "a second tick at the same instant finds the bucket empty"
    );
    assert_eq!(bench.status(&third).await, "waiting");

    bench.tick_after(100).await;
    third.admitted().await;
    let v = bench.view().await;
    assert_eq!((v.admitted_total, v.held, v.waiting), (3, 3, 0));
}

#[actix_rt::test]
async fn an_expired_token_returns_its_unit_and_admits_the_next_in_line() {
    let mut bench = Bench::sale(1, json!({"rate_per_sec": 100, "token_ttl_secs": 2}));
    let mut holder = bench.join_admitted("u0").await;
    let mut next = bench.join("u1").await;
    assert_eq!(bench.status(&next).await, "waiting");

    bench.tick_after(1_999).await;
    let v = bench.view().await;
    assert_eq!((v.held, v.expired_total), (1, Some(0)), "not yet due");

    bench.tick_after(1).await;
    assert_eq!(holder.next().await, Push::Expired);
    next.admitted().await;
    let v = bench.view().await;
    assert_eq!(
        (v.admitted_total, v.expired_total, v.held, v.available),
        (2, Some(1), 1, 0),
        "the unit went back and on to the next user"
    );
}

#[actix_rt::test]
async fn a_detached_place_is_dropped_once_the_reconnect_grace_has_passed() {
    let mut bench = Bench::sale(
        1,
        json!({"rate_per_sec": 100, "max_active": 1, "reconnect_grace_secs": 5}),
    );
    bench.join_admitted("u0").await;
    let away = bench.join("u1").await;
    let _stays = bench.join("u2").await;
    assert_eq!(bench.view().await.waiting, 2);

    bench.detach(&away).await;
    bench.tick_after(4_999).await;
    assert_eq!(bench.view().await.waiting, 2, "still within the grace");

    bench.tick_after(1).await;
    assert_eq!(bench.view().await.waiting, 1);
    assert_eq!(bench.status(&away).await, "left");
}

#[actix_rt::test]
async fn a_paused_activity_admits_nobody_until_resumed() {
    let mut bench = Bench::sale(
        5,
        json!({"rate_per_sec": 100, "max_active": 1, "token_ttl_secs": 2}),
    );
    let mut holder = bench.join_admitted("u0").await;
    let mut waiting = bench.join("u1").await;
    bench.admin(Admin::Pause).await;
    // Pause notices go out within the next tick's budget.
    bench.tick_after(0).await;
    waiting.until(|p| *p == Push::Paused).await;

    // The holder's token expires: its unit is back, but nobody is admitted.
    bench.tick_after(2_000).await;
    assert_eq!(holder.next().await, Push::Expired);
    bench.tick_after(10_000).await;
    let v = bench.view().await;
    assert_eq!((v.admitted_total, v.held, v.waiting), (1, 0, 1));
    assert_eq!(bench.status(&waiting).await, "waiting");

    bench.admin(Admin::Resume).await;
    waiting.until(|p| *p == Push::Resumed).await;
    waiting.admitted().await;
    assert_eq!(bench.view().await.admitted_total, 2);
}
