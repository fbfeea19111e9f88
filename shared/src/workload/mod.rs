//! The traffic the demos replay: Zipf-skewed keys, a fixed seed, many concurrent tasks.
//!
//! Real traffic is skewed: a few users, products and articles get most of the requests. Under
//! Zipf's law with exponent `s`, the key of rank `k` is requested in proportion to `1 / k^s`;
//! with `s = 1` and 1,000 keys the top 10 keys take about 39% of the requests. Skew decides how
//! much a cache that cannot keep every key (bounded memory, short TTLs, more keys than repeats)
//! still serves; a cache that keeps every key misses each once whatever the skew. The whole sequence of operations is drawn up front
//! from the seed, so two runs (or two strategies in one run) replay exactly the same requests.
//!
//! How the requests are sent, a closed loop of tasks, a burst, or an open loop at a fixed rate,
//! is [`fire`]'s job.

pub mod fire;

use std::future::Future;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

pub use fire::{Arrivals, RunStats, progress_bar};

/// One request of the workload, naming a key by its id (`1..=keys`, id 1 the hottest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read the key.
    Read(i64),
    /// Write the key.
    Write(i64),
}

impl Op {
    /// The id the operation names.
    pub fn id(self) -> i64 {
        match self {
            Op::Read(id) | Op::Write(id) => id,
        }
    }
}

/// A workload: what to ask, and how many tasks ask it at once.
#[derive(Clone, Debug)]
pub struct Workload {
    /// How many operations.
    pub requests: u64,
    /// How many tasks send them, each waiting for its answer before sending the next.
    pub concurrency: usize,
    /// How many distinct ids they draw from.
    pub keys: u64,
    /// The Zipf exponent; 0 is uniform, around 1 is typical of web traffic.
    pub skew: f64,
    /// The fraction of operations that are writes, from 0 to 1.
    pub write_ratio: f64,
    /// The seed of the draws.
    pub seed: u64,
    /// Draw a progress bar on stderr (it hides itself when stderr is not a terminal).
    pub progress: bool,
}

impl Workload {
    /// The operations, in order, drawn from the seed.
    pub fn ops(&self) -> Vec<Op> {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let zipf = Zipf::new(self.keys as f64, self.skew).expect("keys >= 1 and skew >= 0");
        (0..self.requests)
            .map(|_| {
                let id = zipf.sample(&mut rng) as i64;
                if rng.random_bool(self.write_ratio) {
                    Op::Write(id)
                } else {
                    Op::Read(id)
                }
            })
            .collect()
    }

    /// Replays the operations over `concurrency` tasks (a closed loop), each calling `op` and
    /// timing it, and returns the throughput and latency. An operation that returns an error is
    /// counted and the run goes on; the first error's text is kept for the report.
    pub async fn run<F, Fut, E>(&self, label: &str, op: F) -> RunStats
    where
        F: Fn(Op) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display,
    {
        let ops = Arc::new(self.ops());
        let arrivals = Arrivals::Closed {
            concurrency: self.concurrency,
        };
        let count = ops.len() as u64;
        fire::fire(arrivals, count, label, self.progress, move |i| {
            op(ops[i as usize])
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn workload(seed: u64) -> Workload {
        Workload {
            requests: 10_000,
            concurrency: 4,
            keys: 1_000,
            skew: 1.0,
            write_ratio: 0.1,
            seed,
            progress: false,
        }
    }

    #[test]
    fn same_seed_same_ops() {
        assert_eq!(workload(7).ops(), workload(7).ops());
        assert_ne!(workload(7).ops(), workload(8).ops());
    }

    #[test]
    fn keys_are_skewed_and_in_range() {
        let ops = workload(1).ops();
        assert!(ops.iter().all(|op| (1..=1_000).contains(&op.id())));
        let top10 = ops.iter().filter(|op| op.id() <= 10).count() as f64;
        // Zipf(s = 1, n = 1000): the top 10 keys draw about 39% of requests; uniform would be 1%.
        assert!(
            (0.33..0.45).contains(&(top10 / ops.len() as f64)),
            "{top10}"
        );
        let writes = ops.iter().filter(|op| matches!(op, Op::Write(_))).count() as f64;
        assert!(
            (0.08..0.12).contains(&(writes / ops.len() as f64)),
            "{writes}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_performs_every_op_once_and_counts_failures() {
        let w = workload(3);
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let stats = w
            .run("test", move |op| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::Relaxed);
                    if op.id() == 1 {
                        Err("key 1 fails")
                    } else {
                        Ok(())
                    }
                }
            })
            .await;
        let key1 = w.ops().iter().filter(|op| op.id() == 1).count() as u64;
        assert_eq!(seen.load(Ordering::Relaxed), 10_000);
        assert_eq!(stats.requests, 10_000);
        assert_eq!(
            stats.latency.count,
            10_000 - key1,
            "latencies are of the requests that succeeded: the failures are counted apart"
        );
        assert_eq!(stats.failures, key1);
        assert_eq!(stats.first_failure.as_deref(), Some("key 1 fails"));
    }
}
