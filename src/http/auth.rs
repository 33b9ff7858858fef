//! Accounts for deployments without their own identity provider: register and log in
//! with a password (argon2id, `passwords`), get an HS256 identity token. Login
//! failures look the same whether or not the username exists (same message, same
//! hashing work). Accounts are kept by the configured `AccountStore`.

use crate::domain::ids::UserId;
use crate::error::{ApiError, ErrorCode};
use crate::http::state::AppState;
use crate::store::accounts::AccountsUnavailable;
use actix_web::web::{self, Data, Json};
use actix_web::{HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Credentials {
    /// 3-64 characters of ASCII letters, digits, `_`, `.`, `-`.
    username: String,
    /// 8-256 characters.
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

fn unavailable(e: AccountsUnavailable) -> ApiError {
    let err = ApiError::new(ErrorCode::Unavailable, e.what);
    match e.retry_after {
        Some(secs) => err.retry_after(secs),
        None => err,
    }
}

/// Reads an account through the configured account store.
async fn load(st: &AppState, username: &str) -> Result<Option<Account>, ApiError> {
    match st.account_store.get(username).await.map_err(unavailable)? {
        None => Ok(None),
        Some(v) => serde_json::from_slice(&v)
            .map(Some)
            .map_err(|_| ApiError::new(ErrorCode::Internal, "an account record is unreadable")),
    }
}

/// Creates an account.
#[utoipa::path(
    post,
    path = "/api/auth/register",
    operation_id = "auth_register",
    tag = "accounts",
    request_body = Credentials,
    responses(
        (status = 201, description = "Created", body = crate::http::schemas::Registered),
        (status = 400, description = "`invalid_request`: a bad username or password, or a bad body", body = crate::http::schemas::ErrorBody),
        (status = 409, description = "`conflict`: that username is taken", body = crate::http::schemas::ErrorBody),
        (status = 413, description = "`payload_too_large`: body over `server.max_body_bytes`", body = crate::http::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`; `Retry-After` set", body = crate::http::schemas::ErrorBody),
        (status = 500, description = "`internal`: password hashing failed or an account record is unreadable", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: the account store cannot be reached", body = crate::http::schemas::ErrorBody)
    )
)]
pub(crate) async fn register(
    req: HttpRequest,
    st: Data<AppState>,
    body: Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let creds = body.into_inner();
    let user_id = create_account(&req, &st, &creds.username, creds.password).await?;
    Ok(HttpResponse::Created().json(serde_json::json!({ "user_id": user_id })))
}

/// Registers `username`; the new account's user id. Also the server-rendered page's
/// registration.
pub async fn create_account(
    req: &HttpRequest,
    st: &AppState,
    username: &str,
    password: String,
) -> Result<String, ApiError> {
    st.limits.check_login(req)?;
    let creds = Credentials {
        username: username.to_owned(),
        password,
    };
    creds.validate()?;
    let hash = st.passwords.hash(creds.password.clone()).await?;
    if load(st, &creds.username).await?.is_some() {
        return Err(ApiError::new(ErrorCode::Conflict, "that username is taken"));
    }
    let user_id = format!("usr-{}", crate::domain::ids::new_ticket());
    let account = Account {
        username: creds.username.clone(),
        user_id: user_id.clone(),
        password_hash: hash,
    };
    let value = serde_json::to_vec(&account).expect("accounts serialize");
    // The store decides: two registrations of one name at once cannot both win.
    if st
        .account_store
        .insert_new(&creds.username, value)
        .await
        .map_err(unavailable)?
    {
        Ok(user_id)
    } else {
        Err(ApiError::new(ErrorCode::Conflict, "that username is taken"))
    }
}

/// A signed-in session: the identity token and its lifetime in seconds.
pub struct SignedIn {
    pub user_id: String,
    pub access_token: String,
    pub expires_in: u64,
}

/// Checks a password and issues an identity token.
#[utoipa::path(
    post,
    path = "/api/auth/login",
    operation_id = "auth_login",
    tag = "accounts",
    request_body = Credentials,
    responses(
        (status = 200, description = "Signed in", body = crate::http::schemas::LoggedIn),
        (status = 400, description = "`invalid_request`: a bad body", body = crate::http::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`: invalid username or password", body = crate::http::schemas::ErrorBody),
        (status = 413, description = "`payload_too_large`: body over `server.max_body_bytes`", body = crate::http::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`; `Retry-After` set", body = crate::http::schemas::ErrorBody),
        (status = 500, description = "`internal`: password hashing failed or an account record is unreadable", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: the account store cannot be reached", body = crate::http::schemas::ErrorBody)
    )
)]
pub(crate) async fn login(
    req: HttpRequest,
    st: Data<AppState>,
    body: Json<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let creds = body.into_inner();
    let s = sign_in(&req, &st, &creds.username, creds.password).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "access_token": s.access_token,
        "expires_in": s.expires_in,
        "user_id": s.user_id,
    })))
}

/// Checks a password and issues an identity token. Also the server-rendered page's
/// sign-in.
pub async fn sign_in(
    req: &HttpRequest,
    st: &AppState,
    username: &str,
    password: String,
) -> Result<SignedIn, ApiError> {
    st.limits.check_login(req)?;
    let account = load(st, username).await?;
    let stored = account.as_ref().map(|a| a.password_hash.clone());
    let ok = st.passwords.verify(password, stored).await?;
    let account = match (ok, account) {
        (true, Some(a)) => a,
        _ => return Err(ApiError::unauthorized("invalid username or password")),
    };
    let user = UserId::parse(&account.user_id)
        .map_err(|_| ApiError::new(ErrorCode::Internal, "bad user id"))?;
    let lifetime = st.passwords.lifetime_secs();
    let exp = st.clock.now_ms() / 1000 + lifetime;
    Ok(SignedIn {
        access_token: st.jwt.issue(&user, exp),
        expires_in: lifetime,
        user_id: account.user_id,
    })
}
