//! The settings of the five strategies, in one type: each strategy reads the fields it needs,
//! so the demo and the tests can run every strategy with the same settings.

use std::time::Duration;

// ANCHOR: settings
/// The settings of all strategies; each reads the fields it needs.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long a loaded value is fresh. Unprotected, single flight and the lock store the value
    /// with this TTL; XFetch stores it with this TTL and refreshes it early; stale-while-revalidate
    /// serves it as fresh for this long (its soft TTL).
    pub ttl: Duration,
    /// Stale-while-revalidate only: how long after `ttl` the old value may still be served while
    /// it is refreshed. `ttl + serve_stale_for` is the hard TTL, after which the key is gone.
    pub serve_stale_for: Duration,
    /// The budget of each Redis call. Past it the call counts as failed and the strategy falls back.
    pub redis_timeout: Duration,
    /// Lock and stale-while-revalidate: how long a lock lives if its holder never releases it.
    /// Make it comfortably longer than a load; it is the most a dead holder can delay the others.
    pub lock_ttl: Duration,
    /// Lock only: the most a request waits for other instances' loads before it gives up with
    /// [`Error::GaveUp`].
    pub max_wait: Duration,
    /// XFetch only: how eagerly to recompute early. 1 is the published default; above 1 favours
    /// earlier refreshes, below 1 later ones, 0 never refreshes before expiry.
    pub beta: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ttl: Duration::from_secs(60),
            serve_stale_for: Duration::from_secs(60),
            redis_timeout: Duration::from_millis(100),
            lock_ttl: Duration::from_secs(2),
            max_wait: Duration::from_secs(5),
            beta: 1.0,
        }
    }
}
// ANCHOR_END: settings
