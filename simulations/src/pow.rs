//! The join proof of work, as a client solves it: fetch a challenge bound to the
//! user, find `s` with `SHA-256(nonce ":" s)` starting with `bits` zero bits.

use crate::client::http::HttpClient;
use sha2::{Digest, Sha256};

fn leading_zero_bits(digest: &[u8]) -> u32 {
    let mut n = 0;
    for b in digest {
        if *b != 0 {
            return n + b.leading_zeros();
        }
        n += 8;
    }
    n
}

/// Brute force; about `2^bits` hashes.
pub fn solve(nonce: &str, bits: u8) -> String {
    (0u64..)
        .map(|i| i.to_string())
        .find(|s| {
            leading_zero_bits(&Sha256::digest(format!("{nonce}:{s}").as_bytes())) >= u32::from(bits)
        })
        .expect("a solution exists")
}

/// `GET /api/activities/{id}/challenge`, then solve it (on a blocking thread).
pub async fn fetch_and_solve(
    http: &HttpClient,
    activity_id: &str,
    jwt: &str,
) -> Result<(String, String), String> {
    let path = format!("/api/activities/{activity_id}/challenge");
    let res = http
        .get(&path, Some(jwt))
        .await
        .map_err(|e| format!("challenge: {e:?}"))?;
    let v = res
        .json()
        .ok_or_else(|| format!("challenge: status {}", res.status))?;
    let nonce = v["nonce"]
        .as_str()
        .ok_or("challenge without nonce")?
        .to_owned();
    let bits = v["bits"].as_u64().unwrap_or(0).min(32) as u8;
    let n = nonce.clone();
    let solution = tokio::task::spawn_blocking(move || solve(&n, bits))
        .await
        .map_err(|e| format!("solver: {e}"))?;
    Ok((nonce, solution))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solutions_have_the_bits_asked_for() {
        let s = solve("123.abc", 12);
        let d = Sha256::digest(format!("123.abc:{s}").as_bytes());
        assert!(leading_zero_bits(&d) >= 12);
        assert_eq!(leading_zero_bits(&[0, 0x10]), 11);
    }
}
