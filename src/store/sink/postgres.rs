//! PostgreSQL order sink: one idempotent `INSERT ... SELECT FROM UNNEST ... ON CONFLICT` per batch.

use super::{latest_per_order, redact_url, OrderRecord};
use anyhow::Context as _;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

/// Bounds every pool operation, so a write during an outage fails (and the flusher
/// backs off) instead of hanging.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// The flusher writes one batch at a time; the extra connections serve /readyz pings.
const POOL_SIZE: usize = 4;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS orders (
    id text PRIMARY KEY,
    activity_id text NOT NULL,
    slot_id text NULL,
    user_id text NOT NULL,
    quantity int NOT NULL,
    amount_cents bigint NOT NULL,
    status text NOT NULL,
    created_at timestamptz NOT NULL,
    pay_by timestamptz NOT NULL,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    payment_ref text NULL
)";

/// Additive migrations of tables made by older versions, run after `CREATE_TABLE`.
const MIGRATE: &str = "ALTER TABLE orders ADD COLUMN IF NOT EXISTS payment_ref text NULL";

/// The `WHERE` on the update makes equal or older versions a no-op (idempotent replays).
const UPSERT: &str = "INSERT INTO orders
    (id, activity_id, slot_id, user_id, quantity, amount_cents, status, created_at, pay_by, version, updated_at, payment_ref)
SELECT id, activity_id, slot_id, user_id, quantity, amount_cents, status,
       created_at::timestamptz, pay_by::timestamptz, version, now(), payment_ref
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::int8[],
            $7::text[], $8::text[], $9::text[], $10::int8[], $11::text[])
    AS t(id, activity_id, slot_id, user_id, quantity, amount_cents, status, created_at, pay_by, version, payment_ref)
ON CONFLICT (id) DO UPDATE SET
    activity_id = EXCLUDED.activity_id,
    slot_id = EXCLUDED.slot_id,
    user_id = EXCLUDED.user_id,
    quantity = EXCLUDED.quantity,
    amount_cents = EXCLUDED.amount_cents,
    status = EXCLUDED.status,
    created_at = EXCLUDED.created_at,
    pay_by = EXCLUDED.pay_by,
    version = EXCLUDED.version,
    payment_ref = EXCLUDED.payment_ref,
    updated_at = now()
WHERE orders.version < EXCLUDED.version";

/// Orders in a PostgreSQL table `orders`, through a deadpool pool that replaces
/// broken connections by itself (so writes succeed again once the server is back).
pub struct PostgresSink {
    pool: Pool,
    /// For error messages, without the password.
    target: String,
}

/// The batch as column arrays, the shape `UNNEST` wants.
#[derive(Default)]
struct Columns {
    id: Vec<String>,
    activity_id: Vec<String>,
    slot_id: Vec<Option<String>>,
    user_id: Vec<String>,
    quantity: Vec<i32>,
    amount_cents: Vec<i64>,
    status: Vec<String>,
    created_at: Vec<String>,
    pay_by: Vec<String>,
    version: Vec<i64>,
    payment_ref: Vec<Option<String>>,
}

impl Columns {
    fn from_records(records: &[&OrderRecord]) -> anyhow::Result<Columns> {
        let mut c = Columns::default();
        for r in records {
            c.id.push(r.id.clone());
            c.activity_id.push(r.activity_id.clone());
            c.slot_id.push(r.slot_id.clone());
            c.user_id.push(r.user_id.clone());
            c.quantity.push(i32::try_from(r.quantity).with_context(|| {
                format!("order {}: quantity {} out of range", r.id, r.quantity)
            })?);
            c.amount_cents
                .push(i64::try_from(r.amount_cents).with_context(|| {
                    format!(
                        "order {}: amount_cents {} out of range",
                        r.id, r.amount_cents
                    )
                })?);
            c.status.push(r.status.clone());
            c.payment_ref.push(r.payment_ref.clone());
            c.created_at.push(r.created_at.clone());
            c.pay_by.push(r.pay_by.clone());
            c.version.push(
                i64::try_from(r.version).with_context(|| {
                    format!("order {}: version {} out of range", r.id, r.version)
                })?,
            );
        }
        Ok(c)
    }
}

impl PostgresSink {
    /// Builds the pool, checks the server answers and creates `orders` if missing.
    pub async fn connect(url: &str) -> anyhow::Result<PostgresSink> {
        let target = redact_url(url);
        let mut pg_config: tokio_postgres::Config = url
            .parse()
            .with_context(|| format!("invalid PostgreSQL sink URL {target}"))?;
        pg_config.connect_timeout(POOL_TIMEOUT);
        let manager = Manager::from_config(
            pg_config,
            NoTls,
            // Fast: a connection the server closed is noticed by its background task and
            // dropped on recycle; a race is covered by the one retry in `with_client`.
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .context("building the PostgreSQL connection pool")?;
        let sink = PostgresSink { pool, target };
        // The pool is lazy: connect now so a wrong URL or a down server fails startup clearly.
        let client = sink
            .pool
            .get()
            .await
            .with_context(|| format!("cannot connect to PostgreSQL sink at {}", sink.target))?;
        if let Err(e) = client.batch_execute(CREATE_TABLE).await {
            // Two processes creating the table at once: the loser sees a unique violation
            // on the catalog, and the table exists, which is all we wanted.
            if e.code() != Some(&SqlState::UNIQUE_VIOLATION) {
                return Err(e).with_context(|| {
                    format!(
                        "creating table orders in PostgreSQL sink at {}",
                        sink.target
                    )
                });
            }
        }
        client.batch_execute(MIGRATE).await.with_context(|| {
            format!(
                "adding new columns to table orders in PostgreSQL sink at {}",
                sink.target
            )
        })?;
        tracing::info!(target = %sink.target, "PostgreSQL order sink connected");
        Ok(sink)
    }

    /// Upserts the batch in one statement (autocommit: durable once it returns).
    pub async fn write(&self, batch: &[OrderRecord]) -> anyhow::Result<()> {
        let latest = latest_per_order(batch);
        let cols = Columns::from_records(&latest)?;
        let n = latest.len();
        self.with_client("writing orders", |client| {
            let cols = &cols;
            async move {
                let stmt = client.prepare_cached(UPSERT).await?;
                client
                    .execute(
                        &stmt,
                        &[
                            &cols.id,
                            &cols.activity_id,
                            &cols.slot_id,
                            &cols.user_id,
                            &cols.quantity,
                            &cols.amount_cents,
                            &cols.status,
                            &cols.created_at,
                            &cols.pay_by,
                            &cols.version,
                            &cols.payment_ref,
                        ],
                    )
                    .await?;
                Ok(())
            }
        })
        .await
        .with_context(|| format!("{n} order(s)"))
    }

    /// One `SELECT 1` on a pooled connection.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.with_client("ping", |client| async move {
            client.simple_query("SELECT 1").await?;
            Ok(())
        })
        .await
    }

    /// Runs `f` on a pooled connection. If the connection turns out to be dead (the
    /// server restarted since it was pooled), drops every idle connection, which are
    /// likely dead too, and retries once on a fresh one: safe, every operation here is
    /// idempotent, and it spares the flusher a failed batch and a backoff per restart.
    async fn with_client<F, Fut>(&self, what: &str, f: F) -> anyhow::Result<()>
    where
        F: Fn(deadpool_postgres::Client) -> Fut,
        Fut: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
    {
        let mut retried = false;
        loop {
            let client = self.pool.get().await.with_context(|| {
                format!(
                    "{what}: no connection to PostgreSQL sink at {}",
                    self.target
                )
            })?;
            match f(client).await {
                Ok(()) => return Ok(()),
                Err(e) if !retried && connection_lost(&e) => {
                    tracing::debug!(error = %e, "PostgreSQL sink connection lost; retrying once on a fresh one");
                    self.pool.retain(|_, _| false);
                    retried = true;
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("{what}: PostgreSQL sink at {}", self.target))
                }
            }
        }
    }
}

/// The connection is unusable (as opposed to the statement failing): closed, an I/O
/// error, or the server telling us it is shutting down.
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    if let Some(code) = e.code() {
        return [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ]
        .contains(code);
    }
    std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
}

#[cfg(test)]
mod tests {
    //! Run against the throwaway server of scripts/services.sh; each test gets its own schema.
    use super::super::testutil::{
        order, require_env, run_helper, status_for, unique_prefix, PG_LOCK,
    };
    use super::super::Sink;
    use super::*;

    const NEEDS: &str = "a throwaway PostgreSQL (scripts/services.sh)";

    /// A fresh schema, a sink whose connections use it, and a direct client on it.
    struct TestDb {
        sink: Sink,
        url: String,
    }

    impl TestDb {
        async fn new(test: &str) -> TestDb {
            Self::with(test, "").await
        }

        /// A fresh schema where `setup` (SQL, with `{schema}` for its name) ran first.
        async fn with(test: &str, setup: &str) -> TestDb {
            let base = require_env("SLUICE_TEST_PG_URL", NEEDS);
            let schema = unique_prefix(test).replace('-', "_");
            let admin = client(&base).await;
            admin
                .batch_execute(&format!(
                    "CREATE SCHEMA {schema}; {}",
                    setup.replace("{schema}", &schema)
                ))
                .await
                .unwrap_or_else(|e| panic!("creating schema {schema}: {e:?}"));
            // tokio-postgres percent-decodes this into `-c search_path=<schema>`.
            let sep = if base.contains('?') { '&' } else { '?' };
            let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
            let sink = Sink::connect("postgres", &url)
                .await
                .unwrap_or_else(|e| panic!("Sink::connect({url}): {e:#}"));
            TestDb { sink, url }
        }

        /// (id, version, status, slot_id, amount_cents) of every row, by id.
        async fn rows(&self) -> Vec<(String, i64, String, Option<String>, i64)> {
            client(&self.url)
                .await
                .query(
                    "SELECT id, version, status, slot_id, amount_cents FROM orders ORDER BY id",
                    &[],
                )
                .await
                .unwrap_or_else(|e| panic!("reading orders: {e:?}"))
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
                .collect()
        }
    }

    async fn client(url: &str) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(url, NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting to {url}: {e:?}"));
        tokio::spawn(conn);
        client
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn all_records_arrive_with_their_fields() {
        let _shared = PG_LOCK.read().await;
        let db = TestDb::new("t_all").await;
        let batch: Vec<OrderRecord> = (0..500)
            .map(|i| order(&format!("o{i:04}"), 1, "pending_payment"))
            .collect();
        db.sink
            .write(&batch)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(db.rows().await.len(), 500);
        let row = client(&db.url)
            .await
            .query_one(
                "SELECT activity_id, slot_id, user_id, quantity, amount_cents, status,
                        to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'),
                        to_char(pay_by AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'), version
                 FROM orders WHERE id = 'o0007'",
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(row.get::<_, String>(0), "act-1");
        assert_eq!(row.get::<_, Option<String>>(1), Some("0900".to_string()));
        assert_eq!(row.get::<_, String>(2), "user-1");
        assert_eq!(row.get::<_, i32>(3), 2);
        assert_eq!(row.get::<_, i64>(4), 2_000);
        assert_eq!(row.get::<_, String>(5), "pending_payment");
        assert_eq!(row.get::<_, String>(6), "2026-11-22T10:00:00");
        assert_eq!(row.get::<_, String>(7), "2026-11-22T10:15:00");
        assert_eq!(row.get::<_, i64>(8), 1);
        db.sink.ping().await.unwrap_or_else(|e| panic!("{e:#}"));
        // Connecting again to a schema that already has the table is fine.
        Sink::connect("postgres", &db.url)
            .await
            .unwrap_or_else(|e| panic!("second connect: {e:#}"));
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn replays_and_older_versions_change_nothing() {
        let _shared = PG_LOCK.read().await;
        let db = TestDb::new("t_replay").await;
        let history: Vec<OrderRecord> = (1..=3)
            .flat_map(|v| (0..10).map(move |i| order(&format!("o{i}"), v, status_for(v))))
            .collect();
        // The whole history in one batch (three versions of each id) ...
        db.sink
            .write(&history)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let first = db.rows().await;
        assert_eq!(first.len(), 10);
        for (_, version, status, slot, _) in &first {
            assert_eq!(
                (*version, status.as_str(), slot.as_deref()),
                (3, "cancelled", Some("0900"))
            );
        }
        let stamp = || async {
            client(&db.url)
                .await
                .query_one("SELECT max(updated_at)::text FROM orders", &[])
                .await
                .map(|r| r.get::<_, String>(0))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let stamp_before = stamp().await;
        // ... replayed whole, as older versions only, and as the latest only: no change.
        db.sink
            .write(&history)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let older: Vec<OrderRecord> = history.iter().filter(|r| r.version < 3).cloned().collect();
        db.sink
            .write(&older)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        db.sink
            .write(&history[20..])
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(db.rows().await, first);
        assert_eq!(
            stamp_before,
            stamp().await,
            "a replay must not even touch a row"
        );
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn out_of_order_versions_keep_the_newest() {
        let _shared = PG_LOCK.read().await;
        let db = TestDb::new("t_ooo").await;
        let ok = |r: anyhow::Result<()>| r.unwrap_or_else(|e| panic!("{e:#}"));
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
        let summary =
            |rows: Vec<(String, i64, String, Option<String>, i64)>| -> Vec<(String, i64, String)> {
                rows.into_iter()
                    .map(|(id, v, s, _, _)| (id, v, s))
                    .collect()
            };
        assert_eq!(
            summary(db.rows().await),
            vec![
                ("x".into(), 2, "paid".into()),
                ("y".into(), 3, "cancelled".into())
            ]
        );
        // A newer version still goes through; its null slot_id replaces the old one.
        ok(db.sink.write(&[order("x", 4, "cancelled")]).await);
        let rows = db.rows().await;
        assert_eq!((rows[0].1, rows[0].3.clone()), (4, None));
    }

    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn a_table_made_by_an_older_version_gains_payment_ref() {
        let _shared = PG_LOCK.read().await;
        // The table as versions before payment_ref made it, with a row.
        let old = "CREATE TABLE {schema}.orders (
            id text PRIMARY KEY, activity_id text NOT NULL, slot_id text NULL,
            user_id text NOT NULL, quantity int NOT NULL, amount_cents bigint NOT NULL,
            status text NOT NULL, created_at timestamptz NOT NULL,
            pay_by timestamptz NOT NULL, version bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now());
          INSERT INTO {schema}.orders VALUES ('old', 'a', NULL, 'u', 1, 0, 'paid',
            now(), now(), 2, now());";
        let db = TestDb::with("t_migrate", old).await;
        db.sink
            .write(&[order("p", 2, "paid"), order("q", 1, "pending_payment")])
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        let refs: Vec<(String, Option<String>)> = client(&db.url)
            .await
            .query("SELECT id, payment_ref FROM orders ORDER BY id", &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(
            refs,
            [
                ("old".to_owned(), None),
                ("p".to_owned(), Some("ref-p".to_owned())),
                ("q".to_owned(), None)
            ]
        );
    }

    #[tokio::test]
    async fn connect_fails_clearly_when_unreachable() {
        // Port 1 on loopback: nothing listens there.
        let err = match Sink::connect("postgres", "postgres://u:pw@127.0.0.1:1/db").await {
            Ok(_) => panic!("connect to a closed port succeeded"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains("cannot connect to PostgreSQL sink at postgres://u:***@127.0.0.1:1/db"),
            "{err}"
        );
        assert!(!err.contains(":pw@"), "password leaked: {err}");
    }

    /// Stops and restarts the throwaway server (exclusive lock: no other test of this
    /// module runs meanwhile).
    #[tokio::test]
    #[ignore = "needs PostgreSQL"]
    async fn write_fails_while_down_and_succeeds_after_restart() {
        let _outage = PG_LOCK.write().await;
        let db = TestDb::new("t_outage").await;
        db.sink
            .write(&[order("a", 1, "pending_payment")])
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        run_helper("SLUICE_TEST_PG_STOP", NEEDS);
        let down = db.sink.write(&[order("a", 2, "paid")]).await;
        let ping_down = db.sink.ping().await;
        run_helper("SLUICE_TEST_PG_START", NEEDS);
        let err = match down {
            Ok(()) => panic!("write succeeded while PostgreSQL was stopped"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("PostgreSQL sink"), "{err}");
        assert!(
            ping_down.is_err(),
            "ping succeeded while PostgreSQL was stopped"
        );
        // The pool reconnects by itself; the flusher retries with backoff, and so do we.
        let mut last = String::new();
        for attempt in 1..=50 {
            match db.sink.write(&[order("a", 2, "paid")]).await {
                Ok(()) => {
                    eprintln!("while down: {err}\nwrite after restart succeeded at attempt {attempt} (last error: {last:?})");
                    db.sink.ping().await.unwrap_or_else(|e| panic!("{e:#}"));
                    let rows = db.rows().await;
                    assert_eq!((rows.len(), rows[0].1, rows[0].2.as_str()), (1, 2, "paid"));
                    // A restart between two writes: the pooled connections are dead, yet the
                    // next write succeeds at once (it drops them and retries on a fresh one).
                    run_helper("SLUICE_TEST_PG_STOP", NEEDS);
                    run_helper("SLUICE_TEST_PG_START", NEEDS);
                    db.sink
                        .write(&[order("a", 3, "cancelled")])
                        .await
                        .unwrap_or_else(|e| panic!("first write after a restart: {e:#}"));
                    assert_eq!(db.rows().await[0].1, 3);
                    return;
                }
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("write still failing 10 s after PostgreSQL restarted: {last}");
    }
}
