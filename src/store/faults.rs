//! Test hooks for failures a real disk cannot be made to produce on demand.
//!
//! A failed `fdatasync` is the one that matters (after it, the kernel may have dropped
//! the dirty pages and will report success next time: the PostgreSQL "fsyncgate"
//! lesson), and nothing here can provoke one. Tests arm the hook through
//! `Store::faults`; a disarmed hook costs the commit path one relaxed load.

use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Default)]
pub struct Faults {
    /// The next this many journal syncs fail (after their frame was written).
    syncs: AtomicU32,
}

impl Faults {
    /// Makes the next `n` journal `fdatasync`s fail with EIO, as a disk that lost the
    /// written pages would.
    pub fn fail_syncs(&self, n: u32) {
        self.syncs.store(n, Ordering::Release);
    }

    /// Whether this sync must fail (consumes one armed failure).
    pub(super) fn sync_fails(&self) -> bool {
        self.syncs.load(Ordering::Relaxed) != 0
            && self
                .syncs
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
    }
}
