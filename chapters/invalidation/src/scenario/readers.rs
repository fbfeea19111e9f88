//! The readers of a phase: several per instance, reading Zipf-drawn items and listings while the
//! writes run, counting the stale reads they were served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use invalidation::catalog::category_of;
use invalidation::{AnyStrategy, Strategy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use shared::staleness::Committed;

use crate::Cli;

/// Readers per instance.
const READERS: usize = 4;

/// The readers of one phase, and what they counted.
pub struct Readers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    counters: Arc<ReadCounters>,
}

/// Reads served, and the stale ones among them; `stop` ends the readers.
#[derive(Default)]
struct ReadCounters {
    stop: AtomicBool,
    reads: AtomicU64,
    stale: AtomicU64,
}

impl Readers {
    /// Starts `READERS` readers on every one of `instances`, each with a seed of its own.
    pub fn start(
        instances: &[Arc<AnyStrategy>],
        committed: &Arc<Committed>,
        cli: &Cli,
    ) -> anyhow::Result<Readers> {
        let counters = Arc::new(ReadCounters::default());
        let mut tasks = Vec::new();
        for (n, instance) in instances.iter().enumerate() {
            for r in 0..READERS {
                let seed = cli.seed.wrapping_add((n * READERS + r + 1) as u64);
                tasks.push(tokio::spawn(read_until_stopped(
                    instance.clone(),
                    committed.clone(),
                    Zipf::new(cli.items as f64, cli.skew)?,
                    seed,
                    counters.clone(),
                )));
            }
        }
        Ok(Readers { tasks, counters })
    }

    /// Stops the readers; how many reads they made, and how many were stale.
    pub async fn stop(self) -> anyhow::Result<(u64, u64)> {
        self.counters.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await?;
        }
        let c = &self.counters;
        Ok((
            c.reads.load(Ordering::SeqCst),
            c.stale.load(Ordering::SeqCst),
        ))
    }
}

/// One reader: Zipf-drawn items, one read in five a listing, until stopped. A read that began
/// after a newer version was committed and returned an older one is stale.
async fn read_until_stopped(
    strategy: Arc<AnyStrategy>,
    committed: Arc<Committed>,
    zipf: Zipf<f64>,
    seed: u64,
    counters: Arc<ReadCounters>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !counters.stop.load(Ordering::SeqCst) {
        let id = zipf.sample(&mut rng) as i64;
        let expected = committed.latest(id);
        let seen = if rng.random_bool(0.2) {
            let listing = strategy.listing(category_of(id)).await;
            listing
                .ok()
                .and_then(|l| l.into_iter().find(|i| i.id == id))
                .map(|i| i.version)
        } else {
            strategy.item(id).await.ok().flatten().map(|i| i.version)
        };
        counters.reads.fetch_add(1, Ordering::Relaxed);
        if seen.is_some_and(|v| v < expected) {
            counters.stale.fetch_add(1, Ordering::Relaxed);
        }
        tokio::task::yield_now().await;
    }
}
