//! The cluster's Redis primary: a fixed `cluster.redis_url`, or the primary that Redis
//! Sentinel names for `cluster.sentinel.master_name`. With Sentinel, every round asks
//! the sentinels again; when they name another primary (a promotion), both
//! connections are replaced by connections to it and the failover is recorded, so
//! everything after it (renewals, fenced writes, takeovers) goes to the new primary.
//!
//! Two connections: `control` (membership, leases, views) and `writes` (the
//! replicator's fenced commits and their `WAIT`, which blocks its connection while
//! the replicas catch up and must not hold up a lease renewal).

use crate::config::ClusterSettings;
use anyhow::Context as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Client, ConnectionAddr};
use serde::Serialize;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A promotion this node followed.
#[derive(Debug, Clone, Serialize)]
pub struct Failover {
    /// When this node switched, ms since the Unix epoch.
    pub at_ms: u64,
    pub from: String,
    pub to: String,
}

/// A replica of the primary, from `ROLE`.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaOut {
    pub addr: String,
    /// The replication offset it has confirmed.
    pub offset: i64,
}

/// What `GET /api/admin/cluster` shows of Redis.
#[derive(Debug, Clone, Serialize)]
pub struct RedisStatus {
    pub primary: String,
    pub via_sentinel: bool,
    /// The role the primary itself reports (`master`, or `replica` while demoted).
    pub role: Option<&'static str>,
    pub offset: Option<u64>,
    pub replicas: Vec<ReplicaOut>,
    pub last_failover: Option<Failover>,
}

#[derive(Default)]
struct Observed {
    role: Option<&'static str>,
    offset: Option<u64>,
    replicas: Vec<ReplicaOut>,
}

struct Current {
    /// `host:port` of the primary.
    addr: String,
    control: ConnectionManager,
    writes: ConnectionManager,
}

pub struct Primary {
    /// `None`: a fixed URL, never re-resolved.
    sentinel: Option<tokio::sync::Mutex<SentinelClient>>,
    control_config: ConnectionManagerConfig,
    writes_config: ConnectionManagerConfig,
    /// How long one discovery through the sentinels may take.
    ask_timeout: Duration,
    current: RwLock<Current>,
    last_failover: Mutex<Option<Failover>>,
    /// The last `ROLE` answer of the primary.
    observed: Mutex<Observed>,
}

impl Primary {
    pub async fn connect(c: &ClusterSettings) -> anyhow::Result<Primary> {
        let renew = Duration::from_millis(c.renew_ms);
        let control_config = ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_max_delay(renew)
            .set_connection_timeout(Some(renew))
            .set_response_timeout(Some(renew));
        // A pipeline ends with `WAIT`, which may take its whole timeout.
        let wait = Duration::from_millis(c.replica_ack_timeout_ms);
        let writes_config = control_config
            .clone()
            .set_response_timeout(Some(renew + wait));
        let (sentinel, client) = if c.sentinel.enabled() {
            let mut sentinel = sentinel_client(c)?;
            let client = tokio::time::timeout(renew * 5, sentinel.async_get_client())
                .await
                .map_err(|_| anyhow::anyhow!("the sentinels did not answer in time"))?
                .with_context(|| {
                    format!(
                        "no primary for {:?} from the sentinels {:?}",
                        c.sentinel.master_name, c.sentinel.addresses
                    )
                })?;
            (Some(tokio::sync::Mutex::new(sentinel)), client)
        } else {
            let target = crate::store::sink::redact_url(&c.redis_url);
            let client = Client::open(c.redis_url.as_str())
                .with_context(|| format!("invalid cluster.redis_url {target}"))?;
            (None, client)
        };
        let current = open(&client, &control_config, &writes_config)
            .await
            .with_context(|| {
                format!("cannot connect to the cluster's Redis at {}", addr(&client))
            })?;
        Ok(Primary {
            sentinel,
            control_config,
            writes_config,
            ask_timeout: renew,
            current: RwLock::new(current),
            last_failover: Mutex::new(None),
            observed: Mutex::new(Observed::default()),
        })
    }

    fn current(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The connection for leases, membership and views.
    pub fn conn(&self) -> ConnectionManager {
        self.current().control.clone()
    }

    /// The connection for replicated writes and their `WAIT`.
    pub fn writes(&self) -> ConnectionManager {
        self.current().writes.clone()
    }

    /// `host:port` of the primary in use.
    pub fn addr(&self) -> String {
        self.current().addr.clone()
    }

    pub fn last_failover(&self) -> Option<Failover> {
        self.last_failover
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Asks the primary for its role and replicas (`ROLE`), for the status page.
    pub async fn observe(&self) {
        let mut conn = self.conn();
        let role: redis::RedisResult<redis::Role> = redis::cmd("ROLE").query_async(&mut conn).await;
        let seen = match role {
            Ok(redis::Role::Primary {
                replication_offset,
                replicas,
            }) => Observed {
                role: Some("master"),
                offset: Some(replication_offset),
                replicas: replicas
                    .into_iter()
                    .map(|r| ReplicaOut {
                        addr: format!("{}:{}", r.ip, r.port),
                        offset: r.replication_offset,
                    })
                    .collect(),
            },
            Ok(redis::Role::Replica { .. }) => Observed {
                role: Some("replica"),
                ..Observed::default()
            },
            Ok(_) | Err(_) => Observed::default(),
        };
        *self.observed.lock().unwrap_or_else(|e| e.into_inner()) = seen;
    }

    /// Replicas of the primary in sync with it (`state=online` in `INFO
    /// replication`); `None` if the primary cannot be asked.
    pub async fn online_replicas(&self) -> Option<u32> {
        let mut conn = self.conn();
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut conn)
            .await
            .ok()?;
        Some(online_in(&info))
    }

    pub fn status(&self) -> RedisStatus {
        let seen = self.observed.lock().unwrap_or_else(|e| e.into_inner());
        RedisStatus {
            primary: self.addr(),
            via_sentinel: self.sentinel.is_some(),
            role: seen.role,
            offset: seen.offset,
            replicas: seen.replicas.clone(),
            last_failover: self.last_failover(),
        }
    }

    /// Asks the sentinels for the primary; switches to it if it changed. True on a
    /// switch. A fixed URL never switches. Errors are logged, not fatal: the next
    /// round asks again.
    pub async fn follow(&self) -> bool {
        let Some(sentinel) = &self.sentinel else {
            return false;
        };
        let client = {
            let mut s = sentinel.lock().await;
            match tokio::time::timeout(self.ask_timeout, s.async_get_client()).await {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the sentinels name no reachable primary");
                    return false;
                }
                Err(_) => {
                    tracing::warn!("the sentinels did not answer in time");
                    return false;
                }
            }
        };
        let to = addr(&client);
        let from = self.addr();
        if to == from {
            return false;
        }
        let next = match open(&client, &self.control_config, &self.writes_config).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(primary = %to, error = %e, "cannot connect to the new primary");
                return false;
            }
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        tracing::warn!(from = %from, to = %to, "following a Redis failover to the new primary");
        metrics::counter!("sluice_cluster_redis_failovers_total").increment(1);
        *self.last_failover.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Failover { at_ms, from, to });
        true
    }
}

fn sentinel_client(c: &ClusterSettings) -> anyhow::Result<SentinelClient> {
    let s = &c.sentinel;
    let addrs = s
        .addresses
        .iter()
        .map(|a| {
            let (host, port) = a.rsplit_once(':').context("sentinel address host:port")?;
            Ok(ConnectionAddr::Tcp(host.to_owned(), port.parse()?))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut b = SentinelClientBuilder::new(addrs, &s.master_name, SentinelServerType::Master)?;
    if !s.sentinel_username.is_empty() {
        b = b.set_client_to_sentinel_username(&s.sentinel_username);
    }
    if !s.sentinel_password.is_empty() {
        b = b.set_client_to_sentinel_password(&s.sentinel_password);
    }
    if !s.username.is_empty() {
        b = b.set_client_to_redis_username(&s.username);
    }
    if !s.password.is_empty() {
        b = b.set_client_to_redis_password(&s.password);
    }
    Ok(b.build()?)
}

fn addr(client: &Client) -> String {
    client.get_connection_info().addr().to_string()
}

async fn open(
    client: &Client,
    control: &ConnectionManagerConfig,
    writes: &ConnectionManagerConfig,
) -> redis::RedisResult<Current> {
    Ok(Current {
        addr: addr(client),
        control: ConnectionManager::new_with_config(client.clone(), control.clone()).await?,
        writes: ConnectionManager::new_with_config(client.clone(), writes.clone()).await?,
    })
}

/// Counts the `slaveN:...,state=online,...` lines of `INFO replication`.
fn online_in(info: &str) -> u32 {
    let online = info
        .lines()
        .filter(|l| l.starts_with("slave") && l.contains("state=online"))
        .count();
    u32::try_from(online).unwrap_or(u32::MAX)
}

/// `WAIT` for `acks` replicas (0 = off: true at once): whether they confirmed every
/// write this connection made, within `timeout_ms`.
pub async fn replicas_confirm(
    conn: &mut ConnectionManager,
    acks: u32,
    timeout_ms: u64,
) -> Result<bool, redis::RedisError> {
    if acks == 0 {
        return Ok(true);
    }
    let confirmed: i64 = redis::cmd("WAIT")
        .arg(acks)
        .arg(timeout_ms)
        .query_async(conn)
        .await?;
    Ok(confirmed >= i64::from(acks))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_replicas_in_sync_count() {
        let info = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n\
            slave0:ip=127.0.0.1,port=7001,state=online,offset=42,lag=0\r\n\
            slave1:ip=127.0.0.1,port=7002,state=wait_bgsave,offset=0,lag=0\r\n\
            master_failover_state:no-failover\r\n";
        assert_eq!(super::online_in(info), 1);
        assert_eq!(
            super::online_in("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n"),
            0
        );
    }
}
