//! The configurations the demo compares, and the service's tunables.

use std::time::Duration;

use crate::pages::PageSettings;

shared::variants! {
    /// How much caching an instance does, in the order the demo compares them.
    pub enum Caching {
        /// Every read goes to the database (or the renderer).
        NoCache = ("no-cache", "no cache"),
        /// Redis only: one shared copy, a round trip per read.
        RedisOnly = ("redis-only", "Redis only"),
        /// Memory in each instance in front of Redis (and the disk under it, for pages).
        Layered = ("layered", "L1 + Redis"),
        /// The same, and clients that keep ETags: an unchanged answer is a `304` without a body.
        Conditional = ("conditional", "L1 + Redis + ETags"),
    }
}

impl Caching {
    /// Whether reads use Redis.
    pub fn redis(self) -> bool {
        self != Caching::NoCache
    }

    /// Whether reads use the instance's memory (and disk).
    pub fn local(self) -> bool {
        matches!(self, Caching::Layered | Caching::Conditional)
    }
}

/// What one instance of the service is set up with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The configuration.
    pub caching: Caching,
    /// The product reads' two tiers.
    pub products: two_tier::Settings,
    /// The pages' layers.
    pub pages: PageSettings,
    /// The byte budget of each instance's disk layer.
    pub disk_budget: u64,
    /// How long task counts and the article list are kept (a write replaces them sooner).
    pub stats_ttl: Duration,
    /// How long trending is kept: with the flusher's lag, how far it may trail the views.
    pub trending_ttl: Duration,
    /// How long the analytics report takes to compute.
    pub report_cost: Duration,
    /// How long the dashboard is fresh when no write refreshes it sooner.
    pub dashboard_fresh: Duration,
    /// Requests per second a client may make (and as many in a burst).
    pub rate_limit: u32,
    /// API keys issued: `u0` to `u{n-1}`.
    pub api_keys: u32,
    /// Users allowed to administer the caches (after confirming their password).
    pub administrators: Vec<i64>,
}

impl Settings {
    /// The defaults for `caching`.
    pub fn new(caching: Caching) -> Self {
        Settings {
            caching,
            products: two_tier::Settings::default(),
            pages: PageSettings {
                l1_ttl: Duration::from_secs(1),
                l1_capacity: 1_000,
                ttl: Duration::from_secs(60),
                jitter: 0.2,
                compress_from: 1_024,
                prefetch: true,
                redis_timeout: Duration::from_millis(100),
            },
            disk_budget: 64 << 20,
            stats_ttl: Duration::from_secs(60),
            trending_ttl: Duration::from_secs(1),
            report_cost: Duration::from_secs(2),
            dashboard_fresh: Duration::from_secs(60),
            rate_limit: 200,
            api_keys: 1_000,
            administrators: vec![1],
        }
    }
}
