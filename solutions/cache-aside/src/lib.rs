//! # Solution: a cached product catalogue
//!
//! The exercise's public API, implemented. The given parts are the exercise's own `given.rs`,
//! included as they are. Reads are cache-aside over three small helpers that
//! talk to Redis ([`Catalogue::read`], [`Catalogue::write`], [`Catalogue::forget`]); all three run
//! under the time budget and turn any Redis trouble into "nothing cached", so the methods above
//! them only decide *what* to cache, never how to survive Redis.
//!
//! The classic mistakes live beside this answer, not in it: each file in `mistakes/` is a patch
//! that plants one, with a note on what it breaks. CI applies each and checks that the exercise's
//! suite fails. To watch one fail: `git apply solutions/cache-aside/mistakes/<name>.patch`, run
//! `cargo test -p cache-aside-solution`, then `git apply -R` the same file.

#![warn(missing_docs)]

use std::future::Future;
use std::time::Duration;

use redis::{AsyncCommands, RedisResult};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::{Product, codec};

#[path = "../../../exercises/cache-aside/src/given.rs"]
mod given;

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
    ///
    /// ### This answer
    ///
    /// The cached value is an `Option<Product>`: `null` in Redis is a cached "absent",
    /// distinct from a missing key, and lives for the shorter negative TTL.
    pub async fn product(&self, id: i64) -> Result<Option<Product>, sqlx::Error> {
        let key = self.product_key(id);
        if let Some(cached) = self.read::<Option<Product>>(&key).await {
            return Ok(cached);
        }
        let product = self.db.product(id).await?;
        let ttl = match product {
            Some(_) => self.settings.ttl,
            None => self.settings.negative_ttl,
        };
        self.write(&key, &product, ttl).await;
        Ok(product)
    }

    /// ## Task 2a: the category listing
    ///
    /// Return the products of `category`, cheapest first, as
    /// [`Database::products_in_category`](shared::Database::products_in_category) does (with no price limit), cached under
    /// [`listing_key`](Self::listing_key) for `settings.ttl`. A category with no products is an
    /// empty list, and an empty list is a value: the second read must not query the database.
    ///
    /// ### This answer
    ///
    /// An empty list is stored as `[]` and read back as a hit.
    pub async fn listing(&self, category: &str) -> Result<Vec<Product>, sqlx::Error> {
        let key = self.listing_key(category);
        let cached = self.read::<Vec<Product>>(&key).await;
        if let Some(listing) = cached {
            return Ok(listing);
        }
        let listing = self.db.products_in_category(category, None).await?;
        self.write(&key, &listing, self.settings.ttl).await;
        Ok(listing)
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
    ///
    /// ### This answer
    ///
    /// The category comes from the database, the source of truth, before the update;
    /// after the update both cached copies that show the price are deleted.
    pub async fn set_price(&self, id: i64, price_cents: i64) -> Result<bool, sqlx::Error> {
        let Some(product) = self.db.product(id).await? else {
            return Ok(false);
        };
        let updated = self.db.set_price(id, price_cents).await?;
        self.forget(&self.product_key(id)).await;
        self.forget(&self.listing_key(&product.category)).await;
        Ok(updated)
    }

    /// The decoded value under `key`, or `None` for a missing key, unreadable bytes, or a Redis
    /// that failed or was too slow.
    async fn read<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let mut conn = self.redis.clone();
        let bytes: Vec<u8> = self.bounded(conn.get(key)).await.flatten()?;
        codec::decode(&bytes).ok()
    }

    async fn write<T: Serialize>(&self, key: &str, value: &T, ttl: Duration) {
        let bytes = codec::encode(value).expect("products serialize to JSON");
        let mut conn = self.redis.clone();
        let options = redis::SetOptions::default()
            .with_expiration(redis::SetExpiry::PX(ttl.as_millis() as u64));
        self.bounded(conn.set_options::<_, _, ()>(key, bytes, options))
            .await;
    }

    /// One key per call: the page and the listing hash to different slots, and on a cluster one
    /// pipeline, transaction or script may not span two.
    async fn forget(&self, key: &str) {
        let mut conn = self.redis.clone();
        self.bounded(conn.del::<_, ()>(key)).await;
    }

    /// Task 3. One Redis call within the time budget; failures and timeouts are counted and
    /// become `None`.
    async fn bounded<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Option<T> {
        match tokio::time::timeout(self.settings.redis_timeout, call).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(_)) | Err(_) => {
                self.redis_errors.inc();
                None
            }
        }
    }
}
