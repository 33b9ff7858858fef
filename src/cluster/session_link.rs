//! A WebSocket session held here whose activity another node owns: its join, leave
//! and detach are relayed to the owner (`relay`).

use super::relay::{OwnerRef, Relay};
use crate::actors::session_queue::SessionQueue;
use crate::domain::ids::{ActivityId, UserId};
use crate::domain::pow::PowSolution;
use crate::http::directory::{JoinFailure, SessionLink};
use futures_util::future::LocalBoxFuture;
use std::sync::Arc;
use std::time::Duration;

pub struct RemoteLink {
    pub activity: ActivityId,
    pub owner: OwnerRef,
    pub relay: Arc<Relay>,
}

impl SessionLink for RemoteLink {
    fn join(
        &self,
        session: u64,
        queue: Arc<SessionQueue>,
        user: &UserId,
        ticket: Option<String>,
        pow: Option<PowSolution>,
        invite: Option<String>,
    ) -> LocalBoxFuture<'static, Result<(), JoinFailure>> {
        let (relay, activity, owner, user) = (
            Arc::clone(&self.relay),
            self.activity.clone(),
            self.owner.clone(),
            user.clone(),
        );
        Box::pin(async move {
            relay
                .join(
                    &activity,
                    owner,
                    session,
                    &user,
                    ticket,
                    (pow, invite),
                    queue,
                )
                .await
                .map_err(JoinFailure::Refused)
        })
    }

    /// The relay bounds the wait: as long as the owner answers and keeps the
    /// activity (`Relay::join`), not `server.actor_timeout_ms`.
    fn join_timeout(&self, _local: Duration) -> Option<Duration> {
        None
    }

    fn detach(&self, session: u64, _: &UserId) {
        self.relay.detach(session);
    }

    fn leave(&self, session: u64, _: &UserId) -> LocalBoxFuture<'static, ()> {
        let relay = Arc::clone(&self.relay);
        Box::pin(async move {
            let _ = relay.leave(session).await;
        })
    }
}
