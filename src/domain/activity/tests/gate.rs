//! Gates: passes bounded by `max_active`, freed by expiry, leave and revocation (the
//! pass revoked with it), and access control surviving a rebuild from the store.

use super::*;
use crate::domain::pass::{new_key, Passes};

fn gate(max_active: u32, access: &str) -> Activity {
    let mut a = sale(&format!(
        r#"{{"id":"door","name":"D","kind":"gate","gate":{{"origin_url":"https://shop.example/","pass_ttl_secs":60}},"admission":{{"rate_per_sec":1000,"max_active":{max_active},"access":"{access}"}}}}"#
    ));
    let passes = Passes::new("https://q.example");
    passes.install(vec![new_key(0)]);
    a.set_passes(passes);
    a
}

fn pass_of(fx: &Effects, user: &UserId) -> Option<String> {
    pushes_for(fx, user).into_iter().find_map(|p| match p {
        Push::Admitted { pass, .. } => pass,
        _ => None,
    })
}

#[test]
fn passes_are_bounded_by_max_active_and_a_slot_frees_on_expiry_or_revocation() {
    let mut a = gate(1, "open");
    for i in 0..3 {
        a.join(&u(i), true, T0).expect("join");
    }
    let fx = a.take_effects();
    assert!(
        pass_of(&fx, &u(0)).is_some(),
        "the first is admitted with a pass"
    );
    assert_eq!(
        token_of(&fx, &u(0)).as_deref(),
        Some(""),
        "no purchase token"
    );
    assert_eq!(pass_of(&fx, &u(1)), None, "max_active 1");

    a.revoke(&u(0), false, T0 + 10).expect("revoke");
    let fx = a.take_effects();
    assert!(pushes_for(&fx, &u(0)).contains(&Push::Revoked));
    assert!(
        pass_of(&fx, &u(1)).is_some(),
        "the slot went to the next in line"
    );
    assert_eq!(a.revoked_passes(), ["1".to_owned()].into_iter().collect());
    assert!(a.check_invariants().is_ok());

    a.tick(T0 + 10 + 60_000);
    let fx = a.take_effects();
    assert!(pushes_for(&fx, &u(1)).contains(&Push::PassExpired));
    assert!(pass_of(&fx, &u(2)).is_some());
    // Expired revocations are forgotten.
    assert!(a.revoked_passes().is_empty());
}

#[test]
fn invites_and_bans_survive_a_rebuild_from_the_store() {
    let mut a = gate(10, "invite");
    a.add_invites(&["c1".into(), "c2".into()], T0)
        .expect("codes");
    assert!(matches!(
        a.check_access(&u(0), None),
        Err(ActivityError::Forbidden(_))
    ));
    a.check_access(&u(0), Some("c1")).expect("a fresh code");
    a.join(&u(0), false, T0).expect("join");
    a.revoke(&u(1), true, T0).expect("a ban alone");
    let fx = a.take_effects();
    let mut data = Restored::default();
    for m in fx.mutations {
        match m {
            Mutation::PutInvite { n, invite } => data.invites.push((n, invite)),
            Mutation::PutBan { n, ban } => data.bans.push((n, ban)),
            Mutation::PutHold(h) => data.holds.push(h),
            _ => {}
        }
    }
    let mut b = Activity::restore(a.record(), data, key(), T0, [9; 32]);
    assert!(matches!(
        b.check_access(&u(2), Some("c1")),
        Err(ActivityError::Forbidden(_))
    ));
    b.check_access(&u(2), Some("c2"))
        .expect("the other code is free");
    assert!(matches!(
        b.check_access(&u(1), Some("c2")),
        Err(ActivityError::Forbidden(_))
    ));
}
