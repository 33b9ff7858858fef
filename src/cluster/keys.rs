//! The cluster's Redis keys and the Lua scripts that make lease and replication
//! steps atomic.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `sluice:nodes` | set | every node id ever seen |
//! | `sluice:node:{node}` | string, PX `lease_ms` | the node's advertised base URL (liveness) |
//! | `sluice:activities` | hash | activity id -> `1`, every activity of the cluster |
//! | `sluice:fence:{activity}` | counter | the last fencing token handed out |
//! | `sluice:lease:{activity}` | string, PX `lease_ms` | `{node}|{fence}`, the owner |
//! | `sluice:alive:{activity}` | string | ms time of the owner's last renewal while serving |
//! | `sluice:state:{activity}` | hash | sled key -> value: the activity's committed state |
//! | `sluice:accounts` | hash | username -> account (user id, password hash) |
//! | `sluice:signing_keys` | string | the gate pass signing keys (JSON list) |

use crate::domain::ids::ActivityId;

pub const NODES: &str = "sluice:nodes";
pub const ACTIVITIES: &str = "sluice:activities";
pub const ACCOUNTS: &str = "sluice:accounts";
/// Webhook registrations: id -> JSON (`store::webhooks::Webhook`).
pub const WEBHOOKS: &str = "sluice:webhooks";
pub const SIGNING_KEYS: &str = "sluice:signing_keys";

pub fn node(id: &str) -> String {
    format!("sluice:node:{id}")
}

pub fn lease(a: &ActivityId) -> String {
    format!("sluice:lease:{a}")
}

pub fn fence(a: &ActivityId) -> String {
    format!("sluice:fence:{a}")
}

pub fn alive(a: &ActivityId) -> String {
    format!("sluice:alive:{a}")
}

pub fn state(a: &ActivityId) -> String {
    format!("sluice:state:{a}")
}

/// The lease value of `node` holding fencing token `fence`.
pub fn holder(node: &str, fence: u64) -> String {
    format!("{node}|{fence}")
}

/// Parses a lease value back into (node, fence).
pub fn parse_holder(v: &str) -> Option<(&str, u64)> {
    let (node, fence) = v.rsplit_once('|')?;
    Some((node, fence.parse().ok()?))
}

/// Takes a free lease with the next fencing token, at least ARGV[3] (the highest
/// token the caller has seen, plus one: a replica promoted after losing the last
/// `INCR` must not hand a token out twice). KEYS: lease, fence, alive. ARGV: node,
/// lease ms, floor. Returns [the fence, or 0 if the lease is held; when the activity
/// was last served (nil if never), read in the same step as the lease is taken].
pub const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, false} end
local f = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if f < floor then
  f = floor
  redis.call('SET', KEYS[2], f)
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. f, 'PX', ARGV[2])
return {f, redis.call('GET', KEYS[3])}
";

/// Extends a lease still held and, if ARGV[3] is not empty, records it as the time
/// the owner was last serving (a successor credits tokens from then). KEYS: lease,
/// alive. ARGV: holder, lease ms, now ms or ''. Returns 1 or 0.
pub const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3]) end
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
";

/// Gives a lease up if still held. KEYS: lease. ARGV: holder.
pub const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Applies one commit of the owner to the replicated state, only while its lease (with
/// its fencing token) is current: a stale owner cannot write. KEYS: lease, state.
/// ARGV: holder, then ops `P key value` or `D key`.
pub const APPLY: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED the lease is no longer held with this fencing token')
end
local i = 2
while i <= #ARGV do
  if ARGV[i] == 'P' then
    redis.call('HSET', KEYS[2], ARGV[i + 1], ARGV[i + 2])
    i = i + 3
  else
    redis.call('HDEL', KEYS[2], ARGV[i + 1])
    i = i + 2
  end
end
return 1
";

/// Rendezvous (highest random weight) choice of a node for an activity: every node
/// computes the same answer from the same live set, and a node leaving moves only
/// its own activities.
pub fn rendezvous<'a>(
    activity: &ActivityId,
    nodes: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    use sha2::{Digest, Sha256};
    nodes.into_iter().max_by_key(|n| {
        let d = Sha256::new()
            .chain_update(n.as_bytes())
            .chain_update(b"/")
            .chain_update(activity.as_str().as_bytes())
            .finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        (u64::from_be_bytes(b), *n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_round_trip() {
        assert_eq!(parse_holder(&holder("n-1", 42)), Some(("n-1", 42)));
        assert_eq!(parse_holder("garbage"), None);
    }

    #[test]
    fn rendezvous_is_stable_and_spreads() {
        let nodes = ["n1", "n2", "n3"];
        let mut counts = std::collections::HashMap::new();
        for i in 0..300 {
            let a = ActivityId::parse(&format!("a{i}")).expect("id");
            let pick = rendezvous(&a, nodes).expect("a node");
            assert_eq!(rendezvous(&a, nodes.iter().rev().copied()), Some(pick));
            *counts.entry(pick).or_insert(0) += 1;
            // Removing another node never moves this activity.
            let others: Vec<&str> = nodes.iter().copied().filter(|n| *n != pick).collect();
            let fewer: Vec<&str> = std::iter::once(pick)
                .chain(others.into_iter().skip(1))
                .collect();
            assert_eq!(rendezvous(&a, fewer), Some(pick));
        }
        assert!(counts.values().all(|&c| c > 60), "{counts:?}");
    }
}
