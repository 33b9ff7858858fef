//! A journal damaged after a `kill -9`: a torn, bit-flipped or zero-filled tail is
//! dropped and every acknowledged order survives; damage before acknowledged frames
//! stops the start, naming the segment and the byte.

use super::{assert_kept, buy, create_sale};
use crate::common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The newest journal segment of a stopped store.
fn last_segment(store: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(store.join("journal"))
        .expect("journal dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segs.sort();
    segs.pop().expect("a segment")
}

/// The byte offsets of the frames of a segment (`len: u32 LE` heads each frame),
/// up to the zeros a segment written over a spare ends in.
fn frame_offsets(data: &[u8]) -> Vec<usize> {
    let mut at = 0;
    let mut out = Vec::new();
    while at + 8 <= data.len() {
        let len = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize;
        if len == 0 {
            break;
        }
        out.push(at);
        at += 8 + len;
    }
    out
}

/// Damages the tail of a segment where a crash would: right after its last frame,
/// keeping the zeros that followed it (a segment over a spare) after the damage.
fn damage_tail(data: &mut Vec<u8>, damage: fn(&mut Vec<u8>)) {
    let last = *frame_offsets(data).last().expect("a frame");
    let len = u32::from_le_bytes(data[last..last + 4].try_into().expect("4 bytes")) as usize;
    let size = data.len();
    data.truncate(last + 8 + len);
    damage(data);
    if data.len() < size {
        data.resize(size, 0);
    }
}

/// The binary with no checkpoint during the test: every acknowledged commit stays
/// in the journal.
async fn without_checkpoints() -> Process {
    Process::start(
        "sluice",
        &[("SLUICE__STORE__CHECKPOINT_MS", "3600000".into())],
    )
    .await
}

/// Sells to `n` new users; the acknowledged orders.
async fn sell(app: &Process, id: &str, round: &str, n: usize) -> Vec<Value> {
    let mut orders = Vec::new();
    for i in 0..n {
        orders.push(buy(app, id, &format!("{round}u{i}")).await.expect("bought"));
    }
    orders
}

#[actix_web::test]
async fn a_damaged_tail_after_kill_9_is_dropped_and_every_acknowledged_order_survives() {
    let mut app = without_checkpoints().await;
    create_sale(&app, "tail", 1000).await;
    let mut orders = Vec::new();
    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage); 4] = [
        ("a last frame cut in its payload", |d| {
            let last = *frame_offsets(d).last().expect("a frame");
            let copy = d[last..].to_vec();
            d.extend_from_slice(&copy[..copy.len() - 3]);
        }),
        ("a last frame cut in its header", |d| {
            let last = *frame_offsets(d).last().expect("a frame");
            let copy = d[last..last + 5].to_vec();
            d.extend_from_slice(&copy);
        }),
        ("a flipped bit in an unacknowledged last frame", |d| {
            let last = *frame_offsets(d).last().expect("a frame");
            let mut copy = d[last..].to_vec();
            let mid = copy.len() / 2;
            copy[mid] ^= 0x04;
            d.extend_from_slice(&copy);
        }),
        ("a zero-filled tail", |d| d.resize(d.len() + 4096 + 5, 0)),
    ];
    for (round, (what, damage)) in damages.iter().enumerate() {
        orders.extend(sell(&app, "tail", &format!("r{round}"), 6).await);
        app.kill9();
        let seg = last_segment(app.store_dir());
        let mut data = std::fs::read(&seg).expect("reads");
        assert!(
            !frame_offsets(&data).is_empty(),
            "{what}: the journal holds the sale"
        );
        damage_tail(&mut data, *damage);
        std::fs::write(&seg, &data).expect("writes");
        app.restart().await;
        assert_kept(&app, "tail", &orders).await;
    }
    orders.extend(sell(&app, "tail", "after", 3).await);
    assert_kept(&app, "tail", &orders).await;
}

#[actix_web::test]
async fn damage_before_acknowledged_frames_stops_the_start_naming_segment_and_byte() {
    let mut app = without_checkpoints().await;
    create_sale(&app, "middle", 100).await;
    let orders = sell(&app, "middle", "m", 8).await;
    app.kill9();
    let seg = last_segment(app.store_dir());
    let mut data = std::fs::read(&seg).expect("reads");
    let offsets = frame_offsets(&data);
    assert!(offsets.len() >= 4, "frames: {offsets:?}");
    let victim = offsets[1];
    data[victim + 8 + 1] ^= 0x01;
    std::fs::write(&seg, &data).expect("writes");

    let err = app.start_refused();
    assert!(
        err.contains(&seg.display().to_string()) && err.contains(&format!("byte {victim}")),
        "the error names the segment and the byte: {err}"
    );
    assert_eq!(
        std::fs::read(&seg).expect("still there"),
        data,
        "nothing is dropped or rewritten"
    );
    // Repaired (the bit flipped back), the store starts with everything.
    data[victim + 8 + 1] ^= 0x01;
    std::fs::write(&seg, &data).expect("writes");
    app.restart().await;
    assert_kept(&app, "middle", &orders).await;
}
