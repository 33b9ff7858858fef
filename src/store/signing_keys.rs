//! The signing-key port: where a gate's pass keys are kept, so they survive restarts
//! and (cluster mode, `cluster::signing_keys`) every node signs and publishes the same.
//!
//! `SledSigningKeys` keeps them in this process's store under `k/signing`.

use super::layout::SIGNING_KEYS_KEY;
use super::{KvOp, Store};
use crate::domain::clock::Millis;
use crate::domain::pass::{new_key, rotated, KeyRecord};
use futures_util::future::BoxFuture;

/// Why the keys could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeysUnavailable(pub &'static str);

pub type KeysResult = Result<Vec<KeyRecord>, KeysUnavailable>;

pub trait SigningKeyStore: Send + Sync {
    /// The stored keys; on first start, one new key stored durably.
    fn load_or_create(&self, now: Millis) -> BoxFuture<'_, KeysResult>;

    /// A new signing key; the old ones stay published until their passes expired.
    fn rotate(&self, now: Millis) -> BoxFuture<'_, KeysResult>;

    /// The keys as stored now (cluster mode: another node may have rotated).
    fn current(&self) -> BoxFuture<'_, KeysResult>;
}

/// Keys in this process's store.
pub struct SledSigningKeys {
    store: Store,
    /// Serializes read-modify-write (rotations are rare).
    writing: tokio::sync::Mutex<()>,
}

const CANNOT_READ: KeysUnavailable = KeysUnavailable("the store cannot be read");
const CANNOT_WRITE: KeysUnavailable = KeysUnavailable("the store cannot write");

/// Decodes a stored key set (JSON list).
pub fn decode(bytes: &[u8]) -> KeysResult {
    serde_json::from_slice(bytes)
        .map_err(|_| KeysUnavailable("the stored signing keys are damaged"))
}

pub fn encode(keys: &[KeyRecord]) -> Vec<u8> {
    serde_json::to_vec(keys).expect("key records serialize")
}

impl SledSigningKeys {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            writing: tokio::sync::Mutex::new(()),
        }
    }

    fn read(&self) -> Result<Option<Vec<KeyRecord>>, KeysUnavailable> {
        match self.store.get(SIGNING_KEYS_KEY).map_err(|_| CANNOT_READ)? {
            Some(b) => decode(&b).map(Some),
            None => Ok(None),
        }
    }

    async fn write(&self, keys: Vec<KeyRecord>) -> KeysResult {
        let ack = self
            .store
            .commit(vec![KvOp::Put(SIGNING_KEYS_KEY.to_vec(), encode(&keys))])
            .map_err(|_| CANNOT_WRITE)?;
        match ack.await {
            Ok(Ok(())) => Ok(keys),
            _ => Err(CANNOT_WRITE),
        }
    }
}

impl SigningKeyStore for SledSigningKeys {
    fn load_or_create(&self, now: Millis) -> BoxFuture<'_, KeysResult> {
        Box::pin(async move {
            let _guard = self.writing.lock().await;
            match self.read()? {
                Some(keys) if !keys.is_empty() => Ok(keys),
                _ => self.write(vec![new_key(now)]).await,
            }
        })
    }

    fn rotate(&self, now: Millis) -> BoxFuture<'_, KeysResult> {
        Box::pin(async move {
            let _guard = self.writing.lock().await;
            let keys = self.read()?.unwrap_or_default();
            self.write(rotated(keys, now)).await
        })
    }

    fn current(&self) -> BoxFuture<'_, KeysResult> {
        Box::pin(async move { Ok(self.read()?.unwrap_or_default()) })
    }
}
