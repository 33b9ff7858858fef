//! A raw request body whose failures are contract errors. actix's own `Bytes`
//! extractor answers a body over `server.max_body_bytes` with a plain-text `413`;
//! the contract wants every error as JSON (`payload_too_large`).

use crate::error::{ApiError, ErrorCode};
use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;

/// The whole body, limited by the app's `PayloadConfig`.
pub struct RawBody(pub Bytes);

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = Bytes::from_request(req, payload);
        Box::pin(async move { body.await.map(RawBody).map_err(contract_error) })
    }
}

fn contract_error(e: actix_web::Error) -> ApiError {
    match e.as_error::<PayloadError>() {
        Some(PayloadError::Overflow) => {
            ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
        }
        _ => ApiError::invalid(format!("invalid body: {e}")),
    }
}
