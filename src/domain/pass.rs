//! Gate passes: EdDSA (Ed25519) JWTs an origin site verifies offline against the
//! published keys (JWKS), or through `GET /api/gate/{id}/verify`.
//!
//! `Passes` is the process-wide handle: the signing keys (installed from the key
//! store, see `store::signing_keys`), the issuer, and the revoked passes of every
//! gate, all readable without an activity's actor so verification is a signature
//! check and two hash lookups. Only `EdDSA` with a known `kid` is accepted, which
//! rules out `none` and HS/EdDSA confusion by construction.

use super::clock::Millis;
use base64::engine::general_purpose::{STANDARD as B64_STD, URL_SAFE_NO_PAD as B64};
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

/// Passes this thread has already checked the signature of, by their exact text:
/// the kid and public key it held under, and the claims it carries. An Ed25519
/// verification costs about ten times the rest of `verify`, and a site behind
/// nginx's `auth_request` presents the same pass on every request. A remembered pass
/// counts only while its kid still publishes the very same key; its claims (issuer,
/// audience, expiry) and revocation are checked on every call. Keyed by the whole
/// pass, compared byte for byte by the map: no digest to compute (SHA-256 of the
/// pass cost more than the rest of a remembered `verify`).
const VERIFIED_CAP: usize = 1 << 14;

struct Verified {
    kid: String,
    key: Vec<u8>,
    claims: PassClaims,
}

/// Passes this thread has signed, by (public key, signing input): Ed25519 signatures
/// are deterministic, so the same claims under the same key give the same pass, and
/// an admission both pushes the pass and answers with it.
const SIGNED_CAP: usize = 1 << 12;

thread_local! {
    static VERIFIED: RefCell<HashMap<Box<str>, Verified>> = RefCell::new(HashMap::new());
    static SIGNED: RefCell<HashMap<(Vec<u8>, String), String>> = RefCell::new(HashMap::new());
}

/// Adds to a bounded per-thread memory: a full one starts over (passes live at most
/// a day, and each entry is only a saving).
fn remember<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, cap: usize, k: K, v: V) {
    if map.len() >= cap {
        map.clear();
    }
    map.insert(k, v);
}

/// The longest a pass can live (`gate.pass_ttl_secs` is bounded by it): a retired
/// key stays published this long after rotation, so every pass it signed still verifies.
pub const MAX_PASS_TTL_SECS: u32 = 86_400;
/// Passes longer than this are not even parsed.
pub const MAX_PASS_LEN: usize = 2048;

/// One signing key as stored (the PKCS#8 document, base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub kid: String,
    pub pkcs8: String,
    pub created_at: Millis,
    /// Set when a newer key took over signing; published until every pass it signed expired.
    pub retired_at: Option<Millis>,
}

/// A new key, from the OS CSPRNG.
pub fn new_key(now: Millis) -> KeyRecord {
    let rng = ring::rand::SystemRandom::new();
    let doc = Ed25519KeyPair::generate_pkcs8(&rng).expect("the OS random source works");
    let mut kid = [0u8; 12];
    ring::rand::SecureRandom::fill(&rng, &mut kid).expect("the OS random source works");
    KeyRecord {
        kid: B64.encode(kid),
        pkcs8: B64_STD.encode(doc.as_ref()),
        created_at: now,
        retired_at: None,
    }
}

/// The key set after a rotation at `now`: a new signing key, the old one retired,
/// keys retired longer ago than any pass lives dropped.
pub fn rotated(mut records: Vec<KeyRecord>, now: Millis) -> Vec<KeyRecord> {
    let keep_ms = u64::from(MAX_PASS_TTL_SECS) * 1000;
    records.retain(|r| r.retired_at.is_none_or(|at| at + keep_ms > now));
    for r in &mut records {
        r.retired_at.get_or_insert(now);
    }
    records.push(new_key(now));
    records
}

/// The claims of a pass (times in unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PassError {
    #[error("the pass is malformed")]
    Malformed,
    #[error("the pass is not signed with a published key")]
    BadSignature,
    #[error("the pass is for another activity or issuer")]
    WrongAudience,
    #[error("the pass has expired")]
    Expired,
    #[error("the pass was revoked")]
    Revoked,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: String,
}

struct Signer {
    kid: String,
    pair: Ed25519KeyPair,
    header: String,
}

#[derive(Default)]
struct Ring {
    signer: Option<Signer>,
    /// kid -> public key bytes, every published key.
    public: HashMap<String, Vec<u8>>,
    records: Vec<KeyRecord>,
}

struct Inner {
    issuer: String,
    ring: RwLock<Ring>,
    /// activity id -> revoked pass ids (`jti`).
    revoked: RwLock<HashMap<String, HashSet<String>>>,
}

/// Shared by the actors (which sign and revoke) and the HTTP handlers (which verify
/// and publish).
#[derive(Clone)]
pub struct Passes(Arc<Inner>);

impl std::fmt::Debug for Passes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passes(..)")
    }
}

impl Passes {
    /// A handle with no keys yet; `issuer` is `server.public_url`.
    pub fn new(issuer: &str) -> Self {
        Self(Arc::new(Inner {
            issuer: issuer.to_owned(),
            ring: RwLock::new(Ring::default()),
            revoked: RwLock::new(HashMap::new()),
        }))
    }

    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    /// Takes over a key set (from the key store): the newest unretired key signs,
    /// every key is published. Unparseable records are skipped.
    pub fn install(&self, records: Vec<KeyRecord>) {
        let mut ring = Ring::default();
        for r in &records {
            let Ok(der) = B64_STD.decode(&r.pkcs8) else {
                continue;
            };
            let Ok(pair) = Ed25519KeyPair::from_pkcs8(&der) else {
                continue;
            };
            ring.public
                .insert(r.kid.clone(), pair.public_key().as_ref().to_vec());
            if r.retired_at.is_none() {
                let header = B64.encode(
                    serde_json::json!({"alg": "EdDSA", "kid": r.kid, "typ": "JWT"}).to_string(),
                );
                ring.signer = Some(Signer {
                    kid: r.kid.clone(),
                    pair,
                    header,
                });
            }
        }
        ring.records = records;
        *self
            .0
            .ring
            .write()
            .expect("pass keys lock is never poisoned") = ring;
    }

    /// The installed key set.
    pub fn records(&self) -> Vec<KeyRecord> {
        self.read().records.clone()
    }

    /// The kid that signs new passes.
    pub fn current_kid(&self) -> Option<String> {
        self.read().signer.as_ref().map(|s| s.kid.clone())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.0
            .ring
            .read()
            .expect("pass keys lock is never poisoned")
    }

    /// Signs a pass; `None` before any key is installed.
    pub fn sign(
        &self,
        aud: &str,
        sub: &str,
        jti: &str,
        iat_ms: Millis,
        exp_ms: Millis,
    ) -> Option<String> {
        let ring = self.read();
        let s = ring.signer.as_ref()?;
        let claims = PassClaims {
            iss: self.0.issuer.clone(),
            aud: aud.to_owned(),
            sub: sub.to_owned(),
            iat: iat_ms / 1000,
            exp: exp_ms / 1000,
            jti: jti.to_owned(),
        };
        let body = B64.encode(serde_json::to_vec(&claims).expect("claims serialize"));
        let input = format!("{}.{body}", s.header);
        let key = (s.pair.public_key().as_ref().to_vec(), input);
        if let Some(t) = SIGNED.with(|m| m.borrow().get(&key).cloned()) {
            return Some(t);
        }
        let sig = B64.encode(s.pair.sign(key.1.as_bytes()).as_ref());
        let token = format!("{}.{sig}", key.1);
        SIGNED.with(|m| remember(&mut m.borrow_mut(), SIGNED_CAP, key, token.clone()));
        Some(token)
    }

    /// Checks a pass for activity `aud` at `now`: EdDSA under a published key, this
    /// issuer and audience, not expired, not revoked.
    pub fn verify(&self, token: &str, aud: &str, now: Millis) -> Result<PassClaims, PassError> {
        if token.len() > MAX_PASS_LEN {
            return Err(PassError::Malformed);
        }
        let claims = match self.remembered(token) {
            Some(claims) => claims,
            None => self.check_signature(token)?,
        };
        if claims.aud != aud || claims.iss != self.0.issuer {
            return Err(PassError::WrongAudience);
        }
        if claims.exp.saturating_mul(1000) <= now {
            return Err(PassError::Expired);
        }
        if self.is_revoked(aud, &claims.jti) {
            return Err(PassError::Revoked);
        }
        Ok(claims)
    }

    /// The claims of a pass this thread verified, while its kid publishes the same key.
    fn remembered(&self, token: &str) -> Option<PassClaims> {
        VERIFIED.with(|v| {
            let v = v.borrow();
            let seen = v.get(token)?;
            let ring = self.read();
            (ring.public.get(&seen.kid)? == &seen.key).then(|| seen.claims.clone())
        })
    }

    /// Parses a pass and checks its signature (EdDSA under a published key); then
    /// remembers it (`VERIFIED`).
    fn check_signature(&self, token: &str) -> Result<PassClaims, PassError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PassError::Malformed);
        };
        let header: Header = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(PassError::Malformed)?;
        if header.alg != "EdDSA" {
            return Err(PassError::BadSignature);
        }
        let sig = B64.decode(sig).map_err(|_| PassError::Malformed)?;
        let key = {
            let ring = self.read();
            let key = ring
                .public
                .get(&header.kid)
                .ok_or(PassError::BadSignature)?;
            let input = &token[..h.len() + 1 + c.len()];
            UnparsedPublicKey::new(&ED25519, key)
                .verify(input.as_bytes(), &sig)
                .map_err(|_| PassError::BadSignature)?;
            key.clone()
        };
        let claims: PassClaims = B64
            .decode(c)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(PassError::Malformed)?;
        let seen = Verified {
            kid: header.kid,
            key,
            claims: claims.clone(),
        };
        VERIFIED.with(|v| remember(&mut v.borrow_mut(), VERIFIED_CAP, token.into(), seen));
        Ok(claims)
    }

    /// `GET /.well-known/jwks.json`: every published key (RFC 8037 OKP).
    pub fn jwks(&self) -> serde_json::Value {
        let ring = self.read();
        let mut keys: Vec<_> = ring
            .records
            .iter()
            .filter_map(|r| {
                let x = ring.public.get(&r.kid)?;
                Some(serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "x": B64.encode(x),
                    "kid": r.kid, "use": "sig", "alg": "EdDSA",
                }))
            })
            .collect();
        // The signing key first.
        keys.reverse();
        serde_json::json!({ "keys": keys })
    }

    /// Replaces the revoked passes of activity `aud` (its actor owns the set).
    pub fn set_revoked(&self, aud: &str, jtis: HashSet<String>) {
        let mut map = self
            .0
            .revoked
            .write()
            .expect("revocations lock is never poisoned");
        if jtis.is_empty() {
            map.remove(aud);
        } else {
            map.insert(aud.to_owned(), jtis);
        }
    }

    pub fn is_revoked(&self, aud: &str, jti: &str) -> bool {
        self.0
            .revoked
            .read()
            .expect("revocations lock is never poisoned")
            .get(aud)
            .is_some_and(|s| s.contains(jti))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passes() -> Passes {
        let p = Passes::new("http://sluice.test");
        p.install(vec![new_key(0)]);
        p
    }

    #[test]
    fn a_signed_pass_verifies_for_its_audience_until_it_expires() {
        let p = passes();
        let t = p.sign("gate", "ann", "1", 1_000, 61_000).expect("a key");
        let c = p.verify(&t, "gate", 2_000).expect("valid");
        assert_eq!((c.sub.as_str(), c.iat, c.exp), ("ann", 1, 61));
        assert_eq!(p.verify(&t, "other", 2_000), Err(PassError::WrongAudience));
        assert_eq!(p.verify(&t, "gate", 61_000), Err(PassError::Expired));
        p.set_revoked("gate", HashSet::from(["1".to_owned()]));
        assert_eq!(p.verify(&t, "gate", 2_000), Err(PassError::Revoked));
    }

    #[test]
    fn tampered_unknown_key_and_other_algorithms_are_refused() {
        let p = passes();
        let t = p.sign("gate", "ann", "1", 0, 60_000).expect("a key");
        let (head, rest) = t.split_once('.').expect("three parts");
        let (_, sig) = rest.split_once('.').expect("three parts");
        let forged = B64.encode(
            br#"{"iss":"http://sluice.test","aud":"gate","sub":"bob","iat":0,"exp":60,"jti":"1"}"#,
        );
        assert_eq!(
            p.verify(&format!("{head}.{forged}.{sig}"), "gate", 1),
            Err(PassError::BadSignature)
        );
        let none = B64.encode(br#"{"alg":"none","kid":"x"}"#);
        assert_eq!(
            p.verify(&format!("{none}.{forged}."), "gate", 1),
            Err(PassError::BadSignature)
        );
        let other = passes();
        let t2 = other.sign("gate", "ann", "1", 0, 60_000).expect("a key");
        assert_eq!(p.verify(&t2, "gate", 1), Err(PassError::BadSignature));
        assert_eq!(p.verify("a.b", "gate", 1), Err(PassError::Malformed));
    }

    #[test]
    fn a_remembered_signature_counts_only_for_its_own_key_and_claims_are_rechecked() {
        let p = passes();
        let t = p.sign("gate", "ann", "7", 0, 60_000).expect("a key");
        assert!(p.verify(&t, "gate", 1).is_ok());
        assert!(p.verify(&t, "gate", 1).is_ok(), "remembered");
        // Same pass, later: expiry and revocation still apply to a remembered one.
        assert_eq!(p.verify(&t, "gate", 60_000), Err(PassError::Expired));
        p.set_revoked("gate", HashSet::from(["7".to_owned()]));
        assert_eq!(p.verify(&t, "gate", 1), Err(PassError::Revoked));
        // Another ring with a key of the same kid does not inherit the verdict.
        let q = Passes::new("http://sluice.test");
        let mut other = new_key(0);
        other.kid = p.current_kid().expect("a kid");
        q.install(vec![other]);
        assert_eq!(q.verify(&t, "gate", 1), Err(PassError::BadSignature));
    }

    #[test]
    fn after_a_rotation_old_passes_verify_and_new_ones_carry_the_new_kid() {
        let p = passes();
        let old_kid = p.current_kid();
        let old = p.sign("gate", "ann", "1", 0, 60_000).expect("a key");
        p.install(rotated(p.records(), 10));
        assert_ne!(p.current_kid(), old_kid);
        assert!(p.verify(&old, "gate", 20).is_ok());
        assert_eq!(p.jwks()["keys"].as_array().map(Vec::len), Some(2));
        // A day later the retired key is dropped at the next rotation.
        let day = u64::from(MAX_PASS_TTL_SECS) * 1000;
        let later = rotated(p.records(), 10 + day);
        assert_eq!(later.len(), 2);
        assert!(later.iter().all(|r| Some(&r.kid) != old_kid.as_ref()));
        // A remembered pass of a key no longer published is refused.
        p.install(later);
        assert_eq!(p.verify(&old, "gate", 20), Err(PassError::BadSignature));
    }

    #[test]
    fn signing_the_same_claims_again_gives_the_same_pass() {
        let p = passes();
        let a = p.sign("gate", "ann", "1", 0, 60_000).expect("a key");
        assert_eq!(p.sign("gate", "ann", "1", 0, 60_000).as_ref(), Some(&a));
        let b = p.sign("gate", "ann", "2", 0, 60_000).expect("a key");
        assert_ne!(a, b);
        assert!(p.verify(&b, "gate", 1).is_ok());
        // Another key: another pass, not the remembered one.
        let q = passes();
        let c = q.sign("gate", "ann", "1", 0, 60_000).expect("a key");
        assert_ne!(a, c);
        assert!(q.verify(&c, "gate", 1).is_ok());
    }
}
