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
    /// Node (index in the run's node list) the lost socket was on.
    #[serde(default)]
    pub node_before: usize,
    /// Node the user came back through (where it was when the first frame came).
    #[serde(default)]
    pub node_after: usize,
    /// When the socket was lost (unix ms).
    #[serde(default)]
    pub dropped_ms: f64,
    /// Last `queued`/`position` frame on the lost socket: the place was still
    /// waiting then (an admission of it happened later).
    #[serde(default)]
    pub waiting_frame_ms: Option<f64>,
    /// When the first frame after reconnecting came; `None`: never heard back.
    #[serde(default)]
    pub back_ms: Option<f64>,
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
    /// When that first `queued` after a `prequeue` came: the opening, as this user
    /// saw it (the start of its wait, as the server's report counts it).
    pub opened_ms: Option<f64>,
    pub last_position: Option<u64>,
    pub position_frames: u32,
    pub gap_count: u32,
    pub gap_sum_ms: f64,
    pub gap_max_ms: f64,
    /// Times a `position` was greater than the one before on the same socket.
    pub position_increases: u32,
    /// Gaps between waiting frames longer than [`POSITION_GAP_LIMIT_MS`], as
    /// `[end unix ms, gap ms]`; at most [`MAX_LONG_GAPS`] kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub long_gaps: Vec<[f64; 2]>,
    /// All such gaps, kept or not.
    #[serde(default)]
    pub long_gap_count: u32,
    /// Of those, gaps between the place frame (`queued`, or a resume's first
    /// frame) and the first `position` after it.
    #[serde(default)]
    pub long_first_gaps: u32,
    /// Those gaps by the node the socket was on (index in the node list).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub long_gaps_by_node: Vec<u32>,
    pub waiting_for_returns_frames: u32,
    /// `position` frames marked `repeat` (the activity's refresh was late).
    #[serde(default)]
    pub position_repeats: u32,
    /// Longest gap between frames from the activity itself (the place frame and
    /// positions that were not repeats): what the cadence would be without repeats.
    #[serde(default)]
    pub news_gap_max_ms: f64,
    pub admitted_ms: Option<f64>,
    pub issued_at_ms: Option<f64>,
    /// Node (index in the run's node list) the user was on when it joined.
    #[serde(default)]
    pub join_node: Option<usize>,
    /// Node the first `admitted` frame came through.
    #[serde(default)]
    pub admitted_node: Option<usize>,
    pub admissions: u32,
    pub order: Option<OrderAck>,
    /// `409 sold_out` answers to a purchase (full slot).
    pub purchase_sold_out: u32,
    pub purchase_transport_errors: u32,
    pub sold_out_frame: bool,
    pub paused_frames: u32,
    pub resumed_frames: u32,
    pub restarting_frames: u32,
    /// `error` frames with code `unavailable` (the user came back later).
    #[serde(default)]
    pub unavailable_frames: u32,
    pub connect_errors: u32,
    pub unexpected_closes: u32,
    pub resumes: Vec<Resume>,
    /// Unexpected frames and responses, capped.
    pub anomalies: Vec<String>,
    pub outcome: Outcome,
    /// A stalled user's socket (stalled-clients scenario only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall: Option<StallRecord>,
}

/// What a stalled user's socket showed once it read again.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StallRecord {
    /// Frames read before the stall (up to and including `queued`).
    pub frames_before: u32,
    /// Text frames read while draining, by kind.
    pub drained_positions: u32,
    pub drained_notices: u32,
    pub drained_other: u32,
    /// How the socket ended: `close 1008: messages not read in time`,
    /// `eof without close frame`, `reset`, `still open`, ...
    pub end: String,
    pub close_code: Option<u16>,
}

/// At most this many anomalies are kept per user.
const MAX_ANOMALIES: usize = 8;
/// API.md: `position` at least every 5 s while waiting; 1 s of slack for
/// a loaded machine.
pub const POSITION_GAP_LIMIT_MS: f64 = 6000.0;
/// At most this many gaps over the limit are kept per user (all are counted).
pub const MAX_LONG_GAPS: usize = 8;

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

    /// `waiting_gap`, for a socket on node `node` (index in the run's node list).
    pub fn waiting_gap_on(&mut self, end_ms: f64, gap_ms: f64, node: usize) {
        self.waiting_gap(end_ms, gap_ms);
        if gap_ms > POSITION_GAP_LIMIT_MS {
            if self.long_gaps_by_node.len() <= node {
                self.long_gaps_by_node.resize(node + 1, 0);
            }
            self.long_gaps_by_node[node] += 1;
        }
    }

    /// Notes a gap between two waiting frames that ended at `end_ms`.
    pub fn waiting_gap(&mut self, end_ms: f64, gap_ms: f64) {
        self.gap_count += 1;
        self.gap_sum_ms += gap_ms;
        self.gap_max_ms = self.gap_max_ms.max(gap_ms);
        if gap_ms > POSITION_GAP_LIMIT_MS {
            self.long_gap_count += 1;
            if self.long_gaps.len() < MAX_LONG_GAPS {
                self.long_gaps.push([end_ms, gap_ms]);
            }
        }
    }

    /// True when the first `admitted` came as the first frame of a resumed
    /// session: the user was away when its turn came.
    pub fn admitted_on_resume(&self) -> bool {
        self.admitted_ms.is_some() && self.resumes.iter().any(|r| r.first_frame == "admitted")
    }

    /// Wait from the join ack (for a pre-queued user, from the opening's `queued`)
    /// to the `admitted` frame, as this user saw it.
    pub fn wait_ms(&self) -> Option<f64> {
        Some(self.admitted_ms? - self.wait_start_ms()?)
    }

    /// Bounds of the wait the server counts (its join, or its opening for the
    /// pre-queue, to its admission, `issued_at_ms` in the frame; one machine clock).
    /// The server's start lies after this user began connecting (and, for the
    /// pre-queue, after `opens_at_ms`) and before the frame that told it (`queued`,
    /// or at opening its first `queued`), so the wait lies between the two.
    pub fn server_wait_bounds_ms(&self, opens_at_ms: Option<f64>) -> Option<(f64, f64)> {
        let admitted = self.issued_at_ms?;
        let mut earliest = self.connect_ms;
        if self.prequeued {
            earliest = earliest.max(opens_at_ms.unwrap_or(earliest));
        }
        (earliest > 0.0).then_some((admitted - self.wait_start_ms()?, admitted - earliest))
    }

    fn wait_start_ms(&self) -> Option<f64> {
        if self.prequeued {
            self.opened_ms.or(self.joined_ms)
        } else {
            self.joined_ms
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
