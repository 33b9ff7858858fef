//! Password hashing for accounts (argon2id): bounded, off the HTTP workers, and as
//! costly for an unknown username as for a known one.

use crate::config::AuthSettings;
use crate::error::{ApiError, ErrorCode};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;

pub struct Passwords {
    params: Params,
    /// argon2 is CPU-heavy by design: bounded so a login burst cannot starve the workers.
    hashing: Arc<Semaphore>,
    lifetime_secs: u64,
    /// A real hash of a random password, verified when the username is unknown so that
    /// both failures cost the same.
    dummy_hash: String,
}

impl Passwords {
    pub fn new(s: &AuthSettings) -> anyhow::Result<Self> {
        let params = Params::new(
            s.argon2_memory_kib,
            s.argon2_iterations,
            s.argon2_parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("invalid configuration: auth.argon2_*: {e}"))?;
        let dummy_hash = hash_with(&params, "sluice-dummy-password")?;
        Ok(Self {
            params,
            hashing: Arc::new(Semaphore::new(s.max_concurrent_hashes)),
            lifetime_secs: s.token_lifetime_secs,
            dummy_hash,
        })
    }

    /// An argon2id hash of `password`, for a new account.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let params = self.params.clone();
        self.blocking(move || hash_with(&params, &password))
            .await?
            .map_err(|_| ApiError::new(ErrorCode::Internal, "password hashing failed"))
    }

    /// True if `password` matches `stored`; with no stored hash (an unknown
    /// username) a dummy one is verified, so both failures cost the same.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        let params = self.params.clone();
        let stored = stored.unwrap_or_else(|| self.dummy_hash.clone());
        self.blocking(move || verify_with(&params, &password, &stored))
            .await
    }

    /// How long an identity token issued at login lasts.
    pub fn lifetime_secs(&self) -> u64 {
        self.lifetime_secs
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| ApiError::new(ErrorCode::Unavailable, "shutting down"))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|_| ApiError::new(ErrorCode::Internal, "password hashing failed"))
    }
}

fn hasher(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_with(params: &Params, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    hasher(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
}

fn verify_with(params: &Params, password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            hasher(params)
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}
