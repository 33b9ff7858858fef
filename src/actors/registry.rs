//! The registry: activity id -> running `ActivityActor`. Activities run on their own
//! arbiter (thread), apart from the HTTP workers; they are started at boot from the
//! store and on creation by an operator.

use super::activity::{ActivityActor, ActorDeps};
use super::messages::{Admin, CallError, Drain, StepDown};
use crate::domain::activity::{Activity, ActivityError, ActivityView};
use crate::domain::ids::ActivityId;
use crate::domain::spec::{ActivitySpec, SlotSpec};
use crate::domain::token::TokenKey;
use crate::store::{CommitTarget, Store, StoreError};
use actix::prelude::*;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

/// 32 bytes from the OS CSPRNG: the commit-reveal seed of a new activity's
/// pre-queue (the domain only commits to it and orders by it).
pub fn draw_seed() -> [u8; 32] {
    use rand::RngCore;
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    seed
}

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

    /// Orders also go to the outbox (a sink is configured).
    pub fn outbox(&self) -> bool {
        self.deps.outbox
    }

    pub fn now(&self) -> crate::domain::clock::Millis {
        self.deps.clock.now_ms()
    }

    pub fn key(&self) -> &TokenKey {
        &self.key
    }

    /// Rebuilds every activity persisted in the store.
    pub fn restore_all(&self) -> Result<usize, StoreError> {
        let loaded = self.deps.store.load_activities()?;
        let now = self.deps.clock.now_ms();
        let n = loaded.len();
        let target: Arc<dyn CommitTarget> = Arc::new(self.deps.store.clone());
        for l in loaded {
            let activity = Activity::restore(l.record, l.data, self.key.clone(), now, draw_seed());
            self.start(activity, Arc::clone(&target));
        }
        Ok(n)
    }

    /// Starts an actor for `activity`, committing to `target`, and registers it.
    pub fn start(&self, activity: Activity, target: Arc<dyn CommitTarget>) -> Addr<ActivityActor> {
        let id = activity.spec().id.clone();
        let deps = self.deps.clone();
        let addr = ActivityActor::start_in_arbiter(&self.arbiter, move |_| {
            ActivityActor::new(activity, &deps, target)
        });
        self.actors
            .write()
            .expect("registry lock is never poisoned")
            .insert(id, addr.clone());
        addr
    }

    /// Creates and starts an activity committing to `target`; answers once its
    /// record is durable.
    pub async fn create(
        &self,
        spec: ActivitySpec,
        slots: Vec<SlotSpec>,
        target: Arc<dyn CommitTarget>,
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
            let activity = Activity::new(spec.clone(), &slots, self.key.clone(), now, draw_seed());
            let deps = self.deps.clone();
            let addr = ActivityActor::start_in_arbiter(&self.arbiter, move |_| {
                ActivityActor::new(activity, &deps, target)
            });
            map.insert(spec.id.clone(), addr.clone());
            addr
        };
        addr.send(Admin::View { admin: true })
            .await
            .map_err(|_| CallError::Unavailable("the activity stopped"))?
    }

    /// Stops an activity this process no longer decides (cluster mode: another node
    /// owns it now).
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
