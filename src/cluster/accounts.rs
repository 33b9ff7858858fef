//! Accounts in the cluster's Redis (`sluice:accounts`), so a user registered through
//! one node logs in through any.

use super::keys;
use super::primary::{replicas_confirm, Primary};
use crate::store::accounts::{AccountStore, AccountsUnavailable};
use futures_util::future::BoxFuture;
use redis::AsyncCommands;
use std::sync::Arc;

pub struct RedisAccounts {
    pub(super) primary: Arc<Primary>,
    /// Replicas that must have a new account before it is acknowledged (`WAIT`).
    pub(super) replica_acks: u32,
    pub(super) ack_timeout_ms: u64,
}

fn down(e: redis::RedisError) -> AccountsUnavailable {
    tracing::warn!(error = %e, "cluster Redis call failed");
    AccountsUnavailable {
        what: "the cluster's store cannot be reached",
        retry_after: Some(1),
    }
}

impl AccountStore for RedisAccounts {
    fn get<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, AccountsUnavailable>> {
        let mut conn = self.primary.conn();
        Box::pin(async move { conn.hget(keys::ACCOUNTS, username).await.map_err(down) })
    }

    /// HSETNX: two nodes registering the same name at once cannot both win.
    fn insert_new<'a>(
        &'a self,
        username: &'a str,
        record: Vec<u8>,
    ) -> BoxFuture<'a, Result<bool, AccountsUnavailable>> {
        // The replicator's connection: its `WAIT` must not hold up lease renewals.
        let mut conn = self.primary.writes();
        let (acks, timeout) = (self.replica_acks, self.ack_timeout_ms);
        Box::pin(async move {
            let added: bool = conn
                .hset_nx(keys::ACCOUNTS, username, record)
                .await
                .map_err(down)?;
            if !replicas_confirm(&mut conn, acks, timeout)
                .await
                .map_err(down)?
            {
                tracing::warn!(acks, "a new account was not confirmed by the replicas");
                return Err(AccountsUnavailable {
                    what: "the cluster's store cannot confirm the account",
                    retry_after: Some(1),
                });
            }
            Ok(added)
        })
    }
}
