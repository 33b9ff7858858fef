//! Gate pass signing keys in the cluster's Redis (`sluice:signing_keys`, one JSON
//! list), so every node signs with and publishes the same keys. A rotation is a
//! compare-and-set: two nodes rotating at once cannot drop each other's key.

use super::keys;
use super::primary::{replicas_confirm, Primary};
use crate::domain::clock::Millis;
use crate::domain::pass::{new_key, rotated, KeyRecord};
use crate::store::signing_keys::{decode, encode, KeysResult, KeysUnavailable, SigningKeyStore};
use futures_util::future::BoxFuture;
use redis::{AsyncCommands, Script};
use std::sync::Arc;

/// On the current primary (followed through Sentinel); a change is confirmed by
/// `replica_acks` replicas like every replicated write.
pub struct RedisSigningKeys {
    pub primary: Arc<Primary>,
    pub replica_acks: u32,
    pub ack_timeout_ms: u64,
}

const DOWN: KeysUnavailable = KeysUnavailable("the cluster's store cannot be reached");

/// Sets KEYS[1] to ARGV[2] only if it still holds ARGV[1] ("" = absent).
const SWAP: &str = r"
local cur = redis.call('GET', KEYS[1]) or ''
if cur == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end
return 0";

impl RedisSigningKeys {
    async fn read(&self) -> Result<Option<Vec<u8>>, KeysUnavailable> {
        let mut conn = self.primary.conn();
        conn.get(keys::SIGNING_KEYS).await.map_err(|e| {
            tracing::warn!(error = %e, "cluster Redis call failed");
            DOWN
        })
    }

    /// Applies `change` to the stored set until no other node wrote in between.
    async fn update(
        &self,
        change: impl Fn(Vec<KeyRecord>) -> Option<Vec<KeyRecord>>,
    ) -> KeysResult {
        for _ in 0..16 {
            let raw = self.read().await?;
            let old = match &raw {
                Some(b) => decode(b)?,
                None => Vec::new(),
            };
            let Some(new) = change(old.clone()) else {
                return Ok(old);
            };
            let mut conn = self.primary.writes();
            let swapped: i64 = Script::new(SWAP)
                .key(keys::SIGNING_KEYS)
                .arg(raw.unwrap_or_default())
                .arg(encode(&new))
                .invoke_async(&mut conn)
                .await
                .map_err(|_| DOWN)?;
            if swapped == 1 {
                let confirmed = replicas_confirm(&mut conn, self.replica_acks, self.ack_timeout_ms)
                    .await
                    .map_err(|_| DOWN)?;
                if !confirmed {
                    return Err(KeysUnavailable(
                        "the cluster's store cannot confirm the keys; retry",
                    ));
                }
                return Ok(new);
            }
        }
        Err(KeysUnavailable("the signing keys are being changed; retry"))
    }
}

impl SigningKeyStore for RedisSigningKeys {
    fn load_or_create(&self, now: Millis) -> BoxFuture<'_, KeysResult> {
        Box::pin(self.update(move |old| old.is_empty().then(|| vec![new_key(now)])))
    }

    fn rotate(&self, now: Millis) -> BoxFuture<'_, KeysResult> {
        Box::pin(self.update(move |old| Some(rotated(old, now))))
    }

    fn current(&self) -> BoxFuture<'_, KeysResult> {
        Box::pin(async move {
            match self.read().await? {
                Some(b) => decode(&b),
                None => Ok(Vec::new()),
            }
        })
    }
}
