//! Purchases and the order lifecycle inside the activity: a token's hold becomes an
//! order; paying and cancelling move it on; cancellation gives the units back; and
//! `order_action`, the whole of an order request.

use super::{Activity, ActivityError};
use crate::domain::clock::Millis;
use crate::domain::ids::{SlotId, UserId};
use crate::domain::ledger::LedgerError;
use crate::domain::order::{CancelReason, Order, OrderStatus, PaymentRef, Transition};
use crate::domain::spec::Kind;
use crate::domain::token::TokenClaims;
use std::sync::Arc;

/// A purchase request whose token signature has already been checked.
#[derive(Debug, Clone)]
pub struct PurchaseRequest {
    pub user: UserId,
    pub claims: TokenClaims,
    pub quantity: u32,
    pub slot_id: Option<SlotId>,
}

/// The order, and whether this call created it (201) or found it (200).
#[derive(Debug, Clone)]
pub struct Purchased {
    pub order: Arc<Order>,
    pub created: bool,
}

/// What a user (or an operator) does with one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderAction {
    Get,
    /// With the shop's payment reference, when it confirms payment.
    Pay(Option<PaymentRef>),
    Cancel,
}

impl Activity {
    /// An order request, whole: only the order's owner (or an operator, `user = None`)
    /// may read, pay or cancel it.
    pub fn order_action(
        &mut self,
        n: u64,
        action: OrderAction,
        user: Option<&UserId>,
        now: Millis,
    ) -> Result<Order, ActivityError> {
        match action {
            OrderAction::Get => self.orders.owned(n, user).cloned(),
            OrderAction::Pay(payment_ref) => self.pay_with(n, user, payment_ref.as_ref()),
            OrderAction::Cancel => self.cancel(n, user, now),
        }
    }

    pub fn purchase(
        &mut self,
        req: PurchaseRequest,
        now: Millis,
    ) -> Result<Purchased, ActivityError> {
        if req.claims.activity != self.spec.id.as_str() {
            return Err(ActivityError::TokenInvalid(
                "the purchase token is for another activity".into(),
            ));
        }
        if req.claims.user != req.user.as_str() {
            return Err(ActivityError::Forbidden(
                "the purchase token was issued to someone else".into(),
            ));
        }
        // Idempotency first: a spent token returns its order, even after expiry.
        if let Some(order) = self.orders.of_hold(req.claims.hold) {
            return Ok(Purchased {
                order: Arc::clone(order),
                created: false,
            });
        }
        // The hold's expiry is the one that counts: a failover credit (`credit_outage`)
        // extends it past the deadline signed into a token issued before.
        let expires_at = self
            .holds
            .get(req.claims.hold)
            .map_or(req.claims.expires_at_ms, |h| {
                h.expires_at.max(req.claims.expires_at_ms)
            });
        if expires_at <= now {
            return Err(ActivityError::TokenExpired);
        }
        if self.is_closed(now) {
            return Err(ActivityError::NotOpen("the activity is closed".into()));
        }
        let hold = self.holds.get(req.claims.hold).ok_or_else(|| {
            ActivityError::TokenInvalid("the purchase token no longer holds any units".into())
        })?;
        let (hold_id, held) = (hold.id, hold.units);
        if req.quantity == 0 || req.quantity > self.spec.per_user_limit {
            return Err(ActivityError::Invalid(format!(
                "quantity must be between 1 and {}",
                self.spec.per_user_limit
            )));
        }
        let bought = self.users.bought(&req.user);
        if bought + req.quantity > self.spec.per_user_limit {
            return Err(ActivityError::LimitReached);
        }
        if req.quantity > held {
            return Err(ActivityError::SoldOut(format!(
                "only {held} unit(s) are held for you"
            )));
        }
        let slot = self.pick_slot(req.slot_id.as_ref())?;
        match self
            .ledger
            .sell(slot, u64::from(held), u64::from(req.quantity))
        {
            Ok(()) => {}
            Err(LedgerError::SlotFull) => return Err(self.slot_full(slot)),
            Err(e) => return Err(ActivityError::Invalid(e.to_string())),
        }
        // The ticket moves from the spent hold to the order (it answers after a restart).
        let ticket = self
            .holds
            .take(hold_id, &mut self.fx)
            .map(|h| h.ticket)
            .unwrap_or_default();
        let n = self.orders.next_n();
        let order = Order {
            activity: self.spec.id.clone(),
            n,
            slot,
            slot_id: (self.spec.kind == Kind::Appointment)
                .then(|| self.ledger.slots()[slot].id.clone()),
            user: req.user,
            quantity: req.quantity,
            amount_cents: self
                .spec
                .price_cents
                .saturating_mul(u64::from(req.quantity)),
            status: OrderStatus::PendingPayment,
            created_at: now,
            pay_by: now + u64::from(self.spec.payment_timeout_secs) * 1000,
            hold: hold_id,
            version: 1,
            cancel_reason: None,
            ticket,
            payment_ref: None,
        };
        let order = self.orders.open(order, &mut self.fx);
        self.users.purchased(&order.user, order.quantity, n);
        self.report.ordered(now);
        // Units a smaller purchase returned go to whoever waits.
        self.settle(now);
        self.admit(now);
        Ok(Purchased {
            order,
            created: true,
        })
    }

    fn pick_slot(&self, slot_id: Option<&SlotId>) -> Result<usize, ActivityError> {
        match (self.spec.kind, slot_id) {
            (Kind::Gate, _) => Err(ActivityError::Invalid(
                "a gate sells nothing: its pass opens the site".into(),
            )),
            (Kind::Sale, None) => Ok(0),
            (Kind::Sale, Some(_)) => Err(ActivityError::Invalid("a sale has no slots".into())),
            (Kind::Appointment, None) => Err(ActivityError::Invalid(
                "slot_id is required for an appointment".into(),
            )),
            (Kind::Appointment, Some(id)) => self
                .ledger
                .slot_index(id)
                .ok_or_else(|| ActivityError::Invalid(format!("no slot {id} in this activity"))),
        }
    }

    /// A full slot's error names the slots that still have room.
    fn slot_full(&self, slot: usize) -> ActivityError {
        let open: Vec<String> = self
            .ledger
            .slots()
            .iter()
            .filter(|s| s.counts.available + s.counts.held > 0)
            .take(50)
            .map(|s| format!("{} ({})", s.id, s.counts.available + s.counts.held))
            .collect();
        let name = &self.ledger.slots()[slot].id;
        if open.is_empty() {
            ActivityError::SoldOut(format!("slot {name} is full and no slot has units left"))
        } else {
            ActivityError::SoldOut(format!(
                "slot {name} is full; slots with units left: {}",
                open.join(", ")
            ))
        }
    }

    pub fn order(&self, n: u64) -> Option<&Order> {
        self.orders.get(n)
    }

    pub fn orders_of<'a>(&'a self, user: &'a UserId) -> impl Iterator<Item = &'a Order> + 'a {
        self.orders.of_user(user)
    }

    /// The owner (or an operator, `user = None`) pays a pending order.
    pub fn pay(&mut self, n: u64, user: Option<&UserId>) -> Result<Order, ActivityError> {
        self.pay_with(n, user, None)
    }

    /// `pay`, keeping the shop's payment reference on the order.
    pub fn pay_with(
        &mut self,
        n: u64,
        user: Option<&UserId>,
        payment_ref: Option<&PaymentRef>,
    ) -> Result<Order, ActivityError> {
        let was_paid = self
            .orders
            .get(n)
            .is_some_and(|o| o.status == OrderStatus::Paid);
        let order = self.orders.pay(n, user, payment_ref, &mut self.fx)?;
        if !was_paid && order.status == OrderStatus::Paid {
            self.report.paid();
        }
        Ok(order)
    }

    /// The owner (or an operator) cancels a pending order; its units go back.
    pub fn cancel(
        &mut self,
        n: u64,
        user: Option<&UserId>,
        now: Millis,
    ) -> Result<Order, ActivityError> {
        self.orders.owned(n, user)?;
        let order = self.cancel_order(n, CancelReason::User)?;
        self.settle(now);
        self.admit(now);
        Ok(order)
    }

    /// Cancels an order; if it was pending, its units go back to the ledger and no
    /// longer count against its user's limit.
    pub(super) fn cancel_order(
        &mut self,
        n: u64,
        reason: CancelReason,
    ) -> Result<Order, ActivityError> {
        let (order, t) = self.orders.cancel(n, reason, &mut self.fx)?;
        if t == Transition::Changed {
            self.report.cancelled();
            self.ledger.unsell(order.slot, u64::from(order.quantity));
            self.users.refund(&order.user, order.quantity);
        }
        Ok(order)
    }
}
