//! The single entry points (`join_or_resume`, `order_action`, `admin`) against the
//! calls the actor's handlers composed before them: two twin activities get the same
//! requests, one through each, and must answer and decide the same. Tickets are random,
//! so they are compared blanked.

use super::*;
use crate::domain::order::Order;
use crate::domain::pow::PowSolution;

/// The `Join` handler's composition before `join_or_resume`.
fn join_as_the_handler_did(
    a: &mut Activity,
    user: &UserId,
    ticket: Option<&str>,
    pow: Option<&PowSolution>,
    attach: bool,
    now: Millis,
) -> Result<JoinedView, ActivityError> {
    if let Some(t) = ticket {
        // One deliberate change since: an unknown ticket of a line that ended hears how
        // it ended, not `not_found` (`resume` below already said so; this check did not).
        a.ticket(user, t, now)
            .map_err(|e| a.after_the_end(e, now))?;
    }
    a.check_pow(user, pow, now)?;
    let joined = match ticket {
        Some(t) => a.resume(user, t, now),
        None => a.join(user, attach, now),
    }?;
    let ticket = a.ticket(user, &joined.ticket, now)?;
    Ok(JoinedView {
        ticket,
        existing: joined.existing,
    })
}

/// The `OrderCall` handler's composition before `order_action`.
fn order_call_as_the_handler_did(
    a: &mut Activity,
    n: u64,
    action: OrderAction,
    user: Option<&UserId>,
    now: Millis,
) -> Result<Order, ActivityError> {
    match action {
        OrderAction::Get => match a.order(n) {
            None => Err(ActivityError::NotFound("no such order".into())),
            Some(o) if user.is_some_and(|u| u != &o.user) => Err(ActivityError::Forbidden(
                "that order belongs to someone else".into(),
            )),
            Some(o) => Ok(o.clone()),
        },
        OrderAction::Pay(_) => a.pay(n, user),
        OrderAction::Cancel => a.cancel(n, user, now),
    }
}

/// The `Admin` handler's composition before `admin`.
fn admin_as_the_handler_did(
    a: &mut Activity,
    cmd: AdminCommand,
    now: Millis,
) -> Result<ActivityView, ActivityError> {
    let admin = match cmd {
        AdminCommand::View { admin } => admin,
        AdminCommand::AddStock(n) => a.add_stock(n, now).map(|()| true)?,
        AdminCommand::AddSlots(slots) => a.add_slots(&slots, now).map(|()| true)?,
        AdminCommand::Pause => a.pause(now).map(|()| true)?,
        AdminCommand::Resume => a.resume_admission(now).map(|()| true)?,
        AdminCommand::Close => a.close(now).map(|()| true)?,
        AdminCommand::PatchAdmission(p) => a.patch_admission(&p, now).map(|()| true)?,
        AdminCommand::Schedule { opens_at, seed } => {
            a.schedule(opens_at, seed, now).map(|()| true)?
        }
    };
    Ok(a.view(now, admin))
}

fn blank_joined(r: Result<JoinedView, ActivityError>) -> Result<JoinedView, ActivityError> {
    r.map(|mut j| {
        j.ticket.ticket.clear();
        j.ticket.receipt.clear();
        j
    })
}

/// An order with the ticket that bought it blanked (twins draw different tickets).
fn blank_order(mut o: Order) -> Order {
    o.ticket.clear();
    o
}

/// Effects with every ticket blanked, in a comparable form.
fn blank(fx: Effects) -> String {
    let mutations: Vec<Mutation> = fx
        .mutations
        .into_iter()
        .map(|m| match m {
            Mutation::PutPlace { seq, mut place } => {
                place.ticket.clear();
                Mutation::PutPlace { seq, place }
            }
            Mutation::PutPre { n, mut place } => {
                place.ticket.clear();
                Mutation::PutPre { n, place }
            }
            Mutation::PutHold(mut h) => {
                h.ticket.clear();
                Mutation::PutHold(h)
            }
            Mutation::PutLine { seq, mut line } => {
                line.receipt = crate::domain::activity::fairness::Receipt::of(&key(), "");
                Mutation::PutLine { seq, line }
            }
            Mutation::PutOrder(o) => Mutation::PutOrder(blank_order((*o).clone()).into()),
            m => m,
        })
        .collect();
    let pushes: Vec<Outbound> = fx
        .pushes
        .into_iter()
        .map(|mut o| {
            if let Push::Queued {
                ticket, receipt, ..
            }
            | Push::Prequeue {
                ticket, receipt, ..
            } = &mut o.push
            {
                ticket.clear();
                receipt.clear();
            }
            o
        })
        .collect();
    format!("{mutations:?} {pushes:?} {}", fx.record_dirty)
}

/// Effects as sorted lines, where their order is not decided (closing).
fn unordered(fx: Effects) -> (Vec<String>, Vec<String>, bool) {
    let mut m: Vec<String> = fx.mutations.iter().map(|m| format!("{m:?}")).collect();
    let mut p: Vec<String> = fx.pushes.iter().map(|o| format!("{o:?}")).collect();
    m.sort();
    p.sort();
    (m, p, fx.record_dirty)
}

fn twins(json: &str) -> (Activity, Activity) {
    (sale(json), sale(json))
}

/// Which ticket a join request carries.
#[derive(Debug, Clone, Copy)]
enum Carried {
    None,
    Own,
    OtherUsers(usize),
    Unknown,
}

fn carried(a: &Activity, user: usize, c: Carried) -> Option<String> {
    match c {
        Carried::None => None,
        Carried::Own => Some(a.ticket_of(&u(user)).unwrap_or("never-issued").to_owned()),
        Carried::OtherUsers(j) => Some(a.ticket_of(&u(j)).unwrap_or("never-issued").to_owned()),
        Carried::Unknown => Some("no-such-ticket".to_owned()),
    }
}

#[derive(Debug, Clone)]
enum JoinOp {
    Join(usize, Carried, bool),
    Leave(usize),
    Detach(usize),
    Buy(usize),
    Tick(u64),
}

fn join_op() -> impl Strategy<Value = JoinOp> {
    let c = prop_oneof![
        Just(Carried::None),
        Just(Carried::Own),
        (0..6usize).prop_map(Carried::OtherUsers),
        Just(Carried::Unknown),
    ];
    prop_oneof![
        3 => (0..6usize, c, any::<bool>()).prop_map(|(i, c, a)| JoinOp::Join(i, c, a)),
        1 => (0..6usize).prop_map(JoinOp::Leave),
        1 => (0..6usize).prop_map(JoinOp::Detach),
        1 => (0..6usize).prop_map(JoinOp::Buy),
        1 => (1..3000u64).prop_map(JoinOp::Tick),
    ]
}

proptest! {
    #[test]
    fn join_or_resume_answers_and_decides_as_the_handler_did(
        ops in proptest::collection::vec(join_op(), 1..80),
    ) {
        let (mut old, mut new) = twins(
            r#"{"id":"s","name":"S","kind":"sale","stock":3,"payment_timeout_secs":3,
                "admission":{"rate_per_sec":2,"max_active":1,"token_ttl_secs":2,"reconnect_grace_secs":2}}"#,
        );
        let mut now = T0;
        let mut tokens: std::collections::HashMap<usize, String> = Default::default();
        for op in ops {
            match op {
                JoinOp::Join(i, c, attach) => {
                    let (t_old, t_new) = (carried(&old, i, c), carried(&new, i, c));
                    let a = join_as_the_handler_did(&mut old, &u(i), t_old.as_deref(), None, attach, now);
                    let b = new.join_or_resume(&u(i), t_new.as_deref(), None, attach, now);
                    prop_assert_eq!(blank_joined(a), blank_joined(b));
                }
                JoinOp::Leave(i) => {
                    prop_assert_eq!(old.leave(&u(i), now), new.leave(&u(i), now));
                }
                JoinOp::Detach(i) => {
                    old.detach(&u(i), now);
                    new.detach(&u(i), now);
                }
                JoinOp::Buy(i) => if let Some(t) = tokens.get(&i) {
                    let a = buy(&mut old, &u(i), t, now).map(|p| blank_order((*p.order).clone()));
                    let b = buy(&mut new, &u(i), t, now).map(|p| blank_order((*p.order).clone()));
                    prop_assert_eq!(a, b);
                },
                JoinOp::Tick(dt) => {
                    now += dt;
                    old.tick(now);
                    new.tick(now);
                }
            }
            let fx = old.take_effects();
            for p in &fx.pushes {
                if let Push::Admitted { token, .. } = &p.push {
                    let i: usize = p.user.as_str()[5..].parse().expect("n");
                    tokens.insert(i, token.clone());
                }
            }
            prop_assert_eq!(blank(fx), blank(new.take_effects()));
        }
    }
}

#[test]
fn join_or_resume_asks_a_newcomer_for_work_but_not_a_user_with_a_place() {
    let (mut old, mut new) =
        twins(r#"{"id":"s","name":"S","kind":"sale","stock":3,"admission":{"join_pow_bits":8}}"#);
    let a = join_as_the_handler_did(&mut old, &u(0), None, None, true, T0);
    let b = new.join_or_resume(&u(0), None, None, true, T0);
    assert!(matches!(b, Err(ActivityError::Invalid(_))), "{b:?}");
    assert_eq!(a, b);

    // A live place (made without the proof) rejoins and resumes without one.
    let (mut old, mut new) = twins(r#"{"id":"s","name":"S","kind":"sale","stock":3}"#);
    old.join(&u(0), true, T0).expect("join");
    new.join(&u(0), true, T0).expect("join");
    let patch = crate::domain::spec::AdmissionPatch {
        join_pow_bits: Some(8),
        ..Default::default()
    };
    old.patch_admission(&patch, T0).expect("patch");
    new.patch_admission(&patch, T0).expect("patch");
    let t_old = old.ticket_of(&u(0)).expect("ticket").to_owned();
    let t_new = new.ticket_of(&u(0)).expect("ticket").to_owned();
    let a = join_as_the_handler_did(&mut old, &u(0), Some(&t_old), None, false, T0 + 1);
    let b = new.join_or_resume(&u(0), Some(&t_new), None, false, T0 + 1);
    let b = b.expect("no work for a live place");
    assert!(b.existing);
    assert_eq!(blank_joined(a), blank_joined(Ok(b)));
    assert_eq!(blank(old.take_effects()), blank(new.take_effects()));
}

#[test]
fn order_action_checks_ownership_as_the_handler_did() {
    let json = r#"{"id":"s","name":"S","kind":"sale","stock":4,"per_user_limit":1}"#;
    let (mut old, mut new) = twins(json);
    let mut orders = Vec::new();
    for a in [&mut old, &mut new] {
        a.join(&u(0), true, T0).expect("join");
        a.join(&u(1), true, T0).expect("join");
        let fx = a.take_effects();
        for i in 0..2 {
            let t = token_of(&fx, &u(i)).expect("admitted");
            orders.push(buy(a, &u(i), &t, T0).expect("buy").order.n);
        }
        a.take_effects();
    }
    let (o0, o1) = (orders[0], orders[1]);
    assert_eq!(orders, vec![o0, o1, o0, o1], "twins number orders alike");
    let users = [Some(u(0)), Some(u(1)), None];
    let actions = [
        OrderAction::Get,
        OrderAction::Pay(None),
        OrderAction::Cancel,
    ];
    let mut seen = Vec::new();
    for n in [o0, o1, 999] {
        for action in &actions {
            for user in &users {
                let a = order_call_as_the_handler_did(
                    &mut old,
                    n,
                    action.clone(),
                    user.as_ref(),
                    T0 + 5,
                )
                .map(blank_order);
                let b = new
                    .order_action(n, action.clone(), user.as_ref(), T0 + 5)
                    .map(blank_order);
                assert_eq!(a, b, "order {n} {action:?} by {user:?}");
                assert_eq!(blank(old.take_effects()), blank(new.take_effects()));
                seen.push(b.err().map(|e| std::mem::discriminant(&e)));
            }
        }
    }
    let refusals = [
        ActivityError::NotFound(String::new()),
        ActivityError::Forbidden(String::new()),
        ActivityError::Conflict(String::new()),
    ];
    for e in refusals {
        assert!(
            seen.contains(&Some(std::mem::discriminant(&e))),
            "{e:?} exercised"
        );
    }
}

#[test]
fn admin_answers_with_the_view_the_handler_gave() {
    let json = r#"{"id":"s","name":"S","kind":"sale","stock":1,"admission":{"max_active":1}}"#;
    let (mut old, mut new) = twins(json);
    for a in [&mut old, &mut new] {
        for i in 0..3 {
            a.join(&u(i), true, T0).expect("join");
        }
        a.take_effects();
    }
    let commands = [
        AdminCommand::View { admin: false },
        AdminCommand::View { admin: true },
        AdminCommand::Pause,
        AdminCommand::Pause,
        AdminCommand::AddStock(2),
        AdminCommand::AddSlots(Vec::new()),
        AdminCommand::Resume,
        AdminCommand::PatchAdmission(crate::domain::spec::AdmissionPatch {
            max_active: Some(3),
            ..Default::default()
        }),
        AdminCommand::PatchAdmission(crate::domain::spec::AdmissionPatch {
            rate_per_sec: Some(0),
            ..Default::default()
        }),
        AdminCommand::Close,
        AdminCommand::Resume,
        AdminCommand::Close,
        AdminCommand::View { admin: false },
    ];
    for (i, cmd) in commands.into_iter().enumerate() {
        let now = T0 + 100 * i as u64;
        let a = admin_as_the_handler_did(&mut old, cmd.clone(), now);
        let b = new.admin(cmd.clone(), now);
        let json = |r: Result<ActivityView, ActivityError>| {
            r.map(|v| serde_json::to_value(v).expect("a view serializes"))
        };
        assert_eq!(json(a), json(b), "{cmd:?}");
        let (fa, fb) = (old.take_effects(), new.take_effects());
        if matches!(cmd, AdminCommand::Close) {
            // Closing releases holds in hash-map order, which differs between twins.
            assert_eq!(unordered(fa), unordered(fb), "{cmd:?}");
        } else {
            assert_eq!(blank(fa), blank(fb), "{cmd:?}");
        }
    }
    let view = new.admin(AdminCommand::View { admin: true }, T0 + 9_999);
    assert_eq!(view.expect("a view").phase, Phase::Closed);
}

#[test]
fn admin_adds_slots_to_an_appointment_as_the_handler_did() {
    let json = r#"{"id":"h","name":"H","kind":"appointment","slots":[{"id":"a","label":"A","capacity":1}]}"#;
    let (mut old, mut new) = twins(json);
    let slots: Vec<SlotSpec> =
        serde_json::from_str(r#"[{"id":"b","label":"B","capacity":2}]"#).expect("slot json");
    for cmd in [AdminCommand::AddSlots(slots), AdminCommand::AddStock(1)] {
        let a = admin_as_the_handler_did(&mut old, cmd.clone(), T0);
        let b = new.admin(cmd, T0);
        let json = |r: Result<ActivityView, ActivityError>| {
            r.map(|v| serde_json::to_value(v).expect("a view serializes"))
        };
        assert_eq!(json(a), json(b));
    }
    let v = new
        .admin(AdminCommand::View { admin: false }, T0)
        .expect("a view");
    assert_eq!(v.capacity, 3);
}
