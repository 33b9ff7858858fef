//! The group-commit pipeline of one activity actor.
//!
//! Handlers decide in memory and join the commit being gathered; the gathering goes to
//! the `CommitTarget` when the mailbox runs dry (one commit for every message handled
//! in one drain, so a burst of purchases costs one record encoding and one writer job,
//! not one each). The actor keeps deciding meanwhile (memory runs ahead of disk) but
//! tells nobody until the disk has caught up: callers are answered, and pushes
//! delivered, only once their commit and every commit before it is durable.
//!
//! Positions are the exception: a place's position changes only when a place ahead
//! leaves the room (joins queue behind it), so a `position` waits only for the
//! commit of the last removal, not for the joins gathered since. Under a join burst
//! the commits in flight are seconds deep; holding positions behind them stretched
//! the gaps between a waiting session's frames past the 5 s it is promised.

use crate::actors::messages::{CallError, CallResult};
use crate::domain::activity::{Activity, Mutation, Outbound, Push};
use crate::domain::ids::ActivityId;
use crate::store::codec::{EventLog, KvOp};
use crate::store::layout::event_key;
use crate::store::webhooks::EventSignal;
use crate::store::{codec, CommitFailure, CommitTarget};
use actix::prelude::*;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// A gathered commit goes to the target early once this many calls joined it, so a
/// mailbox that never runs dry still commits.
const MAX_GATHERED: usize = 1024;
/// ...or once it holds this many writes. A busy mailbox (100,000 relayed re-joins
/// after a failover) kept ticks gathering into one commit: a sold-out line, ended
/// 1,000 places a tick, went out as commits of 20,000-135,000 deletions, each one
/// Redis script of up to 2.5 s that stalled every node and cost the owner its lease
/// (seen in Redis's SLOWLOG during a 100,000-session run).
const MAX_GATHERED_WRITES: usize = 4096;

/// Events one prune deletes at most (the next prune takes the rest).
const MAX_PRUNED: u64 = 10_000;

/// A caller's answer, sent once its commit is durable (or failed).
type ReplyFn = Box<dyn FnOnce(Result<(), CallError>) + Send>;

/// The answers waiting for one commit.
pub type Replies = Arc<Mutex<Vec<ReplyFn>>>;

/// A commit's number and outcome, as the actor hears it.
pub type Ack = (u64, Result<(), CommitFailure>);

pub fn wait_for(replies: &Replies, reply: ReplyFn) {
    replies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(reply);
}

fn answer(replies: &Replies, result: Result<(), CallError>) {
    let waiting = std::mem::take(&mut *replies.lock().unwrap_or_else(|p| p.into_inner()));
    for reply in waiting {
        reply(result.clone());
    }
}

/// A handler's answer: told at once, or (`waiting`) once the gathered commit it
/// joined is durable. Sent from the thread that finished the commit in that case, so
/// the caller is woken once, directly, not through the actor's thread.
pub struct Deferred<T> {
    value: CallResult<T>,
    waiting: Option<Replies>,
}

impl<T> Deferred<T> {
    pub fn now(value: CallResult<T>) -> Self {
        Deferred {
            value,
            waiting: None,
        }
    }

    pub fn after(value: CallResult<T>, replies: Replies) -> Self {
        Deferred {
            value,
            waiting: Some(replies),
        }
    }
}

impl<A, M, T> actix::dev::MessageResponse<A, M> for Deferred<T>
where
    A: Actor,
    M: Message<Result = CallResult<T>>,
    T: Send + 'static,
{
    fn handle(self, _: &mut A::Context, tx: Option<actix::dev::OneshotSender<CallResult<T>>>) {
        let Some(tx) = tx else {
            return;
        };
        let Deferred { value, waiting } = self;
        match waiting {
            None => drop(tx.send(value)),
            Some(replies) => wait_for(
                &replies,
                Box::new(move |durable| drop(tx.send(durable.and(value)))),
            ),
        }
    }
}

/// The commit being gathered: the answers to its callers wait in `replies`.
#[derive(Default)]
struct Gathering {
    replies: Replies,
    calls: usize,
}

struct InFlight {
    no: u64,
    done: Option<Result<(), CommitFailure>>,
    pushes: Vec<Outbound>,
}

pub struct Pipeline {
    id: ActivityId,
    /// Orders also go to the outbox (a sink is configured).
    outbox: bool,
    /// The activity's webhook event numbering; `hooks` says which types to write.
    events: EventLog,
    hooks: Arc<EventSignal>,
    /// Events below this number are deleted (or being deleted).
    pruned: u64,
    /// Writes of the next commit that no decision made (deleted events).
    extra: Vec<KvOp>,
    target: Arc<dyn CommitTarget>,
    gathering: Option<Gathering>,
    inflight: VecDeque<InFlight>,
    next_commit: u64,
    /// The last commit that removed a place from the room: positions follow it.
    last_removal: Option<u64>,
    /// Positions deliverable now (nothing they depend on is in flight).
    ready: Vec<Outbound>,
    /// One ordered stream of outcomes to the actor rather than a future per commit:
    /// actix polls every spawned future on each wake-up, which made each message cost
    /// O(commits in flight).
    acks: mpsc::UnboundedSender<Ack>,
}

impl Pipeline {
    /// The pipeline, and the stream of commit outcomes the actor must handle.
    /// `log` is the numbers of the activity's stored webhook events (its end is the
    /// next event's).
    pub fn new(
        id: ActivityId,
        outbox: bool,
        (hooks, log): (Arc<EventSignal>, Range<u64>),
        target: Arc<dyn CommitTarget>,
    ) -> (Pipeline, mpsc::UnboundedReceiver<Ack>) {
        let (acks, rx) = mpsc::unbounded_channel();
        let pipeline = Pipeline {
            id,
            outbox,
            events: EventLog {
                mask: 0,
                next: log.end,
            },
            hooks,
            pruned: log.start,
            extra: Vec::new(),
            target,
            gathering: None,
            inflight: VecDeque::new(),
            next_commit: 0,
            last_removal: None,
            ready: Vec::new(),
            acks,
        };
        (pipeline, rx)
    }

    /// Joins the commit being gathered (opening one if none is); returns where the
    /// caller's answer waits, and whether a gathering was opened (the actor then
    /// queues its flush behind the mailbox).
    pub fn gather(&mut self, activity: &mut Activity) -> (Replies, bool) {
        // A full gathering goes first: the caller's answer must join one not yet sent.
        if self.gathering.as_ref().is_some_and(|g| {
            g.calls >= MAX_GATHERED || activity.pending_writes() >= MAX_GATHERED_WRITES
        }) {
            let ready = self.flush(activity);
            self.ready.extend(ready);
        }
        let opened = self.gathering.is_none();
        let g = self.gathering.get_or_insert_with(Gathering::default);
        g.calls += 1;
        (Arc::clone(&g.replies), opened)
    }

    /// Queues the deletion of events below `below` for the next commit, keeping the
    /// newest (its number carries the sequence over a restart); whether there is any.
    pub fn prune_events(&mut self, below: u64) -> bool {
        let end = below
            .min(self.events.next.saturating_sub(1))
            .min(self.pruned + MAX_PRUNED);
        let id = self.id.as_str();
        self.extra
            .extend((self.pruned..end).map(|n| KvOp::Del(event_key(id, n))));
        self.pruned = self.pruned.max(end);
        !self.extra.is_empty()
    }

    pub fn is_gathering(&self) -> bool {
        self.gathering.is_some()
    }

    /// Something not yet durable: decisions not yet sent, or commits in flight.
    pub fn behind(&self, activity: &Activity) -> bool {
        self.gathering.is_some() || activity.has_writes() || !self.inflight.is_empty()
    }

    /// Sends the gathered commit, if any; returns the pushes deliverable now.
    pub fn flush(&mut self, activity: &mut Activity) -> Vec<Outbound> {
        if self.gathering.is_some() {
            return self.commit(activity, true);
        }
        self.take_ready()
    }

    /// Positions that became deliverable in a flush the caller did not see.
    pub fn take_ready(&mut self) -> Vec<Outbound> {
        std::mem::take(&mut self.ready)
    }

    /// Sets aside the positions among `pushes` that need not wait for this commit
    /// (`removes`: whether it takes a place out of the room): they follow the last
    /// removal still in flight, or are ready now.
    fn route_positions(&mut self, pushes: &mut Vec<Outbound>, removes: bool) {
        if removes
            || !pushes
                .iter()
                .any(|o| matches!(o.push, Push::Position { .. }))
        {
            return;
        }
        let (positions, rest): (Vec<_>, Vec<_>) = std::mem::take(pushes)
            .into_iter()
            .partition(|o| matches!(o.push, Push::Position { .. }));
        *pushes = rest;
        match self
            .last_removal
            .and_then(|no| self.inflight.iter_mut().find(|f| f.no == no))
        {
            Some(f) => f.pushes.extend(positions),
            None => self.ready.extend(positions),
        }
    }

    /// Sends what the activity decided (with the gathering's callers when `gathered`;
    /// they are answered once it and everything before it is durable). Pushes decided
    /// without writes follow the last commit in flight; with none in flight they are
    /// returned, to be delivered now, with the positions that need not wait.
    pub fn commit(&mut self, activity: &mut Activity, gathered: bool) -> Vec<Outbound> {
        let g = if gathered {
            self.gathering.take()
        } else {
            None
        };
        let mut fx = activity.take_effects();
        let removes = fx
            .mutations
            .iter()
            .any(|m| matches!(m, Mutation::DelPlace { .. }));
        self.route_positions(&mut fx.pushes, removes);
        if g.is_none() && fx.mutations.is_empty() && !fx.record_dirty && self.extra.is_empty() {
            match self.inflight.back_mut() {
                Some(last) => last.pushes.extend(fx.pushes),
                None => self.ready.extend(fx.pushes),
            }
            return self.take_ready();
        }
        let record = fx.record_dirty.then(|| activity.record());
        self.events.mask = self.hooks.mask();
        let first_event = self.events.next;
        let mut ops = codec::encode(
            &self.id,
            record.as_ref(),
            &fx.mutations,
            self.outbox,
            &mut self.events,
        );
        ops.append(&mut self.extra);
        let hooks = (self.events.next > first_event).then(|| Arc::clone(&self.hooks));
        let no = self.next_commit;
        self.next_commit += 1;
        if removes {
            self.last_removal = Some(no);
        }
        self.inflight.push_back(InFlight {
            no,
            done: None,
            pushes: fx.pushes,
        });
        let replies = g.map(|g| g.replies);
        let acks = self.acks.clone();
        self.target.commit(
            ops,
            Box::new(move |res| {
                if let Some(r) = &replies {
                    answer(r, res.map_err(CallError::from));
                }
                if let (Some(h), Ok(())) = (hooks, res) {
                    h.wrote();
                }
                let _ = acks.send((no, res));
            }),
        );
        self.take_ready()
    }

    /// Records a commit's outcome; returns the pushes now deliverable, a batch per commit in order
    /// (those of failed commits are dropped), or the failure if the commit diverged.
    pub fn on_durable(
        &mut self,
        no: u64,
        res: Result<(), CommitFailure>,
    ) -> Result<Vec<Vec<Outbound>>, CommitFailure> {
        if let Err(f @ CommitFailure::Diverged(_)) = res {
            return Err(f);
        }
        // Outcomes arrive in commit order but for races between the threads that
        // finish them, so look the commit up.
        if let Some(f) = self.inflight.iter_mut().find(|f| f.no == no) {
            f.done = Some(res);
        }
        let mut ready = Vec::new();
        while self.inflight.front().is_some_and(|f| f.done.is_some()) {
            let f = self.inflight.pop_front().expect("front exists");
            if matches!(f.done, Some(Ok(()))) {
                ready.push(f.pushes);
            }
        }
        Ok(ready)
    }

    /// The actor stops deciding: nothing in flight will be delivered, and callers of
    /// the uncommitted gathering hear "stopped; retry".
    pub fn abandon(&mut self) {
        self.inflight.clear();
        if let Some(g) = self.gathering.take() {
            answer(
                &g.replies,
                Err(CallError::Unavailable("the activity stopped; retry")),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::UserId;
    use crate::domain::spec::CreateActivity;
    use crate::domain::token::TokenKey;
    use crate::store::webhooks::EventSignal;
    use crate::store::OnDurable;

    const T0: u64 = 1_000_000;

    /// Commits that become durable only when the test finishes them, in order.
    #[derive(Default)]
    struct HeldCommits(Mutex<VecDeque<OnDurable>>);

    impl CommitTarget for HeldCommits {
        fn commit(&self, _ops: Vec<KvOp>, done: OnDurable) {
            self.0.lock().expect("lock").push_back(done);
        }
    }

    impl HeldCommits {
        fn finish_one(&self) {
            let done = self.0.lock().expect("lock").pop_front().expect("a commit");
            done(Ok(()));
        }
    }

    fn positions(pushes: &[Outbound]) -> Vec<&str> {
        pushes
            .iter()
            .filter(|o| matches!(o.push, Push::Position { .. }))
            .map(|o| o.user.as_str())
            .collect()
    }

    /// A sale admitting one at a time, and its pipeline committing to `HeldCommits`.
    fn sale_with_held_commits() -> (
        Activity,
        Arc<HeldCommits>,
        Pipeline,
        mpsc::UnboundedReceiver<Ack>,
    ) {
        let body: CreateActivity = serde_json::from_value(serde_json::json!({
            "id": "sale", "name": "Sale", "kind": "sale", "stock": 5,
            "admission": {"rate_per_sec": 1, "max_active": 1}
        }))
        .expect("test body parses");
        let (spec, slots) = body.validate(T0).expect("valid");
        let a = Activity::new(spec, &slots, TokenKey::new(b"k"), T0, [9; 32]);
        let target = Arc::new(HeldCommits::default());
        let (p, acks) = Pipeline::new(
            ActivityId::parse("sale").expect("id"),
            false,
            (EventSignal::new(), 0..0),
            Arc::clone(&target) as Arc<dyn CommitTarget>,
        );
        (a, target, p, acks)
    }

    #[test]
    fn a_gathering_goes_out_once_it_holds_enough_writes() {
        let (mut a, target, mut p, _acks) = sale_with_held_commits();
        // One call opens a gathering; then writes pile up without another call (ticks
        // on a mailbox that never runs dry).
        let (_, opened) = p.gather(&mut a);
        assert!(opened);
        let mut n = 0;
        while a.pending_writes() < MAX_GATHERED_WRITES {
            let user = UserId::parse(&format!("u{n}")).expect("id");
            a.join(&user, true, T0).expect("join");
            n += 1;
        }
        assert!(target.0.lock().expect("lock").is_empty(), "not sent yet");
        // The next call does not join it: the full gathering goes out first.
        let (_, opened) = p.gather(&mut a);
        assert!(opened, "a new gathering for the next call");
        assert_eq!(target.0.lock().expect("lock").len(), 1);
        assert_eq!(a.pending_writes(), 0);
    }

    #[test]
    fn positions_wait_for_the_last_removal_not_for_joins_behind() {
        let (mut a, target, mut p, mut acks) = sale_with_held_commits();
        let user = |n: &str| UserId::parse(n).expect("id");
        for n in ["a", "b", "c"] {
            a.join(&user(n), true, T0).expect("join");
        }
        // "a" is admitted at once (rate 1, one active): a removal, still in flight.
        assert!(p.commit(&mut a, false).is_empty());
        // Later joins: in flight too, but behind everyone waiting.
        a.join(&user("d"), true, T0 + 10).expect("join");
        assert!(p.commit(&mut a, false).is_empty());
        // The refreshes come due: they follow the admission, not the join after it.
        a.tick(T0 + 5_000);
        assert!(positions(&p.commit(&mut a, false)).is_empty());
        target.finish_one();
        let (no, res) = acks.try_recv().expect("the admission's outcome");
        let ready: Vec<Outbound> = p.on_durable(no, res).expect("no divergence").concat();
        let told = positions(&ready);
        assert!(told.contains(&"b") && told.contains(&"c"), "{told:?}");
        // Nothing removed since: the next refreshes go out while the join is in flight.
        a.tick(T0 + 10_000);
        let now = p.commit(&mut a, false);
        assert!(positions(&now).contains(&"b"), "{:?}", positions(&now));
    }
}
