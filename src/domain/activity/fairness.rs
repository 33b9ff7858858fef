//! Auditable fairness: the commit-reveal seed of the pre-queue, each place's public
//! receipt, the HMAC order of the pre-queue at opening, and the public log of the line
//! (one entry per place in line order, with its outcome).
//!
//! The seed comes from outside (the registry draws it); this module only commits to
//! it, orders by it and reveals it, so every decision here is reproducible.

use super::{Activity, Effects, Mutation};
use crate::domain::clock::{rfc3339, Millis};
use crate::domain::token::TokenKey;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Hex characters in a receipt (96 bits: unique per activity in practice).
const RECEIPT_HEX: usize = 24;

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// Parses 64 hex characters into 32 bytes.
pub fn parse_seed(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The published commitment: SHA-256 of the seed bytes.
pub fn commitment_of(seed: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(seed).into()
}

/// A place's rank in the pre-queue: `HMAC-SHA256(key = seed, message = receipt)`;
/// the pre-queue is ordered by it, ascending in byte order.
pub fn rank(seed: &[u8; 32], receipt: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256>>::new_from_slice(seed).expect("HMAC accepts 32-byte keys");
    mac.update(receipt.as_bytes());
    mac.finalize().into_bytes().into()
}

/// The public receipt of the place holding `ticket`: a MAC under the server's key, so
/// it reveals neither the ticket nor the user, yet is fixed for the place's life and
/// needs no storage of its own.
pub fn receipt_for(key: &TokenKey, ticket: &str) -> String {
    let mac = key.mac_parts(&[b"receipt:", ticket.as_bytes()]);
    hex(&mac[..RECEIPT_HEX / 2])
}

/// How a place in the line ended (or `Waiting` while it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Waiting,
    Admitted,
    Left,
    Dropped,
    SoldOut,
    Closed,
}

/// One place of the line, as persisted under its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRecord {
    pub receipt: String,
    pub prequeue: bool,
    pub outcome: Outcome,
    pub admitted_at: Option<Millis>,
}

/// One line of the public NDJSON log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LogLine {
    pub receipt: String,
    pub prequeue: bool,
    pub outcome: Outcome,
    pub admitted_at: Option<String>,
}

/// One page of the log and where the next starts (`None`: the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    pub next: Option<u64>,
}

/// `GET /api/activities/{id}/fairness`: the commitment, and the seed once revealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FairnessReveal {
    pub commitment: Option<String>,
    pub seed: Option<String>,
}

/// The public view's `fairness` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FairnessView {
    pub commitment: String,
}

/// The seed (secret until opening) and the line, by sequence number.
#[derive(Debug, Default)]
pub(super) struct Fairness {
    seed: Option<[u8; 32]>,
    lines: BTreeMap<u64, LineRecord>,
}

impl Fairness {
    pub(super) fn new(seed: Option<[u8; 32]>) -> Self {
        Self {
            seed,
            lines: BTreeMap::new(),
        }
    }

    /// Commits to `seed` unless a seed exists already (moving the opening keeps it).
    pub(super) fn commit(&mut self, seed: [u8; 32]) {
        self.seed.get_or_insert(seed);
    }

    pub(super) fn seed(&self) -> Option<&[u8; 32]> {
        self.seed.as_ref()
    }

    pub(super) fn seed_hex(&self) -> Option<String> {
        self.seed.as_ref().map(|s| hex(s))
    }

    pub(super) fn view(&self) -> Option<FairnessView> {
        self.seed.as_ref().map(|s| FairnessView {
            commitment: hex(&commitment_of(s)),
        })
    }

    /// The commitment, and the seed only once `opened`.
    pub(super) fn reveal(&self, opened: bool) -> FairnessReveal {
        FairnessReveal {
            commitment: self.seed.as_ref().map(|s| hex(&commitment_of(s))),
            seed: if opened { self.seed_hex() } else { None },
        }
    }

    /// A place entered the line at `seq`. A later joiner's line is not written now:
    /// its place record, written in the same commit, rebuilds it (`ensure_line`), so
    /// a join costs no extra key; it is written when its outcome changes.
    pub(super) fn enter(&mut self, seq: u64, receipt: String, prequeue: bool, fx: &mut Effects) {
        let line = LineRecord {
            receipt,
            prequeue,
            outcome: Outcome::Waiting,
            admitted_at: None,
        };
        if prequeue {
            fx.mutations.push(Mutation::PutLine {
                seq,
                line: line.clone(),
            });
        }
        self.lines.insert(seq, line);
    }

    /// The place at `seq` left the waiting room with `outcome` (at `now` if admitted).
    pub(super) fn end(&mut self, seq: u64, outcome: Outcome, now: Millis, fx: &mut Effects) {
        let Some(line) = self.lines.get_mut(&seq) else {
            return;
        };
        if line.outcome != Outcome::Waiting {
            return;
        }
        line.outcome = outcome;
        if outcome == Outcome::Admitted {
            line.admitted_at = Some(now);
        }
        fx.mutations.push(Mutation::PutLine {
            seq,
            line: line.clone(),
        });
    }

    /// Recovery: a line found in the store.
    pub(super) fn restore_line(&mut self, seq: u64, line: LineRecord) {
        self.lines.insert(seq, line);
    }

    /// Recovery: a waiting place without a line record (a later joiner, whose line
    /// is written only when its outcome changes, or a store written before the log
    /// existed) gets its line in memory.
    pub(super) fn ensure_line(&mut self, seq: u64, receipt: &str) {
        self.lines.entry(seq).or_insert_with(|| LineRecord {
            receipt: receipt.to_owned(),
            prequeue: false,
            outcome: Outcome::Waiting,
            admitted_at: None,
        });
    }

    /// Up to `limit` lines from sequence number `from` on.
    pub(super) fn page(&self, from: u64, limit: usize) -> LogPage {
        let mut lines = Vec::with_capacity(limit.min(self.lines.len()));
        let mut next = None;
        for (&seq, l) in self.lines.range(from..) {
            if lines.len() == limit {
                next = Some(seq);
                break;
            }
            lines.push(LogLine {
                receipt: l.receipt.clone(),
                prequeue: l.prequeue,
                outcome: l.outcome,
                admitted_at: l.admitted_at.map(rfc3339),
            });
        }
        LogPage { lines, next }
    }

    pub(super) fn len(&self) -> usize {
        self.lines.len()
    }
}

impl Activity {
    /// The commitment, and the seed once the activity has opened.
    pub fn fairness(&self) -> FairnessReveal {
        self.fair.reveal(self.gate.is_opened())
    }

    /// Up to `limit` lines of the public log from sequence number `from` on.
    pub fn fairness_log(&self, from: u64, limit: usize) -> LogPage {
        self.fair.page(from, limit)
    }

    /// Places in the public line so far.
    pub fn line_len(&self) -> usize {
        self.fair.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_is_short_hex_fixed_per_ticket_and_reveals_no_ticket() {
        let key = TokenKey::new(b"k");
        let r = receipt_for(&key, "RDyCc4PMnZza1SGH6BvyvQ");
        assert_eq!(r.len(), RECEIPT_HEX);
        assert!(r.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(r, receipt_for(&key, "RDyCc4PMnZza1SGH6BvyvQ"));
        assert_ne!(r, receipt_for(&key, "RDyCc4PMnZza1SGH6BvyvR"));
        assert_ne!(
            r,
            receipt_for(&TokenKey::new(b"other"), "RDyCc4PMnZza1SGH6BvyvQ")
        );
        assert_eq!(hex(&[0x0f, 0xa0]), "0fa0");
        assert_eq!(parse_seed(&hex(&[7; 32])), Some([7; 32]));
    }
}
