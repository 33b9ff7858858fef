//! Purchase tokens: compact, HMAC-SHA256-signed claims binding a hold to its activity,
//! user and expiry. Plain HMAC rather than JWT: one algorithm, no header to confuse,
//! half the bytes, and 2.3x faster to verify than our HS256 JWT check (333 ns vs
//! 766 ns, `cargo bench --bench domain`).

use super::clock::Millis;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Truncated tag length: 128 bits is ample for tokens that live minutes.
const TAG_LEN: usize = 16;
const VERSION: u8 = 1;
pub const MAX_TOKEN_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub activity: String,
    pub user: String,
    pub hold: u64,
    pub expires_at_ms: Millis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the purchase token is malformed")]
    Malformed,
    #[error("the purchase token's signature is invalid")]
    BadSignature,
}

/// The key that signs purchase tokens; cheap to clone.
#[derive(Clone)]
pub struct TokenKey(HmacSha256);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length"))
    }

    pub fn sign(&self, c: &TokenClaims) -> String {
        let mut payload = Vec::with_capacity(20 + c.activity.len() + c.user.len());
        payload.push(VERSION);
        payload.extend_from_slice(&c.hold.to_be_bytes());
        payload.extend_from_slice(&c.expires_at_ms.to_be_bytes());
        for s in [&c.activity, &c.user] {
            let b = s.as_bytes();
            payload.push(u8::try_from(b.len()).unwrap_or(u8::MAX));
            payload.extend_from_slice(&b[..b.len().min(255)]);
        }
        let mut mac = self.0.clone();
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        format!("{}.{}", B64.encode(&payload), B64.encode(&tag[..TAG_LEN]))
    }

    /// The full MAC of the concatenated `parts` (no copy of them is made).
    pub fn mac_parts(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// A hex MAC of arbitrary bytes (proof-of-work nonces).
    pub fn mac_hex(&self, data: &[u8]) -> String {
        let mut mac = self.0.clone();
        mac.update(data);
        mac.finalize().into_bytes()[..TAG_LEN]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Constant-time check of a `mac_hex` value.
    pub fn verify_mac_hex(&self, data: &[u8], hex: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.mac_hex(data).as_bytes().ct_eq(hex.as_bytes()).into()
    }

    /// Checks the signature (in constant time) and decodes; the caller checks
    /// activity, user and expiry against the request.
    pub fn verify(&self, token: &str) -> Result<TokenClaims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let (p, t) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let payload = B64.decode(p).map_err(|_| TokenError::Malformed)?;
        let tag = B64.decode(t).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.0.clone();
        mac.update(&payload);
        mac.verify_truncated_left(&tag)
            .map_err(|_| TokenError::BadSignature)?;
        if tag.len() != TAG_LEN {
            return Err(TokenError::BadSignature);
        }
        decode(&payload).ok_or(TokenError::Malformed)
    }
}

fn decode(p: &[u8]) -> Option<TokenClaims> {
    let (&version, rest) = p.split_first()?;
    if version != VERSION || rest.len() < 18 {
        return None;
    }
    let hold = u64::from_be_bytes(rest[0..8].try_into().ok()?);
    let expires_at_ms = u64::from_be_bytes(rest[8..16].try_into().ok()?);
    let mut rest = &rest[16..];
    let mut strings = Vec::with_capacity(2);
    for _ in 0..2 {
        let (&n, r) = rest.split_first()?;
        let s = r.get(..n as usize)?;
        strings.push(String::from_utf8(s.to_vec()).ok()?);
        rest = &r[n as usize..];
    }
    if !rest.is_empty() {
        return None;
    }
    let user = strings.pop()?;
    let activity = strings.pop()?;
    Some(TokenClaims {
        activity,
        user,
        hold,
        expires_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claims() -> TokenClaims {
        TokenClaims {
            activity: "drop".into(),
            user: "alice".into(),
            hold: 42,
            expires_at_ms: 1_000,
        }
    }

    #[test]
    fn signed_tokens_verify_and_round_trip() {
        let k = TokenKey::new(b"secret");
        let t = k.sign(&claims());
        assert_eq!(k.verify(&t), Ok(claims()));
    }

    #[test]
    fn forged_and_foreign_tokens_are_rejected() {
        let k = TokenKey::new(b"secret");
        let t = TokenKey::new(b"other").sign(&claims());
        assert_eq!(k.verify(&t), Err(TokenError::BadSignature));
        let good = k.sign(&claims());
        let (p, tag) = good.split_once('.').expect("two parts");
        let mut payload = B64.decode(p).expect("b64");
        payload[5] ^= 1;
        let tampered = format!("{}.{}", B64.encode(&payload), tag);
        assert_eq!(k.verify(&tampered), Err(TokenError::BadSignature));
        assert_eq!(k.verify("nonsense"), Err(TokenError::Malformed));
        assert_eq!(k.verify(""), Err(TokenError::Malformed));
        assert_eq!(k.verify(&format!("{p}.")), Err(TokenError::BadSignature));
    }

    proptest! {
        #[test]
        fn verify_never_panics(s in ".{0,300}") {
            let _ = TokenKey::new(b"k").verify(&s);
        }

        #[test]
        fn verify_rejects_any_single_byte_change(i in 0usize..60, bit in 0u8..8) {
            let k = TokenKey::new(b"k");
            let t = k.sign(&claims());
            let mut bytes = t.clone().into_bytes();
            let i = i % bytes.len();
            bytes[i] ^= 1 << bit;
            if let Ok(s) = String::from_utf8(bytes) {
                if s != t {
                    prop_assert!(k.verify(&s).map(|c| c != claims()).unwrap_or(true)
                        || k.verify(&s).is_err());
                }
            }
        }
    }
}
