//! Behaviour of the activity state machine, driven with explicit time; the single
//! entry points the actor calls are checked against the calls they replace in
//! `entry_points`.

mod entry_points;
mod events;
mod fairness;
mod gate;

use super::orders::PurchaseRequest;
use super::*;
use crate::domain::ids::{SlotId, UserId};
use crate::domain::spec::{AdmissionPatch, CreateActivity};
use proptest::prelude::*;

const T0: Millis = 1_000_000;

fn key() -> TokenKey {
    TokenKey::new(b"test-key")
}

fn sale(json: &str) -> Activity {
    let body: CreateActivity = serde_json::from_str(json).expect("test json");
    let (spec, slots) = body.validate(T0).expect("valid spec");
    Activity::new(spec, &slots, key(), T0, [9; 32])
}

fn u(i: usize) -> UserId {
    UserId::parse(&format!("user-{i}")).expect("valid")
}

fn pushes_for(fx: &Effects, user: &UserId) -> Vec<Push> {
    fx.pushes
        .iter()
        .filter(|o| &o.user == user)
        .map(|o| o.push.clone())
        .collect()
}

fn token_of(fx: &Effects, user: &UserId) -> Option<String> {
    pushes_for(fx, user).into_iter().find_map(|p| match p {
        Push::Admitted { token, .. } => Some(token),
        _ => None,
    })
}

fn buy(
    a: &mut Activity,
    user: &UserId,
    token: &str,
    now: Millis,
) -> Result<Purchased, ActivityError> {
    let claims = key().verify(token).expect("our token");
    a.purchase(
        PurchaseRequest {
            user: user.clone(),
            claims,
            quantity: 1,
            slot_id: None,
        },
        now,
    )
}

use super::orders::Purchased;

#[test]
fn admits_in_join_order_at_the_configured_pace() {
    let mut a = sale(
        r#"{"id":"s","name":"S","kind":"sale","stock":3,"admission":{"rate_per_sec":10,"max_active":100}}"#,
    );
    for i in 0..5 {
        a.join(&u(i), true, T0).expect("join");
    }
    let mut admitted = Vec::new();
    for step in 0..=20 {
        a.tick(T0 + step * 50);
        let fx = a.take_effects();
        for o in &fx.pushes {
            if matches!(o.push, Push::Admitted { .. }) {
                admitted.push(o.user.clone());
            }
        }
    }
    assert_eq!(admitted, vec![u(0), u(1), u(2)]);
    a.check_invariants().expect("invariants");
}

#[test]
fn everyone_waiting_hears_sold_out_once_nothing_is_left() {
    let mut a =
        sale(r#"{"id":"s","name":"S","kind":"sale","stock":1,"admission":{"rate_per_sec":100}}"#);
    for i in 0..3 {
        a.join(&u(i), true, T0).expect("join");
    }
    a.tick(T0 + 100);
    let fx = a.take_effects();
    let token = token_of(&fx, &u(0)).expect("first admitted");
    buy(&mut a, &u(0), &token, T0 + 200).expect("buy");
    let fx = a.take_effects();
    assert_eq!(pushes_for(&fx, &u(1)), vec![Push::SoldOut]);
    assert_eq!(pushes_for(&fx, &u(2)), vec![Push::SoldOut]);
    assert_eq!(a.view(T0, false).phase, Phase::SoldOut);
    assert!(matches!(
        a.join(&u(9), true, T0 + 300),
        Err(ActivityError::SoldOut(_))
    ));
}

#[test]
fn a_long_line_hears_sold_out_a_ticks_share_at_a_time_and_a_late_resume_hears_it_too() {
    use super::lifecycle::ENDS_PER_TICK;
    let mut a =
        sale(r#"{"id":"s","name":"S","kind":"sale","stock":1,"admission":{"rate_per_sec":100}}"#);
    let n = ENDS_PER_TICK + 501;
    let tickets: Vec<String> = (0..n)
        .map(|i| a.join(&u(i), true, T0).expect("join").ticket)
        .collect();
    a.tick(T0 + 100);
    let fx = a.take_effects();
    let token = token_of(&fx, &u(0)).expect("first admitted");
    buy(&mut a, &u(0), &token, T0 + 200).expect("buy");
    let ended = |fx: &Effects| {
        let told = fx.pushes.iter().filter(|o| o.push == Push::SoldOut).count();
        let deleted = fx
            .mutations
            .iter()
            .filter(|m| matches!(m, Mutation::DelPlace { .. }))
            .count();
        (told, deleted)
    };
    // One commit never ends the whole line: its write would be as long as the line.
    assert_eq!(ended(&a.take_effects()), (ENDS_PER_TICK, ENDS_PER_TICK));
    assert_eq!(pushes_for(&a.take_effects(), &u(n - 1)), vec![]);
    a.tick(T0 + 250);
    assert_eq!(ended(&a.take_effects()), (500, 500));
    a.tick(T0 + 300);
    assert_eq!(ended(&a.take_effects()), (0, 0));
    assert_eq!(a.view(T0 + 300, false).waiting, 0);
    // Its final frame lost (a failover), a session comes back with its ticket.
    assert!(matches!(
        a.resume(&u(1), &tickets[1], T0 + 400),
        Err(ActivityError::SoldOut(_))
    ));
    assert!(matches!(
        a.resume(&u(1), "no-such-ticket", T0 + 400),
        Err(ActivityError::SoldOut(_))
    ));
    // The same through the whole join request (WebSocket, relay), which reads the
    // ticket first.
    assert!(matches!(
        a.join_or_resume(&u(2), Some(&tickets[2]), None, true, T0 + 400),
        Err(ActivityError::SoldOut(_))
    ));
    a.check_invariants().expect("invariants");
}

#[test]
fn expired_hold_returns_unit_and_admits_next() {
    let mut a = sale(
        r#"{"id":"s","name":"S","kind":"sale","stock":1,"admission":{"rate_per_sec":100,"token_ttl_secs":2}}"#,
    );
    a.join(&u(0), true, T0).expect("join");
    a.join(&u(1), true, T0).expect("join");
    a.tick(T0 + 100);
    let first = token_of(&a.take_effects(), &u(0)).expect("admitted");
    a.tick(T0 + 2_200);
    let fx = a.take_effects();
    assert!(pushes_for(&fx, &u(0)).contains(&Push::Expired));
    assert!(token_of(&fx, &u(1)).is_some(), "next user admitted");
    assert_eq!(
        buy(&mut a, &u(0), &first, T0 + 2_300).err(),
        Some(ActivityError::TokenExpired)
    );
    a.check_invariants().expect("invariants");
}

#[test]
fn purchase_is_idempotent_and_bound_to_its_user() {
    let mut a = sale(r#"{"id":"s","name":"S","kind":"sale","stock":5,"price_cents":250}"#);
    a.join(&u(0), true, T0).expect("join");
    let token = token_of(&a.take_effects(), &u(0)).expect("admitted at once");
    let first = buy(&mut a, &u(0), &token, T0 + 1).expect("buy");
    assert!(first.created);
    assert_eq!(first.order.amount_cents, 250);
    let again = buy(&mut a, &u(0), &token, T0 + 999_999).expect("replay");
    assert!(!again.created);
    assert_eq!(again.order.n, first.order.n);
    assert!(matches!(
        buy(&mut a, &u(1), &token, T0 + 2),
        Err(ActivityError::Forbidden(_))
    ));
    assert_eq!(a.view(T0, false).sold, 1);
    assert!(matches!(
        a.join(&u(0), true, T0 + 3),
        Err(ActivityError::LimitReached)
    ));
}

#[test]
fn one_place_per_user() {
    let mut a = sale(r#"{"id":"s","name":"S","kind":"sale","stock":0}"#);
    a.add_stock(0, T0).expect("no-op add");
    let mut b =
        sale(r#"{"id":"s","name":"S","kind":"sale","stock":1,"admission":{"max_active":1}}"#);
    b.join(&u(0), true, T0).expect("join");
    let j1 = b.join(&u(1), true, T0).expect("join");
    let j2 = b.join(&u(1), false, T0).expect("rejoin");
    assert_eq!(j1.ticket, j2.ticket);
    assert!(j2.existing);
    assert_eq!(b.view(T0, false).waiting, 1);
}

#[test]
fn a_smaller_purchase_returns_the_rest_at_once() {
    let mut a = sale(r#"{"id":"s","name":"S","kind":"sale","stock":3,"per_user_limit":3}"#);
    a.join(&u(0), true, T0).expect("join");
    let token = token_of(&a.take_effects(), &u(0)).expect("admitted");
    assert_eq!(a.view(T0, false).held, 3);
    buy(&mut a, &u(0), &token, T0 + 1).expect("buy one");
    let v = a.view(T0, false);
    assert_eq!((v.available, v.held, v.sold), (2, 0, 1));
}

fn appointment() -> Activity {
    sale(
        r#"{"id":"h","name":"H","kind":"appointment","slots":[{"id":"a","label":"A","capacity":1},{"id":"b","label":"B","capacity":1}],"admission":{"rate_per_sec":100}}"#,
    )
}

fn buy_slot(
    a: &mut Activity,
    user: &UserId,
    token: &str,
    slot: &str,
) -> Result<Purchased, ActivityError> {
    let claims = key().verify(token).expect("our token");
    a.purchase(
        PurchaseRequest {
            user: user.clone(),
            claims,
            quantity: 1,
            slot_id: Some(SlotId::parse(slot).expect("valid")),
        },
        T0 + 10,
    )
}

#[test]
fn a_full_slot_names_the_slots_left_and_the_token_still_buys_another() {
    let mut a = appointment();
    a.join(&u(0), true, T0).expect("join");
    a.join(&u(1), true, T0).expect("join");
    let fx = a.take_effects();
    let (t0, t1) = (
        token_of(&fx, &u(0)).expect("t0"),
        token_of(&fx, &u(1)).expect("t1"),
    );
    buy_slot(&mut a, &u(0), &t0, "b").expect("b free");
    let err = buy_slot(&mut a, &u(1), &t1, "b").expect_err("b full");
    match err {
        ActivityError::SoldOut(msg) => assert!(msg.contains("a (1)"), "{msg}"),
        other => panic!("{other:?}"),
    }
    buy_slot(&mut a, &u(1), &t1, "a").expect("same token, other slot");
    let v = a.view(T0, false);
    for s in v.slots.expect("slots") {
        assert_eq!(s.capacity, s.available + s.held + s.sold);
        assert_eq!(s.sold, 1);
    }
}

#[test]
fn prequeue_is_put_in_hmac_order_at_opening_and_ahead_of_later_joins() {
    let mut a = sale(
        r#"{"id":"s","name":"S","kind":"sale","stock":100,"opens_at":"2100-01-01T00:00:00Z","admission":{"rate_per_sec":1}}"#,
    );
    for i in 0..50 {
        a.join(&u(i), true, T0).expect("prejoin");
    }
    let fx = a.take_effects();
    assert!(matches!(pushes_for(&fx, &u(0))[0], Push::Prequeue { .. }));
    assert_eq!(a.view(T0, false).phase, Phase::Scheduled);
    let open = crate::domain::clock::parse_rfc3339("2100-01-01T00:00:00Z").expect("time");
    a.tick(open);
    a.join(&u(99), true, open).expect("late join");
    let fx = a.take_effects();
    let mut seqs: Vec<(u64, usize)> = Vec::new();
    for o in &fx.pushes {
        if let Push::Queued { seq, .. } = o.push {
            let i: usize = o.user.as_str()[5..].parse().expect("number");
            seqs.push((seq, i));
        }
    }
    seqs.sort();
    assert_eq!(seqs.len(), 51);
    assert_eq!(seqs.last().map(|s| s.1), Some(99), "late joiner is last");
    let order: Vec<usize> = seqs.iter().map(|s| s.1).take(50).collect();
    assert_ne!(order, (0..50).collect::<Vec<_>>(), "shuffled");
    assert!(fx
        .mutations
        .iter()
        .any(|m| matches!(m, Mutation::PutShuffle(_))));
}

#[test]
fn pause_stops_admission_and_resume_restarts_it() {
    let mut a =
        sale(r#"{"id":"s","name":"S","kind":"sale","stock":5,"admission":{"max_active":1}}"#);
    a.join(&u(0), true, T0).expect("join");
    a.join(&u(1), true, T0).expect("join");
    a.pause(T0).expect("pause");
    let fx = a.take_effects();
    assert!(pushes_for(&fx, &u(1)).contains(&Push::Paused));
    let t = token_of(&fx, &u(0)).expect("u0 admitted before pause");
    buy(&mut a, &u(0), &t, T0 + 1).expect("holders still buy while paused");
    a.tick(T0 + 5_000);
    assert!(token_of(&a.take_effects(), &u(1)).is_none());
    assert_eq!(a.view(T0, false).phase, Phase::Paused);
    a.resume_admission(T0 + 5_001).expect("resume");
    let fx = a.take_effects();
    assert!(pushes_for(&fx, &u(1)).contains(&Push::Resumed));
    assert!(token_of(&fx, &u(1)).is_some());
}

#[test]
fn wait_for_returns_keeps_places_until_every_unit_is_paid() {
    let mut a = sale(
        r#"{"id":"s","name":"S","kind":"sale","stock":1,"payment_timeout_secs":10,"admission":{"wait_for_returns":true}}"#,
    );
    a.join(&u(0), true, T0).expect("join");
    a.join(&u(1), true, T0).expect("join");
    let t = token_of(&a.take_effects(), &u(0)).expect("admitted");
    buy(&mut a, &u(0), &t, T0 + 1).expect("buy");
    assert!(!pushes_for(&a.take_effects(), &u(1)).contains(&Push::SoldOut));
    // Unpaid past pay_by: cancelled, the unit goes to the next in line.
    a.tick(T0 + 10_002);
    let fx = a.take_effects();
    assert!(token_of(&fx, &u(1)).is_some());
    assert_eq!(a.view(T0, false).cancelled, 1);
    a.check_invariants().expect("invariants");
}

#[test]
fn cancelled_orders_cannot_be_paid_and_paid_cannot_be_cancelled() {
    let mut a = sale(r#"{"id":"s","name":"S","kind":"sale","stock":2,"per_user_limit":1}"#);
    a.join(&u(0), true, T0).expect("join");
    a.join(&u(1), true, T0).expect("join");
    let fx = a.take_effects();
    let o0 = buy(&mut a, &u(0), &token_of(&fx, &u(0)).expect("t"), T0)
        .expect("buy")
        .order;
    let o1 = buy(&mut a, &u(1), &token_of(&fx, &u(1)).expect("t"), T0)
        .expect("buy")
        .order;
    a.cancel(o0.n, Some(&u(0)), T0).expect("cancel");
    assert!(matches!(
        a.pay(o0.n, Some(&u(0))),
        Err(ActivityError::Conflict(_))
    ));
    a.pay(o1.n, Some(&u(1))).expect("pay");
    assert!(matches!(
        a.cancel(o1.n, Some(&u(1)), T0),
        Err(ActivityError::Conflict(_))
    ));
    assert!(matches!(
        a.pay(o1.n, Some(&u(0))),
        Err(ActivityError::Forbidden(_))
    ));
    let v = a.view(T0, false);
    assert_eq!((v.available, v.sold, v.paid, v.cancelled), (1, 1, 1, 1));
}

#[test]
fn positions_are_pushed_as_the_queue_moves_and_never_rise() {
    let mut a = sale(
        r#"{"id":"s","name":"S","kind":"sale","stock":1000,"admission":{"rate_per_sec":20,"max_active":1000}}"#,
    );
    for i in 0..300 {
        a.join(&u(i), true, T0).expect("join");
    }
    a.take_effects();
    let watched = u(299);
    let mut last = 300;
    let mut updates = 0;
    let mut now = T0;
    for _ in 0..200 {
        now += 50;
        a.tick(now);
        for p in pushes_for(&a.take_effects(), &watched) {
            if let Push::Position { position, .. } = p {
                assert!(position <= last, "{position} > {last}");
                last = position;
                updates += 1;
            }
        }
    }
    // About 200 admissions over 10 s (plus the initial burst of a full bucket):
    // positions 300 -> ~100, with at least one update per 1% move.
    assert!((95..=100).contains(&last), "{last}");
    assert!(updates >= 50, "only {updates} updates");
}

#[test]
fn detached_places_are_dropped_after_the_grace() {
    let mut a = sale(
        r#"{"id":"s","name":"S","kind":"sale","stock":1,"admission":{"max_active":1,"reconnect_grace_secs":5}}"#,
    );
    a.join(&u(0), true, T0).expect("join");
    let j = a.join(&u(1), true, T0).expect("join");
    a.detach(&u(1), T0);
    a.tick(T0 + 4_000);
    assert_eq!(a.view(T0, false).waiting, 1);
    a.resume(&u(1), &j.ticket, T0 + 4_500)
        .expect("resume within grace");
    a.detach(&u(1), T0 + 4_600);
    a.tick(T0 + 9_700);
    assert_eq!(a.view(T0, false).waiting, 0);
}

#[test]
fn restore_rebuilds_places_holds_and_orders() {
    let mut a =
        sale(r#"{"id":"s","name":"S","kind":"sale","stock":3,"admission":{"max_active":2}}"#);
    let mut data = Restored::default();
    for i in 0..4 {
        a.join(&u(i), true, T0).expect("join");
    }
    let fx = a.take_effects();
    let t0 = token_of(&fx, &u(0)).expect("t0");
    buy(&mut a, &u(0), &t0, T0).expect("buy");
    let mut all = fx.mutations;
    all.extend(a.take_effects().mutations);
    // Fold the mutations the way the store would.
    let mut places = std::collections::BTreeMap::new();
    let mut holds = std::collections::BTreeMap::new();
    let mut orders = std::collections::BTreeMap::new();
    for m in all {
        match m {
            Mutation::PutPlace { seq, place } => {
                places.insert(seq, place);
            }
            Mutation::DelPlace { seq } => {
                places.remove(&seq);
            }
            Mutation::PutHold(h) => {
                holds.insert(h.id, h);
            }
            Mutation::DelHold { id } => {
                holds.remove(&id);
            }
            Mutation::PutOrder(o) => {
                orders.insert(o.n, (*o).clone());
            }
            _ => {}
        }
    }
    data.places = places.into_iter().collect();
    data.holds = holds.into_values().collect();
    data.orders = orders.into_values().collect();
    let before = a.view(T0, true);
    // Admissions do not rewrite the record: a stale counter comes back from the holds.
    let mut record = a.record();
    record.admitted_total = 0;
    let mut b = Activity::restore(record, data, key(), T0 + 10, [8; 32]);
    let after = b.view(T0 + 10, true);
    assert_eq!(
        (before.available, before.held, before.sold, before.waiting),
        (after.available, after.held, after.sold, after.waiting)
    );
    assert_eq!(after.admitted_total, before.admitted_total);
    b.check_invariants().expect("invariants");
    // The pre-crash token of user 1 still buys.
    let t1 = token_of(&fx_with_admitted(&mut b, &u(1)), &u(1)).expect("token re-sent on resume");
    buy(&mut b, &u(1), &t1, T0 + 20).expect("pre-crash token buys");
}

fn fx_with_admitted(a: &mut Activity, user: &UserId) -> Effects {
    a.join(user, true, T0 + 15).expect("resume");
    a.take_effects()
}

#[test]
fn live_admission_changes_apply_at_once() {
    let mut a =
        sale(r#"{"id":"s","name":"S","kind":"sale","stock":10,"admission":{"max_active":1}}"#);
    a.join(&u(0), true, T0).expect("join");
    a.join(&u(1), true, T0).expect("join");
    a.take_effects();
    let patch = AdmissionPatch {
        max_active: Some(2),
        ..Default::default()
    };
    a.patch_admission(&patch, T0 + 200).expect("patch");
    assert!(token_of(&a.take_effects(), &u(1)).is_some());
    let bad = AdmissionPatch {
        rate_per_sec: Some(0),
        ..Default::default()
    };
    assert!(matches!(
        a.patch_admission(&bad, T0),
        Err(ActivityError::Invalid(_))
    ));
}

#[derive(Debug, Clone)]
enum Op {
    Join(usize),
    Leave(usize),
    Detach(usize),
    Buy(usize, u32),
    Cancel(usize),
    Pay(usize),
    AddStock(u32),
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..12usize).prop_map(Op::Join),
        (0..12usize).prop_map(Op::Leave),
        (0..12usize).prop_map(Op::Detach),
        (0..12usize, 0..4u32).prop_map(|(i, q)| Op::Buy(i, q)),
        (0..12usize).prop_map(Op::Cancel),
        (0..12usize).prop_map(Op::Pay),
        (0..3u32).prop_map(Op::AddStock),
        (1..3000u64).prop_map(Op::Tick),
    ]
}

proptest! {
    #[test]
    fn invariants_hold_after_any_operation_sequence(
        ops in proptest::collection::vec(op(), 1..150),
        wfr in any::<bool>(),
    ) {
        let mut a = sale(&format!(
            r#"{{"id":"s","name":"S","kind":"sale","stock":4,"per_user_limit":2,"payment_timeout_secs":3,
                "admission":{{"rate_per_sec":5,"max_active":3,"token_ttl_secs":2,"reconnect_grace_secs":2,"wait_for_returns":{wfr}}}}}"#
        ));
        let mut now = T0;
        let mut tokens: std::collections::HashMap<usize, String> = Default::default();
        let mut orders: std::collections::HashMap<usize, u64> = Default::default();
        for o in ops {
            match o {
                Op::Join(i) => { let _ = a.join(&u(i), i % 2 == 0, now); }
                Op::Leave(i) => { let _ = a.leave(&u(i), now); }
                Op::Detach(i) => a.detach(&u(i), now),
                Op::Buy(i, q) => if let Some(t) = tokens.get(&i) {
                    let claims = key().verify(t).expect("ours");
                    if let Ok(p) = a.purchase(PurchaseRequest { user: u(i), claims, quantity: q, slot_id: None }, now) {
                        orders.insert(i, p.order.n);
                    }
                },
                Op::Cancel(i) => if let Some(n) = orders.get(&i) { let _ = a.cancel(*n, Some(&u(i)), now); },
                Op::Pay(i) => if let Some(n) = orders.get(&i) { let _ = a.pay(*n, Some(&u(i))); },
                Op::AddStock(n) => { let _ = a.add_stock(n, now); }
                Op::Tick(dt) => { now += dt; a.tick(now); }
            }
            for p in a.take_effects().pushes {
                if let Push::Admitted { token, .. } = p.push {
                    let i: usize = p.user.as_str()[5..].parse().expect("n");
                    tokens.insert(i, token);
                }
            }
            prop_assert!(a.check_invariants().is_ok(), "{:?}", a.check_invariants());
            let v = a.view(now, true);
            prop_assert!(v.active_tokens.unwrap_or(0) <= 3);
        }
    }
}
