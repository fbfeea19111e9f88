//! How big, how long and how patient each layer is.
//!
//! The L1 lifetime is short on purpose. It is not how long a value is *worth* keeping (the
//! backplane removes a changed value within milliseconds); it is the bound for an instance that
//! missed a message and has not noticed yet. Every number here is a promise the chapter states and
//! the tests check.

use std::time::Duration;

/// The sizes, lifetimes and budgets of both layers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The most entries one instance keeps in its own memory.
    pub l1_capacity: u64,
    /// How long an L1 copy is served: the staleness bound when a backplane message is lost.
    pub l1_ttl: Duration,
    /// How long a value lives in Redis.
    pub l2_ttl: Duration,
    /// How long a reader's right to store what it loaded lasts ([`shared::lease`]).
    pub lease_ttl: Duration,
    /// The longest wait for any one Redis call before going on without it.
    pub redis_timeout: Duration,
    /// Fail-safe: the oldest value served when Redis and the database both fail.
    pub fail_safe_max_age: Duration,
    /// Fail-safe: after a failed load, how long the old value is served before trying again.
    pub fail_safe_throttle: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            l1_capacity: 10_000,
            l1_ttl: Duration::from_secs(1),
            l2_ttl: Duration::from_secs(60),
            lease_ttl: Duration::from_secs(1),
            redis_timeout: Duration::from_millis(100),
            fail_safe_max_age: Duration::from_secs(300),
            fail_safe_throttle: Duration::from_secs(1),
        }
    }
}
