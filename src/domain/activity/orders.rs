//! Purchases and the order lifecycle inside the activity: a token's hold becomes an
//! order; paying and cancelling move it on; cancellation gives the units back.

use super::{Activity, ActivityError, End, Mutation, Stage};
use crate::domain::clock::Millis;
use crate::domain::ids::{SlotId, UserId};
use crate::domain::ledger::LedgerError;
use crate::domain::order::{CancelReason, Order, OrderStatus, Transition, TransitionError};
use crate::domain::spec::Kind;
use crate::domain::token::TokenClaims;

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
    pub order: Order,
    pub created: bool,
}

impl Activity {
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
        if let Some(order) = self
            .by_hold
            .get(&req.claims.hold)
            .and_then(|n| self.orders.get(n))
        {
            return Ok(Purchased {
                order: order.clone(),
                created: false,
            });
        }
        if req.claims.expires_at_ms <= now {
            return Err(ActivityError::TokenExpired);
        }
        if self.is_closed(now) {
            return Err(ActivityError::NotOpen("the activity is closed".into()));
        }
        let hold = self.holds.get(&req.claims.hold).cloned().ok_or_else(|| {
            ActivityError::TokenInvalid("the purchase token no longer holds any units".into())
        })?;
        if req.quantity == 0 || req.quantity > self.spec.per_user_limit {
            return Err(ActivityError::Invalid(format!(
                "quantity must be between 1 and {}",
                self.spec.per_user_limit
            )));
        }
        let bought = self.users.get(&req.user).map_or(0, |e| e.bought);
        if bought + req.quantity > self.spec.per_user_limit {
            return Err(ActivityError::LimitReached);
        }
        if req.quantity > hold.units {
            return Err(ActivityError::SoldOut(format!(
                "only {} unit(s) are held for you",
                hold.units
            )));
        }
        let slot = self.pick_slot(req.slot_id.as_ref())?;
        match self
            .ledger
            .sell(slot, u64::from(hold.units), u64::from(req.quantity))
        {
            Ok(()) => {}
            Err(LedgerError::SlotFull) => return Err(self.slot_full(slot)),
            Err(e) => return Err(ActivityError::Invalid(e.to_string())),
        }
        self.holds.remove(&hold.id);
        self.hold_expiry.remove(&(hold.expires_at, hold.id));
        self.fx.mutations.push(Mutation::DelHold { id: hold.id });
        let n = self.next_order;
        self.next_order += 1;
        let order = Order {
            activity: self.spec.id.clone(),
            n,
            slot,
            slot_id: (self.spec.kind == Kind::Appointment)
                .then(|| self.ledger.slots()[slot].id.clone()),
            user: req.user.clone(),
            quantity: req.quantity,
            amount_cents: self
                .spec
                .price_cents
                .saturating_mul(u64::from(req.quantity)),
            status: OrderStatus::PendingPayment,
            created_at: now,
            pay_by: now + u64::from(self.spec.payment_timeout_secs) * 1000,
            hold: hold.id,
            version: 1,
            cancel_reason: None,
            ticket: hold.ticket.clone(),
        };
        self.pay_deadlines.insert((order.pay_by, n));
        self.pending_orders += 1;
        self.by_hold.insert(hold.id, n);
        self.orders.insert(n, order.clone());
        if let Some(e) = self.users.get_mut(&req.user) {
            e.bought += req.quantity;
            e.stage = Stage::Ended(End::Purchased(n));
        }
        self.fx.mutations.push(Mutation::PutOrder(order.clone()));
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
        self.orders.get(&n)
    }

    pub fn orders_of<'a>(&'a self, user: &'a UserId) -> impl Iterator<Item = &'a Order> + 'a {
        self.orders.values().filter(move |o| &o.user == user)
    }

    /// The owner (or an operator, `user = None`) pays a pending order.
    pub fn pay(&mut self, n: u64, user: Option<&UserId>) -> Result<Order, ActivityError> {
        let order = self.owned_order_mut(n, user)?;
        match order.pay() {
            Ok(t) => {
                let (order, pay_by, q) = (order.clone(), order.pay_by, order.quantity);
                if t == Transition::Changed {
                    self.pay_deadlines.remove(&(pay_by, n));
                    self.pending_orders -= 1;
                    self.paid_units += u64::from(q);
                    self.fx.mutations.push(Mutation::PutOrder(order.clone()));
                }
                Ok(order)
            }
            Err(TransitionError::AlreadyCancelled) => Err(ActivityError::Conflict(
                "the order was cancelled and cannot be paid".into(),
            )),
            Err(e) => Err(ActivityError::Conflict(e.to_string())),
        }
    }

    /// The owner (or an operator) cancels a pending order; its units go back.
    pub fn cancel(
        &mut self,
        n: u64,
        user: Option<&UserId>,
        now: Millis,
    ) -> Result<Order, ActivityError> {
        self.owned_order_mut(n, user)?;
        let order = self.cancel_order(n, CancelReason::User)?;
        self.settle(now);
        self.admit(now);
        Ok(order)
    }

    pub(super) fn cancel_order(
        &mut self,
        n: u64,
        reason: CancelReason,
    ) -> Result<Order, ActivityError> {
        let order = self
            .orders
            .get_mut(&n)
            .ok_or_else(|| ActivityError::NotFound("no such order".into()))?;
        match order.cancel(reason) {
            Ok(Transition::Changed) => {
                let order = order.clone();
                self.pay_deadlines.remove(&(order.pay_by, n));
                self.pending_orders -= 1;
                self.cancelled_units += u64::from(order.quantity);
                self.ledger.unsell(order.slot, u64::from(order.quantity));
                if let Some(e) = self.users.get_mut(&order.user) {
                    e.bought = e.bought.saturating_sub(order.quantity);
                }
                self.fx.mutations.push(Mutation::PutOrder(order.clone()));
                Ok(order)
            }
            Ok(Transition::Unchanged) => Ok(order.clone()),
            Err(e) => Err(ActivityError::Conflict(e.to_string())),
        }
    }

    fn owned_order_mut(
        &mut self,
        n: u64,
        user: Option<&UserId>,
    ) -> Result<&mut Order, ActivityError> {
        let order = self
            .orders
            .get_mut(&n)
            .ok_or_else(|| ActivityError::NotFound("no such order".into()))?;
        match user {
            Some(u) if &order.user != u => Err(ActivityError::Forbidden(
                "that order belongs to someone else".into(),
            )),
            _ => Ok(order),
        }
    }
}
