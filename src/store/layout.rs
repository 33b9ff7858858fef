//! The sled layout: one tree, keys grouped by prefix, values as JSON.
//!
//! One tree (not one per kind) because a `sled::Batch` is atomic only within a tree,
//! and a commit must land whole: an order, the hold it consumed and its outbox entry
//! together or not at all.
//!
//! | key                          | value                                  |
//! |------------------------------|----------------------------------------|
//! | `meta/schema`                | schema version, decimal                |
//! | `a/{activity}/rec`           | `ActivityRecord` (spec, flags, counters) |
//! | `a/{activity}/p/{seq:016x}`  | `PlaceRecord` in the waiting room      |
//! | `a/{activity}/q/{n:016x}`    | `PlaceRecord` in the pre-queue         |
//! | `a/{activity}/h/{id:016x}`   | `Hold` (an unspent purchase token)     |
//! | `a/{activity}/o/{n:016x}`    | `Order`                                |
//! | `a/{activity}/l/{seq:016x}`  | `LineRecord`: a place of the public line (fairness log) |
//! | `a/{activity}/shuffle`       | `ShuffleAudit` of the pre-queue        |
//! | `a/{activity}/report`        | `ReportRecord`: the post-event report's totals |
//! | `a/{activity}/m/{min:016x}`  | `MinuteRecord`: one minute of the report (minutes since 1970) |
//! | `a/{activity}/i/{n:016x}`   | `InviteRecord`: an invite code and who claimed it |
//! | `a/{activity}/b/{n:016x}`   | `BanRecord`: a user refused from now on |
//! | `a/{activity}/r/{hold:016x}`| `RevokedRecord`: a gate pass revoked before its expiry |
//! | `k/signing`                 | the gate pass signing keys (`store::signing_keys`) |
//! | `o/{seq:016x}`               | `OrderRecord` waiting for the sink     |
//! | `u/{username}`               | account (username, user id, password hash) |
//! | `audit/{MAX - seq:016x}`     | `AuditRecord`: one admin call (newest first) |
//! | `e/{activity}/{seq:016x}`    | a webhook event's body, waiting for delivery (replicated with the activity) |
//! | `w/r/{webhook}`              | a webhook registration (single node; cluster mode keeps them in Redis) |
//! | `w/c/{webhook}/{activity}`   | the next event of the activity that webhook gets |
//!
//! Hex numbers are fixed width so lexicographic order is numeric order.
//!
//! An order lives at the key of the hold it spent (schema 2): a purchase then
//! overwrites one key where it used to delete one and insert another, which cut
//! what sled's checkpoint costs per purchase by about two thirds (deletes shrink
//! leaves into merges, appended orders split them). Schema 1 stores kept orders
//! under `o/`; they are read as they are, and an order rewritten since has both
//! keys (the newer `version` wins).

use crate::domain::ids::ActivityId;

pub const SCHEMA_KEY: &[u8] = b"meta/schema";
pub const SCHEMA_VERSION: u32 = 2;
pub const ACTIVITY_PREFIX: &[u8] = b"a/";
pub const OUTBOX_PREFIX: &[u8] = b"o/";
pub const ACCOUNT_PREFIX: &[u8] = b"u/";
pub const AUDIT_PREFIX: &[u8] = b"audit/";
pub const WEBHOOK_PREFIX: &[u8] = b"w/r/";
pub const SIGNING_KEYS_KEY: &[u8] = b"k/signing";

pub fn activity_key(a: &ActivityId, rest: &str) -> Vec<u8> {
    format!("a/{a}/{rest}").into_bytes()
}

/// `a/{a}/{kind}/{n:016x}`, built without the formatting machinery: every purchase
/// writes two of these keys.
pub fn numbered(a: &ActivityId, kind: char, n: u64) -> Vec<u8> {
    let a = a.as_str().as_bytes();
    let mut key = Vec::with_capacity(a.len() + 24);
    key.extend_from_slice(b"a/");
    key.extend_from_slice(a);
    key.push(b'/');
    key.extend_from_slice(kind.encode_utf8(&mut [0; 4]).as_bytes());
    key.push(b'/');
    key.extend(
        (0..16)
            .rev()
            .map(|i| b"0123456789abcdef"[(n >> (i * 4)) as usize & 0xf]),
    );
    key
}

pub fn outbox_key(seq: u64) -> Vec<u8> {
    format!("o/{seq:016x}").into_bytes()
}

/// The prefix of an activity's webhook events.
pub fn events_of(a: &str) -> Vec<u8> {
    format!("e/{a}/").into_bytes()
}

pub fn event_key(a: &str, seq: u64) -> Vec<u8> {
    format!("e/{a}/{seq:016x}").into_bytes()
}

pub fn parse_event_seq(key: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(key).ok()?;
    u64::from_str_radix(s.rsplit_once('/')?.1, 16).ok()
}

pub fn webhook_key(id: &str) -> Vec<u8> {
    format!("w/r/{id}").into_bytes()
}

pub fn cursor_key(webhook: &str, a: &str) -> Vec<u8> {
    format!("w/c/{webhook}/{a}").into_bytes()
}

pub fn account_key(username: &str) -> Vec<u8> {
    let mut k = ACCOUNT_PREFIX.to_vec();
    k.extend_from_slice(username.as_bytes());
    k
}

/// What an `a/...` key names.
#[derive(Debug, PartialEq, Eq)]
pub enum ActivityKey<'a> {
    Record(&'a str),
    Shuffle(&'a str),
    Report(&'a str),
    Numbered(&'a str, char, u64),
}

pub fn parse_activity_key(key: &[u8]) -> Option<ActivityKey<'_>> {
    let s = std::str::from_utf8(key).ok()?.strip_prefix("a/")?;
    let (id, rest) = s.split_once('/')?;
    match rest {
        "rec" => Some(ActivityKey::Record(id)),
        "shuffle" => Some(ActivityKey::Shuffle(id)),
        "report" => Some(ActivityKey::Report(id)),
        _ => {
            let (kind, n) = rest.split_once('/')?;
            let mut chars = kind.chars();
            let k = chars.next()?;
            if chars.next().is_some() || n.len() != 16 {
                return None;
            }
            Some(ActivityKey::Numbered(
                id,
                k,
                u64::from_str_radix(n, 16).ok()?,
            ))
        }
    }
}

pub fn parse_outbox_seq(key: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(key).ok()?.strip_prefix("o/")?;
    u64::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back() {
        let a = ActivityId::parse("drop-1").expect("valid");
        assert_eq!(
            parse_activity_key(&activity_key(&a, "rec")),
            Some(ActivityKey::Record("drop-1"))
        );
        assert_eq!(
            parse_activity_key(&numbered(&a, 'p', 255)),
            Some(ActivityKey::Numbered("drop-1", 'p', 255))
        );
        assert_eq!(parse_activity_key(b"a/x/p/zz"), None);
        for n in [0, 9, 10, 255, 0xdead_beef, u64::MAX] {
            assert_eq!(
                numbered(&a, 'o', n),
                format!("a/drop-1/o/{n:016x}").into_bytes()
            );
        }
        assert_eq!(parse_outbox_seq(&outbox_key(7)), Some(7));
        assert_eq!(parse_event_seq(&event_key("drop-1", 300)), Some(300));
    }
}
