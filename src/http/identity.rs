//! Who is calling: a user (HS256 JWT from the `Authorization` header or the
//! `access_token` query parameter) or an admin key (bearer only, never in a URL),
//! and whether its role has the right the handler names (`admin_keys`).

use crate::domain::ids::UserId;
use crate::error::{ApiError, ErrorCode};
use crate::http::admin_keys::{AdminKey, Operate, Right};
use crate::http::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::header::HeaderMap;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::{ready, Ready};
use serde::Deserialize;
use std::marker::PhantomData;
use std::sync::Arc;

/// An authenticated user.
pub struct User(pub UserId);

/// An admin key whose role has the right `R` (operator-only by default).
pub struct Admin<R: Right = Operate> {
    pub key: Arc<AdminKey>,
    right: PhantomData<R>,
}

/// A user or an admin key (orders may be read by their owner or an admin key).
pub enum Caller {
    User(UserId),
    Key(Arc<AdminKey>),
}

impl Caller {
    /// The user to check ownership against; `None` for an admin key.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Caller::User(u) => Some(u.clone()),
            Caller::Key(_) => None,
        }
    }

    /// Refused unless a user, or a key whose role has the right `R`.
    pub fn may<R: Right>(&self) -> Result<(), ApiError> {
        match self {
            Caller::Key(k) => allowed::<R>(k),
            Caller::User(_) => Ok(()),
        }
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

fn state(req: &HttpRequest) -> Result<&AppState, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .map(|d| d.get_ref())
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "application state missing"))
}

fn bearer_in(headers: &HeaderMap) -> Option<String> {
    let h = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn bearer(req: &HttpRequest) -> Option<String> {
    bearer_in(req.headers())
}

fn query_in(query_string: &str) -> TokenQuery {
    web::Query::<TokenQuery>::from_query(query_string)
        .map(|q| q.into_inner())
        .unwrap_or(TokenQuery { access_token: None })
}

/// The admin key a request's bearer is, if it is one.
pub fn admin_key_in(st: &AppState, headers: &HeaderMap) -> Option<Arc<AdminKey>> {
    st.admin_keys.identify(&bearer_in(headers)?)
}

/// `403` unless the key's role has the right `R`.
pub fn allowed<R: Right>(key: &AdminKey) -> Result<(), ApiError> {
    if R::allows(key.role) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("the admin key {:?} may not {}", key.name, R::WHAT),
        ))
    }
}

/// The user of a request given as parts: the WebSocket upgrade is served outside
/// actix-web's extractors.
pub fn user_in(st: &AppState, headers: &HeaderMap, query_string: &str) -> Result<UserId, ApiError> {
    let token = bearer_in(headers)
        .or_else(|| query_in(query_string).access_token)
        .ok_or_else(|| {
            ApiError::unauthorized("an identity token is required (Authorization: Bearer <jwt>)")
        })?;
    st.jwt
        .verify(&token, st.clock.now_ms())
        .map_err(|e| ApiError::unauthorized(e.to_string()))
}

fn user_from(req: &HttpRequest) -> Result<UserId, ApiError> {
    user_in(state(req)?, req.headers(), req.query_string())
}

/// The request's admin key: `401` if there is none or it is unknown.
pub fn admin_key_of(req: &HttpRequest) -> Result<Arc<AdminKey>, ApiError> {
    let st = state(req)?;
    st.limits.check_admin(req)?;
    let key = bearer(req).ok_or_else(|| {
        ApiError::unauthorized("an admin key is required (Authorization: Bearer <key>)")
    })?;
    st.admin_keys
        .identify(&key)
        .ok_or_else(|| ApiError::unauthorized("the admin key is wrong"))
}

fn admin_from<R: Right>(req: &HttpRequest) -> Result<Arc<AdminKey>, ApiError> {
    let key = admin_key_of(req)?;
    allowed::<R>(&key)?;
    Ok(key)
}

impl FromRequest for User {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(user_from(req).map(User))
    }
}

impl<R: Right> FromRequest for Admin<R> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(admin_from::<R>(req).map(|key| Admin {
            key,
            right: PhantomData,
        }))
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let key = state(req)
            .ok()
            .and_then(|st| admin_key_in(st, req.headers()));
        let res = match key {
            Some(k) => Ok(Caller::Key(k)),
            None => user_from(req).map(Caller::User),
        };
        ready(res)
    }
}
