//! The contract's errors: one `ErrorCode` table giving status and code, and `ApiError`,
//! the only error type handlers return. WebSocket `error` frames use the same codes.

use crate::actors::messages::CallError;
use crate::domain::activity::ActivityError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// Declares `ErrorCode` from its table: the enum, `ErrorCode::ALL` and the exhaustive
/// `status_and_code` match all come from the same rows, so a new code cannot be left
/// out of `ALL` (and with it out of `parse`).
macro_rules! error_codes {
    ($($code:ident => ($status:ident, $name:literal),)+) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($code,)+
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            const ALL: &'static [ErrorCode] = &[$(ErrorCode::$code,)+];

            /// The table of docs/api.md "Errors", in one exhaustive match.
            pub fn status_and_code(self) -> (StatusCode, &'static str) {
                match self {
                    $(ErrorCode::$code => (StatusCode::$status, $name),)+
                }
            }
        }
    };
}

error_codes! {
    InvalidRequest => (BAD_REQUEST, "invalid_request"),
    Unauthorized => (UNAUTHORIZED, "unauthorized"),
    Forbidden => (FORBIDDEN, "forbidden"),
    NotFound => (NOT_FOUND, "not_found"),
    Conflict => (CONFLICT, "conflict"),
    SoldOut => (CONFLICT, "sold_out"),
    LimitReached => (CONFLICT, "limit_reached"),
    NotOpen => (CONFLICT, "not_open"),
    TokenExpired => (GONE, "token_expired"),
    TokenInvalid => (UNAUTHORIZED, "token_invalid"),
    PayloadTooLarge => (PAYLOAD_TOO_LARGE, "payload_too_large"),
    RateLimited => (TOO_MANY_REQUESTS, "rate_limited"),
    QueueFull => (SERVICE_UNAVAILABLE, "queue_full"),
    Unavailable => (SERVICE_UNAVAILABLE, "unavailable"),
    Internal => (INTERNAL_SERVER_ERROR, "internal"),
}

impl ErrorCode {
    /// The code named by its contract string (errors relayed between cluster nodes).
    pub fn parse(code: &str) -> Option<ErrorCode> {
        Self::ALL.iter().copied().find(|c| c.as_str() == code)
    }

    pub fn as_str(self) -> &'static str {
        self.status_and_code().1
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds, for the `Retry-After` header of 429 and 503.
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let retry_after = matches!(
            code,
            ErrorCode::Unavailable | ErrorCode::QueueFull | ErrorCode::RateLimited
        )
        .then_some(1);
        Self {
            code,
            message: message.into(),
            retry_after,
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }
    pub fn into_response(self) -> HttpResponse {
        self.error_response()
    }
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }
}

impl ApiError {
    /// The contract's JSON body, for responses written outside actix-web (the
    /// WebSocket upgrade path).
    pub fn body_json(&self) -> String {
        let body = Body {
            error: Inner {
                code: self.code.as_str(),
                message: &self.message,
            },
        };
        serde_json::to_string(&body).unwrap_or_else(|_| String::from("{}"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status_and_code().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.code.status_and_code();
        let mut res = HttpResponse::build(status);
        if let Some(s) = self.retry_after {
            res.insert_header(("Retry-After", s.to_string()));
        }
        res.json(Body {
            error: Inner {
                code,
                message: &self.message,
            },
        })
    }
}

impl From<ActivityError> for ApiError {
    fn from(e: ActivityError) -> Self {
        let code = match &e {
            ActivityError::Invalid(_) => ErrorCode::InvalidRequest,
            ActivityError::NotFound(_) => ErrorCode::NotFound,
            ActivityError::Forbidden(_) => ErrorCode::Forbidden,
            ActivityError::SoldOut(_) => ErrorCode::SoldOut,
            ActivityError::LimitReached => ErrorCode::LimitReached,
            ActivityError::NotOpen(_) => ErrorCode::NotOpen,
            ActivityError::QueueFull => ErrorCode::QueueFull,
            ActivityError::TokenExpired => ErrorCode::TokenExpired,
            ActivityError::TokenInvalid(_) => ErrorCode::TokenInvalid,
            ActivityError::Conflict(_) => ErrorCode::Conflict,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Domain(d) => d.into(),
            CallError::Unavailable(m) => ApiError::new(ErrorCode::Unavailable, m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_contract_table() {
        assert_eq!(
            ErrorCode::TokenExpired.status_and_code(),
            (StatusCode::GONE, "token_expired")
        );
        assert_eq!(
            ErrorCode::TokenInvalid.status_and_code().0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            ErrorCode::QueueFull.status_and_code().0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::new(ErrorCode::RateLimited, "x").retry_after,
            Some(1)
        );
    }

    #[test]
    fn every_code_parses_back_from_its_own_string_and_no_two_share_one() {
        for &code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        let names: std::collections::HashSet<_> =
            ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        assert_eq!(ErrorCode::parse("no_such_code"), None);
    }
}
