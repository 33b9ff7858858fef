//! The order book: every order of the activity, by number and by the hold (token) it
//! spent, the payment deadlines of pending ones, and the paid/cancelled/pending counts.

use super::numbered::Numbered;
use super::{ActivityError, Effects, Mutation};
use crate::domain::clock::Millis;
use crate::domain::ids::UserId;
use crate::domain::order::{
    CancelReason, Order, OrderStatus, PaymentRef, Transition, TransitionError,
};
use crate::domain::webhook::{EventData, EventType};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

fn no_such_order() -> ActivityError {
    ActivityError::NotFound("no such order".into())
}

/// Only the order's owner, or an operator (`user = None`), may read or change it.
fn may_act(order: &Order, user: Option<&UserId>) -> Result<(), ActivityError> {
    match user {
        Some(u) if &order.user != u => Err(ActivityError::Forbidden(
            "that order belongs to someone else".into(),
        )),
        _ => Ok(()),
    }
}

/// Orders are shared (`Arc`) with the commit that persists them, the event that
/// announces them and the purchase's answer: one allocation per order, not four.
#[derive(Debug)]
pub(super) struct OrderBook {
    orders: Numbered<Arc<Order>>,
    /// Hold id -> order number: a spent token finds its order (idempotent purchase).
    by_hold: HashMap<u64, u64>,
    pay_deadlines: BTreeSet<(Millis, u64)>,
    next_n: u64,
    pending: u64,
    paid_units: u64,
    cancelled_units: u64,
}

impl Default for OrderBook {
    fn default() -> Self {
        Self {
            orders: Numbered::default(),
            by_hold: HashMap::new(),
            pay_deadlines: BTreeSet::new(),
            next_n: 1,
            pending: 0,
            paid_units: 0,
            cancelled_units: 0,
        }
    }
}

impl OrderBook {
    pub(super) fn get(&self, n: u64) -> Option<&Order> {
        self.orders.get(n).map(Arc::as_ref)
    }

    /// The order a purchase token (hold) already bought.
    pub(super) fn of_hold(&self, hold: u64) -> Option<&Arc<Order>> {
        self.by_hold.get(&hold).and_then(|&n| self.orders.get(n))
    }

    pub(super) fn of_user<'a>(&'a self, user: &'a UserId) -> impl Iterator<Item = &'a Order> + 'a {
        self.orders
            .values()
            .map(Arc::as_ref)
            .filter(move |o| &o.user == user)
    }

    /// The order, if `user` may act on it (`None` is an operator).
    pub(super) fn owned(&self, n: u64, user: Option<&UserId>) -> Result<&Order, ActivityError> {
        let order = self.get(n).ok_or_else(no_such_order)?;
        may_act(order, user)?;
        Ok(order)
    }

    /// The number the next order gets.
    pub(super) fn next_n(&self) -> u64 {
        self.next_n
    }

    pub(super) fn pending(&self) -> u64 {
        self.pending
    }
    pub(super) fn paid_units(&self) -> u64 {
        self.paid_units
    }
    pub(super) fn cancelled_units(&self) -> u64 {
        self.cancelled_units
    }

    /// Units in orders not cancelled (checked against the ledger's sold).
    pub(super) fn sold_units(&self) -> u64 {
        self.orders
            .values()
            .filter(|o| o.status != OrderStatus::Cancelled)
            .map(|o| u64::from(o.quantity))
            .sum()
    }

    /// Books a new pending order numbered `next_n()` and persists it.
    pub(super) fn open(&mut self, order: Order, fx: &mut Effects) -> Arc<Order> {
        debug_assert_eq!(order.n, self.next_n, "orders are numbered in turn");
        let n = order.n;
        self.next_n += 1;
        self.pay_deadlines.insert((order.pay_by, n));
        self.pending += 1;
        self.by_hold.insert(order.hold, n);
        let order = Arc::new(order);
        fx.mutations.push(Mutation::PutOrder(Arc::clone(&order)));
        fx.event(
            EventType::OrderCreated,
            EventData::Order(Arc::clone(&order)),
        );
        Arc::clone(self.orders.insert(n, order))
    }

    /// The owner (or an operator, `user = None`) pays a pending order.
    pub(super) fn pay(
        &mut self,
        n: u64,
        user: Option<&UserId>,
        payment_ref: Option<&PaymentRef>,
        fx: &mut Effects,
    ) -> Result<Order, ActivityError> {
        let order = self.orders.get_mut(n).ok_or_else(no_such_order)?;
        may_act(order, user)?;
        // A copy only while the commit or event of an earlier change still shares it.
        match Arc::make_mut(order).pay(payment_ref) {
            Ok(t) => {
                let (pay_by, q) = (order.pay_by, order.quantity);
                if t == Transition::Changed {
                    self.pay_deadlines.remove(&(pay_by, n));
                    self.pending -= 1;
                    self.paid_units += u64::from(q);
                    fx.mutations.push(Mutation::PutOrder(Arc::clone(order)));
                    fx.event(EventType::OrderPaid, EventData::Order(Arc::clone(order)));
                }
                Ok(Order::clone(order))
            }
            Err(TransitionError::AlreadyCancelled) => Err(ActivityError::Conflict(
                "the order was cancelled and cannot be paid".into(),
            )),
            Err(e) => Err(ActivityError::Conflict(e.to_string())),
        }
    }

    /// Cancels a pending order; on `Changed` its units are the caller's to give back.
    pub(super) fn cancel(
        &mut self,
        n: u64,
        reason: CancelReason,
        fx: &mut Effects,
    ) -> Result<(Order, Transition), ActivityError> {
        let order = self.orders.get_mut(n).ok_or_else(no_such_order)?;
        match Arc::make_mut(order).cancel(reason) {
            Ok(Transition::Changed) => {
                self.pay_deadlines.remove(&(order.pay_by, n));
                self.pending -= 1;
                self.cancelled_units += u64::from(order.quantity);
                fx.mutations.push(Mutation::PutOrder(Arc::clone(order)));
                fx.event(
                    EventType::OrderCancelled,
                    EventData::Order(Arc::clone(order)),
                );
                Ok((Order::clone(order), Transition::Changed))
            }
            Ok(Transition::Unchanged) => Ok((Order::clone(order), Transition::Unchanged)),
            Err(e) => Err(ActivityError::Conflict(e.to_string())),
        }
    }

    /// Takes the next pending order whose payment deadline passed by `now`.
    pub(super) fn next_overdue(&mut self, now: Millis) -> Option<u64> {
        let &(at, n) = self.pay_deadlines.first()?;
        if at > now {
            return None;
        }
        self.pay_deadlines.pop_first();
        Some(n)
    }

    /// Recovery: the record's counter, before the orders found raise it.
    pub(super) fn set_next_n(&mut self, next: u64) {
        self.next_n = next.max(1);
    }

    /// Recovery: an order found in the store, with its counters and deadline.
    pub(super) fn restore(&mut self, o: Order) {
        if o.n == 0 {
            return; // never written: orders are numbered from 1
        }
        self.next_n = self.next_n.max(o.n + 1);
        match o.status {
            OrderStatus::Cancelled => self.cancelled_units += u64::from(o.quantity),
            OrderStatus::Paid => self.paid_units += u64::from(o.quantity),
            OrderStatus::PendingPayment => {
                self.pending += 1;
                self.pay_deadlines.insert((o.pay_by, o.n));
            }
        }
        self.by_hold.insert(o.hold, o.n);
        self.orders.insert(o.n, Arc::new(o));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::ActivityId;

    fn order(book: &OrderBook, user: &str, hold: u64, quantity: u32) -> Order {
        Order {
            activity: ActivityId::parse("s").expect("valid"),
            n: book.next_n(),
            slot: 0,
            slot_id: None,
            user: UserId::parse(user).expect("valid"),
            quantity,
            amount_cents: 0,
            status: OrderStatus::PendingPayment,
            created_at: 0,
            pay_by: 100 * hold,
            hold,
            version: 1,
            cancel_reason: None,
            ticket: String::new(),
            payment_ref: None,
        }
    }

    #[test]
    fn paying_and_cancelling_move_the_counters_once() {
        let (mut book, mut fx) = (OrderBook::default(), Effects::default());
        let first = book.open(order(&book, "ann", 1, 2), &mut fx).n;
        let second = book.open(order(&book, "bob", 2, 1), &mut fx).n;
        assert_eq!((first, second, book.pending()), (1, 2, 2));
        book.pay(first, None, None, &mut fx).expect("pending");
        book.pay(first, None, None, &mut fx)
            .expect("paying twice is no change");
        let (_, t) = book
            .cancel(second, CancelReason::User, &mut fx)
            .expect("pending");
        assert_eq!(t, Transition::Changed);
        let (_, t) = book
            .cancel(second, CancelReason::User, &mut fx)
            .expect("already cancelled");
        assert_eq!(t, Transition::Unchanged);
        assert_eq!(
            (book.pending(), book.paid_units(), book.cancelled_units()),
            (0, 2, 1)
        );
        assert_eq!(book.sold_units(), 2);
        assert_eq!(book.of_hold(2).map(|o| o.n), Some(second));
    }

    #[test]
    fn only_the_owner_or_an_operator_reaches_an_order() {
        let (mut book, mut fx) = (OrderBook::default(), Effects::default());
        let n = book.open(order(&book, "ann", 1, 1), &mut fx).n;
        let ann = UserId::parse("ann").expect("valid");
        let bob = UserId::parse("bob").expect("valid");
        assert!(book.owned(n, Some(&ann)).is_ok());
        assert!(book.owned(n, None).is_ok());
        assert!(matches!(
            book.owned(n, Some(&bob)),
            Err(ActivityError::Forbidden(_))
        ));
        assert!(matches!(
            book.pay(n, Some(&bob), None, &mut fx),
            Err(ActivityError::Forbidden(_))
        ));
        assert!(matches!(
            book.owned(99, None),
            Err(ActivityError::NotFound(_))
        ));
    }

    #[test]
    fn overdue_orders_come_out_in_deadline_order() {
        let (mut book, mut fx) = (OrderBook::default(), Effects::default());
        book.open(order(&book, "ann", 3, 1), &mut fx);
        book.open(order(&book, "bob", 2, 1), &mut fx);
        assert_eq!(book.next_overdue(199), None);
        assert_eq!(book.next_overdue(300), Some(2));
        assert_eq!(book.next_overdue(300), Some(1));
        assert_eq!(book.next_overdue(300), None);
    }
}
