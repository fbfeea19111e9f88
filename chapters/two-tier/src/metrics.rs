//! What a two-tier cache counts about itself, layer by layer.
//!
//! One hit ratio for "the cache" hides the question that matters with two layers: which layer
//! answered? An L1 hit costs well under a microsecond, an L2 hit a network round trip, a miss a
//! database query. So every read reports the layer that answered ([`Layer`]), and the instance
//! counts each, with the invalidations it heard, the times it flushed its L1, and the reads the
//! fail-safe answered with an old value.

use serde::Serialize;
use shared::metrics::Counter;

shared::variants! {
    /// Which layer answered a read, in the order a read tries them (the fail-safe last).
    pub enum Layer {
        /// The instance's own memory.
        L1 = ("l1", "L1"),
        /// Redis.
        L2 = ("l2", "L2"),
        /// The database, after both caches missed.
        Database = ("database", "database"),
        /// The last value known, served because Redis and the database both failed.
        FailSafe = ("fail-safe", "fail-safe"),
    }
}

/// The counters of one instance.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Reads answered from the instance's own memory.
    pub l1_hits: Counter,
    /// Reads answered by Redis.
    pub l2_hits: Counter,
    /// Reads answered by the database.
    pub loads: Counter,
    /// Reads that waited for another request's load of the same key instead of making their own
    /// (counted here only, not as hits or loads).
    pub coalesced: Counter,
    /// Reads answered with an old value because Redis and the database both failed.
    pub fail_safe: Counter,
    /// Invalidations this instance heard on the backplane.
    pub invalidations: Counter,
    /// Times the instance dropped its whole L1 because it may have missed invalidations.
    pub flushes: Counter,
    /// Loads whose result was not kept in L1, because an invalidation arrived while they ran.
    pub superseded: Counter,
    /// Redis calls that failed or ran out of time.
    pub redis_errors: Counter,
    /// Redis entries that did not decode (read as misses).
    pub corrupt: Counter,
}

impl Metrics {
    /// Counts one read answered by `layer`.
    pub fn answered(&self, layer: Layer) {
        match layer {
            Layer::L1 => self.l1_hits.inc(),
            Layer::L2 => self.l2_hits.inc(),
            Layer::Database => self.loads.inc(),
            Layer::FailSafe => self.fail_safe.inc(),
        }
    }

    /// The counters' values now.
    pub fn snapshot(&self) -> Stats {
        Stats {
            l1_hits: self.l1_hits.get(),
            l2_hits: self.l2_hits.get(),
            loads: self.loads.get(),
            coalesced: self.coalesced.get(),
            fail_safe: self.fail_safe.get(),
            invalidations: self.invalidations.get(),
            flushes: self.flushes.get(),
            superseded: self.superseded.get(),
            redis_errors: self.redis_errors.get(),
            corrupt: self.corrupt.get(),
        }
    }
}

/// [`Metrics`] at one moment; several instances' add up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[allow(missing_docs)] // the fields are Metrics' counters, documented there
pub struct Stats {
    pub l1_hits: u64,
    pub l2_hits: u64,
    pub loads: u64,
    pub coalesced: u64,
    pub fail_safe: u64,
    pub invalidations: u64,
    pub flushes: u64,
    pub superseded: u64,
    pub redis_errors: u64,
    pub corrupt: u64,
}

impl Stats {
    /// Reads answered, by any layer: each is counted once, in exactly one of the hits, loads,
    /// coalesced and fail-safe counters.
    pub fn reads(&self) -> u64 {
        self.l1_hits + self.l2_hits + self.loads + self.coalesced + self.fail_safe
    }
}

/// Two instances' counters together.
impl std::ops::Add for Stats {
    type Output = Stats;

    fn add(self, other: Stats) -> Stats {
        Stats {
            l1_hits: self.l1_hits + other.l1_hits,
            l2_hits: self.l2_hits + other.l2_hits,
            loads: self.loads + other.loads,
            coalesced: self.coalesced + other.coalesced,
            fail_safe: self.fail_safe + other.fail_safe,
            invalidations: self.invalidations + other.invalidations,
            flushes: self.flushes + other.flushes,
            superseded: self.superseded + other.superseded,
            redis_errors: self.redis_errors + other.redis_errors,
            corrupt: self.corrupt + other.corrupt,
        }
    }
}

/// Every instance's counters together.
impl std::iter::Sum for Stats {
    fn sum<I: Iterator<Item = Stats>>(stats: I) -> Stats {
        stats.fold(Stats::default(), |sum, one| sum + one)
    }
}
