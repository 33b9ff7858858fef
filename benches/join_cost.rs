//! The instruction count of a join, for callgrind (repeatable on a loaded machine,
//! unlike wall time): the same rig as `domain`'s `activity/join/10000` (10,000 waiting,
//! paced out, a WebSocket place each time), with the timed part in `joins`, so
//!
//! ```sh
//! valgrind --tool=callgrind --toggle-collect='join_cost::joins' \
//!     target/release/deps/join_cost-<hash> 20000
//! ```
//!
//! counts only the joins: its total `Ir` divided by the argument is one join.

use sluice::domain::activity::Activity;
use sluice::domain::clock::Millis;
use sluice::domain::ids::UserId;
use sluice::domain::spec::CreateActivity;
use sluice::domain::token::TokenKey;
use std::hint::black_box;

const T0: Millis = 1_700_000_000_000;
const WAITING: usize = 10_000;
const BATCH: usize = 1_000;
const SALE: &str = r#"{"id":"bench","name":"bench","kind":"sale","stock":100000000,
    "admission":{"rate_per_sec":1,"max_active":1000000,"queue_capacity":10000000,
                 "token_ttl_secs":86400,"reconnect_grace_secs":86400}}"#;

fn users(from: usize, n: usize) -> Vec<UserId> {
    (from..from + n)
        .map(|i| UserId::parse(&format!("user-{i}")).expect("a valid user id"))
        .collect()
}

/// The measured part: `batch` joins, nothing else.
#[inline(never)]
fn joins(activity: &mut Activity, batch: &[UserId]) {
    for u in batch {
        black_box(activity.join(u, true, T0).expect("the queue has room"));
    }
}

fn main() {
    let total: usize = std::env::args()
        .skip(1)
        .find(|a| a != "--bench")
        .map_or(20_000, |a| a.parse().expect("the number of joins"));
    let body: CreateActivity = serde_json::from_str(SALE).expect("bench activity json");
    let (spec, slots) = body.validate(T0).expect("a valid bench activity");
    let mut activity = Activity::new(spec, &slots, TokenKey::new(b"k"), T0, [9; 32]);
    for u in users(0, WAITING) {
        activity.join(&u, true, T0).expect("the queue has room");
    }
    drop(activity.take_effects());
    let mut next = WAITING;
    while next < WAITING + total {
        let batch = users(next, BATCH.min(WAITING + total - next));
        next += batch.len();
        joins(&mut activity, &batch);
        drop(activity.take_effects());
        for u in &batch {
            activity.leave(u, T0).expect("a live place");
        }
        drop(activity.take_effects());
    }
    println!("{total} joins");
}
