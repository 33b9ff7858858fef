//! `ActivityActor`: the single writer of one activity. It owns the `Activity` state,
//! the sessions attached to it, and its commit pipeline (`pipeline`).
//!
//! Every handler is the same three steps: call the domain with `now`, gather the
//! resulting mutations into the commit being gathered, and reply (or push to sessions)
//! only once that commit is durable. Replies without new mutations still wait for the
//! latest commit, so nothing read is ever ahead of disk.
//!
//! The actor commits through a `CommitTarget` and tells sessions through their
//! `SessionOutput`; which implementations those are (local store or replicated, local
//! queue or relay link) is decided where the actor is started.
//!
//! Accepts: `Join`, `Detach`, `Leave`, `GetTicket`, `LeaveTicket`, `Purchase`,
//! `OrderCall`, `OrdersOf`, `Admin`, `AddInvites`, `Revoke`, `GetFairness`, `FairnessLog`,
//! `GetReport`, `Tick`, `Drain`,
//! `StepDown`, `PruneEvents`.

mod notices;
mod pipeline;
#[cfg(test)]
mod tests;

use super::messages::*;
use crate::domain::activity::fairness::{FairnessReveal, LogPage};
use crate::domain::activity::orders::{PurchaseRequest, Purchased};
use crate::domain::activity::report::ReportView;
use crate::domain::activity::{
    Activity, ActivityError, ActivityView, Outbound, Push, Revoked, TicketView,
};
use crate::domain::clock::{Clock, Millis};
use crate::domain::ids::{ActivityId, UserId};
use crate::domain::order::Order;
use crate::store::webhooks::EventSignal;
use crate::store::{CommitFailure, CommitTarget};
use actix::prelude::*;
use notices::Notices;
use pipeline::{wait_for, Ack, Deferred, Pipeline};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Sends the gathered commit to the target; queued by the first call of a gathering,
/// so it runs once the mailbox is drained.
#[derive(Message)]
#[rtype(result = "()")]
struct FlushCommit;

/// Shared by every activity actor of the process.
#[derive(Clone)]
pub struct ActorDeps {
    pub store: crate::store::Store,
    pub clock: Arc<dyn Clock>,
    pub tick: Duration,
    /// Orders also go to the outbox (a sink is configured).
    pub outbox: bool,
    /// Which webhook events activities write, and the wake-up of their delivery.
    pub hooks: Arc<EventSignal>,
    /// Signs gate passes; verification reads the revoked ones published here.
    pub passes: crate::domain::pass::Passes,
}

pub struct ActivityActor {
    id: ActivityId,
    activity: Activity,
    clock: Arc<dyn Clock>,
    tick: Duration,
    pipeline: Pipeline,
    /// Taken by `started`, which turns it into the stream of commit outcomes.
    acks: Option<tokio::sync::mpsc::UnboundedReceiver<Ack>>,
    sessions: HashMap<UserId, SessionHandle>,
    draining: bool,
    last_metrics: Millis,
    notices: Notices,
    passes: crate::domain::pass::Passes,
    /// The version of the revoked passes last published to `passes`.
    published_revoked: Option<u64>,
}

impl ActivityActor {
    /// An actor for `activity` that commits to `target`.
    pub fn new(mut activity: Activity, deps: &ActorDeps, target: Arc<dyn CommitTarget>) -> Self {
        activity.set_passes(deps.passes.clone());
        let id = activity.spec().id.clone();
        let log = deps.store.event_range(id.as_str()).unwrap_or_else(|e| {
            // Unreadable here means unreadable for the commits too; numbering from
            // the clock keeps ids unique should it come back.
            tracing::error!(activity_id = %id, error = %e, "cannot read the webhook event log");
            let next = deps.clock.now_ms() << 16;
            next..next
        });
        let events = (Arc::clone(&deps.hooks), log);
        let (pipeline, acks) = Pipeline::new(id.clone(), deps.outbox, events, target);
        Self {
            id,
            activity,
            clock: Arc::clone(&deps.clock),
            tick: deps.tick,
            pipeline,
            acks: Some(acks),
            sessions: HashMap::new(),
            draining: false,
            last_metrics: 0,
            notices: Notices::default(),
            passes: deps.passes.clone(),
            published_revoked: None,
        }
    }

    /// Publishes this gate's revoked passes where `verify` reads them, as soon as they
    /// are decided (refusing a pass early is safe; accepting it late is not).
    fn publish_revoked(&mut self) {
        let version = self.activity.revoked_version();
        if self.published_revoked != Some(version) {
            self.published_revoked = Some(version);
            self.passes
                .set_revoked(self.id.as_str(), self.activity.revoked_passes());
        }
    }

    fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// Joins the commit being gathered; its flush runs once the mailbox is drained.
    fn gather(&mut self, ctx: &mut Context<Self>) -> pipeline::Replies {
        self.publish_revoked();
        let (replies, opened) = self.pipeline.gather(&mut self.activity);
        if opened {
            ctx.notify(FlushCommit);
        }
        let ready = self.pipeline.take_ready();
        self.deliver(ready);
        replies
    }

    /// Commits what was decided without a caller waiting: the outcome stream delivers
    /// its pushes.
    fn persist(&mut self, ctx: &mut Context<Self>) {
        if self.pipeline.is_gathering() || self.activity.has_writes() {
            self.gather(ctx);
        } else {
            let now = self.pipeline.commit(&mut self.activity, false);
            self.deliver(now);
        }
    }

    /// Commits finish in order; pushes go out in the same order, only when durable.
    fn on_durable(&mut self, no: u64, res: Result<(), CommitFailure>, ctx: &mut Context<Self>) {
        match self.pipeline.on_durable(no, res) {
            Ok(ready) => {
                for pushes in ready {
                    self.deliver(pushes);
                }
            }
            Err(why) => self.step_down(&why.to_string(), ctx),
        }
    }

    /// A commit diverged (cluster mode: the lease was lost, or the replica failed), so
    /// this actor's memory is ahead of what a successor would rebuild. It stops
    /// deciding at once; the activity is rebuilt from durable state by whichever
    /// process owns it next. Sessions are told to reconnect.
    fn step_down(&mut self, why: &str, ctx: &mut Context<Self>) {
        if self.draining {
            return;
        }
        self.draining = true;
        tracing::warn!(activity_id = %self.id, reason = why, "stepping down");
        metrics::counter!("sluice_cluster_step_downs_total").increment(1);
        for s in self.sessions.values() {
            s.push(ToSession::Restarting);
        }
        self.pipeline.abandon();
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

    /// Runs a domain call, containing a panic (a bug) to this request: it is logged and
    /// answered `unavailable`, and the actor and every other activity keep running.
    fn guarded<T>(
        &mut self,
        f: impl FnOnce(&mut Activity, Millis) -> Result<T, ActivityError>,
    ) -> CallResult<T> {
        let now = self.now();
        let activity = &mut self.activity;
        // `end_call` stamps the call's webhook events and notes a change of phase.
        let run = || {
            let r = f(activity, now);
            activity.end_call(now);
            r
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
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
        if !self.pipeline.behind(&self.activity) {
            // Pushes decided without writes go out now (nothing is in flight).
            let now = self.pipeline.commit(&mut self.activity, false);
            self.deliver(now);
            return Deferred::now(value);
        }
        Deferred::after(value, self.gather(ctx))
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
    Deferred::now(Err(e))
}

impl Actor for ActivityActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Bounded: handlers wait (backpressure, then 503 after a timeout) rather than
        // letting a flood queue without limit.
        ctx.set_mailbox_capacity(4096);
        if let Some(acks) = self.acks.take() {
            ctx.add_stream(futures_util::stream::unfold(acks, |mut rx| async move {
                let ack = rx.recv().await?;
                Some((ack, rx))
            }));
        }
        ctx.run_interval(self.tick, |_, ctx| ctx.notify(Tick));
        self.publish_revoked();
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
        let result = self
            .guarded(|a, now| {
                a.check_access(&msg.user, msg.invite.as_deref())?;
                a.join_or_resume(
                    &msg.user,
                    msg.ticket.as_deref(),
                    msg.pow.as_ref(),
                    attach,
                    now,
                )
            })
            .map(|j| JoinReply {
                ticket: j.ticket,
                existing: j.existing,
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
        let (n, action, user) = msg.into_parts();
        let value = self.guarded(|a, now| a.order_action(n, action, user.as_ref(), now));
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
        let value = self.guarded(|a, now| a.admin(msg.into(), now));
        self.reply(value, ctx)
    }
}

impl Handler<AddInvites> for ActivityActor {
    type Result = Deferred<Vec<String>>;
    fn handle(&mut self, msg: AddInvites, ctx: &mut Self::Context) -> Self::Result {
        let value = self
            .guarded(|a, now| a.add_invites(&msg.codes, now))
            .map(|()| msg.codes);
        self.reply(value, ctx)
    }
}

impl Handler<Revoke> for ActivityActor {
    type Result = Deferred<Revoked>;
    fn handle(&mut self, msg: Revoke, ctx: &mut Self::Context) -> Self::Result {
        let value = self.guarded(|a, now| a.revoke(&msg.user, msg.ban, now));
        self.reply(value, ctx)
    }
}

impl Handler<GetFairness> for ActivityActor {
    type Result = Deferred<FairnessReveal>;
    fn handle(&mut self, _: GetFairness, ctx: &mut Self::Context) -> Self::Result {
        let value = Ok(self.activity.fairness());
        self.reply(value, ctx)
    }
}

impl Handler<FairnessLog> for ActivityActor {
    type Result = Deferred<LogPage>;
    fn handle(&mut self, msg: FairnessLog, ctx: &mut Self::Context) -> Self::Result {
        let value = Ok(self.activity.fairness_log(msg.from, msg.limit));
        self.reply(value, ctx)
    }
}

impl Handler<GetReport> for ActivityActor {
    type Result = Deferred<ReportView>;
    fn handle(&mut self, _: GetReport, ctx: &mut Self::Context) -> Self::Result {
        let value = Ok(self.activity.report());
        self.reply(value, ctx)
    }
}

impl StreamHandler<Ack> for ActivityActor {
    fn handle(&mut self, (no, res): Ack, ctx: &mut Self::Context) {
        self.on_durable(no, res, ctx);
    }
}

impl Handler<FlushCommit> for ActivityActor {
    type Result = ();
    fn handle(&mut self, _: FlushCommit, _: &mut Self::Context) {
        let ready = self.pipeline.flush(&mut self.activity);
        self.deliver(ready);
    }
}

impl Handler<PruneEvents> for ActivityActor {
    type Result = ();
    fn handle(&mut self, msg: PruneEvents, ctx: &mut Self::Context) {
        if self.pipeline.prune_events(msg.below) {
            self.gather(ctx);
        }
    }
}

impl Handler<StepDown> for ActivityActor {
    type Result = ();
    fn handle(&mut self, _: StepDown, ctx: &mut Self::Context) {
        self.step_down("the lease is gone", ctx);
    }
}

impl Handler<Drain> for ActivityActor {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) -> Self::Result {
        self.draining = true;
        for s in self.sessions.values() {
            s.push(ToSession::Restarting);
        }
        // The report is written at most once a second while running: write the rest.
        let _ = self.guarded(|a, now| {
            a.flush_report(now);
            Ok(())
        });
        let (done, rx) = oneshot::channel::<()>();
        if self.pipeline.behind(&self.activity) {
            wait_for(
                &self.gather(ctx),
                Box::new(move |_| {
                    let _ = done.send(());
                }),
            );
            let ready = self.pipeline.flush(&mut self.activity);
            self.deliver(ready);
        } else {
            let now = self.pipeline.commit(&mut self.activity, false);
            self.deliver(now);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}
