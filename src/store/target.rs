//! The commit port: where an activity's decisions are made durable.
//!
//! An activity actor commits only through a `CommitTarget`. The process's `Store` is
//! one (journal + sled); cluster mode wraps it in a target that also replicates every
//! commit under the activity's lease (`cluster::replicate`). The actor cannot tell
//! which it has: it hears once per commit whether the commit is durable.

use super::{KvOp, Store};

/// Why a commit is not durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommitFailure {
    /// Not written; the activity's memory and its durable state still agree on
    /// everything acknowledged, so it may go on (and its callers retry).
    #[error("{0}")]
    Unavailable(&'static str),
    /// Not written where a successor would rebuild the activity from (the lease was
    /// lost, or the replica failed): the actor's memory is ahead of the durable
    /// state and it must stop deciding.
    #[error("{0}")]
    Diverged(&'static str),
}

/// Called exactly once with a commit's outcome, from whichever thread finished it.
pub type OnDurable = Box<dyn FnOnce(Result<(), CommitFailure>) + Send>;

/// Where an activity's commits go. Commits of one target become durable in the order
/// they were handed over.
pub trait CommitTarget: Send + Sync {
    fn commit(&self, ops: Vec<KvOp>, done: OnDurable);
}

impl CommitTarget for Store {
    fn commit(&self, ops: Vec<KvOp>, done: OnDurable) {
        self.commit_then(
            ops,
            Box::new(move |res| {
                done(res.map_err(|_| CommitFailure::Unavailable("the store cannot write")))
            }),
        );
    }
}
