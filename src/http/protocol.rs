//! The WebSocket protocol as typed frames: what the server sends, what a client may send.

use crate::actors::messages::ToSession;
use crate::domain::activity::Push;
use crate::domain::clock::rfc3339;
use crate::error::ErrorCode;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Queued {
        ticket: &'a str,
        /// The place's public receipt (see the fairness log).
        receipt: &'a str,
        position: u64,
        eta_secs: u64,
        /// Extension: the place's join sequence number (admission order).
        seq: u64,
    },
    Position {
        position: u64,
        eta_secs: u64,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        waiting_for_returns: bool,
        /// Extension: the session's node repeats the latest position because the
        /// activity's refresh is late (`ws_refresh`).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        repeat: bool,
    },
    Admitted {
        /// The purchase token (absent for a gate).
        #[serde(skip_serializing_if = "Option::is_none")]
        token: Option<&'a str>,
        /// A gate's pass (EdDSA JWT).
        #[serde(skip_serializing_if = "Option::is_none")]
        pass: Option<&'a str>,
        expires_at: String,
        expires_in_secs: u64,
        /// Extension: server time (unix ms) when the admission was decided.
        issued_at_ms: u64,
    },
    Prequeue {
        opens_at: String,
        /// Extension: the ticket, to resume the pre-queue place.
        ticket: &'a str,
        /// The place's public receipt (see the fairness log).
        receipt: &'a str,
    },
    Paused,
    Resumed,
    SoldOut,
    Closed,
    /// An operator took the place, token or pass away; the socket closes.
    Revoked,
    Superseded,
    Restarting,
    Error {
        code: &'static str,
        message: &'a str,
    },
}

/// Extra fields are ignored (serde cannot deny them on unit variants of a tagged
/// enum), which also keeps newer clients compatible.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Leave,
}

pub fn error_frame(code: ErrorCode, message: &str) -> String {
    to_json(&ServerFrame::Error {
        code: code.as_str(),
        message,
    })
}

fn to_json(f: &ServerFrame<'_>) -> String {
    serde_json::to_string(f).expect("frames serialize")
}

/// The text frame for a message to a session.
pub fn encode(msg: &ToSession) -> String {
    let frame = match msg {
        ToSession::Superseded => ServerFrame::Superseded,
        ToSession::Restarting => ServerFrame::Restarting,
        ToSession::Push(p) => match p {
            Push::Queued {
                ticket,
                receipt,
                position,
                eta_secs,
                seq,
            } => ServerFrame::Queued {
                ticket,
                receipt,
                position: *position,
                eta_secs: *eta_secs,
                seq: *seq,
            },
            Push::Position {
                position,
                eta_secs,
                waiting_for_returns,
            } => ServerFrame::Position {
                position: *position,
                eta_secs: *eta_secs,
                waiting_for_returns: *waiting_for_returns,
                repeat: false,
            },
            Push::Admitted {
                token,
                pass,
                expires_at_ms,
                expires_in_secs,
                issued_at_ms,
            } => ServerFrame::Admitted {
                token: pass.is_none().then_some(token.as_str()),
                pass: pass.as_deref(),
                expires_at: rfc3339(*expires_at_ms),
                expires_in_secs: *expires_in_secs,
                issued_at_ms: *issued_at_ms,
            },
            Push::Prequeue {
                ticket,
                receipt,
                opens_at_ms,
            } => ServerFrame::Prequeue {
                opens_at: rfc3339(*opens_at_ms),
                ticket,
                receipt,
            },
            Push::Paused => ServerFrame::Paused,
            Push::Resumed => ServerFrame::Resumed,
            Push::SoldOut => ServerFrame::SoldOut,
            Push::Closed => ServerFrame::Closed,
            Push::Revoked => ServerFrame::Revoked,
            Push::PassExpired => {
                return error_frame(
                    ErrorCode::TokenExpired,
                    "your pass expired; join again to queue for another",
                )
            }
            Push::Expired => {
                return error_frame(
                    ErrorCode::TokenExpired,
                    "your purchase token expired; join again to queue for another",
                )
            }
        },
    };
    to_json(&frame)
}

/// The latest position again, marked as a repeat (`ws_refresh`).
pub fn repeated_position(position: u64, eta_secs: u64, waiting_for_returns: bool) -> String {
    to_json(&ServerFrame::Position {
        position,
        eta_secs,
        waiting_for_returns,
        repeat: true,
    })
}

/// Parses a client text frame; `Err` carries the message for the `error` frame.
pub fn parse_client(text: &str) -> Result<ClientFrame, String> {
    serde_json::from_str(text).map_err(|e| {
        format!("unsupported message: {e}; the only message is {{\"type\":\"leave\"}}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_match_the_contract() {
        let f = encode(&ToSession::Push(Push::Position {
            position: 3,
            eta_secs: 1,
            waiting_for_returns: false,
        }));
        assert_eq!(f, r#"{"type":"position","position":3,"eta_secs":1}"#);
        assert_eq!(
            repeated_position(3, 1, true),
            r#"{"type":"position","position":3,"eta_secs":1,"waiting_for_returns":true,"repeat":true}"#
        );
        assert_eq!(
            encode(&ToSession::Push(Push::SoldOut)),
            r#"{"type":"sold_out"}"#
        );
        assert!(encode(&ToSession::Push(Push::Expired)).contains(r#""code":"token_expired""#));
    }

    #[test]
    fn only_leave_is_accepted() {
        assert_eq!(parse_client(r#"{"type":"leave"}"#), Ok(ClientFrame::Leave));
        for bad in [
            "",
            "{",
            "[]",
            r#"{"type":"join"}"#,
            r#"{"kind":"leave"}"#,
            "null",
        ] {
            assert!(parse_client(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parser_never_panics(s in ".{0,200}") {
            let _ = parse_client(&s);
        }
    }
}
