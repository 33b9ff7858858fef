//! What sled's checkpoint costs per purchase for each way a purchase could write its
//! keys (docs/performance.md, Session 13). The tree is set up as after the bench's
//! preparation (a fairness line and a hold per admitted user, flushed), then each
//! checkpoint applies one share of the purchases' writes in key order, in batches of
//! 1,024 as `store::writer` does, and flushes; the process's CPU time (sled's own
//! threads included) is printed per purchase.
//!
//! ```sh
//! cargo bench --bench sled_writes -- [USERS] [ORDER_BYTES] [CHECKPOINTS]
//! ```

use rustix::time::{clock_gettime, ClockId};
use std::collections::BTreeMap;
use std::time::Instant;

// As in the server: the allocator changes sled's costs (see the Session 13 notes).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Clone, Copy, Debug)]
enum Writes {
    /// Schema 1: the hold's key deleted, the order inserted under `o/`.
    DeleteHoldInsertOrder,
    /// The hold kept, the order inserted.
    InsertOrderOnly,
    /// The hold never reached sled (its delete finds nothing), the order inserted.
    HoldNeverCheckpointed,
    /// Schema 2: the order written over its hold's key.
    OrderOverHold,
}

fn cpu_secs() -> f64 {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
}

fn key(kind: char, n: u64) -> Vec<u8> {
    format!("a/bench-activity/{kind}/{n:016x}").into_bytes()
}

fn run(writes: Writes, users: u64, order_bytes: usize, checkpoints: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sled::Config::new()
        .path(dir.path())
        .flush_every_ms(None)
        .open()
        .expect("sled opens");
    let (line, hold, order) = (vec![b'l'; 120], vec![b'h'; 220], vec![b'o'; order_bytes]);
    let ids: Vec<u64> = (1..=users).collect();
    for chunk in ids.chunks(1024) {
        let mut batch = sled::Batch::default();
        for &i in chunk {
            batch.insert(key('l', i), line.clone());
            if !matches!(writes, Writes::HoldNeverCheckpointed) {
                batch.insert(key('h', i), hold.clone());
            }
        }
        db.apply_batch(batch).expect("applies");
    }
    db.flush().expect("flushes");
    let per = users / checkpoints;
    let mut figures = Vec::new();
    for c in 0..checkpoints {
        let mut kv: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        for i in c * per + 1..=(c + 1) * per {
            match writes {
                Writes::OrderOverHold => {
                    kv.insert(key('h', i), Some(order.clone()));
                }
                Writes::InsertOrderOnly => {
                    kv.insert(key('o', i), Some(order.clone()));
                }
                Writes::DeleteHoldInsertOrder | Writes::HoldNeverCheckpointed => {
                    kv.insert(key('h', i), None);
                    kv.insert(key('o', i), Some(order.clone()));
                }
            }
        }
        let (cpu, wall) = (cpu_secs(), Instant::now());
        let all: Vec<_> = kv.iter().collect();
        for slice in all.chunks(1024) {
            let mut batch = sled::Batch::default();
            for (k, v) in slice {
                match v {
                    Some(v) => batch.insert(k.as_slice(), v.as_slice()),
                    None => batch.remove(k.as_slice()),
                }
            }
            db.apply_batch(batch).expect("applies");
        }
        db.flush().expect("flushes");
        figures.push(format!(
            "{:.1} us CPU ({:.1} us wall)",
            (cpu_secs() - cpu) * 1e6 / per as f64,
            wall.elapsed().as_secs_f64() * 1e6 / per as f64
        ));
    }
    println!(
        "{writes:?}: per purchase, {per} per checkpoint: {}",
        figures.join(", ")
    );
}

fn main() {
    // `cargo bench` passes `--bench`; the numbers are the only other arguments.
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let users = args.first().copied().unwrap_or(300_000);
    let order_bytes = args.get(1).copied().unwrap_or(330) as usize;
    let checkpoints = args.get(2).copied().unwrap_or(2).max(1);
    for writes in [
        Writes::DeleteHoldInsertOrder,
        Writes::InsertOrderOnly,
        Writes::HoldNeverCheckpointed,
        Writes::OrderOverHold,
    ] {
        run(writes, users, order_bytes, checkpoints);
    }
}
