//! Who is calling: a user (HS256 JWT from the `Authorization` header or the
//! `access_token` query parameter) or an operator (the admin bearer key).

use crate::domain::ids::UserId;
use crate::error::ApiError;
use crate::http::state::AppState;
use actix_web::dev::Payload;
use actix_web::http::header::HeaderMap;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::{ready, Ready};
use serde::Deserialize;

/// An authenticated user.
pub struct User(pub UserId);

/// An authenticated operator.
pub struct Admin;

/// A user or an operator (orders may be read by their owner or an admin).
pub enum Caller {
    User(UserId),
    Admin,
}

impl Caller {
    /// The user to check ownership against; `None` for an operator.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Caller::User(u) => Some(u.clone()),
            Caller::Admin => None,
        }
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
    api_key: Option<String>,
}

fn state(req: &HttpRequest) -> Result<&AppState, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .map(|d| d.get_ref())
        .ok_or_else(|| {
            ApiError::new(
                crate::error::ErrorCode::Internal,
                "application state missing",
            )
        })
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
        .unwrap_or(TokenQuery {
            access_token: None,
            api_key: None,
        })
}

fn query(req: &HttpRequest) -> TokenQuery {
    query_in(req.query_string())
}

fn is_admin(st: &AppState, key: &str) -> bool {
    crate::http::state::key_matches(key.as_bytes(), &st.admin_key_hash)
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

fn admin_from(req: &HttpRequest) -> Result<(), ApiError> {
    let st = state(req)?;
    st.limits.check_admin(req)?;
    let key = bearer(req).or_else(|| query(req).api_key).ok_or_else(|| {
        ApiError::unauthorized("the admin key is required (Authorization: Bearer <key>)")
    })?;
    if is_admin(st, &key) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("the admin key is wrong"))
    }
}

impl FromRequest for User {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(user_from(req).map(User))
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(admin_from(req).map(|()| Admin))
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let res = match state(req) {
            Ok(st) if bearer(req).is_some_and(|k| is_admin(st, &k)) => Ok(Caller::Admin),
            _ => user_from(req).map(Caller::User),
        };
        ready(res)
    }
}
