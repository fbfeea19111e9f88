//! What one run measured: latency split by reads and writes, and stale reads.
//!
//! A read is stale when it returns an older version of an article than a write that had already
//! committed *and returned* before the read began: the versions writes returned are recorded, and
//! every read is checked against the one recorded when it started.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use shared::metrics::Latency;
use write_through::Article;

/// What one run measured, split by reads and writes.
#[derive(Default)]
pub struct Measured {
    /// Every read's latency.
    pub reads: Mutex<Latency>,
    /// Every write's latency.
    pub writes: Mutex<Latency>,
    stale_reads: AtomicU64,
    edits: AtomicU64,
    /// The last version each article was committed at by a write that has returned.
    committed: Mutex<HashMap<i64, i64>>,
}

impl Measured {
    /// Times `call`, recording it as a read or a write.
    pub async fn time<T>(&self, write: bool, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = call.await;
        let histogram = if write { &self.writes } else { &self.reads };
        histogram
            .lock()
            .expect("latency lock")
            .record(started.elapsed());
        out
    }

    /// The version a read of `id` starting now must see at least, if any write has returned.
    pub fn committed(&self, id: i64) -> Option<i64> {
        self.committed
            .lock()
            .expect("committed lock")
            .get(&id)
            .copied()
    }

    /// Records a write that returned `row`.
    pub fn commit(&self, row: &Article) {
        let mut committed = self.committed.lock().expect("committed lock");
        let version = committed.entry(row.id).or_insert(0);
        *version = (*version).max(row.version);
    }

    /// Counts a read that returned an older version than it must see.
    pub fn stale_read(&self) {
        self.stale_reads.fetch_add(1, Ordering::Relaxed);
    }

    /// How many reads were stale.
    pub fn stale_reads(&self) -> u64 {
        self.stale_reads.load(Ordering::Relaxed)
    }

    /// A number for the next edit, so every edit's title differs.
    pub fn next_edit(&self) -> u64 {
        self.edits.fetch_add(1, Ordering::Relaxed)
    }
}
