//! Orders and their lifecycle: `pending_payment` -> `paid` | `cancelled`.

use super::clock::{rfc3339, Millis};
use super::ids::{order_id, ActivityId, SlotId, UserId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    PendingPayment,
    Paid,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::PendingPayment => "pending_payment",
            OrderStatus::Paid => "paid",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

/// Why an order was cancelled; kept for operators and the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    User,
    PaymentTimeout,
}

/// An order as stored; `version` rises by one on every status change so sinks can
/// ignore replays and reordering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub activity: ActivityId,
    pub n: u64,
    /// Slot index in the ledger, and its id for readers.
    pub slot: usize,
    pub slot_id: Option<SlotId>,
    pub user: UserId,
    pub quantity: u32,
    pub amount_cents: u64,
    pub status: OrderStatus,
    pub created_at: Millis,
    pub pay_by: Millis,
    pub hold: u64,
    pub version: u64,
    #[serde(default)]
    pub cancel_reason: Option<CancelReason>,
    /// The ticket whose token bought it: after a restart the ticket still answers
    /// (`admitted` with the `order_id`), as it did before. Empty in stores written
    /// before it was kept.
    #[serde(default)]
    pub ticket: String,
    /// The shop's reference of the payment that paid it (`payment.mode = "external"`).
    #[serde(default)]
    pub payment_ref: Option<String>,
}

/// The contract's ORDER object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct OrderView {
    pub id: String,
    pub activity_id: String,
    #[schema(required = true)]
    pub slot_id: Option<String>,
    pub user_id: String,
    pub quantity: u32,
    pub amount_cents: u64,
    pub status: String,
    pub created_at: String,
    pub pay_by: String,
    pub version: u64,
    /// The shop's payment reference, once it confirmed payment with one.
    #[serde(default)]
    #[schema(required = true)]
    pub payment_ref: Option<String>,
}

impl Order {
    pub fn id(&self) -> String {
        order_id(&self.activity, self.n)
    }

    pub fn view(&self) -> OrderView {
        OrderView {
            id: self.id(),
            activity_id: self.activity.to_string(),
            slot_id: self.slot_id.as_ref().map(ToString::to_string),
            user_id: self.user.to_string(),
            quantity: self.quantity,
            amount_cents: self.amount_cents,
            status: self.status.as_str().to_owned(),
            created_at: rfc3339(self.created_at),
            pay_by: rfc3339(self.pay_by),
            version: self.version,
            payment_ref: self.payment_ref.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("a paid order cannot be cancelled")]
    AlreadyPaid,
    #[error("the order was cancelled; its units may already be sold again")]
    AlreadyCancelled,
}

/// What a transition did: `Changed` must be persisted; `Unchanged` is an idempotent repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Changed,
    Unchanged,
}

/// The longest `payment_ref` kept, in characters.
pub const MAX_PAYMENT_REF: usize = 128;

/// A shop's payment reference: 1-128 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRef(String);

impl PaymentRef {
    pub fn parse(s: &str) -> Result<PaymentRef, String> {
        let n = s.chars().count();
        if n == 0 || n > MAX_PAYMENT_REF || s.chars().any(char::is_control) {
            return Err(format!(
                "payment_ref must be 1-{MAX_PAYMENT_REF} characters without control characters"
            ));
        }
        Ok(PaymentRef(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Order {
    /// Marks it paid, keeping `payment_ref` if given. Paying a paid order again changes
    /// nothing (its first reference stays).
    pub fn pay(&mut self, payment_ref: Option<&PaymentRef>) -> Result<Transition, TransitionError> {
        match self.status {
            OrderStatus::Paid => Ok(Transition::Unchanged),
            OrderStatus::Cancelled => Err(TransitionError::AlreadyCancelled),
            OrderStatus::PendingPayment => {
                self.status = OrderStatus::Paid;
                self.payment_ref = payment_ref.map(|r| r.as_str().to_owned());
                self.version += 1;
                Ok(Transition::Changed)
            }
        }
    }

    pub fn cancel(&mut self, reason: CancelReason) -> Result<Transition, TransitionError> {
        match self.status {
            OrderStatus::Cancelled => Ok(Transition::Unchanged),
            OrderStatus::Paid => Err(TransitionError::AlreadyPaid),
            OrderStatus::PendingPayment => {
                self.status = OrderStatus::Cancelled;
                self.cancel_reason = Some(reason);
                self.version += 1;
                Ok(Transition::Changed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order() -> Order {
        Order {
            activity: ActivityId::parse("a").expect("valid"),
            n: 1,
            slot: 0,
            slot_id: None,
            user: UserId::parse("u").expect("valid"),
            quantity: 1,
            amount_cents: 10,
            status: OrderStatus::PendingPayment,
            created_at: 0,
            pay_by: 1000,
            hold: 1,
            version: 1,
            cancel_reason: None,
            ticket: String::new(),
            payment_ref: None,
        }
    }

    #[test]
    fn pay_is_idempotent_and_final() {
        let mut o = order();
        let first = PaymentRef::parse("psp-1").expect("valid");
        let second = PaymentRef::parse("psp-2").expect("valid");
        assert_eq!(o.pay(Some(&first)), Ok(Transition::Changed));
        assert_eq!(o.pay(Some(&second)), Ok(Transition::Unchanged));
        assert_eq!(o.view().payment_ref.as_deref(), Some("psp-1"));
        assert_eq!(o.version, 2);
        assert_eq!(
            o.cancel(CancelReason::User),
            Err(TransitionError::AlreadyPaid)
        );
    }

    #[test]
    fn a_late_payment_never_resurrects_a_cancelled_order() {
        let mut o = order();
        assert_eq!(
            o.cancel(CancelReason::PaymentTimeout),
            Ok(Transition::Changed)
        );
        assert_eq!(o.pay(None), Err(TransitionError::AlreadyCancelled));
        assert_eq!(o.status, OrderStatus::Cancelled);
        assert_eq!(o.cancel(CancelReason::User), Ok(Transition::Unchanged));
    }

    #[test]
    fn payment_refs_are_one_to_128_printable_characters() {
        assert!(PaymentRef::parse("").is_err());
        assert!(PaymentRef::parse(&"x".repeat(129)).is_err());
        assert!(PaymentRef::parse("a\nb").is_err());
        assert!(PaymentRef::parse(&"é".repeat(128)).is_ok());
    }
}
