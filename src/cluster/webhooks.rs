//! Webhook registrations in the cluster's Redis (`sluice:webhooks`), so a receiver
//! registered through one node is delivered to by every node (each for the
//! activities it owns).

use super::keys;
use super::primary::{replicas_confirm, Primary};
use crate::store::webhooks::{Webhook, WebhookStore, WebhooksUnavailable};
use futures_util::future::BoxFuture;
use redis::AsyncCommands;
use std::collections::HashMap;
use std::sync::Arc;

/// Reads and writes go to the current primary (followed through Sentinel), and a
/// change is confirmed by `replica_acks` replicas like every replicated write.
pub struct RedisWebhooks {
    pub primary: Arc<Primary>,
    pub replica_acks: u32,
    pub ack_timeout_ms: u64,
}

impl RedisWebhooks {
    async fn confirmed(
        &self,
        conn: &mut redis::aio::ConnectionManager,
    ) -> Result<(), WebhooksUnavailable> {
        if replicas_confirm(conn, self.replica_acks, self.ack_timeout_ms)
            .await
            .map_err(down)?
        {
            Ok(())
        } else {
            Err(WebhooksUnavailable(
                "the cluster's store cannot confirm the change",
            ))
        }
    }
}

fn down(e: redis::RedisError) -> WebhooksUnavailable {
    tracing::warn!(error = %e, "cluster Redis call failed");
    WebhooksUnavailable("the cluster's store cannot be reached")
}

impl WebhookStore for RedisWebhooks {
    fn list(&self) -> BoxFuture<'_, Result<Vec<Webhook>, WebhooksUnavailable>> {
        let mut conn = self.primary.conn();
        Box::pin(async move {
            let all: HashMap<String, Vec<u8>> = conn.hgetall(keys::WEBHOOKS).await.map_err(down)?;
            Ok(all
                .values()
                .filter_map(|v| serde_json::from_slice(v).ok())
                .collect())
        })
    }

    fn insert<'a>(&'a self, hook: &'a Webhook) -> BoxFuture<'a, Result<(), WebhooksUnavailable>> {
        let mut conn = self.primary.writes();
        Box::pin(async move {
            let value = serde_json::to_vec(hook).expect("registrations serialize");
            conn.hset::<_, _, _, ()>(keys::WEBHOOKS, &hook.id, value)
                .await
                .map_err(down)?;
            self.confirmed(&mut conn).await
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, WebhooksUnavailable>> {
        let mut conn = self.primary.writes();
        Box::pin(async move {
            let n: u64 = conn.hdel(keys::WEBHOOKS, id).await.map_err(down)?;
            self.confirmed(&mut conn).await?;
            Ok(n > 0)
        })
    }
}
