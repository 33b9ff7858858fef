//! The journal on its own: frames, replay, and every kind of damage a crash or a disk can leave.

use super::*;

fn frame(ops: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
    let mut f = Frame::new();
    for (k, v) in ops {
        match v {
            Some(v) => f.put(k, v),
            None => f.del(k),
        }
    }
    f.finish()
}

fn temp_db() -> (tempfile::TempDir, sled::Db) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sled::Config::new()
        .path(dir.path().join("db"))
        .open()
        .expect("sled opens");
    (dir, db)
}

#[test]
fn frames_round_trip() {
    let f = frame(&[(b"a", Some(b"1")), (b"b", None), (b"", Some(b""))]);
    let payloads: Vec<_> = frames(&f).collect();
    assert_eq!(payloads.len(), 1);
    let payload = payloads[0].expect("intact");
    assert_eq!(
        ops(payload).expect("decodes"),
        vec![Op::Put(b"a", b"1"), Op::Del(b"b"), Op::Put(b"", b"")]
    );
}

#[test]
fn replay_applies_in_order_and_empties_the_journal() {
    let (dir, db) = temp_db();
    let jdir = dir.path().join("journal");
    fs::create_dir_all(&jdir).expect("dir");
    let mut j = Journal::create(&jdir, 3, Arc::default()).expect("segment");
    j.append(&frame(&[(b"k", Some(b"1")), (b"gone", Some(b"x"))]))
        .expect("append");
    j.rotate().expect("rotate");
    j.append(&frame(&[(b"k", Some(b"2")), (b"gone", None)]))
        .expect("append");
    assert_eq!(j.seq(), 4);
    let next = replay(&db, &jdir).expect("replays");
    assert_eq!(next, 5);
    assert_eq!(db.get(b"k").expect("get").as_deref(), Some(&b"2"[..]));
    assert_eq!(db.get(b"gone").expect("get"), None);
    assert!(segments(&jdir).expect("lists").is_empty());
    // Replaying the same frames again (a crash before the delete) is harmless.
    assert_eq!(replay(&db, &jdir).expect("replays"), 0);
    assert_eq!(db.get(b"k").expect("get").as_deref(), Some(&b"2"[..]));
}

#[test]
fn a_torn_last_frame_is_dropped_but_damage_before_the_end_refuses_start() {
    let (dir, db) = temp_db();
    let jdir = dir.path().join("journal");
    fs::create_dir_all(&jdir).expect("dir");
    let good = frame(&[(b"a", Some(b"1"))]);
    let torn = frame(&[(b"b", Some(b"2"))]);
    let mut bytes = good.clone();
    bytes.extend_from_slice(&torn[..torn.len() - 1]);
    fs::write(segment_path(&jdir, 0), &bytes).expect("write");
    assert_eq!(replay(&db, &jdir).expect("the torn tail is dropped"), 1);
    assert_eq!(db.get(b"a").expect("get").as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get(b"b").expect("get"), None);

    // The same damage in a segment that is not the last: acknowledged data is gone.
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    fs::write(segment_path(&jdir, 7), &flipped).expect("write");
    fs::write(segment_path(&jdir, 8), &good).expect("write");
    assert!(matches!(
        replay(&db, &jdir),
        Err(StoreError::Corrupt { .. })
    ));
}

/// A segment of `n` acknowledged frames (key `k{i}` = `v{i}`) and the bytes of each.
fn acknowledged(n: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let frames: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            frame(&[(
                format!("k{i}").as_bytes(),
                Some(format!("v{i}").repeat(5).as_bytes()),
            )])
        })
        .collect();
    (frames.concat(), frames)
}

/// Replays one segment holding `bytes` into a fresh sled; the outcome and the db.
fn replay_bytes(bytes: &[u8]) -> (Result<u64, StoreError>, sled::Db, tempfile::TempDir) {
    let (dir, db) = temp_db();
    let jdir = dir.path().join("journal");
    fs::create_dir_all(&jdir).expect("dir");
    fs::write(segment_path(&jdir, 0), bytes).expect("write");
    (replay(&db, &jdir), db, dir)
}

#[track_caller]
fn assert_keeps(db: &sled::Db, n: usize) {
    for i in 0..n {
        let want = format!("v{i}").repeat(5);
        assert_eq!(
            db.get(format!("k{i}")).expect("get").as_deref(),
            Some(want.as_bytes()),
            "acknowledged frame {i}"
        );
    }
}

#[test]
fn a_last_frame_torn_at_every_byte_keeps_every_acknowledged_frame() {
    let (good, _) = acknowledged(3);
    let last = frame(&[(b"unacked", Some(&[7u8; 40][..])), (b"k0", None)]);
    for cut in 0..last.len() {
        let mut bytes = good.clone();
        bytes.extend_from_slice(&last[..cut]);
        let (res, db, _dir) = replay_bytes(&bytes);
        assert_eq!(
            res.expect("a torn tail is dropped, not refused"),
            1,
            "cut at {cut}"
        );
        assert_keeps(&db, 3);
        assert_eq!(db.get(b"unacked").expect("get"), None, "cut at {cut}");
    }
}

#[test]
fn a_flipped_bit_in_the_unacknowledged_tail_drops_only_the_tail() {
    let (good, _) = acknowledged(3);
    let last = frame(&[(b"unacked", Some(&[7u8; 40][..]))]);
    for byte in 0..last.len() {
        for bit in [0u8, 3, 7] {
            let mut bytes = good.clone();
            let mut tail = last.clone();
            tail[byte] ^= 1 << bit;
            bytes.extend_from_slice(&tail);
            let (res, db, _dir) = replay_bytes(&bytes);
            assert!(res.is_ok(), "bit {bit} of byte {byte}: {res:?}");
            assert_keeps(&db, 3);
            assert_eq!(db.get(b"unacked").expect("get"), None);
        }
    }
}

#[test]
fn a_zero_filled_tail_is_not_read_as_frames() {
    let (good, _) = acknowledged(3);
    for zeros in [1, 7, 8, 9, 64, 4096] {
        let mut bytes = good.clone();
        bytes.resize(good.len() + zeros, 0);
        let (res, db, _dir) = replay_bytes(&bytes);
        assert!(res.is_ok(), "{zeros} zeros: {res:?}");
        assert_keeps(&db, 3);
    }
    assert!(
        frames(&[0u8; 16]).all(|f| f.is_err()),
        "an all-zero header is damage, not an empty frame"
    );
}

#[test]
fn damage_before_acknowledged_frames_refuses_start_naming_segment_and_byte() {
    let (good, frames) = acknowledged(4);
    let second = frames[0].len();
    let mut damage: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut flipped = good.clone();
    flipped[second + HEADER + 2] ^= 0x10;
    damage.push(("a flipped bit in frame 2 of 4", flipped));
    let mut zeroed = good.clone();
    zeroed[second..second + 12].fill(0);
    damage.push(("zeros over frame 2's header", zeroed));
    let mut long = good.clone();
    long[second..second + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    damage.push(("frame 2's length runs past the end", long));
    for (what, bytes) in damage {
        let (res, _db, dir) = replay_bytes(&bytes);
        let err = res.expect_err(what).to_string();
        let segment = segment_path(&dir.path().join("journal"), 0);
        assert!(
            err.contains(&segment.display().to_string()) && err.contains(&format!("byte {second}")),
            "{what}: {err}"
        );
        assert!(
            segments(&dir.path().join("journal")).expect("lists").len() == 1,
            "{what}: nothing deleted"
        );
    }
}

#[test]
fn a_sealed_segment_ends_at_its_last_synced_frame() {
    let dir = tempfile::tempdir().expect("temp dir");
    let faults = Arc::new(Faults::default());
    let mut j = Journal::create(dir.path(), 0, Arc::clone(&faults)).expect("segment");
    j.append(&frame(&[(b"a", Some(b"1"))])).expect("append");
    faults.fail_syncs(1);
    let failed = frame(&[(b"b", Some(b"2"))]);
    assert!(j.append(&failed).is_err(), "the injected sync failure");
    let path = segment_path(dir.path(), 0);
    let written = fs::metadata(&path).expect("stat").len();
    assert!(written > j.bytes(), "the failed frame reached the file");
    j.seal().expect("seals");
    assert_eq!(fs::metadata(&path).expect("stat").len(), j.bytes());
    let mut next = j.successor().expect("next segment");
    assert_eq!(next.seq(), 1);
    next.append(&failed)
        .expect("the write goes to the new segment");

    // A segment that never synced anything is removed rather than kept empty.
    let empty = Journal::create(dir.path(), 9, Arc::default()).expect("segment");
    empty.seal().expect("seals");
    assert!(!segment_path(dir.path(), 9).exists());
}

#[test]
fn a_segment_takes_over_the_spare_and_only_the_last_may_end_in_zeros() {
    let dir = tempfile::tempdir().expect("temp dir");
    prepare_spare(dir.path(), 4096).expect("spare");
    assert_eq!(
        fs::metadata(dir.path().join(SPARE)).expect("spare").len(),
        4096
    );
    prepare_spare(dir.path(), 1024).expect("a ready spare at least as large is kept");
    assert_eq!(
        fs::metadata(dir.path().join(SPARE)).expect("spare").len(),
        4096
    );

    let mut j = Journal::create(dir.path(), 0, Arc::default()).expect("segment");
    assert!(
        !dir.path().join(SPARE).exists(),
        "the segment took the spare"
    );
    let (good, _) = acknowledged(3);
    j.append(&good).expect("append");
    let first = segment_path(dir.path(), 0);
    assert_eq!(
        fs::metadata(&first).expect("stat").len(),
        4096,
        "written over zeros"
    );

    // No spare now: the next segment grows as it is written.
    let closed = j.rotate().expect("rotates");
    assert_eq!(closed, 0);
    assert_eq!(
        fs::metadata(&first).expect("stat").len(),
        good.len() as u64,
        "a closed segment is cut back to its frames"
    );
    j.append(&frame(&[(b"k3", Some(b"last"))])).expect("append");
    assert_eq!(
        fs::metadata(segment_path(dir.path(), 1))
            .expect("stat")
            .len(),
        j.bytes()
    );

    let (_db_dir, db) = temp_db();
    replay(&db, dir.path()).expect("replays");
    assert_keeps(&db, 3);
    assert_eq!(db.get(b"k3").expect("get").as_deref(), Some(&b"last"[..]));
}

#[test]
fn a_crash_over_zeros_keeps_every_acknowledged_frame() {
    let (good, _) = acknowledged(3);
    let last = frame(&[(b"unacked", Some(&[7u8; 40][..]))]);
    // The rest of a spare after the frames; a partial append, cut at any byte and with
    // its first bytes lost (written out of order), before the zeros.
    let mut cases = vec![("zeros only", good.clone())];
    for cut in [1, HEADER, last.len() - 1] {
        let mut bytes = good.clone();
        bytes.extend_from_slice(&last[..cut]);
        cases.push(("a partial frame", bytes));
        let mut bytes = good.clone();
        bytes.resize(good.len() + HEADER, 0);
        bytes.extend_from_slice(&last[HEADER..cut.max(HEADER + 1)]);
        cases.push(("a frame whose header was not written", bytes));
    }
    for (what, mut bytes) in cases {
        bytes.resize(1 << 16, 0);
        let (res, db, _dir) = replay_bytes(&bytes);
        assert!(res.is_ok(), "{what}: {res:?}");
        assert_keeps(&db, 3);
        assert_eq!(db.get(b"unacked").expect("get"), None, "{what}");
    }
}

#[test]
fn a_closed_segment_ending_in_zeros_is_damage() {
    let (dir, db) = temp_db();
    let jdir = dir.path().join("journal");
    fs::create_dir_all(&jdir).expect("dir");
    let (good, _) = acknowledged(2);
    let mut zero_tail = good.clone();
    zero_tail.resize(good.len() + 4096, 0);
    fs::write(segment_path(&jdir, 0), &zero_tail).expect("write");
    fs::write(segment_path(&jdir, 1), &good).expect("write");
    let err = replay(&db, &jdir).expect_err("acknowledged frames may be missing");
    assert!(err.to_string().contains("not the last"), "{err}");
}
