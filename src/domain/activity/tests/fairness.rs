//! Auditable fairness: the commitment, the HMAC order of the pre-queue, the public
//! line, over random pre-queues and random sales.

use super::*;
use crate::domain::activity::fairness::{commitment_of, hex, rank, LineRecord, LogLine};
use std::collections::{BTreeMap, HashSet};

const OPENS: &str = "2100-01-01T00:00:00Z";

fn scheduled(seed: [u8; 32]) -> Activity {
    let body: CreateActivity = serde_json::from_str(&format!(
        r#"{{"id":"s","name":"S","kind":"sale","stock":5,"opens_at":"{OPENS}","admission":{{"rate_per_sec":1000,"max_active":1000}}}}"#
    ))
    .expect("test json");
    let (spec, slots) = body.validate(T0).expect("valid spec");
    Activity::new(spec, &slots, key(), T0, seed)
}

fn opens() -> Millis {
    crate::domain::clock::parse_rfc3339(OPENS).expect("time")
}

/// The whole log, page by page.
fn whole_log(a: &Activity, page: usize) -> Vec<LogLine> {
    let mut out = Vec::new();
    let mut from = 0;
    loop {
        let p = a.fairness_log(from, page);
        out.extend(p.lines);
        match p.next {
            Some(n) => from = n,
            None => return out,
        }
    }
}

#[test]
fn the_commitment_is_public_from_creation_and_the_seed_only_after_opening() {
    let seed = [42u8; 32];
    let mut a = scheduled(seed);
    let want = hex(&commitment_of(&seed));
    let view = a.view(T0, false);
    assert_eq!(view.fairness.map(|f| f.commitment), Some(want.clone()));
    assert_eq!(a.fairness().seed, None, "hidden before opening");
    assert_eq!(a.record().fairness_seed, Some(hex(&seed)), "durable");
    a.tick(opens());
    let f = a.fairness();
    assert_eq!(f.commitment, Some(want));
    assert_eq!(f.seed, Some(hex(&seed)));
}

#[test]
fn an_activity_open_at_creation_commits_to_nothing() {
    let a = sale(r#"{"id":"s","name":"S","kind":"sale","stock":1}"#);
    assert!(a.view(T0, false).fairness.is_none());
    assert_eq!(a.fairness().commitment, None);
}

#[test]
fn a_restored_activity_keeps_its_seed_and_an_old_record_gets_one_once() {
    let mut a = scheduled([1; 32]);
    a.take_effects();
    let rec = a.record();
    let b = Activity::restore(rec.clone(), Restored::default(), key(), T0 + 5, [2; 32]);
    assert_eq!(b.fairness(), a.fairness());
    // A record written before auditable fairness: the fresh seed is committed to
    // and written back.
    let mut old = rec;
    old.fairness_seed = None;
    let json = serde_json::to_string(&old).expect("json");
    assert!(!json.contains("fairness_seed"));
    let old: ActivityRecord = serde_json::from_str(&json).expect("an old record loads");
    let mut c = Activity::restore(old, Restored::default(), key(), T0 + 5, [2; 32]);
    assert_eq!(c.fairness().commitment, Some(hex(&commitment_of(&[2; 32]))));
    assert!(c.take_effects().record_dirty, "the new seed is persisted");
}

#[test]
fn scheduling_later_commits_once_and_moving_or_clearing_the_time_keeps_the_seed() {
    let mut a = sale(r#"{"id":"s","name":"S","kind":"sale","stock":1}"#);
    assert_eq!(a.view(T0, false).phase, Phase::Open);
    a.schedule(Some(T0 + 60_000), [7; 32], T0)
        .expect("untouched: schedulable");
    let want = Some(hex(&commitment_of(&[7; 32])));
    assert_eq!(a.view(T0, false).phase, Phase::Scheduled);
    assert_eq!(a.fairness().commitment, want);
    assert_eq!(a.record().fairness_seed, Some(hex(&[7; 32])), "durable");
    assert!(a.take_effects().record_dirty);
    a.schedule(Some(T0 + 120_000), [8; 32], T0).expect("moved");
    assert_eq!(a.fairness().commitment, want, "moving keeps the seed");
    a.join(&u(1), false, T0 + 1).expect("pre-queue join");
    a.schedule(None, [9; 32], T0 + 2)
        .expect("cleared: opens now");
    assert_eq!(a.view(T0 + 2, false).phase, Phase::Open);
    assert_eq!(a.fairness().seed, Some(hex(&[7; 32])), "revealed, the same");
    // Opened on its schedule: the seed is public, the time is fixed for good.
    assert!(matches!(
        a.schedule(Some(T0 + 600_000), [9; 32], T0 + 3),
        Err(ActivityError::Conflict(_))
    ));
}

#[test]
fn an_open_activity_that_was_joined_or_a_past_time_cannot_be_scheduled() {
    let mut a = sale(r#"{"id":"s","name":"S","kind":"sale","stock":1}"#);
    assert!(matches!(
        a.schedule(Some(T0), [7; 32], T0),
        Err(ActivityError::Invalid(_))
    ));
    a.join(&u(1), false, T0).expect("join");
    assert!(matches!(
        a.schedule(Some(T0 + 60_000), [7; 32], T0),
        Err(ActivityError::Conflict(_))
    ));
    assert_eq!(a.fairness().commitment, None);
    let mut b =
        sale(r#"{"id":"s","name":"S","kind":"sale","stock":1,"closes_at":"2100-01-01T00:00:00Z"}"#);
    assert!(matches!(
        b.schedule(Some(opens() + 1), [7; 32], T0),
        Err(ActivityError::Invalid(_))
    ));
}

/// The mutations folded the way the store keeps them.
#[derive(Default)]
struct Store {
    places: BTreeMap<u64, PlaceRecord>,
    pre: BTreeMap<u64, PlaceRecord>,
    holds: BTreeMap<u64, Hold>,
    orders: BTreeMap<u64, crate::domain::order::Order>,
    lines: BTreeMap<u64, LineRecord>,
}

impl Store {
    fn apply(&mut self, mutations: Vec<Mutation>) {
        for m in mutations {
            match m {
                Mutation::PutPlace { seq, place } => drop(self.places.insert(seq, place)),
                Mutation::DelPlace { seq } => drop(self.places.remove(&seq)),
                Mutation::PutPre { n, place } => drop(self.pre.insert(n, place)),
                Mutation::DelPre { n } => drop(self.pre.remove(&n)),
                Mutation::PutHold(h) => drop(self.holds.insert(h.id, h)),
                Mutation::DelHold { id } => drop(self.holds.remove(&id)),
                Mutation::PutOrder(o) => drop(self.orders.insert(o.n, (*o).clone())),
                Mutation::PutLine { seq, line } => drop(self.lines.insert(seq, line)),
                // Not part of the line this property checks.
                _ => {}
            }
        }
    }

    fn restored(&self) -> Restored {
        Restored {
            places: self.places.clone().into_iter().collect(),
            pre: self.pre.clone().into_iter().collect(),
            holds: self.holds.values().cloned().collect(),
            orders: self.orders.values().cloned().collect(),
            lines: self.lines.clone().into_iter().collect(),
            ..Restored::default()
        }
    }
}

/// What a run of the property below does to one user.
#[derive(Debug, Clone)]
enum Step {
    Join(usize),
    Leave(usize),
    Detach(usize),
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..40).prop_map(Step::Join),
        1 => (0usize..40).prop_map(Step::Leave),
        1 => (0usize..40).prop_map(Step::Detach),
        1 => (0u64..90_000).prop_map(Step::Wait),
    ]
}

fn apply(a: &mut Activity, s: &Step, now: &mut Millis) {
    match s {
        Step::Join(i) => {
            let _ = a.join(&u(*i), true, *now);
        }
        Step::Leave(i) => {
            let _ = a.leave(&u(*i), *now);
        }
        Step::Detach(i) => a.detach(&u(*i), *now),
        Step::Wait(ms) => {
            *now += ms;
            a.tick(*now);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_prequeue_is_in_hmac_order_and_the_log_lists_every_place_once(
        seed in proptest::array::uniform32(any::<u8>()),
        before in proptest::collection::vec(step(), 0..60),
        after in proptest::collection::vec(step(), 0..60),
        page in 1usize..7,
    ) {
        let mut a = scheduled(seed);
        let mut now = T0;
        for s in &before {
            // Before opening, time stays before opening.
            if !matches!(s, Step::Wait(_)) {
                apply(&mut a, s, &mut now);
            }
        }
        let mut receipts_seen: HashSet<String> = HashSet::new();
        let mut store = Store::default();
        let mut fold = |fx: Effects, seen: &mut HashSet<String>| {
            for o in &fx.pushes {
                if let Push::Queued { receipt, .. } | Push::Prequeue { receipt, .. } = &o.push {
                    seen.insert(receipt.clone());
                }
            }
            store.apply(fx.mutations);
        };
        fold(a.take_effects(), &mut receipts_seen);
        prop_assert!(a.fairness_log(0, 10).lines.is_empty(), "no line before opening");
        now = opens();
        a.tick(now);
        fold(a.take_effects(), &mut receipts_seen);
        for s in &after {
            apply(&mut a, s, &mut now);
            fold(a.take_effects(), &mut receipts_seen);
        }
        // The commitment matches the revealed seed.
        let f = a.fairness();
        prop_assert_eq!(f.seed.clone(), Some(hex(&seed)));
        prop_assert_eq!(f.commitment, Some(hex(&commitment_of(&seed))));

        let log = whole_log(&a, page);
        // Every place exactly once, and the log is what was persisted.
        let unique: HashSet<&str> = log.iter().map(|l| l.receipt.as_str()).collect();
        prop_assert_eq!(unique.len(), log.len());
        prop_assert_eq!(log.len(), a.line_len());
        // What was persisted rebuilds the same log.
        let restored = Activity::restore(a.record(), store.restored(), key(), now, [0; 32]);
        prop_assert_eq!(whole_log(&restored, 1000), log.clone());
        // Every receipt ever shown to a place in the line is in the log.
        for r in &unique {
            prop_assert!(receipts_seen.contains(*r));
        }
        // The pre-queue comes first, in HMAC order.
        let pre: Vec<&LogLine> = log.iter().take_while(|l| l.prequeue).collect();
        prop_assert!(log.iter().skip(pre.len()).all(|l| !l.prequeue));
        let ranks: Vec<[u8; 32]> = pre.iter().map(|l| rank(&seed, &l.receipt)).collect();
        let mut sorted = ranks.clone();
        sorted.sort_unstable();
        prop_assert_eq!(ranks, sorted);
        // Admissions follow the line.
        let admitted: Vec<&String> = log.iter().filter_map(|l| l.admitted_at.as_ref()).collect();
        prop_assert!(admitted.windows(2).all(|w| w[0] <= w[1]));
        // Every line says when its place joined; later joiners are in join order.
        prop_assert!(log.iter().all(|l| l.joined_at.is_some()));
        let joined: Vec<&String> = log[pre.len()..].iter().filter_map(|l| l.joined_at.as_ref()).collect();
        prop_assert!(joined.windows(2).all(|w| w[0] <= w[1]));
        a.check_invariants().map_err(TestCaseError::fail)?;
    }
}
