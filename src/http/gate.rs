//! Gate activities and access control over HTTP: the published keys (JWKS), pass
//! verification for nginx `auth_request` (no actor round trip: a signature check
//! and the revoked set), the hand-off from the waiting page to the origin (the pass
//! cookie), key rotation, invite codes, and revoking (and banning) a user.

use crate::actors::messages::{AddInvites, Admin as AdminCall, Revoke};
use crate::domain::activity::MAX_INVITES_PER_CALL;
use crate::domain::ids::UserId;
use crate::domain::pass::PassError;
use crate::error::{ApiError, ErrorCode};
use crate::http::calls::{activity_id, call_id};
use crate::http::identity::Admin;
use crate::http::page_identity::{cookie, set_cookie, Life};
use crate::http::state::AppState;
use actix_web::web::{self, Data, Json, Path, Query};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;

/// The cookie that carries a pass to the origin (and to `verify` behind nginx).
pub const PASS_COOKIE: &str = "sluice_pass";

/// `verify` and `enter`, registered first of all routes: `verify` sits in front of
/// every request of a gated site, and the router tries each `{param}` pattern ahead
/// of a match as a regex (the buyers' ten cost verify ~12,000 instructions). Under a
/// scope, other requests pay one prefix comparison.
pub fn front_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/gate")
            .route("/{id}/verify", web::get().to(verify))
            .route("/{id}/enter", web::get().to(enter)),
    );
}

/// Registered before the `/api/admin` scope, which would otherwise take these paths.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/.well-known/jwks.json", web::get().to(jwks))
        .route("/api/admin/keys/rotate", web::post().to(rotate))
        .route(
            "/api/admin/activities/{id}/invites",
            web::post().to(invites),
        )
        .route(
            "/api/admin/activities/{id}/users/{user_id}",
            web::delete().to(revoke),
        );
}

/// The public keys that sign gate passes (RFC 7517 / RFC 8037, OKP Ed25519).
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "gate_jwks",
    tag = "gate",
    responses(
        (status = 200, description = "`{\"keys\": [{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\",\"kid\",\"use\":\"sig\",\"alg\":\"EdDSA\"}]}`, the signing key first", body = Object)
    )
)]
pub(crate) async fn jwks(st: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=60"))
        .json(st.passes.jwks())
}

/// The pass of a request: the `sluice_pass` cookie, else `Authorization: Bearer`.
fn presented_pass(req: &HttpRequest) -> Option<String> {
    cookie(req, PASS_COOKIE).or_else(|| {
        // `from_utf8` checks a word at a time, `HeaderValue::to_str` a byte at a time;
        // the pass's base64 is checked when it is decoded.
        std::str::from_utf8(req.headers().get("authorization")?.as_bytes())
            .ok()?
            .strip_prefix("Bearer ")
            .map(str::to_owned)
    })
}

fn refused(e: PassError) -> ApiError {
    ApiError::unauthorized(e.to_string())
}

/// `204` for a valid pass of this gate, `401` otherwise: the target of nginx `auth_request`.
#[utoipa::path(
    get,
    path = "/api/gate/{id}/verify",
    operation_id = "gate_verify",
    tag = "gate",
    params(("id" = String, Path, description = "The gate activity id")),
    responses(
        (status = 204, description = "A valid pass (cookie `sluice_pass` or `Authorization: Bearer`)"),
        (status = 401, description = "`unauthorized`: no pass, or one malformed, badly signed, for another gate, expired or revoked", body = crate::http::schemas::ErrorBody)
    )
)]
pub(crate) async fn verify(
    req: HttpRequest,
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    let pass = presented_pass(&req).ok_or_else(|| ApiError::unauthorized("no pass"))?;
    let claims = st
        .passes
        .verify(&pass, &id, st.clock.now_ms())
        .map_err(refused)?;
    Ok(HttpResponse::NoContent()
        .insert_header(("x-sluice-user", claims.sub))
        .finish())
}

#[derive(Deserialize)]
pub(crate) struct EnterQuery {
    pass: String,
}

/// The waiting page's hand-off: sets the `sluice_pass` cookie (HttpOnly, SameSite=Lax,
/// Secure over https, until the pass expires) and redirects to the gate's origin.
#[utoipa::path(
    get,
    path = "/api/gate/{id}/enter",
    operation_id = "gate_enter",
    tag = "gate",
    params(
        ("id" = String, Path, description = "The gate activity id"),
        ("pass" = String, Query, description = "The pass the waiting room handed out")
    ),
    responses(
        (status = 303, description = "`Set-Cookie: sluice_pass=...`, `Location`: the gate's `origin_url`"),
        (status = 401, description = "`unauthorized`: the pass is not valid for this gate", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such gate", body = crate::http::schemas::ErrorBody)
    )
)]
pub(crate) async fn enter(
    req: HttpRequest,
    st: Data<AppState>,
    id: Path<String>,
    q: Query<EnterQuery>,
) -> Result<HttpResponse, ApiError> {
    let now = st.clock.now_ms();
    let claims = st.passes.verify(&q.pass, &id, now).map_err(refused)?;
    let view = call_id(&st, &id, AdminCall::View { admin: false }).await?;
    let gate = view
        .gate
        .ok_or_else(|| ApiError::not_found("no such gate"))?;
    let secs = claims.exp.saturating_mul(1000).saturating_sub(now) / 1000;
    let c = set_cookie(&req, PASS_COOKIE, &q.pass, "/", Life::Secs(secs), true);
    Ok(HttpResponse::SeeOther()
        .insert_header(("set-cookie", c))
        .insert_header(("location", gate.origin_url))
        .insert_header(("cache-control", "no-store"))
        .finish())
}

/// Starts signing passes with a new key; the old ones stay in the JWKS until every
/// pass they signed has expired.
#[utoipa::path(
    post,
    path = "/api/admin/keys/rotate",
    operation_id = "admin_rotate_keys",
    tag = "admin",
    responses(
        (status = 200, description = "`{\"kid\": <the new signing key>, \"keys\": <the JWKS>}`", body = Object),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: the key store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn rotate(_: Admin, st: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let keys = st
        .signing_keys
        .rotate(st.clock.now_ms())
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, e.0).retry_after(1))?;
    st.passes.install(keys);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "kid": st.passes.current_kid(),
        "keys": st.passes.jwks()["keys"],
    })))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvitesBody {
    /// 1-10000 codes.
    count: u32,
}

/// A fresh invite code: 96 random bits, URL-safe.
fn new_code() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>())
}

/// Creates invite codes; each belongs to the first user who joins with it.
#[utoipa::path(
    post,
    path = "/api/admin/activities/{id}/invites",
    operation_id = "admin_invites",
    tag = "admin",
    params(("id" = String, Path, description = "The activity id")),
    request_body = InvitesBody,
    responses(
        (status = 201, description = "`{\"codes\": [...]}`, durable", body = Object),
        (status = 400, description = "`invalid_request`: `count` out of 1-10000, or the activity's codes would pass 1,000,000", body = crate::http::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such activity", body = crate::http::schemas::ErrorBody),
        (status = 409, description = "`conflict`: the activity is closed", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down, too busy, or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn invites(
    _: Admin,
    st: Data<AppState>,
    id: Path<String>,
    body: Json<InvitesBody>,
) -> Result<HttpResponse, ApiError> {
    if !(1..=MAX_INVITES_PER_CALL).contains(&body.count) {
        return Err(ApiError::invalid(format!(
            "count must be between 1 and {MAX_INVITES_PER_CALL}"
        )));
    }
    let codes = (0..body.count).map(|_| new_code()).collect();
    let codes = call_id(&st, &id, AddInvites { codes }).await?;
    Ok(HttpResponse::Created().json(serde_json::json!({ "codes": codes })))
}

#[derive(Deserialize)]
pub(crate) struct RevokeQuery {
    #[serde(default)]
    ban: bool,
}

/// Revokes a user's place, unspent token or pass: their socket hears `revoked` and
/// closes, held units go to the next in line, a revoked pass fails `verify`. With
/// `?ban=true` their later joins get `403 forbidden`.
#[utoipa::path(
    delete,
    path = "/api/admin/activities/{id}/users/{user_id}",
    operation_id = "admin_revoke_user",
    tag = "admin",
    params(
        ("id" = String, Path, description = "The activity id"),
        ("user_id" = String, Path, description = "The user (the `sub` of their identity)"),
        ("ban" = Option<bool>, Query, description = "Also refuse the user's later joins")
    ),
    responses(
        (status = 200, description = "Done, durable", body = crate::domain::activity::Revoked),
        (status = 401, description = "`unauthorized`: missing or wrong admin key", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such activity, or (without `ban`) the user has nothing to revoke", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down, too busy, or the store cannot write", body = crate::http::schemas::ErrorBody)
    ),
    security(("admin" = []))
)]
pub(crate) async fn revoke(
    _: Admin,
    st: Data<AppState>,
    path: Path<(String, String)>,
    q: Query<RevokeQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, user) = path.into_inner();
    activity_id(&id)?;
    let user = UserId::parse(&user).map_err(|_| ApiError::not_found("no such user"))?;
    let done = call_id(&st, &id, Revoke { user, ban: q.ban }).await?;
    Ok(HttpResponse::Ok().json(done))
}
