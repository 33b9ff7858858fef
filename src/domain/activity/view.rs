//! Read models: the activity view with its counters, and a ticket's status.

use super::fairness::FairnessView;
use super::queue::Spot;
use super::users::{End, Stage};
use super::{pass_for, token_for, Activity};
use crate::domain::clock::{rfc3339, Millis};
use crate::domain::ids::order_id;
use crate::domain::spec::{Admission, GateSpec, Kind};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Scheduled,
    Open,
    Paused,
    SoldOut,
    Closed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Scheduled => "scheduled",
            Phase::Open => "open",
            Phase::Paused => "paused",
            Phase::SoldOut => "sold_out",
            Phase::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SlotView {
    pub id: String,
    pub label: String,
    pub capacity: u64,
    pub available: u64,
    pub held: u64,
    pub sold: u64,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActivityView {
    pub id: String,
    pub name: String,
    pub kind: Kind,
    pub phase: Phase,
    #[schema(required = true)]
    pub opens_at: Option<String>,
    #[schema(required = true)]
    pub closes_at: Option<String>,
    pub price_cents: u64,
    pub per_user_limit: u32,
    pub payment_timeout_secs: u32,
    pub capacity: u64,
    pub available: u64,
    pub held: u64,
    pub sold: u64,
    pub paid: u64,
    pub cancelled: u64,
    pub waiting: u64,
    pub admitted_total: u64,
    pub admission: Admission,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slots: Option<Vec<SlotView>>,
    /// Admin-only: tokens issued and neither spent nor expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_tokens: Option<u64>,
    /// Admin-only: tokens that expired unspent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired_total: Option<u64>,
    /// Admin-only: orders awaiting payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_orders: Option<u64>,
    /// The commit-reveal commitment, from creation on (activities that open later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fairness: Option<FairnessView>,
    /// Admin-only: seed of the pre-queue shuffle (the full order is in the audit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shuffle_seed: Option<String>,
    /// A gate's origin and pass lifetime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateSpec>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TicketView {
    pub ticket: String,
    /// The place's public receipt, as it appears in the fairness log.
    pub receipt: String,
    /// `prequeue`, `waiting`, `admitted`, `expired`, `sold_out`, `closed`, `left` or `revoked` (docs/api.md 6.2).
    #[schema(value_type = String)]
    pub status: &'static str,
    #[schema(required = true)]
    pub position: Option<u64>,
    #[schema(required = true)]
    pub eta_secs: Option<u64>,
    #[schema(required = true)]
    pub token: Option<String>,
    #[schema(required = true)]
    pub expires_at: Option<String>,
    /// A gate's pass (EdDSA JWT) once admitted; `token` is then null.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opens_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

impl Activity {
    pub fn phase(&self, now: Millis) -> Phase {
        if self.is_closed(now) {
            Phase::Closed
        } else if !self.gate.is_opened() {
            Phase::Scheduled
        } else if self.is_sold_out() {
            Phase::SoldOut
        } else if self.gate.is_paused() {
            Phase::Paused
        } else {
            Phase::Open
        }
    }

    /// The activity view; `admin` adds the operator-only fields.
    pub fn view(&self, now: Millis, admin: bool) -> ActivityView {
        let t = self.ledger.total();
        let slots = (self.spec.kind == Kind::Appointment).then(|| {
            self.ledger
                .slots()
                .iter()
                .map(|s| SlotView {
                    id: s.id.to_string(),
                    label: s.label.clone(),
                    capacity: s.counts.capacity,
                    available: s.counts.available,
                    held: s.counts.held,
                    sold: s.counts.sold,
                })
                .collect()
        });
        ActivityView {
            id: self.spec.id.to_string(),
            name: self.spec.name.clone(),
            kind: self.spec.kind,
            phase: self.phase(now),
            opens_at: self.spec.opens_at.map(rfc3339),
            closes_at: self.spec.closes_at.map(rfc3339),
            price_cents: self.spec.price_cents,
            per_user_limit: self.spec.per_user_limit,
            payment_timeout_secs: self.spec.payment_timeout_secs,
            capacity: t.capacity,
            available: t.available,
            held: t.held,
            sold: t.sold,
            paid: self.orders.paid_units(),
            cancelled: self.orders.cancelled_units(),
            waiting: self.queue.len() as u64,
            admitted_total: self.gate.admitted_total(),
            admission: self.spec.admission.clone(),
            slots,
            active_tokens: admin.then_some(self.holds.len() as u64),
            expired_total: admin.then_some(self.gate.expired_total()),
            pending_orders: admin.then_some(self.orders.pending()),
            fairness: self.fair.view(),
            shuffle_seed: if admin {
                self.gate.shuffle_seed().cloned()
            } else {
                None
            },
            gate: self.spec.gate.clone(),
        }
    }

    pub(super) fn ticket_view(
        &mut self,
        ticket: &str,
        stage: Option<Stage>,
        now: Millis,
    ) -> TicketView {
        let spot = match stage {
            Some(Stage::Pre(n)) => Some(Spot::Pre(n)),
            Some(Stage::Waiting(seq)) => Some(Spot::Room(seq)),
            _ => None,
        };
        let receipt = match spot {
            Some(spot) => self.receipt_at(spot, ticket),
            None => super::fairness::Receipt::of(&self.key, ticket),
        };
        let mut v = TicketView {
            ticket: ticket.to_owned(),
            receipt: receipt.hex(),
            status: "left",
            position: None,
            eta_secs: None,
            token: None,
            expires_at: None,
            pass: None,
            opens_at: None,
            order_id: None,
        };
        match stage {
            Some(Stage::Pre(_)) => {
                v.status = "prequeue";
                v.opens_at = self.spec.opens_at.map(rfc3339);
            }
            Some(Stage::Waiting(seq)) => {
                v.status = "waiting";
                v.position = self.queue.position(seq);
                v.eta_secs = v.position.map(|p| self.eta_secs(p, now));
            }
            Some(Stage::Admitted(id)) => {
                v.status = "admitted";
                if let Some(h) = self.holds.get(id) {
                    v.pass = pass_for(self.passes.as_ref(), &self.spec, h);
                    if v.pass.is_none() {
                        v.token = Some(token_for(&self.key, &self.spec, h));
                    }
                    v.expires_at = Some(rfc3339(h.expires_at));
                }
            }
            Some(Stage::Ended(End::Purchased(n))) => {
                v.status = "admitted";
                v.order_id = Some(order_id(&self.spec.id, n));
            }
            Some(Stage::Ended(End::Expired)) => v.status = "expired",
            Some(Stage::Ended(End::SoldOut)) => v.status = "sold_out",
            Some(Stage::Ended(End::Closed)) => v.status = "closed",
            Some(Stage::Ended(End::Revoked)) => v.status = "revoked",
            Some(Stage::Ended(End::Left)) | None => v.status = "left",
        }
        v
    }
}
