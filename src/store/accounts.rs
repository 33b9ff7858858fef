//! The account port: where username/password accounts are kept.
//!
//! `SledAccounts` keeps them in this process's store; cluster mode keeps them in the
//! cluster's Redis (`cluster::accounts`), so an account registered through one node
//! logs in through any.

use super::layout::account_key;
use super::{KvOp, Store};
use futures_util::future::BoxFuture;

/// Why the accounts could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what}")]
pub struct AccountsUnavailable {
    pub what: &'static str,
    /// Seconds after which a retry may succeed, where that is known.
    pub retry_after: Option<u64>,
}

pub trait AccountStore: Send + Sync {
    /// The stored record of `username`, if any.
    fn get<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, AccountsUnavailable>>;

    /// Stores a new account's record, durably; `false` if the username is taken
    /// (also by a concurrent registration).
    fn insert_new<'a>(
        &'a self,
        username: &'a str,
        record: Vec<u8>,
    ) -> BoxFuture<'a, Result<bool, AccountsUnavailable>>;
}

/// Accounts in this process's store.
pub struct SledAccounts {
    store: Store,
    /// Serializes check-then-insert of usernames (registrations are rare).
    registering: tokio::sync::Mutex<()>,
}

impl SledAccounts {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            registering: tokio::sync::Mutex::new(()),
        }
    }

    fn read(&self, username: &str) -> Result<Option<Vec<u8>>, AccountsUnavailable> {
        self.store
            .get(&account_key(username))
            .map_err(|_| AccountsUnavailable {
                what: "the store cannot be read",
                retry_after: None,
            })
    }
}

const CANNOT_WRITE: AccountsUnavailable = AccountsUnavailable {
    what: "the store cannot write",
    retry_after: None,
};

impl AccountStore for SledAccounts {
    fn get<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, AccountsUnavailable>> {
        Box::pin(async move { self.read(username) })
    }

    fn insert_new<'a>(
        &'a self,
        username: &'a str,
        record: Vec<u8>,
    ) -> BoxFuture<'a, Result<bool, AccountsUnavailable>> {
        Box::pin(async move {
            let _guard = self.registering.lock().await;
            if self.read(username)?.is_some() {
                return Ok(false);
            }
            let ack = self
                .store
                .commit(vec![KvOp::Put(account_key(username), record)])
                .map_err(|_| CANNOT_WRITE)?;
            match ack.await {
                Ok(Ok(())) => Ok(true),
                _ => Err(CANNOT_WRITE),
            }
        })
    }
}
