//! The interface the five strategies share, and their counters.
//!
//! One trait lets the demo run every strategy through the same scenario and the tests hold them
//! all to the same promises. A strategy answers `get(key)` with the key's value, from Redis when it
//! can and from its [`Source`] when it must; it differs from the others only in
//! *how many* loads it lets happen at once, and in what the requests that did not load were doing
//! meanwhile (waiting, or being served an older value).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use shared::metrics::Counter;

use crate::source::Source;

// ANCHOR: strategy
/// A way of answering reads of slow values from Redis, protected (or not) against stampedes.
pub trait Strategy: Send + Sync + 'static {
    /// What a key maps to.
    type Value: Send;

    /// The value of `key`. Redis trouble is never an error here: a strategy that cannot use Redis
    /// loads from the source, and counts the failure.
    fn get(&self, key: &str) -> impl Future<Output = Result<Self::Value, Error>> + Send;

    /// What the strategy has counted so far.
    fn stats(&self) -> Stats;
}
// ANCHOR_END: strategy

/// Why a request got no value. It is `Clone` because one outcome is shared by every request that
/// waited for the same load.
#[derive(Clone, Debug, thiserror::Error)]
#[allow(missing_docs)] // the fields: each variant's doc and message name them
pub enum Error {
    /// The source failed to load `key`; `cause` is its error.
    #[error("loading {key:?} failed: {cause}")]
    Load {
        key: String,
        cause: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The lock strategy's answer to a load that takes too long: rather than every waiter
    /// stampeding the database at its deadline, each gives up and says so.
    #[error("gave up on {key:?} after waiting {waited:?} for another instance to load it")]
    GaveUp { key: String, waited: Duration },
}

/// The counters of one strategy instance.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests answered with a fresh value from Redis.
    pub hits: Counter,
    /// Requests answered with a value past its soft TTL (stale-while-revalidate).
    pub stale_hits: Counter,
    /// Requests that found nothing usable in Redis.
    pub misses: Counter,
    /// Calls to the source: the database loads the strategies exist to save.
    pub loads: Counter,
    /// Refreshes started before the value was gone: XFetch's early recomputations and
    /// stale-while-revalidate's background refreshes.
    pub refreshes: Counter,
    /// Times a request waited for another's load instead of loading (lock).
    pub waits: Counter,
    /// Requests that gave up waiting (lock).
    pub gave_up: Counter,
    /// Redis calls that failed or ran out of time.
    pub errors: Counter,
    /// Entries in Redis that did not decode, treated as misses.
    pub corrupt: Counter,
}

impl Metrics {
    /// The counters' values now.
    pub fn snapshot(&self) -> Stats {
        Stats {
            hits: self.hits.get(),
            stale_hits: self.stale_hits.get(),
            misses: self.misses.get(),
            loads: self.loads.get(),
            refreshes: self.refreshes.get(),
            waits: self.waits.get(),
            gave_up: self.gave_up.get(),
            errors: self.errors.get(),
            corrupt: self.corrupt.get(),
        }
    }
}

/// A copy of [`Metrics`] at one moment; adds up across instances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[allow(missing_docs)] // each field is the counter of the same name
pub struct Stats {
    pub hits: u64,
    pub stale_hits: u64,
    pub misses: u64,
    pub loads: u64,
    pub refreshes: u64,
    pub waits: u64,
    pub gave_up: u64,
    pub errors: u64,
    pub corrupt: u64,
}

impl std::ops::Add for Stats {
    type Output = Stats;

    fn add(self, o: Stats) -> Stats {
        Stats {
            hits: self.hits + o.hits,
            stale_hits: self.stale_hits + o.stale_hits,
            misses: self.misses + o.misses,
            loads: self.loads + o.loads,
            refreshes: self.refreshes + o.refreshes,
            waits: self.waits + o.waits,
            gave_up: self.gave_up + o.gave_up,
            errors: self.errors + o.errors,
            corrupt: self.corrupt + o.corrupt,
        }
    }
}

impl std::iter::Sum for Stats {
    fn sum<I: Iterator<Item = Stats>>(iter: I) -> Stats {
        iter.fold(Stats::default(), |a, b| a + b)
    }
}

/// Loads `key` from `source`, counted; every strategy's loads go through here.
pub(crate) async fn load<S: Source>(
    source: &S,
    metrics: &Metrics,
    key: &str,
) -> Result<S::Value, Error> {
    metrics.loads.inc();
    source.load(key).await.map_err(|cause| Error::Load {
        key: key.to_string(),
        cause: Arc::from(cause),
    })
}
