//! `GET /ws/activities/{id}`: checks identity, the activity and per-IP limits over
//! plain HTTP (so refusals are contract errors), then upgrades.

use crate::domain::ids::is_ticket_shaped;
use crate::error::{ApiError, ErrorCode};
use crate::http::calls::{activity_id, actor};
use crate::http::identity::User;
use crate::http::state::AppState;
use crate::http::ws_session::{self, WsSession};
use actix_web::web::{self, Data, Path, Payload};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws/activities/{id}", web::get().to(upgrade));
}

#[derive(Deserialize)]
struct WsQuery {
    ticket: Option<String>,
    pow_nonce: Option<String>,
    pow_solution: Option<String>,
}

async fn upgrade(
    req: HttpRequest,
    user: User,
    st: Data<AppState>,
    id: Path<String>,
    stream: Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let id = activity_id(&id)?;
    let addr = actor(&st, &id)?;
    if st.registry.is_draining() {
        return Err(
            ApiError::new(ErrorCode::Unavailable, "the server is restarting")
                .retry_after(5)
                .into(),
        );
    }
    let q = web::Query::<WsQuery>::from_query(req.query_string())
        .map_err(|_| ApiError::invalid("bad query string"))?
        .into_inner();
    if let Some(t) = &q.ticket {
        if !is_ticket_shaped(t) {
            return Err(ApiError::not_found("no such ticket").into());
        }
    }
    st.limits.check_join(&req, &user.0)?;
    let ip = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    if !st.ws.try_open(ip) {
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "too many open connections from this address",
        )
        .retry_after(10)
        .into());
    }
    let pow = crate::http::activities::pow_from(q.pow_nonce, q.pow_solution);
    let session = WsSession::new(user.0, q.ticket, pow, addr, st.clone(), ip);
    let res = ws_session::start(session, &req, stream);
    if res.is_err() {
        st.ws.close(ip);
    }
    res
}
