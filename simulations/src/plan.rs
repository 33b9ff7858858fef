//! What a worker process is asked to run: its share of the users and how they
//! behave. Serialized as JSON to child workers.

use serde::{Deserialize, Serialize};

/// What users do once admitted, and whether they take part in a storm.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Behaviour {
    pub pay: bool,
    /// Share of buyers that leave their order unpaid (decided per user, seeded).
    pub unpaid_fraction: f64,
    /// Pick a slot for each purchase (appointment activities).
    pub appointment: bool,
    pub seed: u64,
    /// With `n > 0`, users whose index is a multiple of `n` drop and resume
    /// at each storm signal.
    pub storm_every: usize,
    /// The activity asks for a join proof of work with this many bits: users fetch
    /// `/challenge` and solve it before a fresh join.
    #[serde(default)]
    pub pow_bits: u8,
    /// With `Some(rcvbuf)`, every user of the plan stalls (see `user::stalled`):
    /// reads until `queued`, then not at all until the control signal.
    #[serde(default)]
    pub stall_rcvbuf: Option<u32>,
}

/// One worker's share of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerPlan {
    pub worker_id: usize,
    /// Base URLs of the server nodes; user `idx` starts on `servers[idx % len]`
    /// (one entry unless the run is against a cluster).
    pub servers: Vec<String>,
    pub activity_id: String,
    pub jwt_secret: String,
    pub user_prefix: String,
    pub first_user: usize,
    pub users: usize,
    /// Index of the first source address (see `client::addrs::source_addr`).
    pub source_first: usize,
    pub source_count: usize,
    pub handshakes: usize,
    pub deadline_unix_ms: f64,
    pub behaviour: Behaviour,
}
