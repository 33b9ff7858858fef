//! A Redis primary, one (or more) replicas and three sentinels (`redis-server --sentinel`),
//! each on a free port with its own temp dir, for the Redis failover tests. The
//! sentinels judge a primary down after 1 s, so a promotion takes a few seconds.

use crate::harness::Redis;
use std::collections::HashMap;
use std::time::Duration;

pub const MASTER: &str = "sluice";

pub struct Sentinels {
    /// The primary the group starts with (a replica after a promotion, if alive).
    pub primary: Redis,
    pub replicas: Vec<Redis>,
    sentinels: Vec<Redis>,
}

async fn conn(port: u16) -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let connecting = client.get_multiplexed_async_connection();
    tokio::time::timeout(Duration::from_secs(1), connecting)
        .await
        .ok()?
        .ok()
}

async fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> Option<T> {
    let mut c = conn(port).await?;
    tokio::time::timeout(Duration::from_secs(1), cmd.query_async(&mut c))
        .await
        .ok()?
        .ok()
}

impl Sentinels {
    pub async fn start(replicas: usize) -> Sentinels {
        let primary = Redis::start().await;
        let p = primary.port.to_string();
        let mut s = Sentinels {
            primary,
            replicas: Vec::new(),
            sentinels: Vec::new(),
        };
        for _ in 0..replicas {
            let r = Redis::launch(None, &["--replicaof", "127.0.0.1", &p]).await;
            s.until_replicating(r.port).await;
            s.replicas.push(r);
        }
        let conf = format!(
            "sentinel monitor {MASTER} 127.0.0.1 {p} 2\n\
             sentinel down-after-milliseconds {MASTER} 1000\n\
             sentinel failover-timeout {MASTER} 4000\n\
             sentinel parallel-syncs {MASTER} 1\n"
        );
        for _ in 0..3 {
            s.sentinels.push(Redis::launch(Some(&conf), &[]).await);
        }
        s.until_ready().await;
        s
    }

    /// Settings of a node that finds the primary through these sentinels and waits
    /// for one replica's confirmation of every write.
    pub fn node_env(&self) -> Vec<(&'static str, String)> {
        let addrs: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        vec![
            ("SLUICE__CLUSTER__SENTINEL__ADDRESSES", addrs.join(",")),
            ("SLUICE__CLUSTER__SENTINEL__MASTER_NAME", MASTER.to_owned()),
            ("SLUICE__CLUSTER__REPLICA_ACKS", "1".to_owned()),
        ]
    }

    /// The primary's port as the first sentinel that answers names it.
    pub async fn primary_port(&self) -> Option<u16> {
        let mut ask = redis::cmd("SENTINEL");
        ask.arg("get-master-addr-by-name").arg(MASTER);
        for s in &self.sentinels {
            if let Some((_, port)) = query::<(String, u16)>(s.port, &ask).await {
                return Some(port);
            }
        }
        None
    }

    /// Waits until the sentinels name a primary other than `old` and returns it.
    pub async fn until_promoted(&self, old: u16) -> u16 {
        for _ in 0..600 {
            match self.primary_port().await {
                Some(p) if p != old => return p,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        panic!("the sentinels promoted no replica of {old}");
    }

    /// The role `redis-server` on `port` reports (`master` or `slave`).
    pub async fn role(port: u16) -> Option<String> {
        let info: String = query(port, &redis::cmd("INFO").arg("replication").clone()).await?;
        info.lines()
            .find_map(|l| l.strip_prefix("role:"))
            .map(|r| r.trim().to_owned())
    }

    /// Waits until the server on `port` is a replica with its link to a primary up.
    pub async fn until_replicating(&self, port: u16) {
        for _ in 0..600 {
            let info: Option<String> =
                query(port, &redis::cmd("INFO").arg("replication").clone()).await;
            if info.is_some_and(|i| i.contains("role:slave") && i.contains("master_link_status:up"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server on {port} is not replicating");
    }

    /// Every sentinel knows the replicas and the two other sentinels: a failover
    /// can be agreed on from now.
    async fn until_ready(&self) {
        let mut ask = redis::cmd("SENTINEL");
        ask.arg("MASTER").arg(MASTER);
        for s in &self.sentinels {
            let mut ready = false;
            for _ in 0..600 {
                let fields: Option<HashMap<String, String>> = query(s.port, &ask).await;
                ready = fields.is_some_and(|f| {
                    let n = |k: &str| f.get(k).and_then(|v| v.parse::<u32>().ok());
                    n("num-slaves") >= Some(self.replicas.len() as u32)
                        && n("num-other-sentinels") >= Some(2)
                });
                if ready {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(ready, "sentinel on {} never saw the whole group", s.port);
        }
    }
}
