//! Accounts for deployments without their own identity provider: register and log in
//! with a password (argon2id), get an HS256 identity token. Login failures look the
//! same whether or not the username exists (same message, same hashing work).

use crate::config::AuthSettings;
use crate::domain::ids::UserId;
use crate::error::{ApiError, ErrorCode};
use crate::http::state::AppState;
use crate::store::layout::account_key;
use crate::store::KvOp;
use actix_web::web::{self, Data, Json};
use actix_web::{HttpRequest, HttpResponse};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::{Mutex, Semaphore};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/auth/register", web::post().to(register))
        .route("/api/auth/login", web::post().to(login));
}

#[derive(Serialize, Deserialize)]
struct Account {
    username: String,
    user_id: String,
    password_hash: String,
}

pub struct Accounts {
    params: Params,
    /// argon2 is CPU-heavy by design: bounded so a login burst cannot starve the workers.
    hashing: Arc<Semaphore>,
    /// Serializes check-then-insert of usernames (registrations are rare).
    registering: Mutex<()>,
    lifetime_secs: u64,
    /// A real hash of a random password, verified when the username is unknown so that
    /// both failures cost the same.
    dummy_hash: String,
}

impl Accounts {
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
            registering: Mutex::new(()),
            lifetime_secs: s.token_lifetime_secs,
            dummy_hash,
        })
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    fn validate(&self) -> Result<(), ApiError> {
        let u = &self.username;
        if !(3..=64).contains(&u.len())
            || !u
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
        {
            return Err(ApiError::invalid(
                "username must be 3-64 characters of letters, digits, '_', '.' or '-'",
            ));
        }
        if !(8..=256).contains(&self.password.chars().count()) {
            return Err(ApiError::invalid("password must be 8-256 characters"));
        }
        Ok(())
    }
}

/// Accounts live in this node's store, or in cluster mode in the cluster's Redis (so
/// a user registered through one node logs in through any).
async fn load(st: &AppState, username: &str) -> Result<Option<Account>, ApiError> {
    let unavailable = |_| ApiError::new(ErrorCode::Unavailable, "the store cannot be read");
    let stored = match &st.cluster {
        Some(c) => c.account(username).await?,
        None => st.store.get(&account_key(username)).map_err(unavailable)?,
    };
    match stored {
        None => Ok(None),
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|_| ApiError::new(ErrorCode::Internal, "an account record is unreadable")),
    }
}

async fn register(
    req: HttpRequest,
    st: Data<AppState>,
    body: Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    st.limits.check_login(&req)?;
    let creds = body.into_inner();
    creds.validate()?;
    let params = st.accounts.params.clone();
    let password = creds.password.clone();
    let hash = st
        .accounts
        .blocking(move || hash_with(&params, &password))
        .await?
        .map_err(|_| ApiError::new(ErrorCode::Internal, "password hashing failed"))?;
    let _guard = st.accounts.registering.lock().await;
    if load(&st, &creds.username).await?.is_some() {
        return Err(ApiError::new(ErrorCode::Conflict, "that username is taken"));
    }
    let user_id = format!("usr-{}", crate::domain::ids::new_ticket());
    let account = Account {
        username: creds.username.clone(),
        user_id: user_id.clone(),
        password_hash: hash,
    };
    let value = serde_json::to_vec(&account).expect("accounts serialize");
    if let Some(c) = &st.cluster {
        // HSETNX: two nodes registering the same name at once cannot both win.
        return if c.add_account(&creds.username, &value).await? {
            Ok(HttpResponse::Created().json(serde_json::json!({ "user_id": user_id })))
        } else {
            Err(ApiError::new(ErrorCode::Conflict, "that username is taken"))
        };
    }
    let ack = st
        .store
        .commit(vec![KvOp::Put(account_key(&creds.username), value)])
        .map_err(|_| ApiError::new(ErrorCode::Unavailable, "the store cannot write"))?;
    match ack.await {
        Ok(Ok(())) => Ok(HttpResponse::Created().json(serde_json::json!({ "user_id": user_id }))),
        _ => Err(ApiError::new(
            ErrorCode::Unavailable,
            "the store cannot write",
        )),
    }
}

async fn login(
    req: HttpRequest,
    st: Data<AppState>,
    body: Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    st.limits.check_login(&req)?;
    let creds = body.into_inner();
    let account = load(&st, &creds.username).await?;
    let stored = account.as_ref().map_or_else(
        || st.accounts.dummy_hash.clone(),
        |a| a.password_hash.clone(),
    );
    let params = st.accounts.params.clone();
    let password = creds.password;
    let ok = st
        .accounts
        .blocking(move || verify_with(&params, &password, &stored))
        .await?;
    let account = match (ok, account) {
        (true, Some(a)) => a,
        _ => return Err(ApiError::unauthorized("invalid username or password")),
    };
    let user = UserId::parse(&account.user_id)
        .map_err(|_| ApiError::new(ErrorCode::Internal, "bad user id"))?;
    let lifetime = st.accounts.lifetime_secs;
    let exp = st.clock.now_ms() / 1000 + lifetime;
    let token = st.jwt.issue(&user, exp);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "access_token": token,
        "expires_in": lifetime,
        "user_id": account.user_id,
    })))
}
