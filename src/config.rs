//! Typed settings: a TOML file, overridden by `SLUICE__SECTION__KEY` environment
//! variables, validated once at start with messages that name the bad key.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEV_JWT_SECRET: &str = "sluice-dev-jwt-secret-change-me-0123456789";
pub const DEV_ADMIN_KEY: &str = "sluice-dev-admin-key";
pub const DEV_TOKEN_SECRET: &str = "sluice-dev-purchase-token-key-change-me";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub env: String,
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub auth: AuthSettings,
    pub admin: AdminSettings,
    pub tokens: TokenSettings,
    pub sink: SinkSettings,
    pub limits: LimitSettings,
    pub log: LogSettings,
    pub cluster: ClusterSettings,
    pub payment: PaymentSettings,
    #[serde(default)]
    pub webhooks: WebhookSettings,
}

/// Who confirms payment: the buyer's own call (`simulated`, development) or the
/// shop's backend through the admin API (`external`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentMode {
    Simulated,
    External,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentSettings {
    pub mode: PaymentMode,
}

/// Webhook delivery (docs/api.md, "Webhooks"): per receiver, in commit order, retried
/// with exponential backoff and jitter until it answers 2xx.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// One delivery attempt may take this long before it counts as failed, ms.
    pub timeout_ms: u64,
    /// The first retry waits about this long, ms; each later one twice as long.
    pub min_backoff_ms: u64,
    /// No retry waits longer than this, ms.
    pub max_backoff_ms: u64,
    /// How often registrations are re-read (cluster mode: other nodes' changes) and
    /// idle receivers look for events missed by a wake-up, ms.
    pub refresh_ms: u64,
    /// Events read per receiver and activity at a time.
    pub batch: usize,
    /// PEM certificates `https://` receivers are verified against.
    pub ca_file: PathBuf,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            timeout_ms: 5_000,
            min_backoff_ms: 500,
            max_backoff_ms: 60_000,
            refresh_ms: 2_000,
            batch: 100,
            ca_file: PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
        }
    }
}

/// Cluster mode (docs/cluster.md): several processes share one Redis for leases,
/// replicated activity state and membership.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    pub enabled: bool,
    pub node_id: String,
    pub redis_url: String,
    pub advertise: String,
    pub lease_ms: u64,
    pub renew_ms: u64,
    /// Replicas that must confirm a replicated write (`WAIT`) before it counts.
    #[serde(default)]
    pub replica_acks: u32,
    #[serde(default = "default_replica_ack_timeout_ms")]
    pub replica_ack_timeout_ms: u64,
    #[serde(default)]
    pub sentinel: SentinelSettings,
}

fn default_replica_ack_timeout_ms() -> u64 {
    500
}

/// The cluster's Redis found through Redis Sentinel (instead of `redis_url`).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelSettings {
    /// `host:port` of each sentinel; empty = Sentinel not used.
    pub addresses: Vec<String>,
    pub master_name: String,
    pub sentinel_username: String,
    pub sentinel_password: String,
    /// Credentials of the primary and replicas.
    pub username: String,
    pub password: String,
}

impl SentinelSettings {
    pub fn enabled(&self) -> bool {
        !self.addresses.is_empty()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: String,
    pub workers: usize,
    pub tick_ms: u64,
    pub actor_timeout_ms: u64,
    pub max_body_bytes: usize,
    pub client_request_timeout_ms: u64,
    pub max_ws_per_ip: u32,
    /// Open WebSocket sessions this process holds; 0 = its open-file limit less a
    /// reserve (see `http::state::session_cap`).
    #[serde(default)]
    pub max_ws_sessions: u32,
    pub ws_messages_per_sec: u32,
    /// Peers (addresses and CIDR ranges) whose `Forwarded` / `X-Forwarded-For` and
    /// PROXY-protocol headers name the client (`http::client_addr`).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Connections from trusted proxies start with a PROXY-protocol header (v1 or v2).
    #[serde(default)]
    pub proxy_protocol: bool,
    #[serde(default)]
    pub tls: TlsSettings,
    /// The URL users reach this service at: the `iss` of gate passes. Empty:
    /// `http://{bind}` (`https://` with TLS).
    #[serde(default)]
    pub public_url: String,
}

impl ServerSettings {
    /// `public_url`, or the address it defaults to.
    pub fn public_url(&self) -> String {
        if !self.public_url.is_empty() {
            return self.public_url.trim_end_matches('/').to_owned();
        }
        let scheme = if self.tls.enabled() { "https" } else { "http" };
        format!("{scheme}://{}", self.bind)
    }
}

/// HTTPS and wss:// served directly; both paths empty: plain HTTP.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first.
    pub cert_path: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: String,
}

impl TlsSettings {
    pub fn enabled(&self) -> bool {
        !self.cert_path.is_empty()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    pub path: PathBuf,
    pub commit_window_us: u64,
    pub commit_max_batch: usize,
    pub commit_queue: usize,
    #[serde(default = "default_checkpoint_ms")]
    pub checkpoint_ms: u64,
}

fn default_checkpoint_ms() -> u64 {
    10_000
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub jwt_secret: String,
    pub token_lifetime_secs: u64,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    pub max_concurrent_hashes: usize,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// When set, an `operator` key named `default` (the v1 admin key; also the
    /// cluster's shared secret).
    pub api_key: String,
    /// Scoped keys (`http::admin_keys`).
    #[serde(default)]
    pub keys: Vec<AdminKeySettings>,
}

/// One scoped admin key.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminKeySettings {
    pub name: String,
    pub key: String,
    pub role: AdminRole,
}

/// What an admin key may do (docs/api.md, "Scoped admin keys").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminRole {
    /// Everything.
    Operator,
    /// Every admin `GET` and the event stream.
    Viewer,
    /// Read orders, confirm payment, cancel orders.
    Shop,
}

/// The shortest admin key production accepts.
pub const MIN_PRODUCTION_KEY_LEN: usize = 32;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    pub secret: String,
}

// Secrets never reach logs, even through `{:?}`.
macro_rules! redacted_debug {
    ($($t:ty),*) => {$(
        impl std::fmt::Debug for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($t), " { .. }"))
            }
        }
    )*};
}
redacted_debug!(AuthSettings, AdminSettings, AdminKeySettings, TokenSettings);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    None,
    Postgres,
    Redis,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSettings {
    pub kind: SinkKind,
    pub url: String,
    pub batch_size: usize,
}
redacted_debug!(SinkSettings, ClusterSettings, SentinelSettings);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitSettings {
    pub join_per_ip_per_sec: u32,
    pub poll_per_ip_per_sec: u32,
    pub purchase_per_ip_per_sec: u32,
    pub login_per_ip_per_sec: u32,
    pub admin_per_ip_per_sec: u32,
    pub user_per_sec: u32,
    pub global_per_sec: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

/// The file that `cargo run` uses; also the base every other file overrides.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

impl Settings {
    /// Loads `file` (or the built-in defaults) and applies `SLUICE__*` variables.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        Self::from_value(Self::effective(file)?)
    }

    /// The effective configuration as TOML (defaults, `file`, then `SLUICE__*`
    /// variables), not yet validated.
    pub fn effective(file: Option<&Path>) -> anyhow::Result<toml::Value> {
        let mut value: toml::Value = toml::from_str(DEFAULT_TOML)?;
        if let Some(f) = file {
            let text = std::fs::read_to_string(f)
                .map_err(|e| anyhow::anyhow!("cannot read config {}: {e}", f.display()))?;
            let over: toml::Value = toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("config {}: {e}", f.display()))?;
            merge(&mut value, over, "")?;
        }
        let vars = std::env::vars().filter(|(k, _)| k.starts_with("SLUICE__"));
        apply_env(&mut value, vars)?;
        Ok(value)
    }

    /// `sluice check-config`: validates the effective configuration, including what
    /// only start-up would find (the TLS certificate and key load and match), and
    /// returns it as TOML with every secret redacted.
    pub fn check(file: Option<&Path>) -> anyhow::Result<String> {
        let value = Self::effective(file)?;
        let settings = Self::from_value(value.clone())?;
        let tls = &settings.server.tls;
        if tls.enabled() {
            crate::tls::Certificates::load(tls.cert_path.as_ref(), tls.key_path.as_ref())?;
        }
        Ok(toml::to_string_pretty(&redacted(value))?)
    }

    pub fn from_value(value: toml::Value) -> anyhow::Result<Settings> {
        let text = toml::to_string(&value)?;
        let s: Settings =
            toml::from_str(&text).map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        s.validate()?;
        Ok(s)
    }

    /// Defaults as shipped, for tests and tools.
    pub fn defaults() -> Settings {
        Self::from_value(toml::from_str(DEFAULT_TOML).expect("default.toml parses"))
            .expect("default.toml is valid")
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let fail =
            |key: &str, why: &str| Err(anyhow::anyhow!("invalid configuration: {key} {why}"));
        if !matches!(self.env.as_str(), "development" | "production") {
            return fail("env", "must be \"development\" or \"production\"");
        }
        if self.server.bind.parse::<SocketAddr>().is_err() {
            return fail("server.bind", "must be an address like 127.0.0.1:8080");
        }
        if let Err(e) =
            crate::http::client_addr::TrustedProxies::parse(&self.server.trusted_proxies)
        {
            return fail(
                "server.trusted_proxies",
                &format!("has an entry that is not valid: {e}"),
            );
        }
        if self.server.proxy_protocol && self.server.trusted_proxies.is_empty() {
            return fail(
                "server.proxy_protocol",
                "needs server.trusted_proxies (PROXY headers are accepted only from them)",
            );
        }
        if self.server.tls.cert_path.is_empty() != self.server.tls.key_path.is_empty() {
            return fail(
                "server.tls",
                "needs both cert_path and key_path (or neither, for plain HTTP)",
            );
        }
        if !(5..=1000).contains(&self.server.tick_ms) {
            return fail("server.tick_ms", "must be between 5 and 1000");
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.server.max_body_bytes) {
            return fail("server.max_body_bytes", "must be between 1024 and 16777216");
        }
        if self.store.commit_window_us > 1_000_000 {
            return fail("store.commit_window_us", "must be at most 1000000");
        }
        if !(10..=3_600_000).contains(&self.store.checkpoint_ms) {
            return fail("store.checkpoint_ms", "must be between 10 and 3600000");
        }
        if self.store.commit_max_batch == 0 || self.store.commit_queue == 0 {
            return fail("store.commit_max_batch/commit_queue", "must be positive");
        }
        if self.sink.kind != SinkKind::None && self.sink.url.is_empty() {
            return fail("sink.url", "is required when sink.kind is not \"none\"");
        }
        if !(1..=10_000).contains(&self.sink.batch_size) {
            return fail("sink.batch_size", "must be between 1 and 10000");
        }
        let w = &self.webhooks;
        if !(10..=120_000).contains(&w.timeout_ms) {
            return fail("webhooks.timeout_ms", "must be between 10 and 120000");
        }
        if w.min_backoff_ms == 0 || w.min_backoff_ms > w.max_backoff_ms {
            return fail(
                "webhooks.min_backoff_ms",
                "must be positive and at most webhooks.max_backoff_ms",
            );
        }
        if !(10..=600_000).contains(&w.refresh_ms) {
            return fail("webhooks.refresh_ms", "must be between 10 and 600000");
        }
        if !(1..=10_000).contains(&w.batch) {
            return fail("webhooks.batch", "must be between 1 and 10000");
        }
        if self.cluster.enabled {
            let c = &self.cluster;
            let id_ok = !c.node_id.is_empty()
                && c.node_id.len() <= 64
                && c.node_id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !id_ok {
                return fail(
                    "cluster.node_id",
                    "must match [a-z0-9-]{1,64} when cluster.enabled",
                );
            }
            if c.redis_url.is_empty() == c.sentinel.addresses.is_empty() {
                return fail(
                    "cluster.redis_url",
                    "or cluster.sentinel.addresses (exactly one) is required when cluster.enabled",
                );
            }
            if c.sentinel.enabled() {
                let bad = c.sentinel.addresses.iter().find(|a| {
                    a.rsplit_once(':')
                        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
                });
                if let Some(a) = bad {
                    return fail(
                        "cluster.sentinel.addresses",
                        &format!("must be host:port entries, not {a:?}"),
                    );
                }
                if c.sentinel.master_name.is_empty() {
                    return fail("cluster.sentinel.master_name", "must not be empty");
                }
            }
            if c.replica_acks > 0 && !(10..=60_000).contains(&c.replica_ack_timeout_ms) {
                return fail(
                    "cluster.replica_ack_timeout_ms",
                    "must be between 10 and 60000 when cluster.replica_acks is set",
                );
            }
            if !c.advertise.is_empty() && !c.advertise.starts_with("http://") {
                return fail(
                    "cluster.advertise",
                    "must be a base URL like http://10.0.0.5:8080",
                );
            }
            if !(500..=60_000).contains(&c.lease_ms) {
                return fail("cluster.lease_ms", "must be between 500 and 60000");
            }
            if c.renew_ms == 0 || c.renew_ms * 2 > c.lease_ms {
                return fail(
                    "cluster.renew_ms",
                    "must be positive and at most half of cluster.lease_ms",
                );
            }
        }
        if !(60..=30 * 86_400).contains(&self.auth.token_lifetime_secs) {
            return fail("auth.token_lifetime_secs", "must be between 60 and 2592000");
        }
        if self.auth.max_concurrent_hashes == 0 {
            return fail("auth.max_concurrent_hashes", "must be positive");
        }
        let secrets = [
            ("auth.jwt_secret", &self.auth.jwt_secret, DEV_JWT_SECRET),
            ("tokens.secret", &self.tokens.secret, DEV_TOKEN_SECRET),
        ];
        for (key, value, dev) in secrets {
            if value.is_empty() {
                return fail(key, "must not be empty");
            }
            self.check_secret(key, value, dev)?;
        }
        self.validate_admin()?;
        if self.env == "production" && self.payment.mode == PaymentMode::Simulated {
            return fail(
                "payment.mode",
                "is \"simulated\" (buyers mark their own orders paid); production needs \"external\"",
            );
        }
        Ok(())
    }

    /// In production: not the development value, at least `MIN_PRODUCTION_KEY_LEN` bytes.
    fn check_secret(&self, key: &str, value: &str, dev: &str) -> anyhow::Result<()> {
        if self.env != "production" {
            return Ok(());
        }
        if value == dev {
            anyhow::bail!(
                "invalid configuration: {key} still has its development value; set a real secret in production"
            );
        }
        if value.len() < MIN_PRODUCTION_KEY_LEN {
            anyhow::bail!(
                "invalid configuration: {key} must be at least {MIN_PRODUCTION_KEY_LEN} bytes in production"
            );
        }
        Ok(())
    }

    /// `admin.api_key` and `admin.keys`: at least one key, names and keys unique and
    /// well-formed, production strength; cluster mode needs `api_key` (its shared secret).
    fn validate_admin(&self) -> anyhow::Result<()> {
        let a = &self.admin;
        if a.api_key.is_empty() && (a.keys.is_empty() || self.cluster.enabled) {
            anyhow::bail!(
                "invalid configuration: admin.api_key must not be empty (cluster mode uses it between nodes; otherwise admin.keys may replace it)"
            );
        }
        if !a.api_key.is_empty() {
            self.check_secret("admin.api_key", &a.api_key, DEV_ADMIN_KEY)?;
        }
        let mut names = std::collections::HashSet::from(["default"]);
        let mut keys = std::collections::HashSet::from([a.api_key.as_str()]);
        for (i, k) in a.keys.iter().enumerate() {
            let at = format!("admin.keys[{i}]");
            let name_ok = (1..=64).contains(&k.name.len())
                && k.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !name_ok {
                anyhow::bail!("invalid configuration: {at}.name must be 1-64 of [A-Za-z0-9._-]");
            }
            if !names.insert(k.name.as_str()) {
                anyhow::bail!("invalid configuration: {at}.name {:?} is used twice (\"default\" is admin.api_key's)", k.name);
            }
            if k.key.is_empty() || k.key.len() > 256 || k.key.bytes().any(|b| !b.is_ascii_graphic())
            {
                anyhow::bail!("invalid configuration: {at}.key must be 1-256 printable ASCII characters without spaces");
            }
            if !keys.insert(k.key.as_str()) {
                anyhow::bail!("invalid configuration: {at}.key is the same as another admin key");
            }
            self.check_secret(&format!("{at}.key"), &k.key, DEV_ADMIN_KEY)?;
        }
        Ok(())
    }

    /// The base URL other nodes reach this one at.
    pub fn advertise(&self) -> String {
        if self.cluster.advertise.is_empty() {
            format!("http://{}", self.server.bind)
        } else {
            self.cluster.advertise.trim_end_matches('/').to_owned()
        }
    }

    pub fn commit_window(&self) -> Duration {
        Duration::from_micros(self.store.commit_window_us)
    }
}

/// Keys whose values are secrets, and keys holding URLs whose password is one.
const SECRETS: [&str; 5] = [
    "auth.jwt_secret",
    "admin.api_key",
    "tokens.secret",
    "cluster.sentinel.sentinel_password",
    "cluster.sentinel.password",
];
/// Lists of tables whose `key` field is a secret.
const KEY_LISTS: [&str; 1] = ["admin.keys"];
const URLS: [&str; 2] = ["sink.url", "cluster.redis_url"];

/// `value` with secrets replaced by `"<redacted>"` and URL passwords by `***`.
fn redacted(mut value: toml::Value) -> toml::Value {
    for key in SECRETS {
        if let Some(v) = lookup(&mut value, key) {
            *v = toml::Value::String("<redacted>".into());
        }
    }
    for key in URLS {
        if let Some(toml::Value::String(url)) = lookup(&mut value, key) {
            *url = without_password(url);
        }
    }
    for list in KEY_LISTS {
        if let Some(toml::Value::Array(entries)) = lookup(&mut value, list) {
            for e in entries.iter_mut().filter_map(toml::Value::as_table_mut) {
                if let Some(k) = e.get_mut("key") {
                    *k = toml::Value::String("<redacted>".into());
                }
            }
        }
    }
    value
}

fn lookup<'a>(value: &'a mut toml::Value, dotted: &str) -> Option<&'a mut toml::Value> {
    dotted
        .split('.')
        .try_fold(value, |at, part| at.get_mut(part))
}

/// `scheme://user:secret@host/...` as `scheme://user:***@host/...`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Overlays `over` onto `base`; every key must already exist in the defaults.
fn merge(base: &mut toml::Value, over: toml::Value, path: &str) -> anyhow::Result<()> {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let slot = b
                    .get_mut(&k)
                    .ok_or_else(|| anyhow::anyhow!("invalid configuration: unknown key {p}"))?;
                merge(slot, v, &p)?;
            }
            Ok(())
        }
        (b, o) => {
            *b = o;
            Ok(())
        }
    }
}

/// `SLUICE__SERVER__BIND=...` sets `server.bind`; the value is read with the type of
/// the key it replaces, so a numeric-looking secret stays a string.
fn apply_env(
    value: &mut toml::Value,
    vars: impl Iterator<Item = (String, String)>,
) -> anyhow::Result<()> {
    for (k, raw) in vars {
        let path: Vec<String> = k["SLUICE__".len()..]
            .split("__")
            .map(|s| s.to_lowercase())
            .collect();
        let dotted = path.join(".");
        let mut slot = &mut *value;
        for part in &path {
            slot = slot.get_mut(part.as_str()).ok_or_else(|| {
                anyhow::anyhow!("invalid configuration: {k} names unknown key {dotted}")
            })?;
        }
        *slot = match slot {
            toml::Value::String(_) => toml::Value::String(raw),
            toml::Value::Integer(_) => toml::Value::Integer(raw.trim().parse().map_err(|_| {
                anyhow::anyhow!("invalid configuration: {dotted} ({k}) must be an integer")
            })?),
            toml::Value::Boolean(_) => toml::Value::Boolean(raw.trim().parse().map_err(|_| {
                anyhow::anyhow!("invalid configuration: {dotted} ({k}) must be true or false")
            })?),
            // A TOML array as is (`admin.keys`: `[{name = "shop", key = "...", role = "shop"}]`).
            toml::Value::Array(_) if raw.trim_start().starts_with('[') => {
                // The parser's message would quote the value, which may hold keys.
                let parsed: toml::Table = toml::from_str(&format!("v = {raw}")).map_err(|_| {
                    anyhow::anyhow!("invalid configuration: {dotted} ({k}) is not a TOML array")
                })?;
                parsed
                    .get("v")
                    .cloned()
                    .unwrap_or(toml::Value::Array(Vec::new()))
            }
            // A list of strings, comma-separated: `10.0.0.0/8,192.168.1.7`.
            toml::Value::Array(_) => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_owned()))
                    .collect(),
            ),
            _ => {
                anyhow::bail!("invalid configuration: {dotted} cannot be set from the environment")
            }
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let s = Settings::defaults();
        assert_eq!(s.server.bind, "127.0.0.1:8080");
        assert_eq!(s.sink.kind, SinkKind::None);
    }

    #[test]
    fn env_overrides_keep_types_and_name_bad_keys() {
        let mut v: toml::Value = toml::from_str(DEFAULT_TOML).expect("parses");
        let vars = vec![
            (
                "SLUICE__SERVER__BIND".to_string(),
                "127.0.0.1:9000".to_string(),
            ),
            ("SLUICE__SERVER__TICK_MS".to_string(), "20".to_string()),
            ("SLUICE__ADMIN__API_KEY".to_string(), "12345".to_string()),
        ];
        apply_env(&mut v, vars.into_iter()).expect("applies");
        let s = Settings::from_value(v).expect("valid");
        assert_eq!(s.server.bind, "127.0.0.1:9000");
        assert_eq!(s.server.tick_ms, 20);
        assert_eq!(s.admin.api_key, "12345");

        let mut v: toml::Value = toml::from_str(DEFAULT_TOML).expect("parses");
        let err = apply_env(
            &mut v,
            vec![("SLUICE__SERVER__NOPE".into(), "1".into())].into_iter(),
        )
        .expect_err("unknown");
        assert!(err.to_string().contains("server.nope"), "{err}");
        let err = apply_env(
            &mut v,
            vec![("SLUICE__SERVER__TICK_MS".into(), "x".into())].into_iter(),
        )
        .expect_err("not a number");
        assert!(err.to_string().contains("server.tick_ms"), "{err}");
    }

    #[test]
    fn the_effective_settings_are_printed_without_secrets() {
        let mut v: toml::Value = toml::from_str(DEFAULT_TOML).expect("parses");
        apply_env(
            &mut v,
            vec![
                (
                    "SLUICE__SINK__URL".into(),
                    "postgres://app:hunter2@db/sluice".into(),
                ),
                ("SLUICE__SINK__KIND".into(), "postgres".into()),
            ]
            .into_iter(),
        )
        .expect("ok");
        let text = toml::to_string(&redacted(v)).expect("toml");
        assert!(text.contains("postgres://app:***@db/sluice"), "{text}");
        for secret in [DEV_JWT_SECRET, DEV_ADMIN_KEY, DEV_TOKEN_SECRET, "hunter2"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(
            without_password("redis://10.0.0.9:6379"),
            "redis://10.0.0.9:6379"
        );
    }

    #[test]
    fn webhook_delivery_settings_are_checked() {
        let s = Settings::defaults();
        assert_eq!(s.webhooks.timeout_ms, 5_000);
        for (tweak, key) in [
            (
                (|s: &mut Settings| s.webhooks.min_backoff_ms = 70_000) as fn(&mut Settings),
                "webhooks.min_backoff_ms",
            ),
            (|s| s.webhooks.timeout_ms = 0, "webhooks.timeout_ms"),
            (|s| s.webhooks.batch = 0, "webhooks.batch"),
            (|s| s.webhooks.refresh_ms = 1, "webhooks.refresh_ms"),
        ] {
            let mut s = Settings::defaults();
            tweak(&mut s);
            let err = s.validate().expect_err("refused");
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn production_refuses_development_secrets() {
        let mut v: toml::Value = toml::from_str(DEFAULT_TOML).expect("parses");
        apply_env(
            &mut v,
            vec![("SLUICE__ENV".into(), "production".into())].into_iter(),
        )
        .expect("ok");
        let err = Settings::from_value(v).expect_err("dev secrets");
        assert!(err.to_string().contains("auth.jwt_secret"), "{err}");
    }

    /// Production settings with every secret strong, so one change shows its refusal.
    fn production(extra: Vec<(&str, &str)>) -> anyhow::Result<Settings> {
        let strong = "0123456789abcdef0123456789abcdef";
        let mut v: toml::Value = toml::from_str(DEFAULT_TOML).expect("parses");
        let mut vars: Vec<(String, String)> = vec![
            ("SLUICE__ENV".into(), "production".into()),
            ("SLUICE__AUTH__JWT_SECRET".into(), format!("{strong}-jwt")),
            ("SLUICE__ADMIN__API_KEY".into(), format!("{strong}-admin")),
            ("SLUICE__TOKENS__SECRET".into(), format!("{strong}-tok")),
            ("SLUICE__PAYMENT__MODE".into(), "external".into()),
        ];
        vars.extend(extra.into_iter().map(|(k, v)| (k.into(), v.into())));
        apply_env(&mut v, vars.into_iter())?;
        Settings::from_value(v)
    }

    #[test]
    fn production_refuses_simulated_payment_short_keys_and_the_dev_key() {
        let ok = production(vec![]).expect("valid");
        assert_eq!(ok.payment.mode, PaymentMode::External);
        let err = |extra| production(extra).expect_err("refused").to_string();
        let e = err(vec![("SLUICE__PAYMENT__MODE", "simulated")]);
        assert!(e.contains("payment.mode"), "{e}");
        let e = err(vec![(
            "SLUICE__ADMIN__KEYS",
            r#"[{name = "shop", key = "short-key", role = "shop"}]"#,
        )]);
        assert!(
            e.contains("admin.keys[0].key") && e.contains("32 bytes"),
            "{e}"
        );
        let e = err(vec![(
            "SLUICE__ADMIN__KEYS",
            r#"[{name = "x", key = "sluice-dev-admin-key", role = "viewer"}]"#,
        )]);
        assert!(e.contains("admin.keys[0].key"), "{e}");
        let e = err(vec![("SLUICE__ADMIN__API_KEY", "too-short")]);
        assert!(e.contains("admin.api_key"), "{e}");
        // Development takes anything non-empty, and simulated payment.
        assert_eq!(Settings::defaults().payment.mode, PaymentMode::Simulated);
    }

    #[test]
    fn admin_keys_come_from_the_environment_and_are_checked_and_redacted() {
        let keys = r#"[{name = "shop-backend", key = "k-shop-0123456789abcdef0123456789ab", role = "shop"},
                       {name = "ops", key = "k-view-0123456789abcdef0123456789ab", role = "viewer"}]"#;
        let s = production(vec![("SLUICE__ADMIN__KEYS", keys)]).expect("valid");
        let got: Vec<(&str, AdminRole)> = s
            .admin
            .keys
            .iter()
            .map(|k| (k.name.as_str(), k.role))
            .collect();
        assert_eq!(
            got,
            [
                ("shop-backend", AdminRole::Shop),
                ("ops", AdminRole::Viewer)
            ]
        );
        let mut v: toml::Value = toml::from_str(DEFAULT_TOML).expect("parses");
        apply_env(
            &mut v,
            vec![("SLUICE__ADMIN__KEYS".to_string(), keys.to_string())].into_iter(),
        )
        .expect("applies");
        let text = toml::to_string(&redacted(v)).expect("toml");
        assert!(
            text.contains("shop-backend") && !text.contains("k-shop-"),
            "{text}"
        );

        let bad = |keys: &str| {
            production(vec![("SLUICE__ADMIN__KEYS", keys)])
                .expect_err("refused")
                .to_string()
        };
        let twice =
            r#"[{name = "default", key = "k-0123456789abcdef0123456789abcdef", role = "shop"}]"#;
        assert!(bad(twice).contains("admin.keys[0].name"));
        let role = r#"[{name = "a", key = "k-0123456789abcdef0123456789abcdef", role = "root"}]"#;
        let e = bad(role);
        assert!(e.contains("root") && !e.contains("k-0123"), "{e}");
        // The parser's error would quote the key: it is not repeated.
        let broken = r#"[{name = "a", key = "secret-0123456789abcdef0123456789abcdef""#;
        let e = bad(broken);
        assert!(e.contains("admin.keys") && !e.contains("secret-"), "{e}");
    }

    #[test]
    fn without_api_key_scoped_keys_suffice_outside_cluster_mode() {
        let mut s = Settings::defaults();
        s.admin.api_key = String::new();
        assert!(s.validate().is_err(), "no key at all");
        s.admin.keys = vec![AdminKeySettings {
            name: "ops".into(),
            key: "any".into(),
            role: AdminRole::Operator,
        }];
        s.validate().expect("a scoped key is enough");
        s.cluster.enabled = true;
        s.cluster.node_id = "n1".into();
        s.cluster.redis_url = "redis://127.0.0.1".into();
        let e = s.validate().expect_err("cluster needs it").to_string();
        assert!(e.contains("admin.api_key"), "{e}");
    }

    fn cluster_with(vars: &[(&str, &str)]) -> (anyhow::Result<Settings>, String) {
        let mut v: toml::Value = toml::from_str(DEFAULT_TOML).expect("parses");
        let mut all = vec![
            ("SLUICE__CLUSTER__ENABLED".to_owned(), "true".to_owned()),
            ("SLUICE__CLUSTER__NODE_ID".to_owned(), "n1".to_owned()),
        ];
        all.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        apply_env(&mut v, all.into_iter()).expect("known keys");
        let printed = toml::to_string(&redacted(v.clone())).expect("toml");
        (Settings::from_value(v), printed)
    }

    #[test]
    fn the_cluster_redis_is_a_url_or_sentinels_never_both_and_their_passwords_stay_secret() {
        let sentinels = (
            "SLUICE__CLUSTER__SENTINEL__ADDRESSES",
            "10.0.0.1:26379, s2:26379",
        );
        let (s, printed) = cluster_with(&[
            sentinels,
            ("SLUICE__CLUSTER__SENTINEL__PASSWORD", "hunter2"),
            ("SLUICE__CLUSTER__SENTINEL__SENTINEL_PASSWORD", "swordfish"),
            ("SLUICE__CLUSTER__REPLICA_ACKS", "1"),
        ]);
        let s = s.expect("valid");
        assert_eq!(s.cluster.sentinel.addresses, ["10.0.0.1:26379", "s2:26379"]);
        assert_eq!(s.cluster.replica_acks, 1);
        assert!(
            !printed.contains("hunter2") && !printed.contains("swordfish"),
            "{printed}"
        );
        let both = cluster_with(&[sentinels, ("SLUICE__CLUSTER__REDIS_URL", "redis://r:6379")]);
        let neither = cluster_with(&[]);
        for (res, _) in [both, neither] {
            let err = res.expect_err("exactly one");
            assert!(err.to_string().contains("cluster.redis_url"), "{err}");
        }
        let (bad, _) = cluster_with(&[("SLUICE__CLUSTER__SENTINEL__ADDRESSES", "nohost")]);
        let err = bad.expect_err("host:port");
        assert!(
            err.to_string().contains("cluster.sentinel.addresses"),
            "{err}"
        );
    }
}
