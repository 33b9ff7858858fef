//! Identifier newtypes that validate once, at the edge, so the rest of the code can trust them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why an identifier was refused; the message names the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(pub String);

/// `[a-z0-9][a-z0-9-]{0,63}`: the shape of activity and slot ids.
fn is_slug(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

macro_rules! slug_id {
    ($name:ident, $what:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, InvalidId> {
                if is_slug(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(InvalidId(format!(
                        "{} must match [a-z0-9][a-z0-9-]{{0,63}}",
                        $what
                    )))
                }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(s: String) -> Result<Self, InvalidId> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

slug_id!(ActivityId, "activity id");
slug_id!(SlotId, "slot id");

/// The `sub` of a user's identity token: 1-128 printable characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    pub fn parse(s: &str) -> Result<Self, InvalidId> {
        let n = s.chars().count();
        if (1..=128).contains(&n) && !s.chars().any(char::is_control) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidId(
                "user id must be 1-128 characters without control characters".into(),
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for UserId {
    type Error = InvalidId;
    fn try_from(s: String) -> Result<Self, InvalidId> {
        Self::parse(&s)
    }
}
impl From<UserId> for String {
    fn from(id: UserId) -> String {
        id.0
    }
}
impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An order id names its activity so any node can route it without an index:
/// `{activity}.{n}` with `n` in base 36. Clients treat it as opaque.
pub fn order_id(activity: &ActivityId, n: u64) -> String {
    format!("{activity}.{}", base36(n))
}

/// Splits an order id into activity and number; `None` for anything malformed.
pub fn parse_order_id(s: &str) -> Option<(ActivityId, u64)> {
    let (a, n) = s.rsplit_once('.')?;
    let activity = ActivityId::parse(a).ok()?;
    if n.is_empty() || n.len() > 13 {
        return None;
    }
    let n = u64::from_str_radix(n, 36).ok()?;
    (base36(n) == s[a.len() + 1..]).then_some((activity, n))
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::with_capacity(13);
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("base36 digits are ascii")
}

/// A ticket is 16 random bytes, base64url: unguessable, so knowing one proves nothing
/// about others, and it never reveals a position.
pub fn new_ticket() -> String {
    use base64::Engine;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Tickets are checked for shape before any lookup so junk never reaches a map.
pub fn is_ticket_shaped(s: &str) -> bool {
    s.len() == 22
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_ids_follow_the_contract_pattern() {
        assert!(ActivityId::parse("iphone-drop").is_ok());
        assert!(ActivityId::parse("0").is_ok());
        assert!(ActivityId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "-a", "A", "a_b", "../x", "a/b", &"a".repeat(65), "é"] {
            assert!(ActivityId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn order_ids_round_trip_and_reject_junk() {
        let a = ActivityId::parse("drop-1").expect("valid");
        for n in [0, 1, 35, 36, u64::MAX] {
            assert_eq!(parse_order_id(&order_id(&a, n)), Some((a.clone(), n)));
        }
        for bad in [
            "",
            ".",
            "drop-1.",
            "drop-1.00",
            "DROP.1",
            "x.zzzzzzzzzzzzzz",
            "a.-1",
        ] {
            assert_eq!(parse_order_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn user_ids_are_bounded() {
        assert!(UserId::parse("alice").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"x".repeat(129)).is_err());
        assert!(UserId::parse("a\nb").is_err());
    }

    #[test]
    fn tickets_have_a_fixed_shape() {
        let t = new_ticket();
        assert!(is_ticket_shaped(&t));
        assert!(!is_ticket_shaped("../../etc/passwd"));
    }
}
