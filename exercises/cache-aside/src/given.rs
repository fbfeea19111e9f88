//! The given parts of the catalogue exercise: its settings, its state and its keys. Written for
//! you; the tasks are in `lib.rs`. (The worked answer in `solutions/cache-aside` includes this
//! very file, so the two can never drift apart.)

use std::sync::Arc;
use std::time::Duration;

use shared::RedisConn;
use shared::metrics::Counter;
use shared::{Database, Namespace};

/// TTLs and time budget for the catalogue's cache.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Lifetime of a cached product or listing.
    pub ttl: Duration,
    /// Lifetime of a cached "no such product".
    pub negative_ttl: Duration,
    /// Longest wait for any one Redis call (task 3).
    pub redis_timeout: Duration,
}

/// The cached catalogue: the database, the Redis connection, and what the tasks need.
pub struct Catalogue {
    /// The shop's database; every query is counted.
    pub db: Arc<Database>,
    /// The Redis connection (clone it to get a `&mut` one: clones share the connection).
    pub redis: RedisConn,
    /// The prefix of every key; the key helpers below apply it.
    pub namespace: Namespace,
    /// The TTLs and time budget to apply.
    pub settings: Settings,
    /// Redis calls that failed or timed out (task 3 counts them here).
    pub redis_errors: Counter,
}

impl Catalogue {
    /// A catalogue over `db`, cached through `redis` under `namespace`.
    pub fn new(
        db: Arc<Database>,
        redis: RedisConn,
        namespace: Namespace,
        settings: Settings,
    ) -> Self {
        Catalogue {
            db,
            redis,
            namespace,
            settings,
            redis_errors: Counter::default(),
        }
    }

    /// Where product `id` is cached.
    pub fn product_key(&self, id: i64) -> String {
        self.namespace.key(&format!("product:{id}"))
    }

    /// Where the listing of `category` is cached.
    pub fn listing_key(&self, category: &str) -> String {
        self.namespace.key(&format!("listing:{category}"))
    }
}
