//! Redis order sink: hash `sluice:order:{id}` plus stream `sluice:orders`, one Lua script per record, pipelined.
//!
//! Durability is whatever the Redis server is configured for (AOF `appendfsync`):
//! `write` returns Ok once Redis has applied every record.

use super::{redact_url, OrderRecord};
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{ErrorKind, Script, ServerErrorKind};
use anyhow::Context as _;
use std::time::Duration;

/// The stream gets one entry per applied version, so consumers see every status change once.
pub const STREAM_KEY: &str = "sluice:orders";
/// Prefix of the per-order hash key.
pub const HASH_PREFIX: &str = "sluice:order:";

/// Applies a record only if it is newer than the stored one; the stream entry is added
/// in the same atomic step, so a replay adds neither a hash change nor an entry.
/// KEYS: hash, stream. ARGV: version, id, activity_id, has_slot ("1"/"0"), slot_id,
/// user_id, quantity, amount_cents, status, created_at, pay_by, payment_ref ("" for
/// none). Returns 1 if applied.
const UPSERT_LUA: &str = r"
local cur = redis.call('HGET', KEYS[1], 'version')
if cur and tonumber(cur) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1],
  'id', ARGV[2], 'activity_id', ARGV[3], 'user_id', ARGV[6],
  'quantity', ARGV[7], 'amount_cents', ARGV[8], 'status', ARGV[9],
  'created_at', ARGV[10], 'pay_by', ARGV[11], 'version', ARGV[1])
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[1], 'slot_id', ARGV[5])
else
  redis.call('HDEL', KEYS[1], 'slot_id')
end
if ARGV[12] ~= '' then
  redis.call('HSET', KEYS[1], 'payment_ref', ARGV[12])
else
  redis.call('HDEL', KEYS[1], 'payment_ref')
end
redis.call('XADD', KEYS[2], '*', 'id', ARGV[2], 'version', ARGV[1], 'status', ARGV[9])
return 1
";

/// Orders in Redis through a `ConnectionManager`, which reconnects by itself after an outage.
pub struct RedisSink {
    conn: ConnectionManager,
    script: Script,
    /// For error messages, without the password.
    target: String,
}

impl RedisSink {
    /// Connects now (so a wrong URL or a down server fails startup clearly) and loads the script.
    pub async fn connect(url: &str) -> anyhow::Result<RedisSink> {
        let target = redact_url(url);
        let client = ::redis::Client::open(url)
            .with_context(|| format!("invalid Redis sink URL {target}"))?;
        // Few, short reconnect attempts: a write during an outage should fail within
        // seconds so the flusher backs off, not hang; the next call tries again.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1))
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        let mut conn = ConnectionManager::new_with_config(client, config)
            .await
            .with_context(|| format!("cannot connect to Redis sink at {target}"))?;
        let script = Script::new(UPSERT_LUA);
        script
            .prepare_invoke()
            .load_async(&mut conn)
            .await
            .with_context(|| format!("loading the order script into Redis sink at {target}"))?;
        tracing::info!(target = %target, "Redis order sink connected");
        Ok(RedisSink {
            conn,
            script,
            target,
        })
    }

    /// One EVALSHA per record, all in one pipeline (one round trip), in batch order.
    /// Records are not deduplicated: each newer version in the batch gets its stream entry.
    pub async fn write(&self, batch: &[OrderRecord]) -> anyhow::Result<()> {
        let mut pipe = ::redis::pipe();
        for rec in batch {
            let mut inv = self.script.prepare_invoke();
            inv.key(format!("{HASH_PREFIX}{}", rec.id))
                .key(STREAM_KEY)
                .arg(rec.version)
                .arg(&rec.id)
                .arg(&rec.activity_id)
                .arg(if rec.slot_id.is_some() { "1" } else { "0" })
                .arg(rec.slot_id.as_deref().unwrap_or(""))
                .arg(&rec.user_id)
                .arg(rec.quantity)
                .arg(rec.amount_cents)
                .arg(&rec.status)
                .arg(&rec.created_at)
                .arg(&rec.pay_by)
                .arg(rec.payment_ref.as_deref().unwrap_or(""));
            pipe.invoke_script(&inv);
        }
        let mut conn = self.conn.clone();
        let mut lost_once = false;
        let mut reloaded = false;
        // Every record is idempotent, so sending the pipeline again after a partial run is harmless.
        let applied: Vec<i64> = loop {
            let err = match pipe.query_async(&mut conn).await {
                Ok(applied) => break applied,
                Err(e) => e,
            };
            if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript) && !reloaded {
                // A restarted (or SCRIPT FLUSHed) server forgot the script.
                reloaded = true;
                self.script
                    .prepare_invoke()
                    .load_async(&mut conn)
                    .await
                    .with_context(|| {
                        format!(
                            "reloading the order script into Redis sink at {}",
                            self.target
                        )
                    })?;
            } else if (err.is_io_error() || err.is_connection_dropped()) && !lost_once {
                // The manager has started reconnecting; the retry waits for that connection.
                lost_once = true;
                tracing::debug!(error = %err, "Redis sink connection lost; retrying once");
            } else {
                return Err(anyhow::Error::new(err)).with_context(|| {
                    format!(
                        "writing {} order record(s) to Redis sink at {}",
                        batch.len(),
                        self.target
                    )
                });
            }
        };
        tracing::trace!(
            records = batch.len(),
            applied = applied.iter().sum::<i64>(),
            "orders written to Redis"
        );
        Ok(())
    }

    /// One PING.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        ::redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .with_context(|| format!("ping: Redis sink at {}", self.target))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Run against the throwaway server of scripts/services.sh. Key names are fixed by the
    //! contract, so each test uses its own database number (and flushes it first).
    use super::super::testutil::{order, require_env, run_helper, status_for, REDIS_LOCK};
    use super::super::Sink;
    use super::*;
    use std::collections::HashMap;

    const NEEDS: &str = "a throwaway Redis (scripts/services.sh)";

    struct TestDb {
        sink: Sink,
        client: ::redis::Client,
    }

    impl TestDb {
        /// A sink on database `db`, emptied first.
        async fn new(db: u8) -> TestDb {
            let base = require_env("SLUICE_TEST_REDIS_URL", NEEDS);
            let url = format!("{}/{db}", base.trim_end_matches('/'));
            let client = ::redis::Client::open(url.as_str())
                .unwrap_or_else(|e| panic!("bad SLUICE_TEST_REDIS_URL {url}: {e}"));
            let db_client = client.clone();
            let sink = Sink::connect("redis", &url)
                .await
                .unwrap_or_else(|e| panic!("Sink::connect({url}): {e:#}"));
            let db = TestDb {
                sink,
                client: db_client,
            };
            ::redis::cmd("FLUSHDB")
                .query_async::<()>(&mut db.direct().await)
                .await
                .unwrap_or_else(|e| panic!("FLUSHDB on {url}: {e}"));
            db
        }

        /// A fresh connection for checks, so a test outlives a server restart.
        async fn direct(&self) -> ::redis::aio::MultiplexedConnection {
            self.client
                .get_multiplexed_async_connection()
                .await
                .unwrap_or_else(|e| panic!("connecting for checks: {e}"))
        }

        async fn hash(&self, id: &str) -> HashMap<String, String> {
            ::redis::cmd("HGETALL")
                .arg(format!("{HASH_PREFIX}{id}"))
                .query_async(&mut self.direct().await)
                .await
                .unwrap_or_else(|e| panic!("HGETALL {id}: {e}"))
        }

        async fn order_keys(&self) -> usize {
            let keys: Vec<String> = ::redis::cmd("KEYS")
                .arg(format!("{HASH_PREFIX}*"))
                .query_async(&mut self.direct().await)
                .await
                .unwrap_or_else(|e| panic!("KEYS: {e}"));
            keys.len()
        }

        /// (id, version, status) of every stream entry, oldest first.
        async fn stream(&self) -> Vec<(String, u64, String)> {
            let entries: Vec<(String, HashMap<String, String>)> = ::redis::cmd("XRANGE")
                .arg(STREAM_KEY)
                .arg("-")
                .arg("+")
                .query_async(&mut self.direct().await)
                .await
                .unwrap_or_else(|e| panic!("XRANGE: {e}"));
            entries
                .into_iter()
                .map(|(_, f)| {
                    let field = |k: &str| f.get(k).cloned().unwrap_or_default();
                    (
                        field("id"),
                        field("version").parse().unwrap_or(0),
                        field("status"),
                    )
                })
                .collect()
        }
    }

    fn ok(r: anyhow::Result<()>) {
        r.unwrap_or_else(|e| panic!("{e:#}"));
    }

    #[tokio::test]
    #[ignore = "needs Redis"]
    async fn all_records_arrive_with_their_fields() {
        let _shared = REDIS_LOCK.read().await;
        let db = TestDb::new(1).await;
        let batch: Vec<OrderRecord> = (0..500)
            .map(|i| order(&format!("o{i:04}"), 1, "pending_payment"))
            .collect();
        ok(db.sink.write(&batch).await);
        assert_eq!(db.order_keys().await, 500);
        assert_eq!(db.stream().await.len(), 500);
        let h = db.hash("o0007").await;
        let expect: HashMap<String, String> = [
            ("id", "o0007"),
            ("activity_id", "act-1"),
            ("slot_id", "0900"),
            ("user_id", "user-1"),
            ("quantity", "2"),
            ("amount_cents", "2000"),
            ("status", "pending_payment"),
            ("created_at", "2026-11-22T10:00:00Z"),
            ("pay_by", "2026-11-22T10:15:00Z"),
            ("version", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(h, expect);
        ok(db.sink.ping().await);
    }

    #[tokio::test]
    #[ignore = "needs Redis"]
    async fn replays_and_older_versions_change_nothing() {
        let _shared = REDIS_LOCK.read().await;
        let db = TestDb::new(2).await;
        let history: Vec<OrderRecord> = (1..=3)
            .flat_map(|v| (0..10).map(move |i| order(&format!("o{i}"), v, status_for(v))))
            .collect();
        ok(db.sink.write(&history).await);
        let stream = db.stream().await;
        // Exactly one entry per version of each order.
        let mut expected: Vec<(String, u64, String)> = history
            .iter()
            .map(|r| (r.id.clone(), r.version, r.status.clone()))
            .collect();
        assert_eq!(stream, expected);
        // Replayed whole, as older versions only, and as the latest only: no change.
        ok(db.sink.write(&history).await);
        let older: Vec<OrderRecord> = history.iter().filter(|r| r.version < 3).cloned().collect();
        ok(db.sink.write(&older).await);
        ok(db.sink.write(&history[20..]).await);
        assert_eq!(db.stream().await, stream);
        assert_eq!(db.order_keys().await, 10);
        for i in 0..10 {
            let h = db.hash(&format!("o{i}")).await;
            assert_eq!(h.get("version").map(String::as_str), Some("3"));
            assert_eq!(h.get("status").map(String::as_str), Some("cancelled"));
            assert_eq!(h.get("slot_id").map(String::as_str), Some("0900"));
        }
        // And the next real change still gets through (and drops the now-null slot_id).
        ok(db.sink.write(&[order("o0", 4, "cancelled")]).await);
        expected.push(("o0".into(), 4, "cancelled".into()));
        assert_eq!(db.stream().await, expected);
        assert_eq!(db.hash("o0").await.get("slot_id"), None);
    }

    #[tokio::test]
    #[ignore = "needs Redis"]
    async fn out_of_order_versions_keep_the_newest() {
        let _shared = REDIS_LOCK.read().await;
        let db = TestDb::new(3).await;
        ok(db.sink.write(&[order("x", 2, "paid")]).await);
        ok(db.sink.write(&[order("x", 1, "pending_payment")]).await);
        // Within one batch, too: newest first, then older ones.
        ok(db
            .sink
            .write(&[
                order("y", 3, "cancelled"),
                order("y", 1, "pending_payment"),
                order("y", 2, "paid"),
            ])
            .await);
        assert_eq!(
            db.hash("x").await.get("version").map(String::as_str),
            Some("2")
        );
        assert_eq!(
            db.hash("y").await.get("status").map(String::as_str),
            Some("cancelled")
        );
        // Only the versions that were applied produced stream entries.
        assert_eq!(
            db.stream().await,
            vec![
                ("x".into(), 2, "paid".into()),
                ("y".into(), 3, "cancelled".into())
            ]
        );
    }

    #[tokio::test]
    async fn connect_fails_clearly_when_unreachable() {
        // Port 1 on loopback: nothing listens there.
        let err = match Sink::connect("redis", "redis://:pw@127.0.0.1:1/").await {
            Ok(_) => panic!("connect to a closed port succeeded"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains("cannot connect to Redis sink at redis://:***@127.0.0.1:1/"),
            "{err}"
        );
        assert!(!err.contains(":pw@"), "password leaked: {err}");
    }

    /// Stops and restarts the throwaway server (exclusive lock: no other test of this
    /// module runs meanwhile). The restart keeps the data (it saves on shutdown, as a
    /// real outage would) but forgets the script, which exercises the NOSCRIPT reload.
    #[tokio::test]
    #[ignore = "needs Redis"]
    async fn write_fails_while_down_and_succeeds_after_restart() {
        let _outage = REDIS_LOCK.write().await;
        let db = TestDb::new(4).await;
        ok(db.sink.write(&[order("a", 1, "pending_payment")]).await);
        run_helper("SLUICE_TEST_REDIS_STOP", NEEDS);
        let down = db.sink.write(&[order("a", 2, "paid")]).await;
        let ping_down = db.sink.ping().await;
        run_helper("SLUICE_TEST_REDIS_START", NEEDS);
        let err = match down {
            Ok(()) => panic!("write succeeded while Redis was stopped"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("Redis sink"), "{err}");
        assert!(ping_down.is_err(), "ping succeeded while Redis was stopped");
        let mut last = String::new();
        for attempt in 1..=50 {
            match db.sink.write(&[order("a", 2, "paid")]).await {
                Ok(()) => {
                    eprintln!("while down: {err}\nwrite after restart succeeded at attempt {attempt} (last error: {last:?})");
                    ok(db.sink.ping().await);
                    let h = db.hash("a").await;
                    assert_eq!(h.get("version").map(String::as_str), Some("2"));
                    assert_eq!(
                        db.stream().await,
                        vec![
                            ("a".into(), 1, "pending_payment".into()),
                            ("a".into(), 2, "paid".into())
                        ]
                    );
                    // A restart between two writes: the connection is dead and the script
                    // forgotten, yet the next write succeeds at once.
                    run_helper("SLUICE_TEST_REDIS_STOP", NEEDS);
                    run_helper("SLUICE_TEST_REDIS_START", NEEDS);
                    ok(db.sink.write(&[order("a", 3, "cancelled")]).await);
                    assert_eq!(
                        db.stream().await.last(),
                        Some(&("a".into(), 3, "cancelled".into()))
                    );
                    assert_eq!(db.stream().await.len(), 3, "one entry per version");
                    return;
                }
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("write still failing 10 s after Redis restarted: {last}");
    }
}
