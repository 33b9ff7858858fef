//! Sessions on any node. A node that holds a WebSocket for an activity owned elsewhere
//! relays the session's joins, leaves and detaches to the owner, and the owner relays
//! the session's messages back. Both directions are batched per node pair:
//!
//! - node -> owner: `POST /internal/sessions`, the session operations of the last
//!   ~2 ms in one request (`OpsLink`), each answered in order;
//! - owner -> node: `POST /internal/relay`, every message for that node's sessions of
//!   the last ~5 ms in one request (`NodeLink`), so an admission tick that moves
//!   thousands of places costs one request per node, not one per session.
//!
//! Why node-to-node HTTP rather than Redis pub/sub: the nodes already speak HTTP to
//! each other for proxied calls, a request carries its own answer (joins need one),
//! and a batch reaches exactly one node instead of being fanned out through Redis;
//! docs/cluster.md has the measured figures.
//!
//! The node side keeps each relayed session's ticket (from its `queued` frame), so
//! when the owner changes it re-joins every session with its ticket at the new owner:
//! the sessions keep their sockets and their places.

use super::client::post_json;
use crate::actors::session::{SessionOutput, ToSession};
use crate::actors::session_queue::SessionQueue;
use crate::domain::activity::Push;
use crate::domain::ids::{ActivityId, UserId};
use crate::domain::pow::PowSolution;
use crate::error::{ApiError, ErrorCode};
use actix::ArbiterHandle;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Notify};

/// How long a link waits after the first message of a batch for more.
const EVENTS_BATCH: Duration = Duration::from_millis(5);
const OPS_BATCH: Duration = Duration::from_millis(2);
/// Messages a link holds for a node that is not taking them; past it, positions
/// (which a later one replaces anyway) are dropped.
const MAX_LINK_PENDING: usize = 500_000;
/// A session relayed to a new owner that answers `unavailable` (still rebuilding, or
/// busy with every other node's sessions re-joining at once) is retried for as long
/// as its socket is open: telling it to reconnect would only add to the storm.
const REJOIN_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How often a waiting relayed join checks whether its activity moved.
const OWNER_CHECK: Duration = Duration::from_millis(250);

/// Requests stay bounded, so one never outlives its timeout and turns into a burst
/// of `unavailable` answers (and client retries) for work the owner is still doing:
/// the rest of a backlog goes in the next request, right after.
const MAX_OPS_PER_POST: usize = 1_000;
const MAX_EVENTS_PER_POST: usize = 20_000;

/// Takes up to `max` items, oldest first; if more are left, the link goes again
/// without waiting for a new push.
fn take_batch<T>(pending: &Mutex<Vec<T>>, max: usize, wake: &Notify) -> Vec<T> {
    let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
    if p.len() <= max {
        return std::mem::take(&mut *p);
    }
    let rest = p.split_off(max);
    let batch = std::mem::replace(&mut *p, rest);
    wake.notify_one();
    batch
}

/// One session operation, node -> owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum SessionOp {
    Join {
        activity: ActivityId,
        session: u64,
        user: UserId,
        ticket: Option<String>,
        pow: Option<PowSolution>,
        /// Invite code (absent from nodes that predate invites).
        #[serde(default)]
        invite: Option<String>,
    },
    Detach {
        activity: ActivityId,
        session: u64,
        user: UserId,
    },
    Leave {
        activity: ActivityId,
        session: u64,
        user: UserId,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct OpsRequest {
    /// The sending node and where its `/internal/relay` is.
    pub node: String,
    pub advertise: String,
    pub ops: Vec<SessionOp>,
}

/// The answer to one operation: no error is success.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireError {
    pub code: String,
    pub message: String,
}

impl OpResult {
    pub fn from_api(e: &ApiError) -> OpResult {
        OpResult {
            error: Some(WireError {
                code: e.code.as_str().to_owned(),
                message: e.message.clone(),
            }),
        }
    }

    fn into_result(self) -> Result<(), ApiError> {
        match self.error {
            None => Ok(()),
            Some(w) => Err(ApiError::new(
                ErrorCode::parse(&w.code).unwrap_or(ErrorCode::Unavailable),
                w.message,
            )),
        }
    }
}

/// Messages for one node's sessions, owner -> node.
#[derive(Debug, Serialize, Deserialize)]
pub struct RelayBatch {
    pub items: Vec<(u64, ToSession)>,
}

/// The sessions a node holds for activities owned elsewhere, by session id.
type Sessions = Arc<Mutex<HashMap<u64, RemoteSession>>>;

/// The owner's link to a node holding sessions of its activities.
pub struct NodeLink {
    node: String,
    base: String,
    key: String,
    pending: Mutex<Vec<(u64, ToSession)>>,
    wake: Notify,
    /// Set when the node is this one: a node that took over an activity holds its
    /// own relayed sockets, and their messages go straight into their queues rather
    /// than through an HTTP request to itself (after a takeover, that loopback was
    /// the new owner's largest extra load next to the activity itself).
    local: Option<Sessions>,
}

impl SessionOutput for NodeLink {
    /// `Restarting` is not relayed: the owner is stopping (or stepping down), and the
    /// node holding the socket re-joins the session at the next owner itself.
    fn push(&self, session: u64, msg: ToSession) {
        if matches!(msg, ToSession::Restarting) {
            return;
        }
        if let Some(sessions) = &self.local {
            deliver_to(sessions, std::iter::once((session, msg)));
            return;
        }
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let coalescable = matches!(msg, ToSession::Push(Push::Position { .. }));
            if p.len() >= MAX_LINK_PENDING && coalescable {
                return;
            }
            p.push((session, msg));
        }
        self.wake.notify_one();
    }
}

impl NodeLink {
    async fn run(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            tokio::time::sleep(EVENTS_BATCH).await;
            let items = take_batch(&self.pending, MAX_EVENTS_PER_POST, &self.wake);
            if items.is_empty() {
                continue;
            }
            metrics::counter!("sluice_cluster_relayed_messages_total")
                .increment(items.len() as u64);
            let batch = RelayBatch { items };
            let mut delivered = false;
            for attempt in 0..3u64 {
                match post_json::<_, serde_json::Value>(
                    &self.base,
                    "/internal/relay",
                    &self.key,
                    &batch,
                )
                .await
                {
                    Ok(_) => {
                        delivered = true;
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(node = %self.node, error = %e, attempt, "relay batch failed");
                        tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
                    }
                }
            }
            if !delivered {
                // The node is gone or cut off: its sockets are gone too, and its users'
                // places wait for their reconnect like any other disconnect.
                tracing::warn!(node = %self.node, messages = batch.items.len(), "dropping a relay batch for an unreachable node");
            }
        }
    }
}

/// A node's link to an owner, for its sessions' operations.
struct OpsLink {
    base: String,
    pending: Mutex<Vec<(SessionOp, oneshot::Sender<OpResult>)>>,
    wake: Notify,
}

impl OpsLink {
    async fn run(self: Arc<Self>, node: String, advertise: String, key: String) {
        loop {
            self.wake.notified().await;
            tokio::time::sleep(OPS_BATCH).await;
            let mut batch = take_batch(&self.pending, MAX_OPS_PER_POST, &self.wake);
            // A join whose session gave up waiting (its socket closed, the client
            // retrying elsewhere) is not sent: landing after the retry, it would
            // supersede the client's live socket with its dead one.
            batch.retain(|(op, tx)| !(matches!(op, SessionOp::Join { .. }) && tx.is_closed()));
            if batch.is_empty() {
                continue;
            }
            let (ops, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let req = OpsRequest {
                node: node.clone(),
                advertise: advertise.clone(),
                ops,
            };
            let answers: Result<Vec<OpResult>, String> =
                post_json(&self.base, "/internal/sessions", &key, &req).await;
            match answers {
                Ok(answers) if answers.len() == replies.len() => {
                    for (tx, a) in replies.into_iter().zip(answers) {
                        let _ = tx.send(a);
                    }
                }
                other => {
                    let why = match other {
                        Err(e) => e,
                        Ok(_) => "the owner answered a different number of operations".into(),
                    };
                    tracing::debug!(owner = %self.base, error = %why, "session operations failed");
                    let e = ApiError::new(
                        ErrorCode::Unavailable,
                        "the activity's node cannot be reached; reconnect shortly",
                    );
                    for tx in replies {
                        let _ = tx.send(OpResult::from_api(&e));
                    }
                }
            }
        }
    }
}

/// Where a relayed session's activity lives now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub node: String,
    pub base: String,
    pub fence: u64,
}

struct RemoteSession {
    queue: Arc<SessionQueue>,
    activity: ActivityId,
    user: UserId,
    ticket: Option<String>,
    owner: OwnerRef,
}

/// Both ends of relaying on this node.
pub struct Relay {
    node_id: String,
    advertise: String,
    key: String,
    /// Where the links' tasks run (they use the actix HTTP client).
    arbiter: ArbiterHandle,
    /// Owner side: links to nodes holding sessions of activities owned here.
    links: Mutex<HashMap<String, Arc<NodeLink>>>,
    /// Node side: links to owners, by base URL.
    ops: Mutex<HashMap<String, Arc<OpsLink>>>,
    /// Node side: sessions whose socket is here and whose activity is elsewhere.
    sessions: Sessions,
    /// Node side: the owner each activity's relayed sessions last joined.
    owners: Mutex<HashMap<ActivityId, OwnerRef>>,
}

impl Relay {
    pub fn new(node_id: String, advertise: String, key: String, arbiter: ArbiterHandle) -> Relay {
        Relay {
            node_id,
            advertise,
            key,
            arbiter,
            links: Mutex::new(HashMap::new()),
            ops: Mutex::new(HashMap::new()),
            sessions: Arc::new(Mutex::new(HashMap::new())),
            owners: Mutex::new(HashMap::new()),
        }
    }

    /// Owner side: the link to `node` (created on first use).
    pub fn link_to(&self, node: &str, base: &str) -> Arc<NodeLink> {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = links.get(node).filter(|l| l.base == base) {
            return Arc::clone(l);
        }
        let local = node == self.node_id;
        let link = Arc::new(NodeLink {
            node: node.to_owned(),
            base: base.to_owned(),
            key: self.key.clone(),
            pending: Mutex::new(Vec::new()),
            wake: Notify::new(),
            local: local.then(|| Arc::clone(&self.sessions)),
        });
        links.insert(node.to_owned(), Arc::clone(&link));
        if local {
            return link;
        }
        let l = Arc::clone(&link);
        // `spawn_fn`: the task uses the actix client, which is not `Send`.
        self.arbiter.spawn_fn(move || {
            actix_web::rt::spawn(l.run());
        });
        link
    }

    fn ops_link(&self, base: &str) -> Arc<OpsLink> {
        let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = ops.get(base) {
            return Arc::clone(l);
        }
        let link = Arc::new(OpsLink {
            base: base.to_owned(),
            pending: Mutex::new(Vec::new()),
            wake: Notify::new(),
        });
        ops.insert(base.to_owned(), Arc::clone(&link));
        let (l, node, adv, key) = (
            Arc::clone(&link),
            self.node_id.clone(),
            self.advertise.clone(),
            self.key.clone(),
        );
        self.arbiter.spawn_fn(move || {
            actix_web::rt::spawn(l.run(node, adv, key));
        });
        link
    }

    fn enqueue(&self, base: &str, op: SessionOp) -> oneshot::Receiver<OpResult> {
        let link = self.ops_link(base);
        let (tx, rx) = oneshot::channel();
        link.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((op, tx));
        link.wake.notify_one();
        rx
    }

    async fn call(&self, base: &str, op: SessionOp) -> Result<(), ApiError> {
        answer(self.enqueue(base, op).await)
    }

    /// A relayed join waits for its owner's answer however long the owner's queue
    /// is (no session timeout: a busy owner is not a failed one; refusing it only
    /// sent the client to the back of the same queue). It gives up when the
    /// activity has a newer owner, or when the owner cannot be reached (the request
    /// fails, or outlives its own timeout).
    async fn join_while_owner(
        &self,
        activity: &ActivityId,
        owner: &OwnerRef,
        op: SessionOp,
    ) -> Result<(), ApiError> {
        let mut rx = self.enqueue(&owner.base, op);
        let mut every = tokio::time::interval(OWNER_CHECK);
        loop {
            tokio::select! {
                r = &mut rx => return answer(r),
                _ = every.tick() => {
                    if self.moved_past(activity, owner.fence) {
                        return Err(ApiError::new(
                            ErrorCode::Unavailable,
                            "the activity moved to another node; reconnect shortly",
                        ));
                    }
                }
            }
        }
    }

    /// True once this node knows of an owner newer than `fence`.
    fn moved_past(&self, activity: &ActivityId, fence: u64) -> bool {
        self.owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(activity)
            .is_some_and(|o| o.fence > fence)
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<u64, RemoteSession>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Node side: joins (or resumes) a session held here at the activity's owner; its
    /// messages arrive in `queue`.
    #[allow(clippy::too_many_arguments)]
    pub async fn join(
        &self,
        activity: &ActivityId,
        owner: OwnerRef,
        session: u64,
        user: &UserId,
        ticket: Option<String>,
        (pow, invite): (Option<PowSolution>, Option<String>),
        queue: Arc<SessionQueue>,
    ) -> Result<(), ApiError> {
        let to = owner.clone();
        self.owners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(activity.clone())
            .or_insert_with(|| owner.clone());
        self.sessions().insert(
            session,
            RemoteSession {
                queue,
                activity: activity.clone(),
                user: user.clone(),
                ticket: ticket.clone(),
                owner,
            },
        );
        let op = SessionOp::Join {
            activity: activity.clone(),
            session,
            user: user.clone(),
            ticket,
            pow,
            invite,
        };
        // Removed again unless the join succeeds, also if the caller gives up waiting
        // (drops this future).
        let mut guard = Unregister {
            relay: self,
            session: Some(session),
        };
        // (A dropped join may still land at the owner: the guard detaches it there.)
        let res = self.join_while_owner(activity, &to, op).await;
        if res.is_ok() {
            guard.session = None;
        }
        res
    }

    /// Node side: the socket closed; the owner keeps the place for the grace period.
    pub fn detach(&self, session: u64) {
        let Some(s) = self.sessions().remove(&session) else {
            return;
        };
        let op = SessionOp::Detach {
            activity: s.activity,
            session,
            user: s.user,
        };
        let base = s.owner.base;
        let relay_link = self.ops_link(&base);
        let (tx, _rx) = oneshot::channel();
        relay_link
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((op, tx));
        relay_link.wake.notify_one();
    }

    /// Node side: the user gave the place up.
    pub async fn leave(&self, session: u64) -> Result<(), ApiError> {
        let Some(s) = self.sessions().remove(&session) else {
            return Ok(());
        };
        let op = SessionOp::Leave {
            activity: s.activity,
            session,
            user: s.user,
        };
        self.call(&s.owner.base, op).await
    }

    /// Node side: messages from owners for sessions held here.
    pub fn deliver(&self, items: Vec<(u64, ToSession)>) {
        deliver_to(&self.sessions, items);
    }

    /// Node side: sessions held here whose activity is owned elsewhere.
    pub fn relayed_sessions(&self) -> usize {
        self.sessions().len()
    }

    /// Node side: the activity has a new owner; every session relayed to the old one
    /// joins the new one with its ticket and keeps its socket and place.
    pub fn owner_changed(self: &Arc<Self>, activity: &ActivityId, owner: &OwnerRef) {
        {
            let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
            match owners.get(activity) {
                Some(known) if known == owner => return,
                None => return, // no session of this activity was ever relayed from here
                Some(_) => owners.insert(activity.clone(), owner.clone()),
            };
        }
        let moved: Vec<(u64, UserId, Option<String>, Arc<SessionQueue>)> = {
            let mut sessions = self.sessions();
            sessions
                .iter_mut()
                .filter(|(_, s)| &s.activity == activity && &s.owner != owner)
                .map(|(id, s)| {
                    s.owner = owner.clone();
                    (*id, s.user.clone(), s.ticket.clone(), Arc::clone(&s.queue))
                })
                .collect()
        };
        if moved.is_empty() {
            return;
        }
        tracing::info!(activity_id = %activity, owner = %owner.node, sessions = moved.len(), "re-joining relayed sessions at the new owner");
        for (id, user, ticket, queue) in moved {
            let relay = Arc::clone(self);
            let (activity, base) = (activity.clone(), owner.base.clone());
            self.arbiter.spawn_fn(move || {
                actix_web::rt::spawn(async move {
                    let mut backoff = Duration::from_millis(100);
                    loop {
                        if !relay.sessions().contains_key(&id) {
                            break; // the socket closed meanwhile
                        }
                        let op = SessionOp::Join {
                            activity: activity.clone(),
                            session: id,
                            user: user.clone(),
                            ticket: ticket.clone(),
                            pow: None,
                            invite: None,
                        };
                        match relay.call(&base, op).await {
                            Ok(()) => break,
                            Err(e) if e.code == ErrorCode::Unavailable => {
                                tokio::time::sleep(backoff).await;
                                backoff = (backoff * 2).min(REJOIN_BACKOFF_MAX);
                            }
                            Err(e) => {
                                relay.sessions().remove(&id);
                                queue.push(refusal(&e));
                                break;
                            }
                        }
                    }
                });
            });
        }
    }
}

/// Node side: messages from an owner (over HTTP, or this node's own activity) into
/// the queues of the sessions held here; a session's final message unregisters it.
fn deliver_to(
    sessions: &Mutex<HashMap<u64, RemoteSession>>,
    items: impl IntoIterator<Item = (u64, ToSession)>,
) {
    let mut sessions = sessions.lock().unwrap_or_else(|e| e.into_inner());
    for (id, msg) in items {
        let Some(s) = sessions.get_mut(&id) else {
            continue;
        };
        if let ToSession::Push(Push::Queued { ticket, .. } | Push::Prequeue { ticket, .. }) = &msg {
            s.ticket = Some(ticket.clone());
        }
        let last = match &msg {
            ToSession::Push(p) => p.is_final(),
            ToSession::Superseded | ToSession::Restarting => true,
        };
        s.queue.push(msg);
        if last {
            sessions.remove(&id);
        }
    }
}

fn answer(r: Result<OpResult, oneshot::error::RecvError>) -> Result<(), ApiError> {
    match r {
        Ok(r) => r.into_result(),
        Err(_) => Err(ApiError::new(ErrorCode::Unavailable, "the relay stopped")),
    }
}

struct Unregister<'a> {
    relay: &'a Relay,
    session: Option<u64>,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session {
            // `detach` unregisters and tells the owner; the owner ignores a detach of a
            // session it does not have (a join it refused).
            self.relay.detach(s);
        }
    }
}

/// The message that ends a session whose (re-)join was refused.
pub fn refusal(e: &ApiError) -> ToSession {
    match e.code {
        ErrorCode::SoldOut => ToSession::Push(Push::SoldOut),
        ErrorCode::NotOpen => ToSession::Push(Push::Closed),
        // Anything else: reconnect (with the ticket) once the cluster has settled.
        _ => ToSession::Restarting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_types_round_trip() {
        let op = SessionOp::Join {
            activity: ActivityId::parse("drop").expect("id"),
            session: 7,
            user: UserId::parse("u1").expect("id"),
            ticket: Some("t".into()),
            pow: None,
            invite: None,
        };
        let text = serde_json::to_string(&op).expect("serializes");
        assert!(text.contains(r#""op":"join""#), "{text}");
        let back: SessionOp = serde_json::from_str(&text).expect("parses");
        assert!(matches!(back, SessionOp::Join { session: 7, .. }));
        let e = ApiError::new(ErrorCode::SoldOut, "gone");
        let r: OpResult =
            serde_json::from_str(&serde_json::to_string(&OpResult::from_api(&e)).expect("ser"))
                .expect("parses");
        assert_eq!(
            r.into_result().expect_err("an error").code,
            ErrorCode::SoldOut
        );
        assert!(OpResult::default().into_result().is_ok());
        let batch = RelayBatch {
            items: vec![
                (1, ToSession::Push(Push::Resumed)),
                (2, ToSession::Superseded),
            ],
        };
        let back: RelayBatch =
            serde_json::from_str(&serde_json::to_string(&batch).expect("ser")).expect("parses");
        assert_eq!(back.items.len(), 2);
    }

    #[test]
    fn an_owner_tells_its_own_relayed_sockets_directly() {
        let _system = actix::System::new();
        let relay = Relay::new(
            "n1".into(),
            "http://n1.test".into(),
            "k".into(),
            actix::Arbiter::current(),
        );
        let queue = Arc::new(SessionQueue::default());
        relay.sessions().insert(
            7,
            RemoteSession {
                queue: Arc::clone(&queue),
                activity: ActivityId::parse("drop").expect("id"),
                user: UserId::parse("u1").expect("id"),
                ticket: None,
                owner: OwnerRef {
                    node: "n1".into(),
                    base: "http://n1.test".into(),
                    fence: 2,
                },
            },
        );
        // The link to this node itself: no request, the queue has the message at once.
        let link = relay.link_to("n1", "http://n1.test");
        link.push(
            7,
            ToSession::Push(Push::Queued {
                ticket: "t7".into(),
                receipt: "r".into(),
                position: 3,
                eta_secs: 1,
                seq: 9,
            }),
        );
        assert!(link.pending.lock().expect("lock").is_empty());
        assert_eq!(relay.sessions()[&7].ticket.as_deref(), Some("t7"));
        // A final message unregisters the session, as over HTTP.
        link.push(7, ToSession::Push(Push::SoldOut));
        assert!(relay.sessions().is_empty());
        match queue.drain() {
            crate::actors::session_queue::Drained::Messages(m) => assert_eq!(m.len(), 2),
            crate::actors::session_queue::Drained::Overflowed => panic!("overflowed"),
        }
    }
}
