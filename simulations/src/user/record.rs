//! What one user saw, in a form that crosses process boundaries as JSON.

use serde::{Deserialize, Serialize};

/// How a user's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    #[default]
    Running,
    /// Admitted and got an order.
    Bought,
    /// Admitted, but the purchase was refused (see anomalies).
    PurchaseFailed,
    SoldOut,
    Closed,
    Superseded,
    /// Could not connect (or reconnect) at all.
    ConnectFailed,
    /// The run's `--max-secs` passed first.
    Timeout,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Bought => "bought",
            Self::PurchaseFailed => "purchase_failed",
            Self::SoldOut => "sold_out",
            Self::Closed => "closed",
            Self::Superseded => "superseded",
            Self::ConnectFailed => "connect_failed",
            Self::Timeout => "timeout",
        }
    }
}

/// The order a purchase acknowledged.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OrderAck {
    pub id: String,
    /// 201 (created) or 200 (idempotent repeat).
    pub http_status: u16,
    pub slot_id: Option<String>,
    /// Status after our last call (`pending_payment` or `paid`).
    pub status: String,
    /// Whether we decided to leave it unpaid (hospital's unpaid fraction).
    pub left_unpaid: bool,
    pub acked_ms: f64,
}

/// One reconnect with `ticket` and what the server said first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Resume {
    /// `storm`, `drop` (socket lost) or `restarting`.
    pub cause: String,
    pub ticket_before: Option<String>,
    pub position_before: Option<u64>,
    /// Kind of the first frame after reconnecting.
    pub first_frame: String,
    pub ticket_after: Option<String>,
    pub position_after: Option<u64>,
}

/// Everything measured for one user. Times are unix milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserRecord {
    pub idx: usize,
    pub user: String,
    /// When the first handshake started (after the ramp let it); 0 = never.
    pub connect_ms: f64,
    /// First `queued` or `prequeue`.
    pub joined_ms: Option<f64>,
    pub prequeued: bool,
    pub ticket: Option<String>,
    pub seq: Option<u64>,
    pub first_position: Option<u64>,
    /// Position in the first `queued` after a `prequeue` (the shuffle's result).
    pub opening_position: Option<u64>,
    pub last_position: Option<u64>,
    pub position_frames: u32,
    pub gap_count: u32,
    pub gap_sum_ms: f64,
    pub gap_max_ms: f64,
    /// Times a `position` was greater than the one before on the same socket.
    pub position_increases: u32,
    pub waiting_for_returns_frames: u32,
    pub admitted_ms: Option<f64>,
    pub issued_at_ms: Option<f64>,
    pub admissions: u32,
    pub order: Option<OrderAck>,
    /// `409 sold_out` answers to a purchase (full slot).
    pub purchase_sold_out: u32,
    pub purchase_transport_errors: u32,
    pub sold_out_frame: bool,
    pub paused_frames: u32,
    pub resumed_frames: u32,
    pub restarting_frames: u32,
    pub connect_errors: u32,
    pub unexpected_closes: u32,
    pub resumes: Vec<Resume>,
    /// Unexpected frames and responses, capped.
    pub anomalies: Vec<String>,
    pub outcome: Outcome,
}

/// At most this many anomalies are kept per user.
const MAX_ANOMALIES: usize = 8;

impl UserRecord {
    pub fn new(idx: usize, user: String) -> Self {
        Self {
            idx,
            user,
            ..Self::default()
        }
    }

    pub fn anomaly(&mut self, what: impl Into<String>) {
        if self.anomalies.len() < MAX_ANOMALIES {
            self.anomalies.push(what.into());
        }
    }

    pub fn join_latency_ms(&self) -> Option<f64> {
        self.joined_ms
            .filter(|_| self.connect_ms > 0.0)
            .map(|j| j - self.connect_ms)
    }

    /// Admission-to-client latency: receive time minus the server's decision time.
    pub fn admission_latency_ms(&self) -> Option<f64> {
        Some(self.admitted_ms? - self.issued_at_ms?)
    }
}
