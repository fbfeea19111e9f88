//! The interface every invalidation strategy offers an application instance.
//!
//! Reads go through the cache, writes commit to the database; a strategy is *what happens in
//! between*: what a write does after its commit (nothing, a delete, a broadcast, a generation
//! bump, a dependency walk, a pattern scan, an outbox row), and which key a read looks at. One
//! trait lets the demo time every strategy on the same workload and the tests hold them all to
//! the same promise: once the strategy's bound has passed, no instance returns the old value.

use std::future::Future;
use std::sync::Arc;

use shared::Database;
use shared::metrics::CacheStats;

use crate::cache::Cache;
use crate::catalog::{Catalog, Item};
use crate::keys::Keys;

/// What every strategy is built on: the cache it reads through, the database, and its keys.
pub struct Parts {
    /// The cache-aside read with a lease.
    pub cache: Cache,
    /// The database behind it.
    pub db: Arc<Database>,
    /// Where the strategy keeps what it caches.
    pub keys: Keys,
}

impl Parts {
    /// Item `id`, through the cache under its plain key: the read most strategies use.
    pub async fn item(&self, id: i64) -> Result<Option<Item>, sqlx::Error> {
        let key = self.keys.item(id);
        self.cache.get_or_load(&key, || self.db.item(id)).await
    }

    /// The listing of `category`, through the cache under its plain key.
    pub async fn listing(&self, category: &str) -> Result<Vec<Item>, sqlx::Error> {
        let key = self.keys.listing(category);
        self.cache
            .get_or_load(&key, || self.db.listing(category))
            .await
    }
}

/// A way of keeping cached items and listings in step with the database.
pub trait Strategy: Send + Sync + 'static {
    /// What it is built on.
    fn parts(&self) -> &Parts;

    /// Item `id`, or `None` if there is no such item: the plain cached read, unless the
    /// strategy reads another way.
    fn item(&self, id: i64) -> impl Future<Output = Result<Option<Item>, sqlx::Error>> + Send {
        self.parts().item(id)
    }

    /// Every item of `category`, by id: the plain cached read, unless the strategy reads
    /// another way.
    fn listing(
        &self,
        category: &str,
    ) -> impl Future<Output = Result<Vec<Item>, sqlx::Error>> + Send {
        self.parts().listing(category)
    }

    /// Sets item `id`'s price: commits it, then invalidates as the strategy does. Returns the
    /// committed row (`None`: no such item) once the commit is done; what the strategy does next
    /// may still be under way, and its bound says for how long.
    fn set_price(
        &self,
        id: i64,
        price_cents: i64,
    ) -> impl Future<Output = Result<Option<Item>, sqlx::Error>> + Send;

    /// The cache it reads through.
    fn cache(&self) -> &Cache {
        &self.parts().cache
    }

    /// Its counters so far.
    fn stats(&self) -> CacheStats {
        self.cache().stats()
    }
}
