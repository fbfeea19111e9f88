//! How long entries live, and how long the cache waits for Redis.
//!
//! **Jitter.** Keys cached at the same moment with the same TTL expire at the same moment: after a
//! deploy, a cache flush, or a warm-up job, thousands of keys vanish together and their misses
//! reach the database together, a *cache avalanche*. Adding a random few percent to each TTL
//! spreads the expiries out.
//!
//! **Negative TTL.** An "absent" answer is cached much more briefly than a value: long enough to
//! absorb a burst of requests for ids that do not exist, short enough that a row inserted a moment
//! later is found soon.
//!
//! **Redis timeout.** A cache is an optimisation. If Redis does not answer within a small budget
//! the read goes to the database instead of waiting; the wait is bounded, never the request's.
//!
//! **Lease TTL.** How long a reader may take between missing and storing (see
//! [`cache`](crate::cache)); it must comfortably exceed the time a database load takes.

use std::time::Duration;

use rand::Rng;

// ANCHOR: settings
/// How long entries live and how long any Redis call may take.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Lifetime of a cached value.
    pub ttl: Duration,
    /// Up to this much is added at random to each value's TTL.
    pub jitter: Duration,
    /// Lifetime of a cached "absent".
    pub negative_ttl: Duration,
    /// Longest wait for any one Redis call before falling back.
    pub redis_timeout: Duration,
    /// How long a reader's right to store a loaded value lasts.
    pub lease_ttl: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ttl: Duration::from_secs(300),
            jitter: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(30),
            redis_timeout: Duration::from_millis(100),
            lease_ttl: Duration::from_secs(3),
        }
    }
}

impl Settings {
    /// The TTL for a new value: `ttl` plus a uniformly random share of `jitter`.
    pub fn value_ttl(&self) -> Duration {
        let extra = rand::rng().random_range(0..=self.jitter.as_millis() as u64);
        self.ttl + Duration::from_millis(extra)
    }
}
// ANCHOR_END: settings

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_ttls_stay_in_range_and_spread_out() {
        let settings = Settings {
            ttl: Duration::from_secs(60),
            jitter: Duration::from_secs(6),
            ..Settings::default()
        };
        let ttls: Vec<Duration> = (0..1_000).map(|_| settings.value_ttl()).collect();
        assert!(
            ttls.iter()
                .all(|t| *t >= settings.ttl && *t <= settings.ttl + settings.jitter)
        );
        let distinct: std::collections::HashSet<_> = ttls.iter().map(|t| t.as_secs()).collect();
        // 66 s needs a draw of exactly 6,000 ms; each of 60..=65 takes about a sixth of draws.
        assert!(
            distinct.len() >= 6,
            "whole seconds 60..=65 all occur: {distinct:?}"
        );
    }
}
