//! Turns an activity's typed mutations into key/value operations on the layout.

use super::layout::{activity_key, event_key, numbered};
use crate::domain::activity::{ActivityRecord, Hold, Mutation};
use crate::domain::ids::ActivityId;
use crate::domain::order::Order;
use serde::{Deserialize, Serialize};

/// One write of a commit. Outbox entries get their key from the writer, which owns
/// the outbox sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOp {
    Put(Vec<u8>, Vec<u8>),
    Del(Vec<u8>),
    /// Every key under a prefix (an activity adopted from the cluster's replica
    /// replaces whatever this node had of it). Applied before the commit's puts
    /// only if it comes first in the commit.
    DelPrefix(Vec<u8>),
    Outbox(Vec<u8>),
}

/// The webhook events an activity writes: only the types some receiver wants
/// (`mask`, `EventType::bit`), numbered from `next` in commit order.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventLog {
    pub mask: u8,
    pub next: u64,
}

/// JSON of `v` in a vector of exactly its size (it stays in the memtable until the
/// next checkpoint). Written into a reused buffer first: growing a fresh vector took
/// a handful of reallocations per order.
fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        serde_json::to_writer(&mut *buf, v).expect("store types serialize");
        let out = buf.to_vec();
        // A large record (a shuffle audit) does not keep its buffer.
        buf.truncate(0);
        buf.shrink_to(4096);
        out
    })
}

/// The value at a hold's key once an order spent it (`layout`, schema 2).
#[derive(Serialize, Deserialize)]
struct Spent<O> {
    order: O,
}

/// How a spent hold's value begins: serde_json writes `Spent` compactly, so one
/// prefix check tells it from a `Hold` (which has no `order` field).
const SPENT_PREFIX: &[u8] = br#"{"order":"#;

/// What a hold's key holds.
#[derive(Debug)]
pub enum HoldSlot {
    Unspent(Hold),
    Spent(Order),
}

/// Decodes the value at a hold's key.
pub fn decode_hold_slot(v: &[u8]) -> serde_json::Result<HoldSlot> {
    if v.starts_with(SPENT_PREFIX) {
        serde_json::from_slice::<Spent<Order>>(v).map(|s| HoldSlot::Spent(s.order))
    } else {
        serde_json::from_slice(v).map(HoldSlot::Unspent)
    }
}

/// Encodes mutations (and the activity record, when it changed). With `outbox`, every
/// order write also queues the order for the sink in the same commit. Webhook events
/// that `events` selects are written in the same commit too (the transactional outbox).
pub fn encode(
    id: &ActivityId,
    record: Option<&ActivityRecord>,
    mutations: &[Mutation],
    outbox: bool,
    events: &mut EventLog,
) -> Vec<KvOp> {
    let mut ops = Vec::with_capacity(mutations.len() + 1);
    // A hold an order spends in this commit is overwritten by that order: no delete.
    let mut order_holds: Vec<u64> = mutations
        .iter()
        .filter_map(|m| match m {
            Mutation::PutOrder(o) => Some(o.hold),
            _ => None,
        })
        .collect();
    order_holds.sort_unstable();
    let spent = |h: u64| order_holds.binary_search(&h).is_ok();
    for m in mutations {
        match m {
            Mutation::PutPlace { seq, place } => {
                ops.push(KvOp::Put(numbered(id, 'p', *seq), json(place)))
            }
            Mutation::DelPlace { seq } => ops.push(KvOp::Del(numbered(id, 'p', *seq))),
            Mutation::PutPre { n, place } => {
                ops.push(KvOp::Put(numbered(id, 'q', *n), json(place)))
            }
            Mutation::DelPre { n } => ops.push(KvOp::Del(numbered(id, 'q', *n))),
            Mutation::PutHold(h) => ops.push(KvOp::Put(numbered(id, 'h', h.id), json(h))),
            Mutation::DelHold { id: h } if spent(*h) => {}
            Mutation::DelHold { id: h } => ops.push(KvOp::Del(numbered(id, 'h', *h))),
            Mutation::PutOrder(o) => {
                ops.push(KvOp::Put(
                    numbered(id, 'h', o.hold),
                    json(&Spent { order: &**o }),
                ));
                if outbox {
                    ops.push(KvOp::Outbox(json(&o.view())));
                }
            }
            Mutation::PutShuffle(s) => ops.push(KvOp::Put(activity_key(id, "shuffle"), json(s))),
            Mutation::PutLine { seq, line } => {
                ops.push(KvOp::Put(numbered(id, 'l', *seq), json(line)))
            }
            Mutation::PutReport(r) => ops.push(KvOp::Put(activity_key(id, "report"), json(r))),
            Mutation::PutMinute { minute, bucket } => {
                ops.push(KvOp::Put(numbered(id, 'm', *minute), json(bucket)))
            }
            Mutation::Event(e) if events.mask & e.kind.bit() != 0 => {
                ops.push(KvOp::Put(event_key(id.as_str(), events.next), e.body()));
                events.next += 1;
            }
            Mutation::Event(_) => {}
            Mutation::PutInvite { n, invite } => {
                ops.push(KvOp::Put(numbered(id, 'i', *n), json(invite)))
            }
            Mutation::PutBan { n, ban } => ops.push(KvOp::Put(numbered(id, 'b', *n), json(ban))),
            Mutation::PutRevoked { hold, record } => {
                ops.push(KvOp::Put(numbered(id, 'r', *hold), json(record)))
            }
            Mutation::DelRevoked { hold } => ops.push(KvOp::Del(numbered(id, 'r', *hold))),
        }
    }
    if let Some(r) = record {
        ops.push(KvOp::Put(activity_key(id, "rec"), json(r)));
    }
    ops
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::domain::ids::UserId;
    use crate::domain::order::OrderStatus;

    pub fn order(n: u64, hold: u64, version: u64) -> Order {
        Order {
            activity: ActivityId::parse("x").expect("valid"),
            n,
            slot: 0,
            slot_id: None,
            user: UserId::parse("u").expect("valid"),
            quantity: 1,
            amount_cents: 100,
            status: OrderStatus::PendingPayment,
            created_at: 1,
            pay_by: 2,
            hold,
            version,
            cancel_reason: None,
            ticket: "t".into(),
            payment_ref: None,
        }
    }

    pub fn hold(id: u64) -> Hold {
        Hold {
            id,
            user: UserId::parse("u").expect("valid"),
            ticket: "t".into(),
            units: 1,
            issued_at: 1,
            expires_at: 2,
            seq: id,
        }
    }

    #[test]
    fn an_order_overwrites_the_hold_it_spends_and_other_holds_are_deleted() {
        let id = ActivityId::parse("x").expect("valid");
        let purchase = [
            Mutation::DelHold { id: 7 },
            Mutation::PutOrder(order(1, 7, 1).into()),
            Mutation::DelHold { id: 8 },
        ];
        let ops = encode(&id, None, &purchase, false, &mut EventLog::default());
        assert_eq!(ops.len(), 2, "{ops:?}");
        let KvOp::Put(k, v) = &ops[0] else {
            panic!("a put: {ops:?}")
        };
        assert_eq!(k, &numbered(&id, 'h', 7));
        match decode_hold_slot(v).expect("decodes") {
            HoldSlot::Spent(o) => assert_eq!(o, order(1, 7, 1)),
            other => panic!("the order: {other:?}"),
        }
        assert_eq!(ops[1], KvOp::Del(numbered(&id, 'h', 8)), "an unspent hold");

        let put = encode(
            &id,
            None,
            &[Mutation::PutHold(hold(9))],
            false,
            &mut EventLog::default(),
        );
        let [KvOp::Put(_, v)] = &put[..] else {
            panic!("one put: {put:?}")
        };
        assert!(matches!(decode_hold_slot(v), Ok(HoldSlot::Unspent(h)) if h == hold(9)));
        assert!(
            decode_hold_slot(br#"{"order":{"n":1}}"#).is_err(),
            "not an order"
        );
    }
}
