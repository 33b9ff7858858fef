//! Webhook events: the five types, their `data`, the delivered body, and the
//! Standard Webhooks signature over it. Pure: events are facts the activity emits
//! with the change that caused them; `webhooks/` delivers them.

use super::clock::{rfc3339, Millis};
use super::order::Order;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "order.created")]
    OrderCreated,
    #[serde(rename = "order.paid")]
    OrderPaid,
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
    #[serde(rename = "activity.phase_changed")]
    PhaseChanged,
    #[serde(rename = "place.admitted")]
    PlaceAdmitted,
}

impl EventType {
    pub const ALL: [EventType; 5] = [
        EventType::OrderCreated,
        EventType::OrderPaid,
        EventType::OrderCancelled,
        EventType::PhaseChanged,
        EventType::PlaceAdmitted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::OrderCreated => "order.created",
            EventType::OrderPaid => "order.paid",
            EventType::OrderCancelled => "order.cancelled",
            EventType::PhaseChanged => "activity.phase_changed",
            EventType::PlaceAdmitted => "place.admitted",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// One bit per type: the set of types some receiver wants fits a `u8`.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }

    /// The types in `mask`.
    pub fn in_mask(mask: u8) -> impl Iterator<Item = EventType> {
        Self::ALL.into_iter().filter(move |t| mask & t.bit() != 0)
    }
}

/// An event's `data`, as the contract shapes it. An order event keeps the order and
/// takes the contract's view of it only when its body is written: most events go to
/// no receiver, and the view (ids and two timestamps formatted) was a tenth of the
/// activity actor's work per purchase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum EventData {
    Order(#[serde(serialize_with = "order_view")] Arc<Order>),
    Phase {
        activity_id: String,
        phase: String,
    },
    Admitted {
        activity_id: String,
        user_id: String,
        expires_at: String,
    },
}

/// One event as emitted: its type, when, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub at: Millis,
    pub data: EventData,
}

fn order_view<S: serde::Serializer>(order: &Order, s: S) -> Result<S::Ok, S::Error> {
    order.view().serialize(s)
}

/// The delivered body, `{"type", "timestamp", "data"}`.
#[derive(Serialize)]
pub struct EventBody<'a> {
    #[serde(rename = "type")]
    pub kind: EventType,
    pub timestamp: String,
    pub data: &'a EventData,
}

impl Event {
    /// The body exactly as it is stored and signed (the same bytes on every try).
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&EventBody {
            kind: self.kind,
            timestamp: rfc3339(self.at),
            data: &self.data,
        })
        .expect("event bodies serialize")
    }
}

/// The event type of a stored body, without decoding its data.
pub fn body_type(body: &[u8]) -> Option<EventType> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(rename = "type")]
        kind: EventType,
    }
    serde_json::from_slice::<Head>(body).ok().map(|h| h.kind)
}

/// The stable `webhook-id` of an activity's `seq`-th event: the same on every try and
/// on whichever node delivers it.
pub fn event_id(activity: &str, seq: u64) -> String {
    format!("msg_{activity}_{seq}")
}

/// A receiver's signing secret as shown to the operator: `whsec_` + base64 of the key.
pub fn secret_text(key: &[u8]) -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

/// The key bytes of a `whsec_` secret.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_")?)
        .ok()
}

/// `webhook-signature`: `v1,` + base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}").
pub fn signature(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

/// Longest receiver URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// A receiver URL's parts: `scheme://`, the userinfo before `@` (if any), the rest
/// from the host on, and where the fragment starts in that rest (if any).
fn url_parts(url: &str) -> Option<(&str, Option<&str>, &str)> {
    let scheme_end = url.find("://")? + 3;
    let (scheme, rest) = url.split_at(scheme_end);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => Some((scheme, Some(&rest[..at]), &rest[at + 1..])),
        None => Some((scheme, None, rest)),
    }
}

/// Percent-decodes `s` (userinfo is percent-encoded in a URL); `None` if a `%` is not
/// followed by two hex digits.
fn percent_decoded(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Where and how a receiver is sent to: its URL without credentials or fragment (a
/// fragment is never sent over HTTP; credentials go in a header, not the URL), and
/// the `Authorization: Basic` value its `user:password@` stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub authorization: Option<String>,
}

/// The target of a URL `check_url` accepted.
pub fn target(url: &str) -> Target {
    let Some((scheme, userinfo, rest)) = url_parts(url) else {
        return Target {
            url: url.to_owned(),
            authorization: None,
        };
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let authorization = userinfo.map(|u| {
        let (user, password) = u.split_once(':').unwrap_or((u, ""));
        let mut plain = percent_decoded(user).unwrap_or_default();
        plain.push(b':');
        plain.extend(percent_decoded(password).unwrap_or_default());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(plain)
        )
    });
    Target {
        url: format!("{scheme}{rest}"),
        authorization,
    }
}

/// A receiver URL as shown (listings, answers, logs): its password, or a userinfo
/// without one (which may be a token), replaced by `***`.
pub fn redacted_url(url: &str) -> String {
    match url_parts(url) {
        Some((scheme, Some(userinfo), rest)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}{user}:***@{rest}"),
            None => format!("{scheme}***@{rest}"),
        },
        _ => url.to_owned(),
    }
}

/// Checks a receiver URL: absolute `http` or `https`, a host, an optional numeric
/// port, nothing unprintable. Credentials (`user:password@`, sent as HTTP Basic
/// authorization) and a fragment (dropped before sending) are allowed. Private and
/// loopback addresses are allowed (the shop's backend usually sits beside sluice).
pub fn check_url(url: &str) -> Result<(), String> {
    if url.is_empty() || url.len() > MAX_URL_LEN {
        return Err(format!("url must be 1-{MAX_URL_LEN} characters"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("url must not contain spaces or control characters".into());
    }
    let lower = url.to_ascii_lowercase();
    let rest = ["http://", "https://"]
        .iter()
        .find_map(|s| lower.starts_with(s).then(|| &url[s.len()..]))
        .ok_or("url must be an absolute http:// or https:// URL")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:%".contains(c);
            if !userinfo.chars().all(allowed) || percent_decoded(userinfo).is_none() {
                return Err("url has invalid credentials (percent-encode them)".into());
            }
            host
        }
        None => authority,
    };
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6
                .split_once(']')
                .ok_or("url has an unclosed [IPv6] host")?;
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err("url has an invalid IPv6 host".into());
            }
            match after {
                "" => (h, None),
                _ => (
                    h,
                    Some(after.strip_prefix(':').ok_or("url has an invalid port")?),
                ),
            }
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let host_ok = !host.is_empty()
        && (authority.starts_with('[')
            || host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_'));
    if !host_ok {
        return Err("url must name a host".into());
    }
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |p| p == 0) {
            return Err("url has an invalid port".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_urls_are_checked() {
        for ok in [
            "http://127.0.0.1:9000/hooks",
            "https://shop.example/api/sluice?x=1",
            "http://[::1]:8080/",
            "HTTP://backend.internal",
            "http://10.0.0.5/h",
            "http://user:pw@shop.example/",
            "https://shop.example/hook#frag",
            "https://u%40x:p%3Aw@shop.example:8443/h?x=1#f",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "ftp://shop.example/",
            "/relative/path",
            "http://",
            "http:///path",
            "http://us er:pw@shop.example/",
            "http://user:p%zz@shop.example/",
            "http://user@pw@shop.example/",
            "http://user:pw@/",
            "http://shop.example:99999/",
            "http://shop.example:0/",
            "http://shop example/",
            "http://[::1/",
            "http://[zz]/",
            "javascript:alert(1)",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(check_url(&format!("http://a/{}", "x".repeat(MAX_URL_LEN))).is_err());
    }

    #[test]
    fn credentials_go_in_a_header_fragments_are_dropped_and_passwords_never_shown() {
        let t = target("https://u%40x:p%3Aw@shop.example:8443/h?x=1#f");
        assert_eq!(t.url, "https://shop.example:8443/h?x=1");
        let basic = base64::engine::general_purpose::STANDARD.encode("u@x:p:w");
        assert_eq!(t.authorization, Some(format!("Basic {basic}")));
        assert_eq!(
            target("http://127.0.0.1:9000/hooks"),
            Target {
                url: "http://127.0.0.1:9000/hooks".into(),
                authorization: None
            }
        );
        assert_eq!(target("http://h/p#x").url, "http://h/p");
        assert_eq!(
            redacted_url("https://user:s3cret@shop.example/p#f"),
            "https://user:***@shop.example/p#f"
        );
        assert_eq!(
            redacted_url("https://tok3n@shop.example/"),
            "https://***@shop.example/"
        );
        assert_eq!(redacted_url("http://h/a@b"), "http://h/a@b");
        assert_eq!(target("http://h/a@b").url, "http://h/a@b");
    }

    #[test]
    fn types_round_trip_and_masks_select() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("order.shipped"), None);
        let mask = EventType::OrderPaid.bit() | EventType::PlaceAdmitted.bit();
        assert_eq!(
            EventType::in_mask(mask).collect::<Vec<_>>(),
            [EventType::OrderPaid, EventType::PlaceAdmitted]
        );
    }

    #[test]
    fn the_signature_is_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification (spec/standard-webhooks.md).
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("base64");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(secret_key(&secret_text(&key)).as_deref(), Some(&key[..]));
    }

    #[test]
    fn bodies_carry_the_type_timestamp_and_data() {
        let e = Event {
            kind: EventType::PhaseChanged,
            at: 1_700_000_000_000,
            data: EventData::Phase {
                activity_id: "drop".into(),
                phase: "sold_out".into(),
            },
        };
        let v: serde_json::Value = serde_json::from_slice(&e.body()).expect("json");
        assert_eq!(v["type"], "activity.phase_changed");
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(v["data"]["phase"], "sold_out");
        assert_eq!(body_type(&e.body()), Some(EventType::PhaseChanged));
    }

    #[test]
    fn an_order_event_carries_the_contracts_order_object() {
        use crate::domain::ids::{ActivityId, UserId};
        use crate::domain::order::OrderStatus;
        let order = Order {
            activity: ActivityId::parse("drop").expect("valid"),
            n: 7,
            slot: 0,
            slot_id: None,
            user: UserId::parse("user-1").expect("valid"),
            quantity: 2,
            amount_cents: 1998,
            status: OrderStatus::PendingPayment,
            created_at: 1_700_000_000_000,
            pay_by: 1_700_000_600_000,
            hold: 3,
            version: 1,
            cancel_reason: None,
            ticket: "t".into(),
            payment_ref: None,
        };
        let e = Event {
            kind: EventType::OrderCreated,
            at: 1_700_000_000_000,
            data: EventData::Order(Arc::new(order.clone())),
        };
        let v: serde_json::Value = serde_json::from_slice(&e.body()).expect("json");
        assert_eq!(v["type"], "order.created");
        assert_eq!(v["data"], serde_json::to_value(order.view()).expect("json"));
        assert_eq!(v["data"]["pay_by"], "2023-11-14T22:23:20Z");
    }
}
