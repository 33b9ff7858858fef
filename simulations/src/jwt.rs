//! Mints the HS256 identity tokens of API.md's "known user" integration.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A compact JWS `header.claims.signature` with `{"sub", "exp"}` claims.
pub fn mint(secret: &str, sub: &str, exp_unix_secs: u64) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({ "sub": sub, "exp": exp_unix_secs });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes());
    let signing_input = format!("{header}.{claims}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_matches_a_known_hs256_vector() {
        // The header segment every HS256 library produces for this header.
        let token = mint("secret", "u1", 2_000_000_000);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9");
        let claims = URL_SAFE_NO_PAD
            .decode(parts[1])
            .expect("test fixture is valid");
        assert_eq!(claims, br#"{"exp":2000000000,"sub":"u1"}"#);
        assert!(!parts[2].contains('='));
    }
}
