//! The cluster's Redis: a throwaway `redis-server` on a free port with its own
//! temp dir and no persistence, our own Sentinel group, or one given with
//! `--redis-url` / `--sentinel` (left alone).

use super::redis_server::Redis;
use super::sentinels::SentinelGroup;

/// The Redis the nodes use: one server (ours or given: a URL, or the
/// sentinels someone else runs), or our own Sentinel group.
pub enum ClusterRedis {
    Single(Box<Redis>),
    Group(Box<SentinelGroup>),
}

impl ClusterRedis {
    /// For the report.
    pub fn describe(&self) -> String {
        match self {
            Self::Single(r) => format!(
                "{} ({})",
                r.url,
                if r.is_ours() { "throwaway" } else { "given" }
            ),
            Self::Group(g) => format!(
                "throwaway Sentinel group: primary 127.0.0.1:{}, replicas {}, sentinels {}",
                g.primary.port,
                g.replicas
                    .iter()
                    .map(|r| format!("127.0.0.1:{}", r.port))
                    .collect::<Vec<_>>()
                    .join(","),
                g.addresses()
            ),
        }
    }

    pub fn group(&self) -> Option<&SentinelGroup> {
        match self {
            Self::Group(g) => Some(g),
            Self::Single(_) => None,
        }
    }

    pub fn group_mut(&mut self) -> Option<&mut SentinelGroup> {
        match self {
            Self::Group(g) => Some(g),
            Self::Single(_) => None,
        }
    }

    /// Stops what we started; a given Redis is left running.
    pub async fn stop(&mut self) {
        match self {
            Self::Single(r) => r.stop().await,
            Self::Group(g) => g.stop().await,
        }
    }

    pub fn kill_now(&mut self) {
        match self {
            Self::Single(r) => r.kill_now(),
            Self::Group(g) => g.kill_now(),
        }
    }
}
