//! Persistence shapes: the activity record (spec, flags, counters) and rebuilding a
//! whole `Activity` from what the store holds after a restart or crash.

use super::{Activity, End, Hold, Place, PlaceRecord, Stage, UserEntry};
use crate::domain::clock::Millis;
use crate::domain::order::{Order, OrderStatus};
use crate::domain::spec::{ActivitySpec, SlotSpec};
use crate::domain::token::TokenKey;
use serde::{Deserialize, Serialize};

/// Everything about an activity that is not a place, hold or order. Joins and
/// purchases do not rewrite it (the hot path stays one small key per change): the
/// counters they advance are recovered as maxima over places, holds and orders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityRecord {
    pub spec: ActivitySpec,
    /// Current slots and capacities (a sale has one).
    pub slots: Vec<SlotSpec>,
    pub paused: bool,
    pub closed: bool,
    pub opened: bool,
    pub admitted_total: u64,
    pub expired_total: u64,
    pub next_seq: u64,
    pub next_pre: u64,
    pub next_hold: u64,
    pub next_order: u64,
    pub shuffle_seed: Option<String>,
}

/// What the store hands back for one activity.
#[derive(Debug, Default)]
pub struct Restored {
    pub places: Vec<(u64, PlaceRecord)>,
    pub pre: Vec<(u64, PlaceRecord)>,
    pub holds: Vec<Hold>,
    pub orders: Vec<Order>,
}

impl Activity {
    pub fn record(&self) -> ActivityRecord {
        ActivityRecord {
            spec: self.spec.clone(),
            slots: self
                .ledger
                .slots()
                .iter()
                .map(|s| SlotSpec {
                    id: s.id.clone(),
                    label: s.label.clone(),
                    capacity: s.counts.capacity as u32,
                })
                .collect(),
            paused: self.paused,
            closed: self.closed,
            opened: self.opened,
            admitted_total: self.admitted_total,
            expired_total: self.expired_total,
            next_seq: self.room.next_seq(),
            next_pre: self.next_pre,
            next_hold: self.next_hold,
            next_order: self.next_order,
            shuffle_seed: self.shuffle_seed.clone(),
        }
    }

    /// Rebuilds from the store. Every place starts its reconnect grace at `now`; holds
    /// keep their original expiry (the first tick returns those that lapsed meanwhile).
    pub fn restore(rec: ActivityRecord, mut data: Restored, key: TokenKey, now: Millis) -> Self {
        let mut a = Activity::new(rec.spec, &rec.slots, key, now);
        a.fx = Default::default();
        a.pacer.hold_off(now);
        a.paused = rec.paused;
        a.closed = rec.closed;
        a.opened = rec.opened;
        a.admitted_total = rec.admitted_total;
        a.expired_total = rec.expired_total;
        a.shuffle_seed = rec.shuffle_seed;
        a.next_pre = rec.next_pre;
        a.next_hold = rec.next_hold;
        a.next_order = rec.next_order;
        let grace = a.grace_ms();

        data.orders.sort_by_key(|o| o.n);
        for o in data.orders {
            if o.slot >= a.ledger.slots().len() {
                continue;
            }
            a.next_order = a.next_order.max(o.n + 1);
            a.next_hold = a.next_hold.max(o.hold + 1);
            match o.status {
                OrderStatus::Cancelled => a.cancelled_units += u64::from(o.quantity),
                OrderStatus::Paid => {
                    a.paid_units += u64::from(o.quantity);
                    a.ledger.restore_sold(o.slot, u64::from(o.quantity));
                }
                OrderStatus::PendingPayment => {
                    a.pending_orders += 1;
                    a.pay_deadlines.insert((o.pay_by, o.n));
                    a.ledger.restore_sold(o.slot, u64::from(o.quantity));
                }
            }
            let entry = a.users.entry(o.user.clone()).or_insert_with(|| UserEntry {
                ticket: String::new(),
                stage: Stage::Ended(End::Purchased(o.n)),
                bought: 0,
            });
            if o.status != OrderStatus::Cancelled {
                entry.bought += o.quantity;
            }
            // The latest purchase's ticket answers as it did (a live place or hold
            // restored below takes the user over).
            if !o.ticket.is_empty() {
                entry.ticket = o.ticket.clone();
                entry.stage = Stage::Ended(End::Purchased(o.n));
                a.tickets.insert(o.ticket.clone(), o.user.clone());
            }
            a.by_hold.insert(o.hold, o.n);
            a.orders.insert(o.n, o);
        }
        for h in data.holds {
            a.next_hold = a.next_hold.max(h.id + 1);
            let granted = a.ledger.hold(u64::from(h.units));
            let h = Hold {
                units: granted as u32,
                ..h
            };
            a.hold_expiry.insert((h.expires_at, h.id));
            a.set_user(&h.user, &h.ticket, Stage::Admitted(h.id));
            a.holds.insert(h.id, h);
        }
        data.places.sort_by_key(|p| p.0);
        for (seq, p) in data.places {
            let deadline = now + grace;
            a.grace.insert((deadline, p.user.clone()));
            a.set_user(&p.user, &p.ticket, Stage::Waiting(seq));
            a.room.insert_at(seq, place(p, deadline));
        }
        // Every admission takes the next hold id (from 1), and admissions do not
        // rewrite the record: the hold counter gives the admission count.
        a.admitted_total = a.admitted_total.max(a.next_hold.saturating_sub(1));
        let max_hold_seq = a.holds.values().map(|h| h.seq + 1).max().unwrap_or(0);
        a.room.reserve_seq(rec.next_seq.max(max_hold_seq));
        for (n, p) in data.pre {
            let deadline = now + grace;
            a.grace.insert((deadline, p.user.clone()));
            a.set_user(&p.user, &p.ticket, Stage::Pre(n));
            a.next_pre = a.next_pre.max(n + 1);
            a.pre.insert(n, place(p, deadline));
        }
        a
    }

    fn set_user(&mut self, user: &crate::domain::ids::UserId, ticket: &str, stage: Stage) {
        let e = self.users.entry(user.clone()).or_insert_with(|| UserEntry {
            ticket: String::new(),
            stage,
            bought: 0,
        });
        e.ticket = ticket.to_owned();
        e.stage = stage;
        self.tickets.insert(ticket.to_owned(), user.clone());
    }
}

fn place(p: PlaceRecord, deadline: Millis) -> Place {
    Place {
        user: p.user,
        ticket: p.ticket,
        joined_at: p.joined_at,
        attached: false,
        deadline: Some(deadline),
        last_pos: 0,
        trigger: None,
        due: None,
    }
}
