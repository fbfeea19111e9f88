//! One reading task of an instance: Zipf-drawn items, read as fast as the reader answers, each
//! read timed and checked against what was committed when it began.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Zipf};
use shared::metrics::Latency;
use shared::staleness::Committed;
use two_tier::{AnyCache, Layer};

/// One reading task.
pub struct ReadingTask {
    pub cache: Arc<AnyCache>,
    pub committed: Arc<Committed>,
    /// The staleness a read may show within the reader's promise: the L1 lifetime.
    pub bound: Duration,
    /// Reads are counted only while this is set: not during the warm-up.
    pub measuring: Arc<AtomicBool>,
    pub stop: Arc<AtomicBool>,
}

/// What one reading task counted.
pub struct ReadCounts {
    pub reads: u64,
    pub stale: u64,
    pub beyond_bound: u64,
    pub all: Latency,
    /// In the order of [`Layer::ALL`].
    pub by_layer: [Latency; 4],
}

impl Default for ReadCounts {
    fn default() -> Self {
        ReadCounts {
            reads: 0,
            stale: 0,
            beyond_bound: 0,
            all: Latency::default(),
            by_layer: std::array::from_fn(|_| Latency::default()),
        }
    }
}

impl ReadCounts {
    /// Adds another task's counts to these.
    pub fn merge(&mut self, other: ReadCounts) {
        self.reads += other.reads;
        self.stale += other.stale;
        self.beyond_bound += other.beyond_bound;
        self.all.merge(&other.all);
        for (mine, theirs) in self.by_layer.iter_mut().zip(&other.by_layer) {
            mine.merge(theirs);
        }
    }
}

impl ReadingTask {
    /// Zipf-drawn items until stopped. A read that began after a newer version was committed and
    /// returned an older one is stale; beyond the bound if the version it returned had been out
    /// of date (the next version's write had returned) for more than the L1 lifetime when the
    /// read began.
    pub async fn run(self, zipf: Zipf<f64>, seed: u64) -> ReadCounts {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut counts = ReadCounts::default();
        while !self.stop.load(Ordering::SeqCst) {
            let id = zipf.sample(&mut rng) as i64;
            let began = Instant::now();
            let expected = self.committed.latest(id);
            let Ok(read) = self.cache.item(id).await else {
                // The database failed too (Redis failing alone falls back to it). Such a read
                // returns at once, so yield, or the task keeps its thread while the outage lasts.
                tokio::task::yield_now().await;
                continue;
            };
            let took = began.elapsed();
            if !self.measuring.load(Ordering::Relaxed) {
                tokio::task::yield_now().await;
                continue;
            }
            counts.reads += 1;
            counts.all.record(took);
            let index = Layer::ALL
                .iter()
                .position(|l| *l == read.layer)
                .unwrap_or(0);
            counts.by_layer[index].record(took);
            if let Some(item) = read.value.filter(|item| item.version < expected) {
                counts.stale += 1;
                if self.committed.outdated_for(id, item.version, began) > self.bound {
                    counts.beyond_bound += 1;
                }
            }
            tokio::task::yield_now().await;
        }
        counts
    }
}
