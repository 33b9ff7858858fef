//! The WebSocket frames of API.md, as the simulator reads them.

use serde::Deserialize;

/// A server-to-client frame. Fields the simulator does not need are ignored;
/// fields it needs but the contract marks as extensions are optional, so a
/// server without them is reported, not crashed on.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Queued {
        ticket: String,
        position: u64,
        /// Extension: the server's join sequence number.
        #[serde(default)]
        seq: Option<u64>,
    },
    Position {
        position: u64,
        #[serde(default)]
        waiting_for_returns: bool,
        /// Extension: the session's node repeated its latest position because
        /// the activity's refresh was late.
        #[serde(default)]
        repeat: bool,
    },
    Admitted {
        token: String,
        /// Extension: server unix time in ms when admission was decided.
        #[serde(default)]
        issued_at_ms: Option<f64>,
    },
    Prequeue,
    Paused,
    Resumed,
    SoldOut,
    Closed,
    Superseded,
    Restarting,
    Error {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    },
    #[serde(other)]
    Unknown,
}

impl ServerFrame {
    /// Parses a text frame; `Err` carries a short description for the report.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("unparsable frame ({e}): {}", clip(text)))
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Queued { .. } => "queued",
            Self::Position { .. } => "position",
            Self::Admitted { .. } => "admitted",
            Self::Prequeue => "prequeue",
            Self::Paused => "paused",
            Self::Resumed => "resumed",
            Self::SoldOut => "sold_out",
            Self::Closed => "closed",
            Self::Superseded => "superseded",
            Self::Restarting => "restarting",
            Self::Error { .. } => "error",
            Self::Unknown => "unknown",
        }
    }
}

/// The first 200 characters of a server text, for anomaly messages.
pub fn clip(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_with_extension_parses() {
        let f = ServerFrame::parse(
            r#"{"type":"queued","ticket":"t1","position":3,"eta_secs":1.5,"seq":7}"#,
        )
        .expect("test fixture is valid");
        assert!(matches!(
            f,
            ServerFrame::Queued {
                position: 3,
                seq: Some(7),
                ..
            }
        ));
    }

    #[test]
    fn unknown_type_is_not_an_error() {
        let f =
            ServerFrame::parse(r#"{"type":"something_new","x":1}"#).expect("test fixture is valid");
        assert!(matches!(f, ServerFrame::Unknown));
    }

    #[test]
    fn admitted_without_issued_at_parses() {
        let f = ServerFrame::parse(
            r#"{"type":"admitted","token":"k","expires_at":"x","expires_in_secs":30}"#,
        )
        .expect("test fixture is valid");
        assert!(matches!(
            f,
            ServerFrame::Admitted {
                issued_at_ms: None,
                ..
            }
        ));
    }
}
