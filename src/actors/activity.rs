//! `ActivityActor`: the single writer of one activity. It owns the `Activity` state,
//! the sessions attached to it, and the commits in flight.
//!
//! Every handler is the same three steps: call the domain with `now`, gather the
//! resulting mutations into the commit being gathered, and reply (or push to sessions)
//! only once that commit is durable. The commit goes to the store writer when the
//! mailbox runs dry (one commit for every message handled in one drain, so a burst of
//! purchases costs one record encoding and one writer job, not one each). The actor
//! keeps deciding meanwhile (memory runs ahead of disk) but tells nobody until the disk
//! has caught up. Replies without new mutations still wait for the latest commit, so
//! nothing read is ever ahead of disk.
//!
//! Accepts: `Join`, `Detach`, `Leave`, `GetTicket`, `LeaveTicket`, `Purchase`,
//! `OrderCall`, `OrdersOf`, `Admin`, `Tick`, `Drain`.

use super::messages::*;
use crate::cluster::replicate::ReplicaError;
use crate::domain::activity::orders::{PurchaseRequest, Purchased};
use crate::domain::activity::{Activity, ActivityError, ActivityView, Outbound, Push, TicketView};
use crate::domain::clock::{Clock, Millis};
use crate::domain::ids::{ActivityId, UserId};
use crate::domain::order::Order;
use crate::store::StoreError;
use crate::store::{codec, Store};
use actix::prelude::*;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// A gathered commit goes to the writer early once this many calls joined it, so a
/// mailbox that never runs dry still commits.
const MAX_GATHERED: usize = 1024;

/// Resolves once a commit (and every commit before it) is durable.
type Durable = Shared<BoxFuture<'static, Result<(), CallError>>>;

/// A caller's answer, sent once its commit is durable (or failed).
type ReplyFn = Box<dyn FnOnce(Result<(), CallError>) + Send>;
type Replies = Arc<std::sync::Mutex<Vec<ReplyFn>>>;

fn wait_for(replies: &Replies, reply: ReplyFn) {
    replies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(reply);
}

/// The commit being gathered: its acknowledgement channels exist before the commit
/// does, and the answers to its callers wait in `replies`.
struct Gathering {
    store_ack: oneshot::Sender<Result<(), StoreError>>,
    replica_ack: Option<oneshot::Sender<Result<(), ReplicaError>>>,
    durable: Durable,
    replies: Replies,
    calls: usize,
}

fn answer(replies: &Replies, result: Result<(), CallError>) {
    let waiting = std::mem::take(&mut *replies.lock().unwrap_or_else(|p| p.into_inner()));
    for reply in waiting {
        reply(result.clone());
    }
}

/// A handler's answer: told at once, or (`waiting`) once the gathered commit it
/// joined is durable. Sent from the writer thread in that case, so the caller is
/// woken once, directly, not through the actor's thread.
pub struct Deferred<T> {
    value: CallResult<T>,
    waiting: Option<Replies>,
}

impl<M, T> actix::dev::MessageResponse<ActivityActor, M> for Deferred<T>
where
    M: Message<Result = CallResult<T>>,
    T: Send + 'static,
{
    fn handle(
        self,
        _: &mut Context<ActivityActor>,
        tx: Option<actix::dev::OneshotSender<CallResult<T>>>,
    ) {
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

impl Gathering {
    fn new(replicated: bool) -> Gathering {
        let (store_ack, store_rx) = oneshot::channel();
        let (replica_ack, replica_rx) = if replicated {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let durable = async move {
            let local = store_rx.await;
            let replica = match replica_rx {
                None => Ok(()),
                Some(r) => r.await.unwrap_or(Err(ReplicaError::Unavailable(
                    "the replicator stopped".into(),
                ))),
            };
            match (local, replica) {
                (Ok(Ok(())), Ok(())) => Ok(()),
                (_, Err(ReplicaError::Fenced)) => Err(CallError::Unavailable(
                    "this node no longer owns the activity; retry",
                )),
                // Dropped uncommitted: the actor stopped (stepped down) first.
                (Err(_), _) => Err(CallError::Unavailable("the activity stopped; retry")),
                _ => Err(CallError::Unavailable("the store cannot write")),
            }
        }
        .boxed()
        .shared();
        Gathering {
            store_ack,
            replica_ack,
            durable,
            replies: Replies::default(),
            calls: 0,
        }
    }
}

/// Sends the gathered commit to the writer; queued by the first call of a gathering,
/// so it runs once the mailbox is drained.
#[derive(Message)]
#[rtype(result = "()")]
struct FlushCommit;

struct InFlight {
    no: u64,
    done: Option<Result<(), CallError>>,
    pushes: Vec<Outbound>,
}

/// Shared by every activity actor of the process.
#[derive(Clone)]
pub struct ActorDeps {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub tick: Duration,
    /// Orders also go to the outbox (a sink is configured).
    pub outbox: bool,
}

/// In cluster mode: where this owner replicates its commits, and the lease (with its
/// fencing token) every replicated write must still hold.
#[derive(Clone)]
pub struct Replica {
    pub replicator: crate::cluster::replicate::Replicator,
    pub holder: String,
}

pub struct ActivityActor {
    id: ActivityId,
    replica: Option<Replica>,
    activity: Activity,
    deps: ActorDeps,
    sessions: HashMap<UserId, SessionHandle>,
    inflight: VecDeque<InFlight>,
    next_commit: u64,
    gathering: Option<Gathering>,
    draining: bool,
    last_metrics: Millis,
    notices: Notices,
    /// Commits in flight, in order, to the acknowledgement stream (see `commit`).
    acks: Option<tokio::sync::mpsc::UnboundedSender<(u64, Durable)>>,
}

/// Pause/resume notices, sent at most `NOTICES_PER_TICK` a tick: a broadcast to a
/// crowd of 18,000 would otherwise queue every `admitted` frame of the next ticks
/// behind 18,000 socket writes (measured: admission-to-client p99 ~80 ms, all of it in
/// the ticks right after a resume). Only the latest notice per user is kept.
#[derive(Default)]
struct Notices {
    latest: HashMap<UserId, Push>,
    order: VecDeque<UserId>,
    budget: usize,
}

const NOTICES_PER_TICK: usize = 2_000;

impl Notices {
    fn defer(&mut self, o: Outbound) {
        if self.latest.insert(o.user.clone(), o.push).is_none() {
            self.order.push_back(o.user);
        }
    }

    fn take(&mut self, user: &UserId) -> Option<Push> {
        if self.latest.is_empty() {
            return None;
        }
        self.latest.remove(user)
    }

    /// The next notice within the tick's budget.
    fn next(&mut self) -> Option<(UserId, Push)> {
        while self.budget > 0 {
            let user = self.order.pop_front()?;
            if let Some(push) = self.latest.remove(&user) {
                self.budget -= 1;
                return Some((user, push));
            }
        }
        None
    }

    fn new_tick(&mut self) {
        self.budget = NOTICES_PER_TICK;
        if self.latest.is_empty() && self.order.capacity() > 1024 {
            self.order = VecDeque::new();
            self.latest = HashMap::new();
        }
    }
}

impl ActivityActor {
    pub fn new(activity: Activity, deps: ActorDeps, replica: Option<Replica>) -> Self {
        Self {
            id: activity.spec().id.clone(),
            replica,
            activity,
            deps,
            sessions: HashMap::new(),
            inflight: VecDeque::new(),
            next_commit: 0,
            gathering: None,
            draining: false,
            last_metrics: 0,
            notices: Notices::default(),
            acks: None,
        }
    }

    fn now(&self) -> Millis {
        self.deps.clock.now_ms()
    }

    /// Joins the commit being gathered (opening one, and queueing its flush, if none
    /// is); returns where the caller's answer waits for it to be durable.
    fn gather(&mut self, ctx: &mut Context<Self>) -> Replies {
        // A full gathering goes first: the caller's answer must join one not yet sent.
        if self
            .gathering
            .as_ref()
            .is_some_and(|g| g.calls >= MAX_GATHERED)
        {
            self.flush();
        }
        let replicated = self.replica.is_some();
        let g = self.gathering.get_or_insert_with(|| {
            ctx.notify(FlushCommit);
            Gathering::new(replicated)
        });
        g.calls += 1;
        Arc::clone(&g.replies)
    }

    /// Sends the gathered commit, if any, to the writer.
    fn flush(&mut self) {
        if let Some(g) = self.gathering.take() {
            self.commit(Some(g));
        }
    }

    /// Something not yet durable: decisions not yet sent, or commits in flight.
    fn behind(&self) -> bool {
        self.gathering.is_some() || self.activity.has_writes() || !self.inflight.is_empty()
    }

    /// Sends what the activity decided to the writer (as `g`, when gathered; its
    /// callers are answered once it and everything before it is durable). Pushes
    /// decided without writes follow the last commit in flight, or go out now.
    fn commit(&mut self, g: Option<Gathering>) {
        let fx = self.activity.take_effects();
        if g.is_none() && fx.mutations.is_empty() && !fx.record_dirty {
            match self.inflight.back_mut() {
                Some(last) => last.pushes.extend(fx.pushes),
                None => self.deliver(fx.pushes),
            }
            return;
        }
        let g = g.unwrap_or_else(|| Gathering::new(self.replica.is_some()));
        let record = fx.record_dirty.then(|| self.activity.record());
        let ops = codec::encode(&self.id, record.as_ref(), &fx.mutations, self.deps.outbox);
        let replies = g.replies;
        let then: Option<crate::store::Then> = match (&self.replica, g.replica_ack) {
            (Some(r), Some(ack)) => {
                r.replicator.apply_to(&self.id, &r.holder, &ops, ack);
                // Durable only once the replica took it too: answered from here.
                let durable = g.durable.clone();
                actix::spawn(async move { answer(&replies, durable.await) });
                None
            }
            _ => Some(Box::new(move |res: Result<(), StoreError>| {
                answer(
                    &replies,
                    res.map_err(|_| CallError::Unavailable("the store cannot write")),
                )
            })),
        };
        self.deps.store.commit_to(ops, g.store_ack, then);
        let ack = g.durable;
        let no = self.next_commit;
        self.next_commit += 1;
        self.inflight.push_back(InFlight {
            no,
            done: None,
            pushes: fx.pushes,
        });
        // One ordered stream of acknowledgements rather than a future spawned in the
        // context per commit: actix polls every spawned future on each wake-up, which
        // made each message cost O(commits in flight) (thousands with replication).
        if let Some(acks) = &self.acks {
            let _ = acks.send((no, ack));
        }
    }

    /// Commits finish in order; pushes go out in the same order, only when durable.
    fn on_durable(&mut self, no: u64, res: Result<(), CallError>, ctx: &mut Context<Self>) {
        if res.is_err() && self.replica.is_some() {
            return self.step_down(ctx);
        }
        // Acknowledgements arrive in commit order, so this is the front.
        if let Some(f) = self.inflight.iter_mut().find(|f| f.no == no) {
            f.done = Some(res);
        }
        while self.inflight.front().is_some_and(|f| f.done.is_some()) {
            let f = self.inflight.pop_front().expect("front exists");
            if matches!(f.done, Some(Ok(()))) {
                self.deliver(f.pushes);
            }
        }
    }

    /// Cluster mode: a commit missed the replica (lease lost, or Redis failed), so this
    /// actor's memory is ahead of what a successor would rebuild. It stops deciding at
    /// once; the activity is rebuilt from the replica by whichever node owns it next.
    /// Local sessions are told to reconnect; relayed ones are re-joined by their nodes.
    fn step_down(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        self.draining = true;
        tracing::warn!(activity_id = %self.id, "stepping down: the replica did not take a commit");
        metrics::counter!("sluice_cluster_step_downs_total").increment(1);
        for s in self.sessions.values().filter(|s| s.is_local()) {
            s.push(ToSession::Restarting);
        }
        self.inflight.clear();
        // Callers of the uncommitted gathering hear "stopped; retry".
        self.gathering = None;
        ctx.stop();
    }

    /// Sends a batch of pushes. Users admitted in this batch go first (each user's
    /// own frames keep their order): an `admitted` frame must not wait behind a
    /// broadcast such as 18,000 `resumed` frames decided in the same tick.
    fn deliver(&mut self, mut pushes: Vec<Outbound>) {
        let admitted: std::collections::HashSet<UserId> = pushes
            .iter()
            .filter(|o| matches!(o.push, Push::Admitted { .. }))
            .map(|o| o.user.clone())
            .collect();
        if !admitted.is_empty() && admitted.len() < pushes.len() {
            let (first, rest): (Vec<_>, Vec<_>) =
                pushes.into_iter().partition(|o| admitted.contains(&o.user));
            pushes = first;
            pushes.extend(rest);
        }
        for o in pushes {
            if matches!(o.push, Push::Paused | Push::Resumed) {
                self.notices.defer(o);
                continue;
            }
            // Anything else for this user follows its pending notice.
            if let Some(notice) = self.notices.take(&o.user) {
                self.send(&o.user, notice);
            }
            self.send(&o.user, o.push);
        }
        self.send_notices();
    }

    fn send(&mut self, user: &UserId, push: Push) {
        let Some(s) = self.sessions.get(user) else {
            return;
        };
        let last = push.is_final();
        s.push(ToSession::Push(push));
        if last {
            self.sessions.remove(user);
        }
    }

    /// Sends pending pause/resume notices within this tick's budget.
    fn send_notices(&mut self) {
        while let Some((user, push)) = self.notices.next() {
            self.send(&user, push);
        }
    }

    /// Commits without waiting: the acknowledgement stream delivers its pushes.
    fn persist(&mut self, ctx: &mut Context<Self>) {
        if self.gathering.is_some() || self.activity.has_writes() {
            self.gather(ctx);
        } else {
            self.commit(None);
        }
    }

    /// Runs a domain call, containing a panic (a bug) to this request: it is logged and
    /// answered `unavailable`, and the actor and every other activity keep running.
    fn guarded<T>(
        &mut self,
        f: impl FnOnce(&mut Activity, Millis) -> Result<T, ActivityError>,
    ) -> CallResult<T> {
        let now = self.now();
        let activity = &mut self.activity;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(activity, now))) {
            Ok(r) => r.map_err(CallError::from),
            Err(_) => {
                tracing::error!(activity_id = %self.id, "internal error while handling a request");
                metrics::counter!("sluice_internal_errors_total").increment(1);
                Err(CallError::Unavailable(
                    "internal error; the request was not applied",
                ))
            }
        }
    }

    /// `value`, to be told once everything decided so far is durable: at once when
    /// it already is, else with the gathered commit (which may write nothing, just
    /// follow the commits in flight).
    fn reply<T>(&mut self, value: CallResult<T>, ctx: &mut Context<Self>) -> Deferred<T> {
        if !self.behind() {
            // Pushes decided without writes go out now (nothing is in flight).
            self.commit(None);
            return Deferred {
                value,
                waiting: None,
            };
        }
        Deferred {
            value,
            waiting: Some(self.gather(ctx)),
        }
    }

    fn record_metrics(&mut self, now: Millis) {
        if now < self.last_metrics + 1000 {
            return;
        }
        self.last_metrics = now;
        let v = self.activity.view(now, true);
        let id = self.id.to_string();
        for (name, value) in [
            ("sluice_activity_waiting", v.waiting),
            ("sluice_activity_available", v.available),
            ("sluice_activity_held", v.held),
            ("sluice_activity_sold", v.sold),
            ("sluice_activity_paid", v.paid),
            ("sluice_activity_cancelled", v.cancelled),
            ("sluice_activity_admitted_total", v.admitted_total),
            (
                "sluice_activity_expired_total",
                v.expired_total.unwrap_or(0),
            ),
        ] {
            metrics::gauge!(name, "activity" => id.clone()).set(value as f64);
        }
        metrics::gauge!("sluice_activity_sessions", "activity" => id)
            .set(self.sessions.len() as f64);
    }
}

/// A refusal that reports nothing decided: told at once.
fn refuse<T>(e: CallError) -> Deferred<T> {
    Deferred {
        value: Err(e),
        waiting: None,
    }
}

impl Actor for ActivityActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Bounded: handlers wait (backpressure, then 503 after a timeout) rather than
        // letting a flood queue without limit.
        ctx.set_mailbox_capacity(4096);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Durable)>();
        self.acks = Some(tx);
        ctx.add_stream(futures_util::stream::unfold(rx, |mut rx| async move {
            let (no, durable) = rx.recv().await?;
            Some(((no, durable.await), rx))
        }));
        ctx.run_interval(self.deps.tick, |_, ctx| ctx.notify(Tick));
        // Persist the initial record of a new activity (no-op after recovery).
        self.persist(ctx);
        tracing::info!(activity_id = %self.id, "activity started");
    }
}

impl Handler<Tick> for ActivityActor {
    type Result = ();
    fn handle(&mut self, _: Tick, ctx: &mut Self::Context) {
        self.notices.new_tick();
        self.send_notices();
        let _ = self.guarded(|a, now| {
            a.tick(now);
            Ok(())
        });
        self.persist(ctx);
        let now = self.now();
        self.record_metrics(now);
    }
}

impl Handler<Join> for ActivityActor {
    type Result = Deferred<JoinReply>;
    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) -> Self::Result {
        if self.draining {
            return refuse(CallError::Unavailable("the server is restarting"));
        }
        let attach = msg.session.is_some();
        let result = self.guarded(|a, now| {
            if let Some(t) = &msg.ticket {
                // Ownership first (403/404); an ended place makes this a fresh join.
                a.ticket(&msg.user, t, now)?;
            }
            a.check_pow(&msg.user, msg.pow.as_ref(), now)?;
            let joined = match &msg.ticket {
                Some(t) => a.resume(&msg.user, t, now),
                None => a.join(&msg.user, attach, now),
            }?;
            let ticket = a.ticket(&msg.user, &joined.ticket, now)?;
            Ok(JoinReply {
                ticket,
                existing: joined.existing,
            })
        });
        if let (Ok(_), Some(session)) = (&result, msg.session) {
            // A notice still pending from before this connection is stale: the new
            // session hears `queued` first, and `paused` after it if so.
            self.notices.take(&msg.user);
            if let Some(old) = self.sessions.insert(msg.user.clone(), session.clone()) {
                if old.id != session.id {
                    old.push(ToSession::Superseded);
                }
            }
        }
        self.reply(result, ctx)
    }
}

impl Handler<Detach> for ActivityActor {
    type Result = ();
    fn handle(&mut self, msg: Detach, ctx: &mut Self::Context) {
        let current = self
            .sessions
            .get(&msg.user)
            .is_some_and(|s| s.id == msg.session_id);
        if current {
            self.sessions.remove(&msg.user);
            let _ = self.guarded(|a, now| {
                a.detach(&msg.user, now);
                Ok(())
            });
            self.persist(ctx);
        }
    }
}

impl Handler<Leave> for ActivityActor {
    type Result = Deferred<()>;
    fn handle(&mut self, msg: Leave, ctx: &mut Self::Context) -> Self::Result {
        let value = self.guarded(|a, now| a.leave(&msg.user, now));
        self.sessions.remove(&msg.user);
        self.reply(value, ctx)
    }
}

impl Handler<GetTicket> for ActivityActor {
    type Result = Deferred<TicketView>;
    fn handle(&mut self, msg: GetTicket, ctx: &mut Self::Context) -> Self::Result {
        let value = self.guarded(|a, now| a.ticket(&msg.user, &msg.ticket, now));
        self.reply(value, ctx)
    }
}

impl Handler<LeaveTicket> for ActivityActor {
    type Result = Deferred<TicketView>;
    fn handle(&mut self, msg: LeaveTicket, ctx: &mut Self::Context) -> Self::Result {
        let value = self.guarded(|a, now| a.leave_ticket(&msg.user, &msg.ticket, now));
        if value.is_ok() {
            self.sessions.remove(&msg.user);
        }
        self.reply(value, ctx)
    }
}

impl Handler<Purchase> for ActivityActor {
    type Result = Deferred<Purchased>;
    fn handle(&mut self, msg: Purchase, ctx: &mut Self::Context) -> Self::Result {
        let req = PurchaseRequest {
            user: msg.user,
            claims: msg.claims,
            quantity: msg.quantity,
            slot_id: msg.slot_id,
        };
        let value = self.guarded(|a, now| a.purchase(req, now));
        self.reply(value, ctx)
    }
}

impl Handler<OrderCall> for ActivityActor {
    type Result = Deferred<Order>;
    fn handle(&mut self, msg: OrderCall, ctx: &mut Self::Context) -> Self::Result {
        let value = self.guarded(|a, now| match msg {
            OrderCall::Get { n, user } => match a.order(n) {
                None => Err(ActivityError::NotFound("no such order".into())),
                Some(o) if user.as_ref().is_some_and(|u| u != &o.user) => Err(
                    ActivityError::Forbidden("that order belongs to someone else".into()),
                ),
                Some(o) => Ok(o.clone()),
            },
            OrderCall::Pay { n, user } => a.pay(n, user.as_ref()),
            OrderCall::Cancel { n, user } => a.cancel(n, user.as_ref(), now),
        });
        self.reply(value, ctx)
    }
}

impl Handler<OrdersOf> for ActivityActor {
    type Result = Deferred<Vec<Order>>;
    fn handle(&mut self, msg: OrdersOf, ctx: &mut Self::Context) -> Self::Result {
        let orders = self.activity.orders_of(&msg.user).cloned().collect();
        self.reply(Ok(orders), ctx)
    }
}

impl Handler<Admin> for ActivityActor {
    type Result = Deferred<ActivityView>;
    fn handle(&mut self, msg: Admin, ctx: &mut Self::Context) -> Self::Result {
        let value = self.guarded(|a, now| {
            let admin = match msg {
                Admin::View { admin } => admin,
                Admin::AddStock(n) => a.add_stock(n, now).map(|()| true)?,
                Admin::AddSlots(slots) => a.add_slots(&slots, now).map(|()| true)?,
                Admin::Pause => a.pause(now).map(|()| true)?,
                Admin::Resume => a.resume_admission(now).map(|()| true)?,
                Admin::Close => a.close(now).map(|()| true)?,
                Admin::PatchAdmission(p) => a.patch_admission(&p, now).map(|()| true)?,
            };
            Ok(a.view(now, admin))
        });
        self.reply(value, ctx)
    }
}

impl StreamHandler<(u64, Result<(), CallError>)> for ActivityActor {
    fn handle(&mut self, (no, res): (u64, Result<(), CallError>), ctx: &mut Self::Context) {
        self.on_durable(no, res, ctx);
    }
}

impl Handler<FlushCommit> for ActivityActor {
    type Result = ();
    fn handle(&mut self, _: FlushCommit, _: &mut Self::Context) {
        self.flush();
    }
}

impl Handler<StepDown> for ActivityActor {
    type Result = ();
    fn handle(&mut self, _: StepDown, ctx: &mut Self::Context) {
        self.step_down(ctx);
    }
}

impl Handler<Drain> for ActivityActor {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) -> Self::Result {
        self.draining = true;
        // Sessions relayed from other nodes stay: those nodes re-join them to the
        // activity's next owner.
        for s in self.sessions.values().filter(|s| s.is_local()) {
            s.push(ToSession::Restarting);
        }
        let (done, rx) = oneshot::channel::<()>();
        if self.behind() {
            wait_for(
                &self.gather(ctx),
                Box::new(move |_| {
                    let _ = done.send(());
                }),
            );
            self.flush();
        } else {
            self.commit(None);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u32) -> UserId {
        UserId::parse(&format!("u{n}")).expect("valid user id")
    }

    #[test]
    fn notices_keep_the_latest_per_user_and_spread_over_ticks() {
        let mut n = Notices::default();
        for i in 0..(NOTICES_PER_TICK as u32 + 10) {
            n.defer(Outbound {
                user: user(i),
                push: Push::Paused,
            });
        }
        n.defer(Outbound {
            user: user(0),
            push: Push::Resumed,
        });
        n.new_tick();
        let first: Vec<_> = std::iter::from_fn(|| n.next()).collect();
        assert_eq!(first.len(), NOTICES_PER_TICK);
        assert_eq!(first[0], (user(0), Push::Resumed));
        assert_eq!(n.next(), None, "the budget is spent until the next tick");
        // A user's own next push takes its pending notice first.
        let last = user(NOTICES_PER_TICK as u32 + 9);
        assert_eq!(n.take(&last), Some(Push::Paused));
        n.new_tick();
        assert_eq!(std::iter::from_fn(|| n.next()).count(), 9);
    }
}
