//! The environment of a cluster node: what all nodes share (cluster mode,
//! Redis or its sentinels, secrets, lifted per-IP limits) and what is its own (id, address).

use super::redis::ClusterRedis;
use crate::cli::ClusterArgs;

/// Variables every node gets. `SLUICE__SERVER__BIND` and
/// `SLUICE__STORE__PATH` are set by [`crate::server::ServerProcess::start`].
pub fn common(args: &ClusterArgs, redis: &ClusterRedis) -> Result<Vec<(String, String)>, String> {
    let mut env = vec![
        kv("SLUICE__CLUSTER__ENABLED", "true"),
        // Every node must accept the same admin key and identities.
        kv("SLUICE__ADMIN__API_KEY", &args.admin_key),
        kv("SLUICE__AUTH__JWT_SECRET", &args.jwt_secret),
    ];
    let sentinel = match redis {
        ClusterRedis::Group(g) => Some((g.addresses(), super::sentinels::MASTER.to_string())),
        ClusterRedis::Single(r) => match &args.sentinel {
            Some(addresses) => Some((addresses.clone(), args.sentinel_master.clone())),
            None => {
                env.push(kv("SLUICE__CLUSTER__REDIS_URL", &r.url));
                None
            }
        },
    };
    if let Some((addresses, master)) = sentinel {
        env.extend([
            kv("SLUICE__CLUSTER__SENTINEL__ADDRESSES", &addresses),
            kv("SLUICE__CLUSTER__SENTINEL__MASTER_NAME", &master),
            kv(
                "SLUICE__CLUSTER__REPLICA_ACKS",
                &args.replica_acks.to_string(),
            ),
        ]);
    }
    if let Some(ms) = args.lease_ms {
        env.push(kv("SLUICE__CLUSTER__LEASE_MS", &ms.to_string()));
    }
    crate::scenarios::common::spawned_server_env(env, args.keep_rate_limits, &args.server_env)
}

/// Variables of node `id` listening on `port`.
pub fn own(id: &str, port: u16) -> Vec<(String, String)> {
    vec![
        kv("SLUICE__CLUSTER__NODE_ID", id),
        kv(
            "SLUICE__CLUSTER__ADVERTISE",
            &format!("http://127.0.0.1:{port}"),
        ),
    ]
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}
