//! How long things live and wait, for every strategy alike.
//!
//! The TTL is short on purpose: it is the bound of the TTL-only strategy, and the safety net of
//! every other one, and a demo of twenty seconds must be able to show it expiring. A production
//! cache would use minutes; the ratios between the strategies stay the same.

use std::time::Duration;

/// The TTLs, budgets and relay timings every strategy uses.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Lifetime of a cached item or listing in Redis: the longest any strategy can serve an old
    /// value when everything else fails.
    pub ttl: Duration,
    /// Lifetime of an instance's own copy (broadcast events): the bound for an instance that
    /// missed an event and has not noticed yet.
    pub local_ttl: Duration,
    /// Longest wait for any one Redis call before falling back to the database.
    pub redis_timeout: Duration,
    /// How long a reader's right to store a loaded value lasts ([`shared::lease`]).
    pub lease_ttl: Duration,
    /// How often the outbox relay looks for work when nothing wakes it.
    pub relay_poll: Duration,
    /// The most outbox entries the relay takes at once.
    pub relay_batch: i64,
    /// The relay's wait after a failure, doubled up to `relay_max_backoff`.
    pub relay_backoff: Duration,
    /// The longest wait between the relay's retries.
    pub relay_max_backoff: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ttl: Duration::from_secs(2),
            local_ttl: Duration::from_secs(2),
            redis_timeout: Duration::from_millis(100),
            lease_ttl: Duration::from_secs(1),
            relay_poll: Duration::from_millis(20),
            relay_batch: 200,
            relay_backoff: Duration::from_millis(20),
            relay_max_backoff: Duration::from_millis(500),
        }
    }
}
