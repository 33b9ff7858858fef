//! Persistence shapes: the activity record (spec, flags, counters) and rebuilding a
//! whole `Activity` from what the store holds after a restart or crash.

use super::access::{BanRecord, InviteRecord, RevokedRecord};
use super::fairness::{parse_seed, Fairness, LineRecord, Receipt};
use super::gate::{Gate, GateRecord};
use super::report::{MinuteRecord, Report, ReportRecord};
use super::users::Stage;
use super::{Activity, Hold, PlaceRecord};
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
    /// The commit-reveal seed (hex), drawn at creation for an activity that opens
    /// later; absent in stores written before auditable fairness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fairness_seed: Option<String>,
}

/// What the store hands back for one activity.
#[derive(Debug, Default)]
pub struct Restored {
    pub places: Vec<(u64, PlaceRecord)>,
    pub pre: Vec<(u64, PlaceRecord)>,
    pub holds: Vec<Hold>,
    pub orders: Vec<Order>,
    /// The public line (fairness log), by sequence number.
    pub lines: Vec<(u64, LineRecord)>,
    /// The post-event report's totals and minutes, if any were written.
    pub report: Option<ReportRecord>,
    pub minutes: Vec<(u64, MinuteRecord)>,
    /// Access control: invite codes, bans, revoked passes (by hold id).
    pub invites: Vec<(u64, InviteRecord)>,
    pub bans: Vec<(u64, BanRecord)>,
    pub revoked: Vec<(u64, RevokedRecord)>,
}

impl Activity {
    pub fn record(&self) -> ActivityRecord {
        let gate = self.gate.record();
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
            paused: gate.paused,
            closed: gate.closed,
            opened: gate.opened,
            admitted_total: gate.admitted_total,
            expired_total: gate.expired_total,
            next_seq: self.queue.next_seq(),
            next_pre: self.queue.next_pre(),
            next_hold: self.holds.next_id(),
            next_order: self.orders.next_n(),
            shuffle_seed: gate.shuffle_seed,
            fairness_seed: self.fair.seed_hex(),
        }
    }

    /// Rebuilds from the store. Every place starts its reconnect grace at `now`; holds
    /// keep their original expiry (the first tick returns those that lapsed meanwhile).
    /// `fresh_seed` is used only by an activity not yet opened whose record has no
    /// seed (written before auditable fairness): it is committed to from now on.
    pub fn restore(
        rec: ActivityRecord,
        mut data: Restored,
        key: TokenKey,
        now: Millis,
        fresh_seed: [u8; 32],
    ) -> Self {
        let mut a = Activity::new(rec.spec, &rec.slots, key, now, fresh_seed);
        a.fx = Default::default();
        let seed = rec.fairness_seed.as_deref().and_then(parse_seed);
        let needs_seed = !rec.opened && seed.is_none() && a.spec.opens_at.is_some();
        a.fair = Fairness::new(if needs_seed { Some(fresh_seed) } else { seed });
        a.fx.record_dirty = needs_seed;
        for (seq, line) in std::mem::take(&mut data.lines) {
            a.fair.restore_line(seq, line);
        }
        a.access.restore(
            std::mem::take(&mut data.invites),
            std::mem::take(&mut data.bans),
            std::mem::take(&mut data.revoked),
        );
        if let Some(r) = data.report.take() {
            a.report = Report::restore(r, std::mem::take(&mut data.minutes));
        }
        a.gate = Gate::restore(
            GateRecord {
                opened: rec.opened,
                paused: rec.paused,
                closed: rec.closed,
                admitted_total: rec.admitted_total,
                expired_total: rec.expired_total,
                shuffle_seed: rec.shuffle_seed,
            },
            now,
        );
        a.holds.set_next_id(rec.next_hold);
        a.orders.set_next_n(rec.next_order);
        let deadline = now + a.grace_ms();

        data.orders.sort_by_key(|o| o.n);
        for o in data.orders {
            if o.slot >= a.ledger.slots().len() {
                continue;
            }
            a.holds.reserve_id(o.hold);
            let units = match o.status {
                OrderStatus::Cancelled => 0,
                OrderStatus::Paid | OrderStatus::PendingPayment => {
                    a.ledger.restore_sold(o.slot, u64::from(o.quantity));
                    o.quantity
                }
            };
            a.users.restore_order(&o.user, o.n, units, &o.ticket);
            a.orders.restore(o);
        }
        for h in data.holds {
            a.holds.reserve_id(h.id);
            let granted = a.ledger.hold(u64::from(h.units));
            let h = Hold {
                units: granted as u32,
                ..h
            };
            a.users
                .restore_place(&h.user, &h.ticket, Stage::Admitted(h.id));
            a.holds.restore(h);
        }
        data.places.sort_by_key(|p| p.0);
        for (seq, p) in data.places {
            a.users
                .restore_place(&p.user, &p.ticket, Stage::Waiting(seq));
            let receipt = Receipt::of(&a.key, &p.ticket);
            a.fair.ensure_line(seq, receipt, p.joined_at);
            a.queue.restore_place(seq, p, receipt, deadline);
        }
        // Every admission takes the next hold id (from 1), and admissions do not
        // rewrite the record: the hold counter gives the admission count.
        a.gate
            .raise_admitted_total(a.holds.next_id().saturating_sub(1));
        a.queue
            .reserve(rec.next_seq.max(a.holds.next_seq()), rec.next_pre);
        for (n, p) in data.pre {
            a.users.restore_place(&p.user, &p.ticket, Stage::Pre(n));
            let receipt = Receipt::of(&a.key, &p.ticket);
            a.queue.restore_pre(n, p, receipt, deadline);
        }
        a
    }
}
