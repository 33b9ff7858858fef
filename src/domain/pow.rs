//! Proof-of-work join challenges (bot friction, optional per activity).
//!
//! A challenge nonce is stateless: `{expires_ms}.{mac}` where the MAC binds activity,
//! user and expiry, so a nonce cannot be shared between bots or reused past its life.
//! A solution is any string `s` such that `SHA-256(nonce ":" s)` starts with `bits`
//! zero bits; finding one costs about `2^bits` hashes, checking it costs one.

use super::clock::Millis;
use super::token::TokenKey;
use sha2::{Digest, Sha256};

/// How long a challenge may be solved and used.
pub const CHALLENGE_TTL_MS: u64 = 120_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PowError {
    #[error("this activity requires a proof-of-work solution: GET its /challenge, then join with pow_nonce and pow_solution")]
    Missing,
    #[error("the proof-of-work nonce is malformed or was issued to someone else")]
    BadNonce,
    #[error("the proof-of-work challenge has expired; request a new one")]
    Expired,
    #[error("the proof-of-work solution does not have enough leading zero bits")]
    Insufficient,
}

/// A client's answer to a challenge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PowSolution {
    pub nonce: String,
    pub solution: String,
}

fn mac_input(activity: &str, user: &str, expires: Millis) -> Vec<u8> {
    format!("pow\0{activity}\0{user}\0{expires}").into_bytes()
}

pub fn issue(key: &TokenKey, activity: &str, user: &str, now: Millis) -> (String, Millis) {
    let expires = now + CHALLENGE_TTL_MS;
    let mac = key.mac_hex(&mac_input(activity, user, expires));
    (format!("{expires}.{mac}"), expires)
}

pub fn leading_zero_bits(digest: &[u8]) -> u32 {
    let mut n = 0;
    for b in digest {
        if *b == 0 {
            n += 8;
        } else {
            return n + b.leading_zeros();
        }
    }
    n
}

pub fn verify(
    key: &TokenKey,
    activity: &str,
    user: &str,
    bits: u8,
    sol: Option<&PowSolution>,
    now: Millis,
) -> Result<(), PowError> {
    if bits == 0 {
        return Ok(());
    }
    let sol = sol.ok_or(PowError::Missing)?;
    if sol.nonce.len() > 128 || sol.solution.len() > 128 {
        return Err(PowError::BadNonce);
    }
    let (exp, mac) = sol.nonce.split_once('.').ok_or(PowError::BadNonce)?;
    let expires: Millis = exp.parse().map_err(|_| PowError::BadNonce)?;
    if !key.verify_mac_hex(&mac_input(activity, user, expires), mac) {
        return Err(PowError::BadNonce);
    }
    if expires <= now {
        return Err(PowError::Expired);
    }
    let digest = Sha256::digest(format!("{}:{}", sol.nonce, sol.solution).as_bytes());
    if leading_zero_bits(&digest) >= u32::from(bits) {
        Ok(())
    } else {
        Err(PowError::Insufficient)
    }
}

/// Brute-force solver, as the simulations and tests use it.
pub fn solve(nonce: &str, bits: u8) -> String {
    (0u64..)
        .map(|i| i.to_string())
        .find(|s| {
            leading_zero_bits(&Sha256::digest(format!("{nonce}:{s}").as_bytes())) >= u32::from(bits)
        })
        .expect("some solution exists")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_solved_challenge_verifies_only_for_its_user_and_life() {
        let k = TokenKey::new(b"k");
        let (nonce, _) = issue(&k, "drop", "alice", 1_000);
        let sol = PowSolution {
            solution: solve(&nonce, 8),
            nonce: nonce.clone(),
        };
        assert_eq!(verify(&k, "drop", "alice", 8, Some(&sol), 2_000), Ok(()));
        assert_eq!(
            verify(&k, "drop", "bob", 8, Some(&sol), 2_000),
            Err(PowError::BadNonce)
        );
        assert_eq!(
            verify(&k, "drop", "alice", 8, Some(&sol), 1_000 + CHALLENGE_TTL_MS),
            Err(PowError::Expired)
        );
        assert_eq!(
            verify(&k, "drop", "alice", 8, None, 2_000),
            Err(PowError::Missing)
        );
        assert_eq!(verify(&k, "drop", "alice", 0, None, 2_000), Ok(()));
        let weak = PowSolution {
            solution: "x".into(),
            nonce,
        };
        // "x" may by chance satisfy a low bar; 30 bits it will not.
        assert_eq!(
            verify(&k, "drop", "alice", 30, Some(&weak), 2_000),
            Err(PowError::Insufficient)
        );
    }

    #[test]
    fn zero_bits_are_counted_across_bytes() {
        assert_eq!(leading_zero_bits(&[0, 0x0f]), 12);
        assert_eq!(leading_zero_bits(&[0x80]), 0);
        assert_eq!(leading_zero_bits(&[0, 0]), 16);
    }
}
