//! Accounts in the cluster's Redis (`sluice:accounts`), so a user registered through
//! one node logs in through any.

use super::keys;
use crate::store::accounts::{AccountStore, AccountsUnavailable};
use futures_util::future::BoxFuture;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;

pub struct RedisAccounts {
    pub conn: ConnectionManager,
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
        let mut conn = self.conn.clone();
        Box::pin(async move { conn.hget(keys::ACCOUNTS, username).await.map_err(down) })
    }

    /// HSETNX: two nodes registering the same name at once cannot both win.
    fn insert_new<'a>(
        &'a self,
        username: &'a str,
        record: Vec<u8>,
    ) -> BoxFuture<'a, Result<bool, AccountsUnavailable>> {
        let mut conn = self.conn.clone();
        Box::pin(async move {
            conn.hset_nx(keys::ACCOUNTS, username, record)
                .await
                .map_err(down)
        })
    }
}
