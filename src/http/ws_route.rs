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

async fn not_upgraded(
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
