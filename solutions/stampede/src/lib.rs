//! # Solution: a storefront that survives its own popularity
//!
//! The worked answer to `exercises/stampede`. Read the exercise first: the task descriptions are
//! the same here, the given parts are the exercise's own `given.rs`, included as it is, and only
//! the task bodies are filled in.
//!
//! The classic mistakes live beside this answer, not in it: each file in `mistakes/` is a patch
//! that plants one, with a note on what it breaks. CI applies each and checks that the exercise's
//! suite fails. To watch one fail: `git apply solutions/stampede/mistakes/<name>.patch`, run
//! `cargo test -p stampede-solution`, then `git apply -R` the same file.

#![warn(missing_docs)]

#[path = "../../../exercises/stampede/src/given.rs"]
mod given;

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use redis::{AsyncCommands, RedisResult, Script};
use shared::RedisConn;
use shared::{Product, codec};

pub use given::{Lock, PageRecord, Settings, Storefront, StorefrontError, now_ms};

/// Deletes the lock only if it still holds our token. KEYS: lock. ARGV: token.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

impl Lock {
    /// ## Task 1a: take a lock
    ///
    /// Take the lock `key` for `ttl` if nobody holds it, and return it; `None` if it is held.
    /// It must expire by itself after `ttl`, to the millisecond (a lock of 1.5 s lives 1.5 s, not
    /// 1), and carry a random token that [`Lock::release`] can check (at least 16 characters:
    /// hard to guess, and never the same for two locks).
    ///
    /// Take it in **one** command. Set-if-absent followed by a separate expire leaves a lock
    /// with no TTL if the process dies in between, held forever; the tests count the commands
    /// sent.
    pub async fn acquire(redis: &RedisConn, key: &str, ttl: Duration) -> RedisResult<Option<Lock>> {
        let token = format!("{:032x}", rand::random::<u128>());
        let taken: Option<String> = redis::cmd("SET")
            .arg(key)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut redis.clone())
            .await?;
        Ok(taken.map(|_| Lock {
            key: key.to_string(),
            token,
        }))
    }

    /// ## Task 1b: release it, and only it
    ///
    /// Delete the lock if it is still ours and return `true`; if it expired and someone else holds
    /// the key now, leave their lock alone and return `false`.
    ///
    /// Check and delete in **one** command, a Lua script (`EVAL`): a `GET` in Rust followed by a
    /// `DEL` can delete a lock that expired and was taken by someone else between the two. The
    /// tests count the commands sent.
    pub async fn release(self, redis: &RedisConn) -> RedisResult<bool> {
        let deleted: i64 = RELEASE
            .key(&self.key)
            .arg(&self.token)
            .invoke_async(&mut redis.clone())
            .await?;
        Ok(deleted == 1)
    }
}

impl Storefront {
    /// ## Task 2: one load for many concurrent misses
    ///
    /// Return the products of `category` (from [`Database::products_in_category`](shared::Database::products_in_category) with no price
    /// limit), cached under [`Storefront::listing_key`] for `settings.ttl`. When many requests
    /// miss at once, in this process or in others, exactly one of them may load: the one that
    /// takes the [`Storefront::listing_lock_key`] lock (task 1, `settings.lock_ttl`). The others
    /// wait for its value with [`Storefront::wait_for_listing`].
    ///
    /// - The lock holder must look at the cache again before it loads: a request whose first
    ///   look missed just before the previous holder stored the listing would load it again.
    /// - The holder releases its lock when done, whether the load worked or not: a failed load
    ///   returns its error only after the release (so no `?` between acquiring and releasing).
    /// - A request that has waited `settings.max_wait` in all gives up with
    ///   [`StorefrontError::Busy`]. It must **not** load the listing itself: if every waiter did
    ///   that at its deadline, the stampede would be back, at the moment the database is already
    ///   too slow.
    pub async fn listing(&self, category: &str) -> Result<Vec<Product>, StorefrontError> {
        if let Some(products) = self.cached_listing(category).await? {
            return Ok(products);
        }
        let started = Instant::now();
        loop {
            let lock_key = self.listing_lock_key(category);
            if let Some(lock) =
                Lock::acquire(&self.redis, &lock_key, self.settings.lock_ttl).await?
            {
                let loaded = self.load_listing_holding_lock(category).await;
                lock.release(&self.redis).await?;
                return loaded;
            }
            let left = self.settings.max_wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(StorefrontError::Busy {
                    category: category.to_string(),
                });
            }
            if let Some(products) = self.wait_for_listing(category, left).await? {
                return Ok(products);
            }
        }
    }

    async fn load_listing_holding_lock(
        &self,
        category: &str,
    ) -> Result<Vec<Product>, StorefrontError> {
        if let Some(products) = self.cached_listing(category).await? {
            return Ok(products);
        }
        let products = self.db.products_in_category(category, None).await?;
        let ttl_ms = self.settings.ttl.as_millis().max(1) as u64;
        let bytes = codec::encode(&products).expect("products serialize");
        let _: () = self
            .redis
            .clone()
            .pset_ex(self.listing_key(category), bytes, ttl_ms)
            .await?;
        Ok(products)
    }

    /// ## Task 3: stale-while-revalidate
    ///
    /// Return the products of `category` from a [`PageRecord`] under [`Storefront::page_key`]:
    ///
    /// - fresh (now before `fresh_until_ms`): return it;
    /// - stale: return it **at once**, without waiting for the database, and make sure one
    ///   refresh runs in the background: take the [`Storefront::page_refresh_key`] lock
    ///   (`settings.lock_ttl`); if you got it, spawn a task that loads the listing, stores a new
    ///   record and releases the lock; if you did not, someone else is refreshing. The lock must
    ///   be released when the refresh ends, or the next time the page goes stale nobody refreshes
    ///   it until the lock expires;
    /// - missing: load, store, return.
    ///
    /// A stored record is fresh for `settings.soft_ttl` and kept by Redis for
    /// `settings.hard_ttl`, after which it is gone and the next request loads.
    pub async fn page(&self, category: &str) -> Result<Vec<Product>, StorefrontError> {
        let bytes: Option<Vec<u8>> = self.redis.clone().get(self.page_key(category)).await?;
        if let Some(record) = bytes.and_then(|b| codec::decode::<PageRecord>(&b).ok()) {
            if now_ms() >= record.fresh_until_ms {
                self.refresh_page_in_background(category).await?;
            }
            return Ok(record.products);
        }
        let products = self.db.products_in_category(category, None).await?;
        self.store_page(category, &products).await?;
        Ok(products)
    }

    async fn refresh_page_in_background(&self, category: &str) -> Result<(), StorefrontError> {
        let guard = self.page_refresh_key(category);
        let Some(lock) = Lock::acquire(&self.redis, &guard, self.settings.lock_ttl).await? else {
            return Ok(()); // another request is refreshing it
        };
        let this = self.clone();
        let category = category.to_string();
        tokio::spawn(async move {
            // A failed refresh leaves the stale page; the next stale read tries again.
            if let Ok(products) = this.db.products_in_category(&category, None).await {
                let _ = this.store_page(&category, &products).await;
            }
            let _ = lock.release(&this.redis).await;
        });
        Ok(())
    }

    async fn store_page(&self, category: &str, products: &[Product]) -> RedisResult<()> {
        let record = PageRecord {
            products: products.to_vec(),
            fresh_until_ms: now_ms() + self.settings.soft_ttl.as_millis() as u64,
        };
        let bytes = codec::encode(&record).expect("pages serialize");
        let hard_ttl_ms = self.settings.hard_ttl.as_millis().max(1) as u64;
        self.redis
            .clone()
            .pset_ex(self.page_key(category), bytes, hard_ttl_ms)
            .await
    }
}
