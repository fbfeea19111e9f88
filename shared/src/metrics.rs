//! What a cache counts about itself, and latency histograms.
//!
//! A cache you cannot observe is a cache you cannot trust: the hit ratio says whether it earns its
//! keep, errors say whether Redis is healthy, and corrupt entries say whether something else
//! writes to your keys. Counters are relaxed atomics, a few nanoseconds each, cheap enough to leave
//! on in benchmarks. Latencies go into an HDR histogram, which keeps every percentile to three
//! significant digits in a few kilobytes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The counters of one cache layer.
#[derive(Debug, Default)]
pub struct CacheMetrics {
    /// Requests answered from the cache, including cached "absent" answers.
    pub hits: Counter,
    /// Of the hits, how many were a cached "absent" (negative caching at work).
    pub negative_hits: Counter,
    /// Requests the cache could not answer (nothing stored, unreadable, or Redis failed).
    pub misses: Counter,
    /// Calls to the loader, i.e. to the database, made on behalf of misses.
    pub loads: Counter,
    /// Redis calls that failed or took longer than the cache's time budget.
    pub errors: Counter,
    /// Entries that could not be decoded, treated as misses and overwritten.
    pub corrupt: Counter,
}

impl CacheMetrics {
    /// The counters' values now.
    pub fn snapshot(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.get(),
            negative_hits: self.negative_hits.get(),
            misses: self.misses.get(),
            loads: self.loads.get(),
            errors: self.errors.get(),
            corrupt: self.corrupt.get(),
        }
    }
}

/// A copy of [`CacheMetrics`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[allow(missing_docs)] // each field is the counter of the same name
pub struct CacheStats {
    pub hits: u64,
    pub negative_hits: u64,
    pub misses: u64,
    pub loads: u64,
    pub errors: u64,
    pub corrupt: u64,
}

/// The counts between two snapshots: `later - earlier`.
impl std::ops::Sub for CacheStats {
    type Output = CacheStats;

    fn sub(self, earlier: CacheStats) -> CacheStats {
        CacheStats {
            hits: self.hits - earlier.hits,
            negative_hits: self.negative_hits - earlier.negative_hits,
            misses: self.misses - earlier.misses,
            loads: self.loads - earlier.loads,
            errors: self.errors - earlier.errors,
            corrupt: self.corrupt - earlier.corrupt,
        }
    }
}

impl CacheStats {
    /// hits / (hits + misses), or 0 when nothing was asked.
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

/// A latency histogram in microseconds, from 1 µs to one hour.
#[derive(Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"))
    }
}

impl Latency {
    /// Adds one latency.
    pub fn record(&mut self, elapsed: Duration) {
        let us = (elapsed.as_micros() as u64).clamp(1, 3_600_000_000);
        self.0.record(us).expect("value within bounds");
    }

    /// Adds every latency `other` recorded.
    pub fn merge(&mut self, other: &Latency) {
        self.0
            .add(&other.0)
            .expect("histograms with the same bounds");
    }

    /// How many recorded latencies were at least `threshold`.
    pub fn count_at_least(&self, threshold: Duration) -> u64 {
        let threshold = threshold.as_micros() as u64;
        self.0
            .iter_recorded()
            .filter(|v| v.value_iterated_to() >= threshold)
            .map(|v| v.count_at_value())
            .sum()
    }

    /// The latency at `quantile` (0 to 1), in microseconds.
    pub fn at_quantile(&self, quantile: f64) -> u64 {
        self.0.value_at_quantile(quantile)
    }

    /// The percentiles a report prints.
    pub fn summary(&self) -> LatencySummary {
        let h = &self.0;
        LatencySummary {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        }
    }
}

/// Percentiles of a [`Latency`] histogram, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// How many latencies were recorded.
    pub count: u64,
    /// Their mean.
    pub mean_us: f64,
    /// The median.
    pub p50_us: u64,
    /// The 90th percentile.
    pub p90_us: u64,
    /// The 99th percentile.
    pub p99_us: u64,
    /// The largest.
    pub max_us: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_recorded_values() {
        let mut latency = Latency::default();
        for ms in 1..=100 {
            latency.record(Duration::from_millis(ms));
        }
        let s = latency.summary();
        assert_eq!(s.count, 100);
        assert!((49_900..=50_100).contains(&s.p50_us), "{s:?}");
        assert!((98_900..=99_100).contains(&s.p99_us), "{s:?}");
        assert!((99_900..=100_100).contains(&s.max_us), "{s:?}");
    }

    #[test]
    fn hit_ratio_counts_hits_over_lookups() {
        let metrics = CacheMetrics::default();
        assert_eq!(metrics.snapshot().hit_ratio(), 0.0);
        for _ in 0..3 {
            metrics.hits.inc();
        }
        metrics.misses.inc();
        assert_eq!(metrics.snapshot().hit_ratio(), 0.75);
    }
}
