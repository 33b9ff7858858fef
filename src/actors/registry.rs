//! The registry: activity id -> running `ActivityActor`. Activities run on their own
//! arbiter (thread), apart from the HTTP workers; they are started at boot from the
//! store and on creation by an operator.

use super::activity::{ActivityActor, ActorDeps, Replica};
use super::messages::{Admin, CallError, Drain, StepDown};
use crate::domain::activity::{Activity, ActivityError, ActivityView};
use crate::domain::ids::ActivityId;
use crate::domain::spec::{ActivitySpec, SlotSpec};
use crate::domain::token::TokenKey;
use crate::store::codec::KvOp;
use crate::store::{layout, Store, StoreError};
use actix::prelude::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

pub struct Registry {
    actors: RwLock<BTreeMap<ActivityId, Addr<ActivityActor>>>,
    deps: ActorDeps,
    key: TokenKey,
    arbiter: ArbiterHandle,
    draining: AtomicBool,
}

impl Registry {
    pub fn new(deps: ActorDeps, key: TokenKey, arbiter: ArbiterHandle) -> Self {
        Self {
            actors: RwLock::new(BTreeMap::new()),
            deps,
            key,
            arbiter,
            draining: AtomicBool::new(false),
        }
    }

    pub fn store(&self) -> &Store {
        &self.deps.store
    }

    pub fn key(&self) -> &TokenKey {
        &self.key
    }

    /// Rebuilds every activity persisted in the store.
    pub fn restore_all(&self) -> Result<usize, StoreError> {
        let loaded = self.deps.store.load_activities()?;
        let now = self.deps.clock.now_ms();
        let n = loaded.len();
        for l in loaded {
            let activity = Activity::restore(l.record, l.data, self.key.clone(), now);
            self.spawn(activity, None);
        }
        Ok(n)
    }

    fn spawn(&self, activity: Activity, replica: Option<Replica>) -> Addr<ActivityActor> {
        let id = activity.spec().id.clone();
        let deps = self.deps.clone();
        let addr = ActivityActor::start_in_arbiter(&self.arbiter, move |_| {
            ActivityActor::new(activity, deps, replica)
        });
        self.actors
            .write()
            .expect("registry lock is never poisoned")
            .insert(id, addr.clone());
        addr
    }

    /// Creates and starts an activity; answers once its record is durable.
    pub async fn create(
        &self,
        spec: ActivitySpec,
        slots: Vec<SlotSpec>,
        replica: Option<Replica>,
    ) -> Result<ActivityView, CallError> {
        if self.is_draining() {
            return Err(CallError::Unavailable("the server is restarting"));
        }
        let addr = {
            let mut map = self
                .actors
                .write()
                .expect("registry lock is never poisoned");
            if map.contains_key(&spec.id) {
                return Err(CallError::Domain(ActivityError::Conflict(format!(
                    "activity {} already exists",
                    spec.id
                ))));
            }
            let now = self.deps.clock.now_ms();
            let activity = Activity::new(spec.clone(), &slots, self.key.clone(), now);
            let deps = self.deps.clone();
            let addr = ActivityActor::start_in_arbiter(&self.arbiter, move |_| {
                ActivityActor::new(activity, deps, replica)
            });
            map.insert(spec.id.clone(), addr.clone());
            addr
        };
        addr.send(Admin::View { admin: true })
            .await
            .map_err(|_| CallError::Unavailable("the activity stopped"))?
    }

    /// Cluster mode: takes an activity over from its replicated state (`kvs`: its sled
    /// keys and values). This node's copy is replaced by the replica in one commit,
    /// every order is queued for the sink again (idempotent there: the previous owner
    /// may have died before flushing), and the actor starts replicating as `replica`.
    /// `Ok(false)`: the replica holds no record (nothing to adopt).
    pub async fn adopt(
        &self,
        id: &ActivityId,
        kvs: Vec<(Vec<u8>, Vec<u8>)>,
        replica: Replica,
    ) -> Result<bool, StoreError> {
        let mut ops = vec![KvOp::DelPrefix(layout::activity_key(id, ""))];
        ops.extend(kvs.into_iter().map(|(k, v)| KvOp::Put(k, v)));
        let ack = self.deps.store.commit(ops)?;
        ack.await.map_err(|_| StoreError::Unavailable)??;
        let Some(loaded) = self.deps.store.load_activity(id)? else {
            return Ok(false);
        };
        if self.deps.outbox {
            let requeue: Vec<KvOp> = loaded
                .data
                .orders
                .iter()
                .map(|o| KvOp::Outbox(serde_json::to_vec(&o.view()).unwrap_or_default()))
                .collect();
            if !requeue.is_empty() {
                let ack = self.deps.store.commit(requeue)?;
                ack.await.map_err(|_| StoreError::Unavailable)??;
            }
        }
        let now = self.deps.clock.now_ms();
        let activity = Activity::restore(loaded.record, loaded.data, self.key.clone(), now);
        self.spawn(activity, Some(replica));
        Ok(true)
    }

    /// Cluster mode: stops an activity this node no longer owns.
    pub fn remove(&self, id: &ActivityId) {
        let addr = self
            .actors
            .write()
            .expect("registry lock is never poisoned")
            .remove(id);
        if let Some(addr) = addr {
            addr.do_send(StepDown);
        }
    }

    pub fn get(&self, id: &ActivityId) -> Option<Addr<ActivityActor>> {
        self.actors
            .read()
            .expect("registry lock is never poisoned")
            .get(id)
            .cloned()
    }

    pub fn all(&self) -> Vec<(ActivityId, Addr<ActivityActor>)> {
        self.actors
            .read()
            .expect("registry lock is never poisoned")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Shutdown: refuse new joins and creations, tell sessions to reconnect, and wait
    /// until every activity's decisions are durable.
    pub async fn drain(&self) {
        self.draining.store(true, Ordering::Release);
        for (_, addr) in self.all() {
            let _ = addr.send(Drain).await;
        }
    }
}
