//! The interface every invalidation strategy offers an application instance.
//!
//! Reads go through the cache, writes commit to the database; a strategy is *what happens in
//! between*: what a write does after its commit (nothing, a delete, a broadcast, a generation
//! bump, a dependency walk, a pattern scan, an outbox row), and which key a read looks at. One
//! trait lets the demo time every strategy on the same workload and the tests hold them all to
//! the same promise: once the strategy's bound has passed, no instance returns the old value.

use std::future::Future;

use shared::metrics::CacheStats;

use crate::cache::Cache;
use crate::catalog::Item;

// ANCHOR: strategy
/// A way of keeping cached items and listings in step with the database.
pub trait Strategy: Send + Sync + 'static {
    /// Item `id`, or `None` if there is no such item.
    fn item(&self, id: i64) -> impl Future<Output = Result<Option<Item>, sqlx::Error>> + Send;

    /// Every item of `category`, by id.
    fn listing(
        &self,
        category: &str,
    ) -> impl Future<Output = Result<Vec<Item>, sqlx::Error>> + Send;

    /// Sets item `id`'s price: commits it, then invalidates as the strategy does. Returns the
    /// committed row (`None`: no such item) once the commit is done; what the strategy does next
    /// may still be under way, and its bound says for how long.
    fn set_price(
        &self,
        id: i64,
        price_cents: i64,
    ) -> impl Future<Output = Result<Option<Item>, sqlx::Error>> + Send;

    /// The cache it reads through.
    fn cache(&self) -> &Cache;

    /// Its counters so far.
    fn stats(&self) -> CacheStats {
        self.cache().stats()
    }
}
// ANCHOR_END: strategy
