//! User identity: HS256 JSON Web Tokens with `sub` and `exp`. Only HS256 is accepted,
//! which rules out algorithm-confusion attacks (`none`, RS/HS swaps) by construction.

use super::clock::Millis;
use super::ids::UserId;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;
pub const MAX_JWT_LEN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the identity token is malformed")]
    Malformed,
    #[error("the identity token's signature is invalid")]
    BadSignature,
    #[error("the identity token has expired")]
    Expired,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: f64,
}

#[derive(Clone)]
pub struct JwtKey(HmacSha256);

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKey(..)")
    }
}

impl JwtKey {
    pub fn new(secret: &[u8]) -> Self {
        Self(HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length"))
    }

    /// Mints a token for `sub` that expires at `exp_secs` (unix seconds).
    pub fn issue(&self, sub: &UserId, exp_secs: u64) -> String {
        let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = serde_json::to_vec(&Claims {
            sub: sub.as_str().to_owned(),
            exp: exp_secs as f64,
        })
        .expect("claims serialize");
        let signing_input = format!("{header}.{}", B64.encode(claims));
        let mut mac = self.0.clone();
        mac.update(signing_input.as_bytes());
        let sig = mac.finalize().into_bytes();
        format!("{signing_input}.{}", B64.encode(sig))
    }

    pub fn verify(&self, token: &str, now: Millis) -> Result<UserId, JwtError> {
        if token.len() > MAX_JWT_LEN {
            return Err(JwtError::Malformed);
        }
        let mut parts = token.split('.');
        let (h, c, s) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(h), Some(c), Some(s), None) => (h, c, s),
            _ => return Err(JwtError::Malformed),
        };
        let header: Header = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::Malformed)?;
        if header.alg != "HS256" {
            return Err(JwtError::BadSignature);
        }
        let sig = B64.decode(s).map_err(|_| JwtError::Malformed)?;
        let mut mac = self.0.clone();
        mac.update(&token.as_bytes()[..h.len() + 1 + c.len()]);
        mac.verify_slice(&sig).map_err(|_| JwtError::BadSignature)?;
        let claims: Claims = B64
            .decode(c)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::Malformed)?;
        if !claims.exp.is_finite() || claims.exp * 1000.0 <= now as f64 {
            return Err(JwtError::Expired);
        }
        UserId::parse(&claims.sub).map_err(|_| JwtError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let k = JwtKey::new(b"s");
        let u = UserId::parse("alice").expect("valid");
        let t = k.issue(&u, 100);
        assert_eq!(k.verify(&t, 99_999), Ok(u));
        assert_eq!(k.verify(&t, 100_000), Err(JwtError::Expired));
    }

    #[test]
    fn other_algorithms_and_keys_are_refused() {
        let u = UserId::parse("alice").expect("valid");
        let t = JwtKey::new(b"other").issue(&u, 100);
        assert_eq!(JwtKey::new(b"s").verify(&t, 0), Err(JwtError::BadSignature));
        let none = format!(
            "{}.{}.",
            B64.encode(br#"{"alg":"none"}"#),
            B64.encode(br#"{"sub":"alice","exp":100}"#)
        );
        assert_eq!(
            JwtKey::new(b"s").verify(&none, 0),
            Err(JwtError::BadSignature)
        );
        for junk in ["", "a.b", "a.b.c.d", "..", "x.y.z"] {
            assert!(JwtKey::new(b"s").verify(junk, 0).is_err());
        }
    }
}
