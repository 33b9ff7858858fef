//! The `simulate` command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const DEV_ADMIN_KEY: &str = "sluice-dev-admin-key";
pub const DEV_JWT_SECRET: &str = "sluice-dev-jwt-secret-change-me-0123456789";

#[derive(Debug, Parser)]
#[command(
    name = "simulate",
    about = "Load and correctness simulations against a sluice server (public API only)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// N WebSocket users race for S units: join rate, FIFO, latency, invariant, memory.
    FlashSale(FlashSaleArgs),
    /// A flash sale where a share of the waiting users drop and resume with their ticket.
    ReconnectStorm(StormArgs),
    /// A flash sale whose server is killed with SIGKILL mid-sale and restarted on the same store.
    Crash(CrashArgs),
    /// kill -9 at random instants under a mixed load, N times; an independent checker
    /// verifies every acknowledged operation after each restart.
    CrashCampaign(CrashCampaignArgs),
    /// A flash sale with an order sink (Redis/PostgreSQL) that goes down and comes back.
    SinkOutage(SinkOutageArgs),
    /// Appointment booking: pre-queue shuffle, slot choice, unpaid orders released.
    Hospital(HospitalArgs),
    /// Users that stop reading their socket: server memory must stay bounded.
    StalledClients(StalledArgs),
    /// N sluice nodes sharing one Redis: a crowd spread over them, the activity's owner killed mid-sale.
    Cluster(ClusterArgs),
    /// Internal: one child process's share of the users (JSON lines on stdout).
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        plan: String,
    },
}

/// Which server to talk to.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Base URL of a running server (ignored with --spawn-server).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Start this sluice binary as a child on a free port with a temp store.
    #[arg(long, value_name = "PATH")]
    pub spawn_server: Option<PathBuf>,
    #[arg(long, env = "SLUICE_ADMIN_KEY", default_value = DEV_ADMIN_KEY, hide_default_value = true)]
    pub admin_key: String,
    /// `auth.jwt_secret` of the server (to mint user identities).
    #[arg(long, env = "SLUICE_JWT_SECRET", default_value = DEV_JWT_SECRET, hide_default_value = true)]
    pub jwt_secret: String,
    /// Extra environment for a spawned server, e.g. SLUICE__SINK__KIND=redis.
    #[arg(long = "server-env", value_name = "KEY=VALUE")]
    pub server_env: Vec<String>,
    /// Keep the spawned server's temp store and log after the run.
    #[arg(long)]
    pub keep_store: bool,
    /// Keep the spawned server's per-IP rate limits (by default they are set
    /// to 0 = unlimited: all simulated users share a few loopback addresses).
    #[arg(long)]
    pub keep_rate_limits: bool,
}

/// How to run and where to write.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Load-generator processes (0 = one per 18,000 users).
    #[arg(long, default_value_t = 0)]
    pub procs: usize,
    /// Hard bound on the whole run; every user stops by then.
    #[arg(long, default_value_t = 300)]
    pub max_secs: u64,
    /// JSON report path (default: OUT_DIR/<scenario>.json).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Markdown report path (default: OUT_DIR/<scenario>.md).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Directory for SVG charts (none unless given).
    #[arg(long)]
    pub charts: Option<PathBuf>,
    /// Default directory of the reports (default: $TMPDIR/sluice-sim).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// WebSocket handshakes in flight, over all processes.
    #[arg(long, default_value_t = 500)]
    pub handshakes: usize,
    /// Loopback source addresses per process (127.0.1.1, 127.0.2.1, ...).
    #[arg(long, default_value_t = 16)]
    pub sources: usize,
    /// Activity id (default: sim-<scenario>-<unix time>).
    #[arg(long)]
    pub activity_id: Option<String>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// The sale being simulated.
#[derive(Debug, Clone, Args)]
pub struct SaleArgs {
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    #[arg(long, default_value_t = 100)]
    pub stock: u64,
    /// admission.rate_per_sec
    #[arg(long, default_value_t = 200)]
    pub rate: u64,
    /// admission.max_active
    #[arg(long, default_value_t = 200)]
    pub max_active: u64,
    /// admission.token_ttl_secs
    #[arg(long, default_value_t = 30)]
    pub token_ttl: u64,
    /// Leave the activity open while users connect (default: pause it until
    /// everyone holds a place, so the peak queue and its memory are measured).
    #[arg(long)]
    pub admit_during_joins: bool,
    /// Do not pay orders after buying.
    #[arg(long)]
    pub no_pay: bool,
    /// Keep the sale paused this many seconds after everyone joined (to
    /// watch `position` frames of a waiting crowd; they are due every 5 s).
    #[arg(long, default_value_t = 0.0)]
    pub hold_secs: f64,
    /// admission.join_pow_bits: every user solves the join proof of work.
    #[arg(long, default_value_t = 0)]
    pub pow_bits: u8,
}

#[derive(Debug, Clone, Args)]
pub struct FlashSaleArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub sale: SaleArgs,
}

#[derive(Debug, Clone, Args)]
pub struct StormArgs {
    #[command(flatten)]
    pub common: FlashSaleArgs,
    /// Users whose index is a multiple of this drop and resume (3 = a third).
    #[arg(long, default_value_t = 3)]
    pub storm_every: usize,
}

#[derive(Debug, Clone, Args)]
pub struct CrashArgs {
    #[command(flatten)]
    pub common: FlashSaleArgs,
    /// Kill the server once this fraction of the stock is sold.
    #[arg(long, default_value_t = 0.3)]
    pub kill_at_sold: f64,
    /// Seconds between the kill and the restart.
    #[arg(long, default_value_t = 1.0)]
    pub down_secs: f64,
}

#[derive(Debug, Clone, Args)]
pub struct CrashCampaignArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// How many times the server is killed with SIGKILL.
    #[arg(long, default_value_t = 200)]
    pub kills: usize,
    /// Each server lives a uniformly random 0..this many ms from its start
    /// (recovery included) before it is killed.
    #[arg(long, default_value_t = 1500)]
    pub life_ms: u64,
    /// Concurrent buyers (every other one over WebSocket, one in four on the
    /// slow waiting line); an operator adds stock besides.
    #[arg(long, default_value_t = 12)]
    pub clients: usize,
    /// A buyer's pause between users (bounds the ledger the checker reads back).
    #[arg(long, default_value_t = 150)]
    pub pace_ms: u64,
    /// Hard bound on the whole campaign; it stops (and fails) there.
    #[arg(long, default_value_t = 3600)]
    pub max_secs: u64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Directory of the reports (default: $TMPDIR/sluice-sim).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct SinkOutageArgs {
    #[command(flatten)]
    pub common: FlashSaleArgs,
    #[arg(long, value_parser = ["redis", "postgres"])]
    pub sink_kind: String,
    #[arg(long)]
    pub sink_url: String,
    /// Shell command that takes the sink down (run with sh -c).
    #[arg(long)]
    pub stop_cmd: String,
    /// Shell command that brings it back.
    #[arg(long)]
    pub start_cmd: String,
    /// Seconds after the sale starts before the sink is stopped.
    #[arg(long, default_value_t = 1.0)]
    pub stop_after_secs: f64,
    /// Seconds the sink stays down.
    #[arg(long, default_value_t = 5.0)]
    pub outage_secs: f64,
    /// How long to wait for the sink to catch up after the sale.
    #[arg(long, default_value_t = 60)]
    pub catch_up_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct StalledArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Normal users (read every frame, buy when admitted); they join second.
    #[arg(long, default_value_t = 8000)]
    pub users: usize,
    /// Users that join first, read until `queued`, then never read again.
    #[arg(long, default_value_t = 8000)]
    pub stalled: usize,
    #[arg(long, default_value_t = 2000)]
    pub stock: u64,
    /// admission.rate_per_sec
    #[arg(long, default_value_t = 200)]
    pub rate: u64,
    /// admission.max_active (above rate x token_ttl, so expiring stalled
    /// tokens do not throttle admission)
    #[arg(long, default_value_t = 2000)]
    pub max_active: u64,
    /// admission.token_ttl_secs: stalled users' tokens expire unspent.
    #[arg(long, default_value_t = 5)]
    pub token_ttl: u64,
    /// Length of the stall period: from the sale's start until the stalled
    /// users read again.
    #[arg(long, default_value_t = 40)]
    pub run_secs: u64,
    /// Pause and resume the activity every second during the stall period
    /// (`--toggles false` to keep it open).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub toggles: bool,
    /// SO_RCVBUF of the stalled users' sockets, in bytes (0 = kernel default).
    #[arg(long, default_value_t = 4096)]
    pub rcvbuf: u32,
    /// Bound on the RSS growth over the stall period, per stalled session.
    #[arg(long, default_value_t = 16.0)]
    pub max_growth_kib: f64,
    /// Do not pay orders after buying.
    #[arg(long)]
    pub no_pay: bool,
}

impl StalledArgs {
    /// The sale, in the shape the shared sale code takes (normal users only).
    pub fn sale(&self) -> SaleArgs {
        SaleArgs {
            users: self.users,
            stock: self.stock,
            rate: self.rate,
            max_active: self.max_active,
            token_ttl: self.token_ttl,
            admit_during_joins: false,
            no_pay: self.no_pay,
            hold_secs: 0.0,
            pow_bits: 0,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct HospitalArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[arg(long, default_value_t = 2000)]
    pub patients: usize,
    #[arg(long, default_value_t = 5)]
    pub doctors: usize,
    #[arg(long, default_value_t = 16)]
    pub slots_per_doctor: usize,
    /// Patients per slot.
    #[arg(long, default_value_t = 3)]
    pub capacity: u64,
    /// Share of patients who book but never pay.
    #[arg(long, default_value_t = 0.2)]
    pub unpaid_fraction: f64,
    #[arg(long, default_value_t = 50)]
    pub rate: u64,
    #[arg(long, default_value_t = 50)]
    pub max_active: u64,
    #[arg(long, default_value_t = 30)]
    pub token_ttl: u64,
    /// payment_timeout_secs: unpaid orders are cancelled after this.
    #[arg(long, default_value_t = 5)]
    pub payment_timeout: u64,
    /// Seconds from creation to opening (default: 3 + 1 per 1,000 patients).
    #[arg(long)]
    pub opens_in_secs: Option<f64>,
}

#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// The sluice binary every node runs.
    #[arg(long, value_name = "PATH")]
    pub spawn_server: PathBuf,
    /// sluice nodes to start (ids n1, n2, ...; user i connects to node i % N).
    #[arg(long, default_value_t = 6)]
    pub nodes: usize,
    /// Use this Redis (not stopped at the end) instead of a throwaway redis-server.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Find the cluster's Redis through these sentinels (host:port,...) instead:
    /// a Sentinel group someone else runs (docs/cluster.md), never stopped.
    #[arg(long, value_name = "HOST:PORT,...", conflicts_with = "redis_url")]
    pub sentinel: Option<String>,
    /// Start a throwaway Sentinel group (a primary, --replicas replicas, three sentinels
    /// on free loopback ports, stopped at the end) and run the nodes against it.
    /// Implied by --kill redis-primary.
    #[arg(long, conflicts_with_all = ["redis_url", "sentinel"])]
    pub sentinel_group: bool,
    /// What dies mid-sale: the activity's owner node, or the Redis primary
    /// (then the sentinels promote the replica; an empty redis-server
    /// replaces the dead one once every node follows the new primary).
    #[arg(long, value_enum, default_value_t = KillTarget::Owner)]
    pub kill: KillTarget,
    /// The primary's name the sentinels monitor (with --sentinel).
    #[arg(long, default_value = "sluice")]
    pub sentinel_master: String,
    /// Replicas in the throwaway Sentinel group (two is the deployment docs/cluster.md
    /// recommends: a promoted replica still has one to confirm writes).
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// cluster.replica_acks of every node (with --sentinel: replicas that confirm each write).
    #[arg(long, default_value_t = 1)]
    pub replica_acks: u32,
    /// The redis-server binary started when neither --redis-url nor --sentinel is
    /// given (also run as the group's sentinels, with `--sentinel`).
    #[arg(long, value_name = "PATH", default_value = "redis-server")]
    pub redis_server: PathBuf,
    /// cluster.lease_ms of every node (default: the server's own, 3000).
    #[arg(long)]
    pub lease_ms: Option<u64>,
    /// Kill the owner (or the Redis primary) once this many orders exist (default: stock / 3).
    #[arg(long)]
    pub kill_after_sold: Option<u64>,
    /// Longest wait, after the kill, for another node to own and serve the activity.
    #[arg(long, default_value_t = 60)]
    pub failover_timeout_secs: u64,
    /// Admin API key, given to every node (default: the dev key of config/default.toml).
    #[arg(long, env = "SLUICE_ADMIN_KEY", default_value = DEV_ADMIN_KEY, hide_default_value = true)]
    pub admin_key: String,
    /// `auth.jwt_secret`, given to every node and used to mint user identities.
    #[arg(long, env = "SLUICE_JWT_SECRET", default_value = DEV_JWT_SECRET, hide_default_value = true)]
    pub jwt_secret: String,
    /// Extra environment for every node, e.g. SLUICE__CLUSTER__RENEW_MS=500.
    #[arg(long = "server-env", value_name = "KEY=VALUE")]
    pub server_env: Vec<String>,
    /// Keep the nodes' temp stores and logs (and Redis's dir) after the run.
    #[arg(long)]
    pub keep_store: bool,
    /// Keep the nodes' per-IP rate limits (by default they are set to 0 = unlimited).
    #[arg(long)]
    pub keep_rate_limits: bool,
    #[command(flatten)]
    pub run: RunArgs,
    #[arg(long, default_value_t = 100_000)]
    pub users: usize,
    #[arg(long, default_value_t = 1000)]
    pub stock: u64,
    /// admission.rate_per_sec (modest: with 100,000 waiting, every admission
    /// moves everyone and the 1% rule sends many position frames)
    #[arg(long, default_value_t = 100)]
    pub rate: u64,
    /// admission.max_active
    #[arg(long, default_value_t = 200)]
    pub max_active: u64,
    /// admission.token_ttl_secs
    #[arg(long, default_value_t = 30)]
    pub token_ttl: u64,
    /// Do not pay orders after buying.
    #[arg(long)]
    pub no_pay: bool,
    /// Keep the sale paused this many seconds after everyone joined.
    #[arg(long, default_value_t = 0.0)]
    pub hold_secs: f64,
}

/// What `simulate cluster` kills mid-sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KillTarget {
    /// SIGKILL the activity's owner node.
    Owner,
    /// `kill -9` the Redis primary of the run's own Sentinel group.
    RedisPrimary,
}

impl KillTarget {
    /// As given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::RedisPrimary => "redis-primary",
        }
    }
}

impl ClusterArgs {
    /// The run starts its own Sentinel group.
    pub fn own_sentinels(&self) -> bool {
        self.sentinel_group || self.kill == KillTarget::RedisPrimary
    }

    /// The sale, in the shape the shared sale code takes (paused while users join).
    pub fn sale(&self) -> SaleArgs {
        SaleArgs {
            users: self.users,
            stock: self.stock,
            rate: self.rate,
            max_active: self.max_active,
            token_ttl: self.token_ttl,
            admit_during_joins: false,
            no_pay: self.no_pay,
            hold_secs: self.hold_secs,
            pow_bits: 0,
        }
    }

    /// The run as a flash sale against spawned servers (for the shared report parts).
    pub fn as_flash_sale(&self) -> FlashSaleArgs {
        FlashSaleArgs {
            server: ServerArgs {
                url: String::new(),
                spawn_server: Some(self.spawn_server.clone()),
                admin_key: self.admin_key.clone(),
                jwt_secret: self.jwt_secret.clone(),
                server_env: self.server_env.clone(),
                keep_store: self.keep_store,
                keep_rate_limits: self.keep_rate_limits,
            },
            run: self.run.clone(),
            sale: self.sale(),
        }
    }

    pub fn kill_after(&self) -> u64 {
        self.kill_after_sold.unwrap_or(self.stock / 3)
    }
}
