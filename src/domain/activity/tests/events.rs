//! Webhook events: emitted with the changes that cause them, stamped when the call ends.

use super::*;
use crate::domain::order::OrderStatus;
use crate::domain::webhook::{EventData, EventType};

fn events(fx: &Effects) -> Vec<(EventType, Millis, EventData)> {
    fx.mutations
        .iter()
        .filter_map(|m| match m {
            Mutation::Event(e) => Some((e.kind, e.at, e.data.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn admission_order_payment_and_sell_out_emit_events_in_the_same_effects() {
    let mut a = sale(
        r#"{"id":"s","name":"S","kind":"sale","stock":1,"admission":{"rate_per_sec":10,"max_active":10}}"#,
    );
    a.end_call(T0);
    assert!(events(&a.take_effects()).is_empty(), "creation is no event");
    a.join(&u(1), true, T0 + 200).expect("join");
    a.tick(T0 + 200);
    a.end_call(T0 + 200);
    let fx = a.take_effects();
    let token = token_of(&fx, &u(1)).expect("admitted");
    let ev = events(&fx);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].0, EventType::PlaceAdmitted);
    assert_eq!(ev[0].1, T0 + 200);
    assert!(matches!(&ev[0].2, EventData::Admitted { user_id, .. } if user_id == "user-1"));

    let bought = buy(&mut a, &u(1), &token, T0 + 300).expect("buys");
    a.end_call(T0 + 300);
    let ev = events(&a.take_effects());
    let kinds: Vec<_> = ev.iter().map(|e| e.0).collect();
    assert_eq!(
        kinds,
        [EventType::OrderCreated, EventType::PhaseChanged],
        "the last unit sold: the order, then the phase"
    );
    assert!(matches!(&ev[1].2, EventData::Phase { phase, .. } if phase == "sold_out"));
    let n = bought.order.n;

    a.order_action(n, OrderAction::Pay(None), Some(&u(1)), T0 + 400)
        .expect("pays");
    a.end_call(T0 + 400);
    let ev = events(&a.take_effects());
    assert_eq!(ev.len(), 1);
    assert!(
        matches!(&ev[0].2, EventData::Order(o) if o.status == OrderStatus::Paid && o.version == 2),
        "{ev:?}"
    );
    a.order_action(n, OrderAction::Pay(None), Some(&u(1)), T0 + 500)
        .expect("idempotent");
    a.end_call(T0 + 500);
    assert!(events(&a.take_effects()).is_empty(), "a repeat is no event");
}
