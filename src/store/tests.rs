//! The store as its callers see it: commits, reads, checkpoints, restarts, and a
//! journal whose `fdatasync` fails.

use super::*;

/// A store whose journal rotates and checkpoints every few commits.
fn open(dir: &Path) -> Store {
    open_with(dir, Duration::from_millis(10))
}

fn open_with(dir: &Path, checkpoint: Duration) -> Store {
    let settings = CommitSettings {
        window: Duration::from_micros(100),
        max_batch: 64,
        queue: 1024,
        checkpoint,
    };
    Store::open(dir, settings).expect("store opens")
}

fn record(n: u64) -> Vec<u8> {
    serde_json::to_vec(&OrderRecord {
        id: format!("a-{n}"),
        activity_id: "a".into(),
        slot_id: None,
        user_id: "u".into(),
        quantity: 1,
        amount_cents: 0,
        status: "pending".into(),
        created_at: "2026-01-01T00:00:00Z".into(),
        pay_by: "2026-01-01T00:15:00Z".into(),
        version: n,
        payment_ref: None,
    })
    .expect("serializes")
}

async fn commit(store: &Store, ops: Vec<KvOp>) {
    let ack = store.commit(ops).expect("queued");
    ack.await.expect("answered").expect("durable");
}

#[tokio::test]
async fn reads_follow_commits_through_checkpoints_and_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    for n in 0..40u64 {
        let key = format!("a/x/o/{n:016x}").into_bytes();
        commit(
            &store,
            vec![KvOp::Put(key, vec![n as u8]), KvOp::Outbox(record(n))],
        )
        .await;
        if n % 10 == 9 {
            // Let the checkpoint interval pass so the next commit starts one.
            std::thread::sleep(Duration::from_millis(15));
        }
    }
    commit(&store, vec![KvOp::Del(b"a/x/o/0000000000000003".to_vec())]).await;
    assert_eq!(
        store.get(b"a/x/o/0000000000000004").expect("reads"),
        Some(vec![4])
    );
    assert_eq!(store.get(b"a/x/o/0000000000000003").expect("reads"), None);
    let first = store.outbox_batch(5).expect("reads");
    let versions: Vec<u64> = first.iter().map(|(_, r)| r.version).collect();
    assert_eq!(versions, vec![0, 1, 2, 3, 4], "the oldest first");
    store.outbox_remove(&first.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
    assert_eq!(store.outbox_batch(1).expect("reads")[0].1.version, 5);
    // Replacing a prefix drops what earlier commits wrote under it.
    commit(
        &store,
        vec![
            KvOp::DelPrefix(b"a/x/".to_vec()),
            KvOp::Put(b"a/x/o/00000000000000ff".to_vec(), vec![9]),
        ],
    )
    .await;
    store.shutdown();
    assert_eq!(
        super::journal::segments(&dir.path().join("journal"))
            .expect("lists")
            .len(),
        0,
        "a clean stop leaves everything in sled (a spare may stay for the next start)"
    );

    let store = open(dir.path());
    assert_eq!(store.get(b"a/x/o/0000000000000004").expect("reads"), None);
    assert_eq!(
        store.get(b"a/x/o/00000000000000ff").expect("reads"),
        Some(vec![9])
    );
    assert_eq!(store.outbox_len(), 35);
    assert_eq!(store.outbox_batch(1).expect("reads")[0].1.version, 5);
    store.shutdown();
}

fn put(k: &str, v: &str) -> Vec<KvOp> {
    vec![KvOp::Put(k.as_bytes().to_vec(), v.as_bytes().to_vec())]
}

/// What a `kill -9` now would leave: the journal as it is on disk, replayed into the
/// sled of a fresh start (no checkpoint ran, so sled holds nothing else).
fn after_a_crash(store_dir: &Path) -> (tempfile::TempDir, sled::Db) {
    let copy = tempfile::tempdir().expect("temp dir");
    let jdir = copy.path().join("journal");
    std::fs::create_dir_all(&jdir).expect("dir");
    for (_, seg) in journal::segments(&store_dir.join("journal")).expect("lists") {
        std::fs::copy(&seg, jdir.join(seg.file_name().expect("name"))).expect("copies");
    }
    let db = sled::Config::new()
        .path(copy.path().join("db"))
        .open()
        .expect("sled opens");
    journal::replay(&db, &jdir).expect("the journal replays");
    (copy, db)
}

/// Probes until the store acknowledges again (bounded).
async fn until_writable(store: &Store) {
    for _ in 0..500 {
        if store.probe().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the store did not re-establish its journal within 5 s");
}

fn segment_lens(store_dir: &Path) -> Vec<(u64, u64)> {
    journal::segments(&store_dir.join("journal"))
        .expect("lists")
        .into_iter()
        .map(|(seq, p)| (seq, std::fs::metadata(p).expect("stat").len()))
        .collect()
}

#[tokio::test]
async fn a_failed_fsync_is_not_acknowledged_and_the_segment_is_never_written_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_with(dir.path(), Duration::from_secs(3600));
    commit(&store, put("k/acked", "1")).await;
    let acked_len = segment_lens(dir.path())[0].1;

    store.faults().fail_syncs(1);
    let failed = store.commit(put("k/failed", "2")).expect("queued");
    assert!(
        failed.await.expect("answered").is_err(),
        "a batch whose fsync failed is not acknowledged"
    );
    assert!(
        !store.is_healthy(),
        "no acknowledgement until the journal is re-established"
    );

    until_writable(&store).await;
    let lens = segment_lens(dir.path());
    assert_eq!(
        lens[0],
        (0, acked_len),
        "the failed segment is cut back to its synced frames and not appended to: {lens:?}"
    );
    assert_eq!(lens.len(), 2, "a new segment took over: {lens:?}");
    commit(&store, put("k/after", "3")).await;
    assert_eq!(segment_lens(dir.path())[0], (0, acked_len));

    // What was decided in the failed batch was kept and written to the new segment.
    assert_eq!(store.get(b"k/failed").expect("reads"), Some(b"2".to_vec()));
    let (_copy, db) = after_a_crash(dir.path());
    for (k, v) in [("k/acked", "1"), ("k/failed", "2"), ("k/after", "3")] {
        assert_eq!(
            db.get(k).expect("get").as_deref(),
            Some(v.as_bytes()),
            "{k}"
        );
    }
    store.shutdown();
}

#[tokio::test]
async fn repeated_fsync_failures_refuse_every_commit_until_a_new_segment_syncs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_with(dir.path(), Duration::from_secs(3600));
    commit(&store, put("k/acked", "1")).await;
    // The failed batch, then the first two new segments fail their sync as well.
    store.faults().fail_syncs(3);
    let failed = store.commit(put("k/a", "2")).expect("queued");
    assert!(failed.await.expect("answered").is_err());
    let mut refused = 0;
    for n in 0..50 {
        let ack = store
            .commit(put(&format!("k/during/{n}"), "x"))
            .expect("queued");
        if ack.await.expect("answered").is_err() {
            refused += 1;
        } else {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused >= 2, "refused while recovering: {refused}");
    until_writable(&store).await;
    // Each failed new segment was removed; the first is cut back, the last holds the
    // kept writes.
    let lens = segment_lens(dir.path());
    assert_eq!(lens.len(), 2, "{lens:?}");
    assert_eq!(
        lens[1].0, 3,
        "segments 1 and 2 failed and were removed: {lens:?}"
    );
    let (_copy, db) = after_a_crash(dir.path());
    assert_eq!(db.get("k/a").expect("get").as_deref(), Some(&b"2"[..]));
    for n in 0..refused {
        let k = format!("k/during/{n}");
        assert_eq!(db.get(&k).expect("get").as_deref(), Some(&b"x"[..]), "{k}");
    }
    store.shutdown();
}

#[tokio::test]
async fn webhook_events_are_read_from_a_cursor_and_keep_their_numbering() {
    use layout::event_key;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(dir.path());
    assert_eq!(store.next_event_seq("a").expect("reads"), 0);
    let put = |n: u64| KvOp::Put(event_key("a", n), vec![n as u8]);
    commit(&store, (0..5).map(put).collect()).await;
    commit(&store, vec![KvOp::Put(event_key("b", 9), vec![9])]).await;
    assert_eq!(store.next_event_seq("a").expect("reads"), 5);
    let from_two: Vec<u64> = store
        .events_from("a", 2, 2)
        .expect("reads")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(from_two, [2, 3], "from the cursor, at most the batch");

    store.set_cursor("wh_1", "a", 3).await.expect("writes");
    assert_eq!(store.cursor("wh_1", "a").expect("reads"), Some(3));
    // Everything delivered and deleted but the newest: the numbering goes on.
    commit(
        &store,
        (0..4).map(|n| KvOp::Del(event_key("a", n))).collect(),
    )
    .await;
    assert_eq!(store.event_range("a").expect("reads"), 4..5);
    store.shutdown();
    let store = open(dir.path());
    assert_eq!(store.next_event_seq("a").expect("reads"), 5);
    assert_eq!(store.next_event_seq("b").expect("reads"), 10);
    store.drop_cursors("wh_1").await.expect("writes");
    assert_eq!(store.cursor("wh_1", "a").expect("reads"), None);
}

#[tokio::test]
async fn a_quiet_store_checkpoints_its_last_writes_once_the_interval_passes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_with(dir.path(), Duration::from_millis(300));
    commit(&store, put("a/x/o/0000000000000001", "one")).await;
    let journaled = store.journal_bytes();
    assert!(journaled > 0, "a restart now would replay the commit");
    // No further commit: the writer's idle wait ends when the checkpoint falls due.
    until_settled(&store).await;
    let segments: Vec<u64> = segment_lens(dir.path()).iter().map(|s| s.0).collect();
    assert_eq!(
        segments,
        vec![1],
        "the segment that held the commit is gone"
    );
    let (_copy, crashed) = after_a_crash(dir.path());
    assert_eq!(crashed.len(), 0, "the journal replays nothing");
    assert_eq!(
        store.get(b"a/x/o/0000000000000001").expect("reads"),
        Some(b"one".to_vec())
    );
    store.shutdown();
}

/// Waits (bounded) until the store's journal is all in sled.
async fn until_settled(store: &Store) {
    for _ in 0..1000 {
        if store.journal_bytes() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{} journal bytes still not checkpointed after 10 s",
        store.journal_bytes()
    );
}

#[tokio::test]
async fn after_a_failed_fsync_a_quiet_store_checkpoints_the_sealed_and_the_new_segment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open_with(dir.path(), Duration::from_millis(300));
    commit(&store, put("k/acked", "1")).await;
    store.faults().fail_syncs(1);
    let failed = store.commit(put("k/failed", "2")).expect("queued");
    assert!(failed.await.expect("answered").is_err());
    until_writable(&store).await;
    assert!(store.journal_bytes() > 0, "both segments hold frames");
    // No commit after the recovery: the idle writer still checkpoints both.
    until_settled(&store).await;
    let (_copy, crashed) = after_a_crash(dir.path());
    assert_eq!(crashed.len(), 0, "the journal replays nothing");
    for (k, v) in [("k/acked", "1"), ("k/failed", "2")] {
        assert_eq!(
            store.get(k.as_bytes()).expect("reads"),
            Some(v.as_bytes().to_vec())
        );
    }
    store.shutdown();
}

/// A store written before orders moved to their holds' keys: its schema is marked 2
/// on open, its orders and holds read as they are, and an order rewritten since (at
/// its hold's key, with its old `o/` key still there) reads at its newest version.
#[tokio::test]
async fn a_schema_1_store_reads_on_and_a_rewritten_order_keeps_its_newest_version() {
    use crate::domain::activity::{Activity, Mutation};
    use crate::domain::order::OrderStatus;
    use crate::domain::spec::CreateActivity;
    use codec::tests::{hold, order};

    let dir = tempfile::tempdir().expect("temp dir");
    let id = ActivityId::parse("x").expect("valid");
    let body: CreateActivity =
        serde_json::from_str(r#"{"id":"x","name":"X","kind":"sale","stock":5}"#).expect("json");
    let (spec, slots) = body.validate(1).expect("valid spec");
    let record = Activity::new(
        spec,
        &slots,
        crate::domain::token::TokenKey::new(b"k"),
        1,
        [0; 32],
    )
    .record();
    {
        let db = sled::Config::new()
            .path(dir.path())
            .open()
            .expect("sled opens");
        let put = |k: Vec<u8>, v: Vec<u8>| db.insert(k, v).map(|_| ()).expect("insert");
        put(SCHEMA_KEY.to_vec(), b"1".to_vec());
        put(
            layout::activity_key(&id, "rec"),
            serde_json::to_vec(&record).expect("json"),
        );
        for o in [order(1, 1, 1), order(2, 2, 1)] {
            put(
                layout::numbered(&id, 'o', o.n),
                serde_json::to_vec(&o).expect("json"),
            );
        }
        put(
            layout::numbered(&id, 'h', 3),
            serde_json::to_vec(&hold(3)).expect("json"),
        );
        db.flush().expect("flush");
    }

    let store = open(dir.path());
    assert_eq!(store.get(SCHEMA_KEY).expect("reads"), Some(b"2".to_vec()));
    let mut paid = order(2, 2, 2);
    paid.status = OrderStatus::Paid;
    let ops = codec::encode(
        &id,
        None,
        &[Mutation::PutOrder(paid.clone().into())],
        false,
        &mut codec::EventLog::default(),
    );
    commit(&store, ops).await;
    for store in [Some(store), None] {
        let store = store.unwrap_or_else(|| open(dir.path()));
        let loaded = store.load_activity(&id).expect("loads").expect("found");
        assert_eq!(loaded.data.orders, vec![order(1, 1, 1), paid.clone()]);
        assert_eq!(loaded.data.holds, vec![hold(3)]);
        store.shutdown();
    }
}
