//! `GET /ws/activities/{id}` without an upgrade: the same checks as the upgrade (so a
//! client learns why it would be refused), then `400`. Upgrades never reach the app:
//! `ws_upgrade` serves them.

use crate::error::ApiError;
use crate::http::identity::User;
use crate::http::state::AppState;
use crate::http::ws_upgrade::target;
use actix_web::web::{self, Data, Path};
use actix_web::{HttpRequest, HttpResponse};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws/activities/{id}", web::get().to(not_upgraded));
}

/// The WebSocket session of a user in the waiting room (docs/api.md 7): with `Connection:
/// Upgrade`, `101` and then frames; without an upgrade, the same checks, then `400`.
#[utoipa::path(
    get,
    path = "/ws/activities/{id}",
    operation_id = "ws_activity_session",
    tag = "activities",
    params(("id" = String, Path, description = "The activity id"), ("ticket" = Option<String>, Query, description = "A ticket to resume"), ("pow_nonce" = Option<String>, Query, description = "Proof of work (docs/api.md 6.3)"), ("pow_solution" = Option<String>, Query, description = "Proof of work (docs/api.md 6.3)"), ("invite" = Option<String>, Query, description = "Invite code, for an invite-only activity (docs/api.md 17.4)")),
    responses(
        (status = 101, description = "Switching protocols: the WebSocket session (frames in docs/api.md 7)"),
        (status = 400, description = "`invalid_request`: no upgrade requested, an unparsable query string or an invalid WebSocket handshake", body = crate::http::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`: missing, malformed, badly signed or expired identity token", body = crate::http::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such activity, or a ticket that is not ticket-shaped", body = crate::http::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`: join rate limits or `server.max_ws_per_ip`; `Retry-After` set", body = crate::http::schemas::ErrorBody),
        (status = 503, description = "`unavailable`: shutting down (`Retry-After: 5`) or too many sessions", body = crate::http::schemas::ErrorBody)
    ),
    security(("user" = []), ("user_query" = []))
)]
pub(crate) async fn not_upgraded(
    req: HttpRequest,
    _user: User,
    st: Data<AppState>,
    id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    target(&st, &id, req.query_string())?;
    Err(ApiError::invalid(
        "this endpoint needs a WebSocket upgrade (Connection: Upgrade, Upgrade: websocket)",
    ))
}
