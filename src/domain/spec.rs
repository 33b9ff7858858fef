//! What an operator asks for: the activity spec, its admission settings, and their validation.

use super::clock::{parse_rfc3339, Millis};
use super::ids::{ActivityId, SlotId};
use serde::{Deserialize, Serialize};

/// A request that parsed as JSON but breaks a rule; the message is for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

fn bad(msg: impl Into<String>) -> SpecError {
    SpecError(msg.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Sale,
    Appointment,
    /// No stock: admission hands out passes an existing site verifies (`gate`).
    Gate,
}

/// Who may join: anyone, or only holders of an operator's invite code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    #[default]
    Open,
    Invite,
}

/// What a gate activity protects: where admitted users go, and how long their pass lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    /// The protected site's entry page (http or https).
    pub origin_url: String,
    /// Default 900, at most 86400.
    #[serde(default = "default_pass_ttl")]
    pub pass_ttl_secs: u32,
}

fn default_pass_ttl() -> u32 {
    900
}

impl Access {
    pub fn is_open(&self) -> bool {
        *self == Access::Open
    }
}

impl GateSpec {
    fn validate(&self) -> Result<(), SpecError> {
        let u = &self.origin_url;
        let scheme_ok = u.starts_with("https://") || u.starts_with("http://");
        if !scheme_ok || u.len() > 2000 || u.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad(
                "gate.origin_url must be an http or https URL of at most 2000 characters",
            ));
        }
        in_range(
            "gate.pass_ttl_secs",
            self.pass_ttl_secs,
            1,
            super::pass::MAX_PASS_TTL_SECS,
        )?;
        Ok(())
    }
}

/// Pacing and limits of the waiting room; every field can be changed live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Admission {
    pub rate_per_sec: u32,
    pub max_active: u32,
    pub token_ttl_secs: u32,
    pub queue_capacity: u32,
    pub reconnect_grace_secs: u32,
    pub wait_for_returns: bool,
    /// Leading zero bits a join's proof of work must have; 0 turns the challenge off.
    #[serde(default)]
    pub join_pow_bits: u8,
    /// `open`, or `invite`: joining needs an invite code. Absent when open (records
    /// and views stay as they were before access control).
    #[serde(default, skip_serializing_if = "Access::is_open")]
    pub access: Access,
}

impl Default for Admission {
    fn default() -> Self {
        Self {
            rate_per_sec: 50,
            max_active: 200,
            token_ttl_secs: 120,
            queue_capacity: 1_000_000,
            reconnect_grace_secs: 60,
            wait_for_returns: false,
            join_pow_bits: 0,
            access: Access::Open,
        }
    }
}

/// A partial `Admission`, as in `PATCH .../admission` and the create body.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdmissionPatch {
    pub rate_per_sec: Option<u32>,
    pub max_active: Option<u32>,
    pub token_ttl_secs: Option<u32>,
    pub queue_capacity: Option<u32>,
    pub reconnect_grace_secs: Option<u32>,
    pub wait_for_returns: Option<bool>,
    pub join_pow_bits: Option<u8>,
    pub access: Option<Access>,
}

fn in_range(name: &str, v: u32, lo: u32, hi: u32) -> Result<u32, SpecError> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(bad(format!("{name} must be between {lo} and {hi}")))
    }
}

impl Admission {
    /// Applies a patch, validating every field it sets; `self` is unchanged on error.
    pub fn patched(&self, p: &AdmissionPatch) -> Result<Admission, SpecError> {
        let mut a = self.clone();
        if let Some(v) = p.rate_per_sec {
            a.rate_per_sec = in_range("admission.rate_per_sec", v, 1, 100_000)?;
        }
        if let Some(v) = p.max_active {
            a.max_active = in_range("admission.max_active", v, 1, 1_000_000)?;
        }
        if let Some(v) = p.token_ttl_secs {
            a.token_ttl_secs = in_range("admission.token_ttl_secs", v, 1, 86_400)?;
        }
        if let Some(v) = p.queue_capacity {
            a.queue_capacity = in_range("admission.queue_capacity", v, 1, 10_000_000)?;
        }
        if let Some(v) = p.reconnect_grace_secs {
            a.reconnect_grace_secs = in_range("admission.reconnect_grace_secs", v, 0, 86_400)?;
        }
        if let Some(v) = p.wait_for_returns {
            a.wait_for_returns = v;
        }
        if let Some(v) = p.join_pow_bits {
            a.join_pow_bits = in_range("admission.join_pow_bits", v.into(), 0, 32)? as u8;
        }
        if let Some(v) = p.access {
            a.access = v;
        }
        Ok(a)
    }
}

/// One appointment slot (or the single stock line of a sale).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlotSpec {
    #[schema(value_type = String)]
    pub id: SlotId,
    pub label: String,
    pub capacity: u32,
}

pub const MAX_SLOTS: usize = 10_000;
pub const MAX_CAPACITY: u32 = 100_000_000;

impl SlotSpec {
    pub fn validate(&self) -> Result<(), SpecError> {
        let n = self.label.chars().count();
        if !(1..=200).contains(&n) || self.label.chars().any(char::is_control) {
            return Err(bad(format!(
                "slot {} label must be 1-200 characters without control characters",
                self.id
            )));
        }
        in_range("slot capacity", self.capacity, 0, MAX_CAPACITY)?;
        Ok(())
    }
}

/// The body of `POST /api/admin/activities`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateActivity {
    pub id: String,
    pub name: String,
    pub kind: Kind,
    pub stock: Option<u32>,
    pub slots: Option<Vec<SlotSpec>>,
    pub price_cents: Option<u64>,
    pub per_user_limit: Option<u32>,
    pub opens_at: Option<String>,
    pub closes_at: Option<String>,
    pub admission: Option<AdmissionPatch>,
    pub payment_timeout_secs: Option<u32>,
    /// Required for (and only for) `kind: "gate"`.
    pub gate: Option<GateSpec>,
}

/// A validated activity definition; what never changes except through admin calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivitySpec {
    pub id: ActivityId,
    pub name: String,
    pub kind: Kind,
    pub price_cents: u64,
    pub per_user_limit: u32,
    pub opens_at: Option<Millis>,
    pub closes_at: Option<Millis>,
    pub admission: Admission,
    pub payment_timeout_secs: u32,
    pub created_at: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateSpec>,
}

/// The id of the single stock line of a sale; never shown to clients.
pub const SALE_SLOT: &str = "stock";

impl CreateActivity {
    /// Validates every field and returns the spec and its initial slots.
    pub fn validate(self, now: Millis) -> Result<(ActivitySpec, Vec<SlotSpec>), SpecError> {
        let id = ActivityId::parse(&self.id).map_err(|e| bad(e.0))?;
        let n = self.name.chars().count();
        if !(1..=200).contains(&n) || self.name.chars().any(char::is_control) {
            return Err(bad(
                "name must be 1-200 characters without control characters",
            ));
        }
        if self.gate.is_some() != (self.kind == Kind::Gate) {
            return Err(bad(
                "gate settings are required for, and only for, kind gate",
            ));
        }
        if let Some(g) = &self.gate {
            g.validate()?;
        }
        let slots = match self.kind {
            Kind::Gate => {
                if self.stock.is_some() || self.slots.is_some() {
                    return Err(bad("a gate takes neither stock nor slots"));
                }
                // Passes are held units: the ledger never runs dry, `max_active` bounds them.
                vec![SlotSpec {
                    id: SlotId::parse(SALE_SLOT).expect("constant is a valid slot id"),
                    label: "passes".into(),
                    capacity: MAX_CAPACITY,
                }]
            }
            Kind::Sale => {
                if self.slots.is_some() {
                    return Err(bad("a sale takes stock, not slots"));
                }
                let stock = self
                    .stock
                    .ok_or_else(|| bad("stock is required for a sale"))?;
                in_range("stock", stock, 0, MAX_CAPACITY)?;
                vec![SlotSpec {
                    id: SlotId::parse(SALE_SLOT).expect("constant is a valid slot id"),
                    label: "stock".into(),
                    capacity: stock,
                }]
            }
            Kind::Appointment => {
                if self.stock.is_some() {
                    return Err(bad("an appointment takes slots, not stock"));
                }
                let slots = self
                    .slots
                    .ok_or_else(|| bad("slots are required for an appointment"))?;
                validate_new_slots(&slots, &[])?;
                slots
            }
        };
        let price_cents = self.price_cents.unwrap_or(0);
        if price_cents > 1_000_000_000_000 {
            return Err(bad("price_cents must be at most 1000000000000"));
        }
        let per_user_limit = in_range("per_user_limit", self.per_user_limit.unwrap_or(1), 1, 1000)?;
        let opens_at = parse_time("opens_at", self.opens_at.as_deref())?;
        let closes_at = parse_time("closes_at", self.closes_at.as_deref())?;
        if let (Some(o), Some(c)) = (opens_at, closes_at) {
            if c <= o {
                return Err(bad("closes_at must be after opens_at"));
            }
        }
        let admission = Admission::default().patched(&self.admission.unwrap_or_default())?;
        let payment_timeout_secs = in_range(
            "payment_timeout_secs",
            self.payment_timeout_secs.unwrap_or(900),
            1,
            30 * 86_400,
        )?;
        Ok((
            ActivitySpec {
                id,
                name: self.name,
                kind: self.kind,
                price_cents,
                per_user_limit,
                opens_at: opens_at.filter(|&o| o > now),
                closes_at,
                admission,
                payment_timeout_secs,
                created_at: now,
                gate: self.gate,
            },
            slots,
        ))
    }
}

fn parse_time(name: &str, s: Option<&str>) -> Result<Option<Millis>, SpecError> {
    match s {
        None => Ok(None),
        Some(s) => parse_rfc3339(s)
            .map(Some)
            .ok_or_else(|| bad(format!("{name} must be an RFC 3339 time"))),
    }
}

/// Checks slots to add: valid each, unique among themselves, and only known ids may
/// reappear (to raise capacity) when `existing` is given.
pub fn validate_new_slots(slots: &[SlotSpec], existing: &[SlotSpec]) -> Result<(), SpecError> {
    if slots.is_empty() {
        return Err(bad("slots must not be empty"));
    }
    if slots.len() + existing.len() > MAX_SLOTS {
        return Err(bad(format!("at most {MAX_SLOTS} slots")));
    }
    let mut seen = std::collections::HashSet::new();
    for s in slots {
        s.validate()?;
        if !seen.insert(&s.id) {
            return Err(bad(format!("slot id {} appears twice", s.id)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> CreateActivity {
        serde_json::from_str(json).expect("test body parses")
    }

    #[test]
    fn minimal_sale_gets_contract_defaults() {
        let (spec, slots) = body(r#"{"id":"drop","name":"Drop","kind":"sale","stock":100}"#)
            .validate(0)
            .expect("valid");
        assert_eq!(spec.per_user_limit, 1);
        assert_eq!(spec.price_cents, 0);
        assert_eq!(spec.payment_timeout_secs, 900);
        assert_eq!(spec.admission, Admission::default());
        assert_eq!(slots[0].capacity, 100);
    }

    #[test]
    fn bad_fields_are_named() {
        for (json, needle) in [
            (
                r#"{"id":"Bad","name":"x","kind":"sale","stock":1}"#,
                "activity id",
            ),
            (r#"{"id":"a","name":"","kind":"sale","stock":1}"#, "name"),
            (r#"{"id":"a","name":"x","kind":"sale"}"#, "stock"),
            (r#"{"id":"a","name":"x","kind":"appointment"}"#, "slots"),
            (
                r#"{"id":"a","name":"x","kind":"sale","stock":1,"per_user_limit":0}"#,
                "per_user_limit",
            ),
            (
                r#"{"id":"a","name":"x","kind":"sale","stock":1,"admission":{"rate_per_sec":0}}"#,
                "rate_per_sec",
            ),
            (
                r#"{"id":"a","name":"x","kind":"sale","stock":1,"opens_at":"soon"}"#,
                "opens_at",
            ),
            (
                r#"{"id":"a","name":"x","kind":"appointment","slots":[{"id":"s","label":"a","capacity":1},{"id":"s","label":"b","capacity":1}]}"#,
                "twice",
            ),
        ] {
            let err = body(json).validate(0).expect_err(json);
            assert!(err.0.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_str::<CreateActivity>(
            r#"{"id":"a","name":"x","kind":"sale","stok":1}"#
        )
        .is_err());
    }
}
