//! A throwaway Sentinel group (`--sentinel-group`, implied by
//! `--kill redis-primary`): a Redis primary, `--replicas` replicas and three sentinels
//! (`redis-server --sentinel`), each on a free loopback port with its own
//! dir, no persistence. The sentinels judge a primary down after 1 s, so a
//! promotion takes a few seconds (as in scripts/sentinel-group.sh).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use redis::InfoDict;

use super::redis_server::{ask, Redis, NO_PERSISTENCE};

/// The name the sentinels monitor the primary under.
pub const MASTER: &str = "sluice";
/// How long the group may take to form, or a restarted server to be attached.
const FORM_LIMIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

pub struct SentinelGroup {
    /// The primary the group started with (killed by `--kill redis-primary`,
    /// then replaced by an empty one on the same port).
    pub primary: Redis,
    pub replicas: Vec<Redis>,
    pub sentinels: Vec<Redis>,
    binary: PathBuf,
    dir: PathBuf,
    /// Replacements of the primary so far (each gets its own dir).
    restarts: u32,
}

impl SentinelGroup {
    /// Starts the group under `dir` and waits until every sentinel knows the
    /// replicas and the two other sentinels (a failover can be agreed on).
    pub async fn start(binary: &Path, dir: &Path, replicas: usize) -> Result<Self, String> {
        let free = crate::server::free_port;
        let primary = Redis::launch(binary, &dir.join("primary"), free()?, &NO_PERSISTENCE).await?;
        let p = primary.port.to_string();
        let mut replica_args = NO_PERSISTENCE.to_vec();
        replica_args.extend(["--replicaof", "127.0.0.1", &p]);
        let mut group = Self {
            primary,
            replicas: Vec::new(),
            sentinels: Vec::new(),
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            restarts: 0,
        };
        for i in 1..=replicas.max(1) {
            let rdir = dir.join(format!("replica{i}"));
            let replica = Redis::launch(binary, &rdir, free()?, &replica_args).await?;
            group.until_replicating(replica.port, FORM_LIMIT).await?;
            group.replicas.push(replica);
        }
        let conf = format!(
            "sentinel monitor {MASTER} 127.0.0.1 {p} 2\n\
             sentinel down-after-milliseconds {MASTER} 1000\n\
             sentinel failover-timeout {MASTER} 4000\n\
             sentinel parallel-syncs {MASTER} 1\n"
        );
        for i in 1..=3 {
            let sdir = dir.join(format!("sentinel{i}"));
            std::fs::create_dir_all(&sdir)
                .map_err(|e| format!("create {}: {e}", sdir.display()))?;
            // A sentinel rewrites its config file, so each has its own.
            let file = sdir.join("sentinel.conf");
            std::fs::write(&file, &conf).map_err(|e| format!("write {}: {e}", file.display()))?;
            let file = file.to_string_lossy().into_owned();
            let s = Redis::launch(binary, &sdir, free()?, &[&file, "--sentinel"]).await?;
            group.sentinels.push(s);
        }
        group.until_formed().await?;
        Ok(group)
    }

    /// `host:port,...` of the sentinels (`cluster.sentinel.addresses`).
    pub fn addresses(&self) -> String {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The primary's port as the first sentinel that answers names it.
    pub async fn primary_port(&self) -> Option<u16> {
        for s in &self.sentinels {
            let mut q = redis::cmd("SENTINEL");
            q.arg("get-master-addr-by-name").arg(MASTER);
            if let Ok(Some((_host, port))) = ask::<Option<(String, u16)>>(s.port, &q).await {
                return Some(port);
            }
        }
        None
    }

    /// Waits (up to `limit`) until the sentinels name a primary other than `old`.
    pub async fn until_promoted(&self, old: u16, limit: Duration) -> Option<u16> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            match self.primary_port().await {
                Some(p) if p != old => return Some(p),
                _ => tokio::time::sleep(POLL).await,
            }
        }
        None
    }

    /// An empty redis-server on the killed primary's port (the dead machine
    /// replaced); Sentinel attaches it to the new primary as its replica.
    pub async fn replace_primary(&mut self) -> Result<(), String> {
        self.primary.kill9().await;
        self.restarts += 1;
        let dir = self.dir.join(format!("primary-restart{}", self.restarts));
        let port = self.primary.port;
        self.primary = Redis::launch(&self.binary, &dir, port, &NO_PERSISTENCE).await?;
        Ok(())
    }

    /// Waits (up to `limit`) until the server on `port` is a replica whose
    /// link to its primary is up.
    pub async fn until_replicating(&self, port: u16, limit: Duration) -> Result<(), String> {
        let until = Instant::now() + limit;
        let mut last = String::new();
        while Instant::now() < until {
            match ask::<String>(port, redis::cmd("INFO").arg("replication")).await {
                Ok(text) => {
                    let info = InfoDict::new(&text);
                    let field = |k| info.get::<String>(k);
                    if field("role").as_deref() == Some("slave")
                        && field("master_link_status").as_deref() == Some("up")
                    {
                        return Ok(());
                    }
                    last = text.replace("\r\n", " ");
                }
                Err(e) => last = e,
            }
            tokio::time::sleep(POLL).await;
        }
        Err(format!(
            "redis-server on {port} was not a replica with its link up within {limit:?}: {last}"
        ))
    }

    async fn until_formed(&self) -> Result<(), String> {
        for s in &self.sentinels {
            let until = Instant::now() + FORM_LIMIT;
            loop {
                let fields: Vec<String> =
                    ask(s.port, redis::cmd("SENTINEL").arg("MASTER").arg(MASTER))
                        .await
                        .unwrap_or_default();
                let n = |k: &str| {
                    fields
                        .chunks(2)
                        .find(|kv| kv[0] == k)
                        .and_then(|kv| kv.get(1)?.parse::<u32>().ok())
                };
                let replicas = u32::try_from(self.replicas.len()).unwrap_or(u32::MAX);
                if n("num-slaves") >= Some(replicas) && n("num-other-sentinels") >= Some(2) {
                    break;
                }
                if Instant::now() >= until {
                    return Err(format!(
                        "sentinel on {} did not see the replicas and two other sentinels within {FORM_LIMIT:?}: {fields:?}",
                        s.port
                    ));
                }
                tokio::time::sleep(POLL).await;
            }
        }
        Ok(())
    }

    /// SIGTERM every process (SIGKILL after 5 s each).
    pub async fn stop(&mut self) {
        for s in &mut self.sentinels {
            s.stop().await;
        }
        for r in &mut self.replicas {
            r.stop().await;
        }
        self.primary.stop().await;
    }

    /// SIGKILL every process without waiting.
    pub fn kill_now(&mut self) {
        for s in &mut self.sentinels {
            s.kill_now();
        }
        for r in &mut self.replicas {
            r.kill_now();
        }
        self.primary.kill_now();
    }
}
