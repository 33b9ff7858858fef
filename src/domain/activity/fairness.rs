//! Auditable fairness: the commit-reveal seed of the pre-queue, each place's public
//! receipt, the HMAC order of the pre-queue at opening, and the public log of the line
//! (one entry per place in line order, with its outcome).
//!
//! The seed comes from outside (the registry draws it); this module only commits to
//! it, orders by it and reveals it, so every decision here is reproducible.

use super::{Activity, Effects, Mutation};
use crate::domain::clock::{rfc3339, rfc3339_ms, Millis};
use crate::domain::token::TokenKey;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::num::NonZeroU64;

/// Hex characters in a receipt (96 bits: unique per activity in practice).
const RECEIPT_HEX: usize = 24;

pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let [hi, lo] = hex_pair(*b);
        s.push(char::from(hi));
        s.push(char::from(lo));
    }
    s
}

fn hex_pair(b: u8) -> [u8; 2] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]]
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
    rank_of(seed, receipt.as_bytes())
}

fn rank_of(seed: &[u8; 32], receipt: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256>>::new_from_slice(seed).expect("HMAC accepts 32-byte keys");
    mac.update(receipt);
    mac.finalize().into_bytes().into()
}

/// A place's public receipt: the first 96 bits of a MAC of its ticket under the
/// server's key, so it reveals neither the ticket nor the user, yet is fixed for the
/// place's life and needs no storage of its own. Kept as bytes (a place and its line
/// hold it without an allocation), shown and stored as 24 hex characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Receipt([u8; RECEIPT_HEX / 2]);

impl Receipt {
    /// The receipt of the place holding `ticket`.
    pub fn of(key: &TokenKey, ticket: &str) -> Self {
        let mac = key.mac_parts(&[b"receipt:", ticket.as_bytes()]);
        let mut r = [0u8; RECEIPT_HEX / 2];
        r.copy_from_slice(&mac[..RECEIPT_HEX / 2]);
        Receipt(r)
    }

    /// Its 24 hex characters, without an allocation.
    fn hex_bytes(&self) -> [u8; RECEIPT_HEX] {
        let mut out = [0u8; RECEIPT_HEX];
        for (pair, b) in out.chunks_exact_mut(2).zip(self.0) {
            pair.copy_from_slice(&hex_pair(b));
        }
        out
    }

    /// Its 24 hex characters, as shown in pushes, views and the log.
    pub fn hex(&self) -> String {
        String::from_utf8(self.hex_bytes().to_vec()).expect("hex digits are ASCII")
    }

    /// Its rank in the pre-queue under `seed` (see `rank`).
    pub fn rank(&self, seed: &[u8; 32]) -> [u8; 32] {
        rank_of(seed, &self.hex_bytes())
    }
}

impl std::fmt::Display for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex = self.hex_bytes();
        f.write_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"))
    }
}

impl Serialize for Receipt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Receipt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut r = [0u8; RECEIPT_HEX / 2];
        let ok = s.len() == RECEIPT_HEX
            && s.is_ascii()
            && r.iter_mut().enumerate().all(|(i, b)| {
                u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                    .map(|v| *b = v)
                    .is_ok()
            });
        if ok {
            Ok(Receipt(r))
        } else {
            Err(serde::de::Error::custom("a receipt is 24 hex characters"))
        }
    }
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
    pub receipt: Receipt,
    pub prequeue: bool,
    pub outcome: Outcome,
    pub admitted_at: Option<Millis>,
    /// When the place joined (the pre-queue or the room); `None` in lines written
    /// before the log carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub joined_at: Option<Millis>,
}

/// One line of the public NDJSON log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LogLine {
    pub receipt: String,
    pub prequeue: bool,
    pub outcome: Outcome,
    pub admitted_at: Option<String>,
    /// When the place joined, RFC 3339 with milliseconds (`null` for a line
    /// recorded before the log carried it). Later joiners are in join order, so it
    /// never decreases down their part of the line.
    pub joined_at: Option<String>,
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
    lines: Lines,
}

/// A line as held in memory: `LineRecord` with its times packed so a line stays 32
/// bytes (a time of 0, the epoch, is never a real one, so it can stand for none).
#[derive(Debug, Clone, Copy)]
struct Line {
    receipt: Receipt,
    prequeue: bool,
    outcome: Outcome,
    admitted_at: Option<NonZeroU64>,
    joined_at: Option<NonZeroU64>,
}

impl From<LineRecord> for Line {
    fn from(l: LineRecord) -> Self {
        Line {
            receipt: l.receipt,
            prequeue: l.prequeue,
            outcome: l.outcome,
            admitted_at: l.admitted_at.and_then(NonZeroU64::new),
            joined_at: l.joined_at.and_then(NonZeroU64::new),
        }
    }
}

impl Line {
    fn record(&self) -> LineRecord {
        LineRecord {
            receipt: self.receipt,
            prequeue: self.prequeue,
            outcome: self.outcome,
            admitted_at: self.admitted_at.map(NonZeroU64::get),
            joined_at: self.joined_at.map(NonZeroU64::get),
        }
    }
}

const _: () = assert!(std::mem::size_of::<Option<Line>>() == 32);

/// The line by sequence number. Sequence numbers are dense from 0 (one per place
/// that entered the room), so a vector indexed by them holds each line in its 32
/// bytes with no node or search per entry (a `BTreeMap` cost ~1,000 instructions
/// per join); a number that names no line (the room skips none, a restore may) is
/// `None`.
#[derive(Debug, Default)]
struct Lines {
    by_seq: Vec<Option<Line>>,
    len: usize,
}

impl Lines {
    fn slot(&mut self, seq: u64) -> &mut Option<Line> {
        let i = usize::try_from(seq).expect("sequence numbers count places in memory");
        if i >= self.by_seq.len() {
            self.by_seq.resize(i + 1, None);
        }
        &mut self.by_seq[i]
    }

    fn insert(&mut self, seq: u64, line: Line) {
        if self.slot(seq).replace(line).is_none() {
            self.len += 1;
        }
    }

    fn get_mut(&mut self, seq: u64) -> Option<&mut Line> {
        self.by_seq.get_mut(usize::try_from(seq).ok()?)?.as_mut()
    }

    fn or_insert_with(&mut self, seq: u64, line: impl FnOnce() -> Line) {
        let slot = self.slot(seq);
        if slot.is_none() {
            *slot = Some(line());
            self.len += 1;
        }
    }

    /// Lines from sequence number `from` on, in order.
    fn from(&self, from: u64) -> impl Iterator<Item = (u64, &Line)> {
        let start = usize::try_from(from).map_or(self.by_seq.len(), |f| f.min(self.by_seq.len()));
        self.by_seq[start..]
            .iter()
            .enumerate()
            .filter_map(move |(i, l)| l.as_ref().map(|l| ((start + i) as u64, l)))
    }
}

impl Fairness {
    pub(super) fn new(seed: Option<[u8; 32]>) -> Self {
        Self {
            seed,
            lines: Lines::default(),
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

    /// A place that joined at `joined_at` entered the line at `seq`. A later
    /// joiner's line is not written now: its place record, written in the same
    /// commit, rebuilds it (`ensure_line`), so a join costs no extra key; it is
    /// written when its outcome changes.
    pub(super) fn enter(
        &mut self,
        seq: u64,
        receipt: Receipt,
        prequeue: bool,
        joined_at: Millis,
        fx: &mut Effects,
    ) {
        let line = Line {
            receipt,
            prequeue,
            outcome: Outcome::Waiting,
            admitted_at: None,
            joined_at: NonZeroU64::new(joined_at),
        };
        if prequeue {
            fx.mutations.push(Mutation::PutLine {
                seq,
                line: line.record(),
            });
        }
        self.lines.insert(seq, line);
    }

    /// The place at `seq` left the waiting room with `outcome` (at `now` if admitted).
    pub(super) fn end(&mut self, seq: u64, outcome: Outcome, now: Millis, fx: &mut Effects) {
        let Some(line) = self.lines.get_mut(seq) else {
            return;
        };
        if line.outcome != Outcome::Waiting {
            return;
        }
        line.outcome = outcome;
        if outcome == Outcome::Admitted {
            line.admitted_at = NonZeroU64::new(now);
        }
        fx.mutations.push(Mutation::PutLine {
            seq,
            line: line.record(),
        });
    }

    /// Recovery: a line found in the store.
    pub(super) fn restore_line(&mut self, seq: u64, line: LineRecord) {
        self.lines.insert(seq, line.into());
    }

    /// Recovery: a waiting place without a line record (a later joiner, whose line
    /// is written only when its outcome changes, or a store written before the log
    /// existed) gets its line in memory.
    pub(super) fn ensure_line(&mut self, seq: u64, receipt: Receipt, joined_at: Millis) {
        self.lines.or_insert_with(seq, || Line {
            receipt,
            prequeue: false,
            outcome: Outcome::Waiting,
            admitted_at: None,
            joined_at: NonZeroU64::new(joined_at),
        });
    }

    /// Up to `limit` lines from sequence number `from` on.
    pub(super) fn page(&self, from: u64, limit: usize) -> LogPage {
        let mut lines = Vec::with_capacity(limit.min(self.lines.len));
        let mut next = None;
        for (seq, l) in self.lines.from(from) {
            if lines.len() == limit {
                next = Some(seq);
                break;
            }
            lines.push(LogLine {
                receipt: l.receipt.hex(),
                prequeue: l.prequeue,
                outcome: l.outcome,
                admitted_at: l.admitted_at.map(|t| rfc3339(t.get())),
                joined_at: l.joined_at.map(|t| rfc3339_ms(t.get())),
            });
        }
        LogPage { lines, next }
    }

    pub(super) fn len(&self) -> usize {
        self.lines.len
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
        let r = Receipt::of(&key, "RDyCc4PMnZza1SGH6BvyvQ");
        let shown = r.to_string();
        assert_eq!(shown.len(), RECEIPT_HEX);
        assert!(shown.bytes().all(|c| c.is_ascii_hexdigit()));
        let mac = key.mac_parts(&[b"receipt:", b"RDyCc4PMnZza1SGH6BvyvQ"]);
        assert_eq!(
            shown,
            hex(&mac[..RECEIPT_HEX / 2]),
            "the MAC's first 96 bits"
        );
        assert_eq!(r, Receipt::of(&key, "RDyCc4PMnZza1SGH6BvyvQ"));
        assert_ne!(r, Receipt::of(&key, "RDyCc4PMnZza1SGH6BvyvR"));
        assert_ne!(
            r,
            Receipt::of(&TokenKey::new(b"other"), "RDyCc4PMnZza1SGH6BvyvQ")
        );
        assert_eq!(r.rank(&[3; 32]), rank(&[3; 32], &shown));
        let json = serde_json::to_string(&r).expect("json");
        assert_eq!(json, format!("\"{shown}\""), "stored as before: hex");
        assert_eq!(serde_json::from_str::<Receipt>(&json).expect("parses"), r);
        assert!(serde_json::from_str::<Receipt>("\"0g\"").is_err());
        assert_eq!(hex(&[0x0f, 0xa0]), "0fa0");
        assert_eq!(parse_seed(&hex(&[7; 32])), Some([7; 32]));
    }
}
