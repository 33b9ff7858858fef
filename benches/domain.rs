//! Criterion micro-benchmarks of the pure domain: waiting room, ledger, tokens, JWTs,
//! one admission tick at 10^3, 10^5 and 10^6 waiting, and a join and a purchase.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice::domain::activity::orders::PurchaseRequest;
use sluice::domain::activity::{Activity, Push};
use sluice::domain::clock::Millis;
use sluice::domain::ids::{SlotId, UserId};
use sluice::domain::jwt::JwtKey;
use sluice::domain::ledger::Ledger;
use sluice::domain::spec::CreateActivity;
use sluice::domain::token::{TokenClaims, TokenKey};
use sluice::domain::waiting_room::WaitingRoom;
use std::hint::black_box;
use std::time::{Duration, Instant};

const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];
const T0: Millis = 1_700_000_000_000;

/// xorshift64*: deterministic and cheap enough not to show up in the timings.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn room_of(n: usize) -> WaitingRoom<u64> {
    let mut room = WaitingRoom::new();
    for i in 0..n as u64 {
        room.push(i);
    }
    room
}

fn front_seq(room: &mut WaitingRoom<u64>) -> u64 {
    room.front()
        .map(|(s, _)| s)
        .expect("the room is never empty")
}

fn waiting_room(c: &mut Criterion) {
    let mut g = c.benchmark_group("waiting_room");
    g.throughput(Throughput::Elements(1));
    for n in SIZES {
        // position: all of 0..n are live, so every random seq is a live place.
        let room = room_of(n);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        g.bench_with_input(BenchmarkId::new("position", n), &n, |b, &n| {
            b.iter(|| room.position(black_box(rng.below(n as u64))))
        });
        drop(room);

        // remove from the middle half (by sequence span), in batches of distinct live
        // places chosen outside the timer from a side table (so choosing them does not
        // warm the room's cache lines); each batch is refilled (pop K at the front, push
        // 2K at the back) outside the timer, so the room stays at n live places.
        let mut room = room_of(n);
        let mut dead = vec![false; n];
        let batch = (n / 8).min(256);
        g.bench_with_input(BenchmarkId::new("remove_middle", n), &n, |b, _| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut left = iters;
                let mut seqs = Vec::with_capacity(batch);
                while left > 0 {
                    let k = (left as usize).min(batch);
                    left -= k as u64;
                    let lo = front_seq(&mut room);
                    let hi = room.next_seq();
                    let span = hi - lo;
                    seqs.clear();
                    while seqs.len() < k {
                        let mut s = lo + span / 4 + rng.below(span / 2);
                        while dead[s as usize] {
                            s = if s + 1 >= hi { lo } else { s + 1 };
                        }
                        dead[s as usize] = true;
                        seqs.push(s);
                    }
                    let start = Instant::now();
                    for &s in &seqs {
                        black_box(room.remove(s));
                    }
                    total += start.elapsed();
                    for _ in 0..k {
                        let (s, _) = room.pop_front().expect("n > k places");
                        dead[s as usize] = true;
                        room.push(0);
                        room.push(0);
                    }
                    dead.resize(room.next_seq() as usize, false);
                }
                total
            })
        });
        assert_eq!(room.len(), n, "remove_middle keeps the room at n places");
        drop((room, dead));

        // steady state: the head leaves, a newcomer joins at the back.
        let mut room = room_of(n);
        g.bench_with_input(BenchmarkId::new("pop_front_push", n), &n, |b, _| {
            b.iter(|| {
                let (_, v) = room.pop_front().expect("the room is never empty");
                room.push(v)
            })
        });
    }
    g.finish();
}

fn slot(i: usize) -> SlotId {
    SlotId::parse(&format!("s{i}")).expect("a valid slot id")
}

fn ledger(c: &mut Criterion) {
    let mut g = c.benchmark_group("ledger");
    g.throughput(Throughput::Elements(1));
    let mut l = Ledger::new();
    l.add(&slot(0), "stock", 100_000_000)
        .expect("under MAX_TOTAL");
    g.bench_function("hold_release/1_slot", |b| {
        b.iter(|| {
            let h = l.hold(black_box(1));
            l.release(h, None);
        })
    });
    g.bench_function("hold_sell_unsell/1_slot", |b| {
        b.iter(|| {
            let h = l.hold(black_box(1));
            l.sell(0, h, 1).expect("stock is plentiful");
            l.unsell(0, 1);
        })
    });
    assert!(l.is_consistent());

    // Appointment worst case: 10 000 slots (MAX_SLOTS) and only the last has room,
    // so `hold` scans every slot (it is O(slots), not O(log slots)).
    let slots = 10_000;
    let mut l = Ledger::new();
    for i in 0..slots {
        l.add(&slot(i), "slot", 1).expect("under MAX_TOTAL");
    }
    for i in 0..slots - 1 {
        let h = l.hold(1);
        l.sell(i, h, 1).expect("slot i has its unit");
    }
    g.bench_function("hold_release/10000_slots_last_free", |b| {
        b.iter(|| {
            let h = l.hold(black_box(1));
            l.release(h, None);
        })
    });
    g.bench_function("hold_sell_unsell/10000_slots_last_free", |b| {
        b.iter(|| {
            let h = l.hold(black_box(1));
            l.sell(slots - 1, h, 1).expect("the last slot has its unit");
            l.unsell(slots - 1, 1);
        })
    });
    assert!(l.is_consistent());
    g.finish();
}

fn tokens(c: &mut Criterion) {
    let mut g = c.benchmark_group("token");
    g.throughput(Throughput::Elements(1));
    let key = TokenKey::new(b"purchase-token-secret-of-32-bytes");
    let claims = TokenClaims {
        activity: "spring-drop-2026".into(),
        user: "user-1234567".into(),
        hold: 123_456,
        expires_at_ms: T0 + 120_000,
    };
    let token = key.sign(&claims);
    g.bench_function("sign", |b| b.iter(|| key.sign(black_box(&claims))));
    g.bench_function("verify", |b| {
        b.iter(|| key.verify(black_box(&token)).expect("our own token"))
    });
    g.finish();

    let mut g = c.benchmark_group("jwt");
    g.throughput(Throughput::Elements(1));
    let key = JwtKey::new(b"identity-jwt-secret-of-32-bytes!");
    let user = UserId::parse("user-1234567").expect("a valid user id");
    let jwt = key.issue(&user, T0 / 1000 + 3600);
    g.bench_function("verify", |b| {
        b.iter(|| {
            key.verify(black_box(&jwt), T0)
                .expect("valid until T0 + 1 h")
        })
    });
    g.finish();
}

/// A sale with `n` attached places waiting, admitting exactly one user per 1 ms tick
/// (rate 1000/s gives the pacer 1.0 token per ms), with unlimited `max_active` and stock.
struct AdmitRig {
    n: usize,
    /// WebSocket places (position pushes) or HTTP-polling ones (none).
    attach: bool,
    activity: Activity,
    now: Millis,
    next_user: usize,
}

/// Rebuild before the first 4.5 s position refresh comes due: it re-sends every
/// waiting place's position at once, an O(n) tick that is not an admission's cost.
const REBUILD_AFTER_MS: u64 = 4_000;

impl AdmitRig {
    fn new(n: usize, attach: bool) -> Self {
        let body: CreateActivity = serde_json::from_str(
            r#"{"id":"bench","name":"bench","kind":"sale","stock":100000000,
                "admission":{"rate_per_sec":1000,"max_active":1000000,"queue_capacity":10000000,
                             "token_ttl_secs":86400,"reconnect_grace_secs":86400}}"#,
        )
        .expect("bench activity json");
        let (spec, slots) = body.validate(T0).expect("a valid bench activity");
        let mut rig = Self {
            n,
            attach,
            activity: Activity::new(spec, &slots, TokenKey::new(b"k"), T0, [9; 32]),
            now: T0,
            next_user: 0,
        };
        // The pacer starts with a full bucket (100 admissions) taken by the first joins.
        loop {
            let waiting = rig.activity.view(rig.now, false).waiting as usize;
            if waiting >= n {
                break;
            }
            for _ in waiting..n {
                rig.join_one();
                if rig.next_user.is_multiple_of(10_000) {
                    drop(rig.activity.take_effects());
                }
            }
        }
        drop(rig.activity.take_effects());
        rig
    }

    fn join_one(&mut self) {
        let user = UserId::parse(&format!("user-{}", self.next_user)).expect("a valid user id");
        self.next_user += 1;
        self.activity
            .join(&user, self.attach, self.now)
            .expect("the queue has room");
    }

    /// Untimed: a newcomer joins (keeping n waiting once the tick admits one), and the
    /// activity is rebuilt when the 4.5 s refresh approaches.
    fn prepare(&mut self) {
        if self.now >= T0 + REBUILD_AFTER_MS {
            let (n, attach) = (self.n, self.attach);
            // Drop the old activity first so two large ones never coexist.
            *self = Self::new(0, attach);
            *self = Self::new(n, attach);
        }
        self.join_one();
        drop(self.activity.take_effects());
        self.now += 1;
    }

    /// Timed: one tick that admits one user, and collecting its effects.
    fn tick(&mut self) -> usize {
        self.activity.tick(self.now);
        let fx = self.activity.take_effects();
        fx.pushes.len()
    }
}

fn admission(c: &mut Criterion) {
    let mut g = c.benchmark_group("activity");
    g.throughput(Throughput::Elements(1));
    for n in SIZES {
        for (name, attach) in [("admit_tick_ws", true), ("admit_tick_polling", false)] {
            let built = Instant::now();
            let mut rig = AdmitRig::new(n, attach);
            let build = built.elapsed();
            // Untimed probe: how many sessions one admission wakes (Position pushes).
            let (mut admitted, mut positions) = (0usize, 0usize);
            for _ in 0..1_000 {
                rig.prepare();
                rig.activity.tick(rig.now);
                for o in rig.activity.take_effects().pushes {
                    match o.push {
                        Push::Admitted { .. } => admitted += 1,
                        Push::Position { .. } => positions += 1,
                        _ => {}
                    }
                }
            }
            assert_eq!(admitted, 1_000, "one admission per 1 ms tick");
            eprintln!(
                "{name} n={n}: built in {build:.2?}; {:.1} position pushes per admission",
                positions as f64 / admitted as f64
            );
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        rig.prepare();
                        let start = Instant::now();
                        black_box(rig.tick());
                        total += start.elapsed();
                    }
                    total
                })
            });
        }
    }
    g.finish();
}

/// Users per timed batch of joins or purchases; the setup between batches is untimed.
const BATCH: usize = 1_000;
/// A rig is rebuilt after this many joins or purchases, so per-user records and orders
/// do not grow without bound over a long measurement.
const REBUILD_AFTER_CALLS: usize = 200_000;

fn bench_activity(json: &str) -> Activity {
    let body: CreateActivity = serde_json::from_str(json).expect("bench activity json");
    let (spec, slots) = body.validate(T0).expect("a valid bench activity");
    Activity::new(spec, &slots, TokenKey::new(b"k"), T0, [9; 32])
}

fn users(from: usize, n: usize) -> Vec<UserId> {
    (from..from + n)
        .map(|i| UserId::parse(&format!("user-{i}")).expect("a valid user id"))
        .collect()
}

/// A join into a room of 10 000 (paced out, so the join itself admits nobody): the
/// place, the ticket, the per-user records and the `queued` push.
fn join(c: &mut Criterion) {
    const WAITING: usize = 10_000;
    const SALE: &str = r#"{"id":"bench","name":"bench","kind":"sale","stock":100000000,
        "admission":{"rate_per_sec":1,"max_active":1000000,"queue_capacity":10000000,
                     "token_ttl_secs":86400,"reconnect_grace_secs":86400}}"#;
    let fresh = || {
        let mut a = bench_activity(SALE);
        for u in users(0, WAITING) {
            a.join(&u, true, T0).expect("the queue has room");
        }
        drop(a.take_effects());
        a
    };
    let mut g = c.benchmark_group("activity");
    g.throughput(Throughput::Elements(1));
    let mut activity = fresh();
    let mut next = WAITING;
    g.bench_function(BenchmarkId::new("join", WAITING), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let k = left.min(BATCH);
                left -= k;
                if next >= WAITING + REBUILD_AFTER_CALLS {
                    drop(std::mem::replace(&mut activity, fresh()));
                    next = WAITING;
                }
                let batch = users(next, k);
                next += k;
                let start = Instant::now();
                for u in &batch {
                    black_box(activity.join(u, true, T0).expect("the queue has room"));
                }
                total += start.elapsed();
                drop(activity.take_effects());
                for u in &batch {
                    activity.leave(u, T0).expect("a live place");
                }
                drop(activity.take_effects());
            }
            total
        })
    });
    g.finish();
}

/// A purchase with a token already verified: the hold becomes a pending order.
fn purchase(c: &mut Criterion) {
    const SALE: &str = r#"{"id":"bench","name":"bench","kind":"sale","stock":100000000,
        "payment_timeout_secs":86400,
        "admission":{"rate_per_sec":100000,"max_active":1000000,"queue_capacity":10000000,
                     "token_ttl_secs":86400,"reconnect_grace_secs":86400}}"#;
    let key = TokenKey::new(b"k");
    let mut g = c.benchmark_group("activity");
    g.throughput(Throughput::Elements(1));
    let mut activity = bench_activity(SALE);
    let (mut next, mut now) = (0usize, T0);
    g.bench_function("purchase", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let k = left.min(BATCH);
                left -= k;
                if next >= REBUILD_AFTER_CALLS {
                    drop(std::mem::replace(&mut activity, bench_activity(SALE)));
                    next = 0;
                }
                // Admitted at once: the bucket holds a tenth of a second (10 000).
                now += 1_000;
                for u in users(next, k) {
                    activity.join(&u, false, now).expect("the queue has room");
                }
                next += k;
                let requests: Vec<PurchaseRequest> = activity
                    .take_effects()
                    .pushes
                    .into_iter()
                    .filter_map(|o| match o.push {
                        Push::Admitted { token, .. } => Some(PurchaseRequest {
                            user: o.user,
                            claims: key.verify(&token).expect("our own token"),
                            quantity: 1,
                            slot_id: None,
                        }),
                        _ => None,
                    })
                    .collect();
                assert_eq!(requests.len(), k, "every join admitted at once");
                let start = Instant::now();
                for req in requests {
                    black_box(activity.purchase(req, now).expect("a live hold"));
                }
                total += start.elapsed();
                drop(activity.take_effects());
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = waiting_room, ledger, tokens, admission, join, purchase
}
criterion_main!(benches);
