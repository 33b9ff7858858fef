//! Turns an activity's typed mutations into key/value operations on the layout.

use super::layout::{activity_key, event_key, numbered};
use crate::domain::activity::{ActivityRecord, Mutation};
use crate::domain::ids::ActivityId;

/// One write of a commit. Outbox entries get their key from the writer, which owns
/// the outbox sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvOp {
    Put(Vec<u8>, Vec<u8>),
    Del(Vec<u8>),
    /// Every key under a prefix (an activity adopted from the cluster's replica
    /// replaces whatever this node had of it). Applied before the commit's puts
    /// only if it comes first in the commit.
    DelPrefix(Vec<u8>),
    Outbox(Vec<u8>),
}

/// The webhook events an activity writes: only the types some receiver wants
/// (`mask`, `EventType::bit`), numbered from `next` in commit order.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventLog {
    pub mask: u8,
    pub next: u64,
}

/// JSON of `v` in a vector of exactly its size (it stays in the memtable until the
/// next checkpoint). Written into a reused buffer first: growing a fresh vector took
/// a handful of reallocations per order.
fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        serde_json::to_writer(&mut *buf, v).expect("store types serialize");
        let out = buf.to_vec();
        // A large record (a shuffle audit) does not keep its buffer.
        buf.truncate(0);
        buf.shrink_to(4096);
        out
    })
}

/// Encodes mutations (and the activity record, when it changed). With `outbox`, every
/// order write also queues the order for the sink in the same commit. Webhook events
/// that `events` selects are written in the same commit too (the transactional outbox).
pub fn encode(
    id: &ActivityId,
    record: Option<&ActivityRecord>,
    mutations: &[Mutation],
    outbox: bool,
    events: &mut EventLog,
) -> Vec<KvOp> {
    let mut ops = Vec::with_capacity(mutations.len() + 1);
    for m in mutations {
        match m {
            Mutation::PutPlace { seq, place } => {
                ops.push(KvOp::Put(numbered(id, 'p', *seq), json(place)))
            }
            Mutation::DelPlace { seq } => ops.push(KvOp::Del(numbered(id, 'p', *seq))),
            Mutation::PutPre { n, place } => {
                ops.push(KvOp::Put(numbered(id, 'q', *n), json(place)))
            }
            Mutation::DelPre { n } => ops.push(KvOp::Del(numbered(id, 'q', *n))),
            Mutation::PutHold(h) => ops.push(KvOp::Put(numbered(id, 'h', h.id), json(h))),
            Mutation::DelHold { id: h } => ops.push(KvOp::Del(numbered(id, 'h', *h))),
            Mutation::PutOrder(o) => {
                ops.push(KvOp::Put(numbered(id, 'o', o.n), json(o)));
                if outbox {
                    ops.push(KvOp::Outbox(json(&o.view())));
                }
            }
            Mutation::PutShuffle(s) => ops.push(KvOp::Put(activity_key(id, "shuffle"), json(s))),
            Mutation::PutLine { seq, line } => {
                ops.push(KvOp::Put(numbered(id, 'l', *seq), json(line)))
            }
            Mutation::PutReport(r) => ops.push(KvOp::Put(activity_key(id, "report"), json(r))),
            Mutation::PutMinute { minute, bucket } => {
                ops.push(KvOp::Put(numbered(id, 'm', *minute), json(bucket)))
            }
            Mutation::Event(e) if events.mask & e.kind.bit() != 0 => {
                ops.push(KvOp::Put(event_key(id.as_str(), events.next), e.body()));
                events.next += 1;
            }
            Mutation::Event(_) => {}
            Mutation::PutInvite { n, invite } => {
                ops.push(KvOp::Put(numbered(id, 'i', *n), json(invite)))
            }
            Mutation::PutBan { n, ban } => ops.push(KvOp::Put(numbered(id, 'b', *n), json(ban))),
            Mutation::PutRevoked { hold, record } => {
                ops.push(KvOp::Put(numbered(id, 'r', *hold), json(record)))
            }
            Mutation::DelRevoked { hold } => ops.push(KvOp::Del(numbered(id, 'r', *hold))),
        }
    }
    if let Some(r) = record {
        ops.push(KvOp::Put(activity_key(id, "rec"), json(r)));
    }
    ops
}
