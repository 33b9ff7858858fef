//! Node-to-node HTTP: one keep-alive client per thread (the actix client is not
//! `Send`), JSON calls to `/internal/*`, and forwarding a client's request to the
//! node that owns its activity.

use crate::error::{ApiError, ErrorCode};
use actix_web::http::header::{self, HeaderName};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::net::IpAddr;
use std::time::Duration;

/// The header that proves a request comes from a cluster node (the admin key).
pub const INTERNAL_HEADER: &str = "x-sluice-internal";
/// The original client's address on a forwarded request (trusted only with the above).
pub const CLIENT_IP_HEADER: &str = "x-sluice-client-ip";

const TIMEOUT: Duration = Duration::from_secs(15);
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

thread_local! {
    static CLIENT: awc::Client = awc::Client::builder()
        .timeout(TIMEOUT)
        .disable_redirects()
        .finish();
}

fn client() -> awc::Client {
    CLIENT.with(Clone::clone)
}

/// POSTs `body` as JSON to another node's internal endpoint and decodes the answer.
pub async fn post_json<B: Serialize, T: DeserializeOwned>(
    base: &str,
    path: &str,
    key: &str,
    body: &B,
) -> Result<T, String> {
    let mut res = client()
        .post(format!("{base}{path}"))
        .insert_header((INTERNAL_HEADER, key))
        .send_json(body)
        .await
        .map_err(|e| format!("{base}{path}: {e}"))?;
    if !res.status().is_success() {
        return Err(format!("{base}{path}: status {}", res.status()));
    }
    res.json::<T>()
        .limit(MAX_RESPONSE)
        .await
        .map_err(|e| format!("{base}{path}: {e}"))
}

/// GETs JSON from another node's endpoint as an internal call (fan-out reads).
pub async fn get_json<T: DeserializeOwned>(
    base: &str,
    path_and_query: &str,
    key: &str,
    authorization: Option<&header::HeaderValue>,
) -> Result<T, String> {
    let mut req = client()
        .get(format!("{base}{path_and_query}"))
        .insert_header((INTERNAL_HEADER, key));
    if let Some(a) = authorization {
        req = req.insert_header((header::AUTHORIZATION, a.clone()));
    }
    let mut res = req.send().await.map_err(|e| format!("{base}: {e}"))?;
    if !res.status().is_success() {
        return Err(format!("{base}{path_and_query}: status {}", res.status()));
    }
    res.json::<T>()
        .limit(MAX_RESPONSE)
        .await
        .map_err(|e| format!("{base}: {e}"))
}

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    ) || name.as_str() == INTERNAL_HEADER
        || name.as_str() == CLIENT_IP_HEADER
}

/// Forwards a client's request to the owner node at `base` and relays its answer:
/// the owner applies the contract, so the client cannot tell which node it reached.
pub async fn forward(
    req: &HttpRequest,
    body: Bytes,
    base: &str,
    key: &str,
    ip: IpAddr,
) -> HttpResponse {
    let path = req
        .uri()
        .path_and_query()
        .map_or(req.path(), |p| p.as_str());
    let mut out = client().request(req.method().clone(), format!("{base}{path}"));
    // Appended, not inserted: a header may repeat (Cookie; Set-Cookie below).
    for (name, value) in req.headers() {
        if !hop_by_hop(name) {
            out = out.append_header((name.clone(), value.clone()));
        }
    }
    out = out
        .insert_header((INTERNAL_HEADER, key))
        .insert_header((CLIENT_IP_HEADER, ip.to_string()));
    let mut res = match out.send_body(body).await {
        Ok(r) => r,
        Err(e) => return unreachable_owner(base, &e.to_string()),
    };
    let payload = match res.body().limit(MAX_RESPONSE).await {
        Ok(b) => b,
        Err(e) => return unreachable_owner(base, &e.to_string()),
    };
    let mut answer = HttpResponse::build(res.status());
    for (name, value) in res.headers() {
        if !hop_by_hop(name) {
            answer.append_header((name.clone(), value.clone()));
        }
    }
    metrics::counter!("sluice_cluster_forwarded_requests_total").increment(1);
    answer.body(payload)
}

fn unreachable_owner(base: &str, why: &str) -> HttpResponse {
    tracing::warn!(owner = %base, error = %why, "cannot forward to the activity's node");
    actix_web::ResponseError::error_response(
        &ApiError::new(
            ErrorCode::Unavailable,
            "the activity's node cannot be reached; retry shortly",
        )
        .retry_after(1),
    )
}
