//! # Exercise: a cached product catalogue
//!
//! A shop's product pages and category listings are read thousands of times for every price
//! change. You will put them behind Redis with cache-aside, in three tasks of rising difficulty.
//! Run the graded tests with
//!
//! ```text
//! cargo test -p cache-aside-exercise
//! ```
//!
//! and replace each `todo!()` until they pass. The tests of one task run alone with
//! `cargo test -p cache-aside-exercise task1` (or `task2`, `task3`). The tests use a real Redis
//! and a real database and count the database's queries and Redis's failed calls, so a cache that
//! only *looks* right will not pass. Stuck? Each
//! task has a hint in `exercises/cache-aside/HINTS.md` (also in the book), and a worked answer
//! in `solutions/cache-aside`.
//!
//! What you have to work with:
//! - `self.db`: the shop's database. [`Database::product`](shared::Database::product), [`Database::products_in_category`](shared::Database::products_in_category)
//!   and [`Database::set_price`](shared::Database::set_price) are the queries you need; each call counts as one query.
//! - `self.redis`: a Redis connection (clone it to get a `&mut` one: clones share the connection).
//! - [`Catalogue::product_key`] and [`Catalogue::listing_key`]: the keys to use. The tests look
//!   at them.
//! - [`shared::codec`]: `encode` / `decode` between your types and JSON bytes.
//! - `self.settings`: the TTLs and the Redis time budget the tests expect you to apply.
//!
//! The given parts (the [`Settings`], the [`Catalogue`] and its key helpers) are in
//! `src/given.rs`.

#![warn(missing_docs)]

mod given;

use shared::Product;

pub use given::{Catalogue, Settings};

impl Catalogue {
    /// ## Task 1: the product page
    ///
    /// Return product `id` from Redis if it is cached there; otherwise load it from the database,
    /// cache it under [`product_key`](Self::product_key) for `settings.ttl`, and return it.
    ///
    /// Two details make the difference between a cache and a cache that works:
    /// - A product that does not exist must be cached too, as "absent", for
    ///   `settings.negative_ttl`, so that requests for unknown ids do not reach the database
    ///   every time. (And it must come back as `None`, not as an error.) Only the database
    ///   saying "no such row" makes a product absent: a query that *fails* is an error for the
    ///   caller, and nothing is cached, or one bad moment would hide a real product for
    ///   `negative_ttl`.
    /// - A product with `stock: 0` is a value like any other: the second read is a hit.
    ///
    /// Redis is a help here, never a requirement: from the first task on, a Redis call that
    /// fails must not reach the caller as an error (task 3 says exactly what to do instead), so
    /// route every call through one small helper of your own from the start.
    pub async fn product(&self, id: i64) -> Result<Option<Product>, sqlx::Error> {
        let _ = id;
        todo!("task 1: cache-aside read of one product, with negative caching")
    }

    /// ## Task 2a: the category listing
    ///
    /// Return the products of `category`, cheapest first, as
    /// [`Database::products_in_category`](shared::Database::products_in_category) does (with no price limit), cached under
    /// [`listing_key`](Self::listing_key) for `settings.ttl`. A category with no products is an
    /// empty list, and an empty list is a value: the second read must not query the database.
    pub async fn listing(&self, category: &str) -> Result<Vec<Product>, sqlx::Error> {
        let _ = category;
        todo!("task 2: cache-aside read of a category listing")
    }

    /// ## Task 2b: a price change
    ///
    /// Set the price in the database, then make sure no reader can see the old price: the
    /// product's cached page *and* the cached listing of its category must go. Delete them, do not
    /// overwrite them; the next read loads fresh rows. Returns whether the product existed.
    ///
    /// - Delete *after* the database write, never before: a read between a delete and the write
    ///   would load the old row and cache it again.
    /// - To know which listing to delete you need the product's category: read the product from
    ///   the database (one more query) before you change it, not from the cache, which may be
    ///   stale or empty.
    ///
    /// Delete each key with a command of its own. The two keys hash to different slots, and on
    /// a Redis Cluster (the suite runs there too, with `REDIS_CLUSTER=1`) a pipeline,
    /// transaction or script that names keys of two slots is refused with `CROSSSLOT`.
    pub async fn set_price(&self, id: i64, price_cents: i64) -> Result<bool, sqlx::Error> {
        let _ = (id, price_cents);
        todo!("task 2: update the database, then invalidate the product and its listing")
    }
}

// ## Task 3: when Redis misbehaves
//
// No new function: make the three above survive a bad day.
// - Redis stopped: `product`, `listing` and `set_price` still answer correctly from the database.
//   No Redis error reaches the caller, nothing panics, and each failed Redis call adds one to
//   `self.redis_errors`.
// - Redis stalled: no Redis call may wait longer than `settings.redis_timeout`, on the read
//   path and on the write path (`set_price`'s deletes) alike, and each call that ran out of time
//   adds one to `self.redis_errors`: the tests count them exactly.
// - Redis back: hits resume without recreating the `Catalogue`.
// - A cached entry that does not decode (somebody else's bytes) is a miss, and the freshly
//   loaded value replaces it.
