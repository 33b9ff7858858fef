//! Short-lived, single-use tickets for the admin event stream: `EventSource` cannot
//! set an `Authorization` header, and a key in a URL ends up in proxy logs and
//! browser history. A ticket names its key and expiry and is signed with a key
//! derived from `tokens.secret` (every node of a cluster has it); it opens one
//! stream, within `TTL_MS`, once per node.

use crate::domain::clock::Millis;
use crate::domain::token::TokenKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use std::collections::HashMap;
use std::sync::Mutex;

/// How long a ticket may wait before it opens its stream.
pub const TTL_MS: u64 = 30_000;
/// Keeps a ticket's MAC apart from the purchase tokens signed with the same secret.
const DOMAIN: &[u8] = b"sluice admin event ticket\0";
/// Longest ticket accepted (a key name is at most 64 characters).
const MAX_LEN: usize = 256;

/// Issues and redeems tickets.
pub struct EventTickets {
    key: TokenKey,
    /// Nonces already redeemed, with their expiry, until they expire.
    spent: Mutex<HashMap<u64, Millis>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("the event ticket is malformed or its signature is invalid")]
    Invalid,
    #[error("the event ticket has expired; request a new one")]
    Expired,
    #[error("the event ticket was already used; request a new one")]
    Spent,
}

impl EventTickets {
    pub fn new(secret: &[u8]) -> EventTickets {
        EventTickets {
            key: TokenKey::new(secret),
            spent: Mutex::new(HashMap::new()),
        }
    }

    fn tag(&self, body: &str) -> String {
        B64.encode(&self.key.mac_parts(&[DOMAIN, body.as_bytes()])[..16])
    }

    /// A ticket for the key named `name`, valid from `now` for `TTL_MS`.
    pub fn issue(&self, name: &str, now: Millis) -> String {
        let body = format!(
            "{}.{:016x}.{}",
            now + TTL_MS,
            rand::random::<u64>(),
            B64.encode(name)
        );
        let tag = self.tag(&body);
        format!("{body}.{tag}")
    }

    /// The key name of a valid ticket, spending it.
    pub fn redeem(&self, ticket: &str, now: Millis) -> Result<String, TicketError> {
        if ticket.len() > MAX_LEN {
            return Err(TicketError::Invalid);
        }
        let (body, tag) = ticket.rsplit_once('.').ok_or(TicketError::Invalid)?;
        let expected = self.tag(body);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            tag.as_bytes(),
        )) {
            return Err(TicketError::Invalid);
        }
        let mut parts = body.split('.');
        let (Some(exp), Some(nonce), Some(name), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TicketError::Invalid);
        };
        let exp: Millis = exp.parse().map_err(|_| TicketError::Invalid)?;
        let nonce = u64::from_str_radix(nonce, 16).map_err(|_| TicketError::Invalid)?;
        let name = B64
            .decode(name)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(TicketError::Invalid)?;
        if exp <= now {
            return Err(TicketError::Expired);
        }
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        spent.retain(|_, until| *until > now);
        if spent.insert(nonce, exp).is_some() {
            return Err(TicketError::Spent);
        }
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_opens_once_before_it_expires() {
        let t = EventTickets::new(b"secret");
        let ticket = t.issue("ops", 1_000);
        assert_eq!(t.redeem(&ticket, 1_500), Ok("ops".into()));
        assert_eq!(t.redeem(&ticket, 1_600), Err(TicketError::Spent));
        let late = t.issue("ops", 1_000);
        assert_eq!(t.redeem(&late, 1_000 + TTL_MS), Err(TicketError::Expired));
    }

    #[test]
    fn forged_or_foreign_tickets_are_refused() {
        let t = EventTickets::new(b"secret");
        let other = EventTickets::new(b"another secret");
        let ticket = other.issue("ops", 0);
        assert_eq!(t.redeem(&ticket, 1), Err(TicketError::Invalid));
        let genuine = t.issue("ops", 0);
        let (body, tag) = genuine.rsplit_once('.').expect("shape");
        let renamed = body.replace(&B64.encode("ops"), &B64.encode("default"));
        assert_eq!(
            t.redeem(&format!("{renamed}.{tag}"), 1),
            Err(TicketError::Invalid)
        );
        for junk in ["", ".", "a.b.c.d", &"x".repeat(300)] {
            assert_eq!(t.redeem(junk, 1), Err(TicketError::Invalid), "{junk}");
        }
    }
}
