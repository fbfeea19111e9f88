//! # Exercise: a storefront that survives its own popularity
//!
//! A shop's category listing is one slow query (a join and a sort over the whole catalogue) and
//! the most requested thing on the site. When its cache entry expires, every request that arrives
//! before it is rebuilt runs that query: a stampede. You will protect it in three tasks of rising
//! difficulty. Run the graded tests with
//!
//! ```text
//! cargo test -p stampede-exercise
//! ```
//!
//! and replace each `todo!()` until they pass. The tests of one task run alone with
//! `cargo test -p stampede-exercise task1` (or `task2`, `task3`). The tests use a real Redis and a
//! real database,
//! count the database's queries and run several `Storefront`s at once, as separate application
//! instances would. Stuck? Each task has a hint in `exercises/stampede/HINTS.md` (also in the
//! book), and a worked answer in `solutions/stampede`.
//!
//! What you have to work with:
//! - `self.db`: the shop's database; [`Database::products_in_category`](shared::Database::products_in_category) is the slow query. Each
//!   call counts as one query.
//! - `self.redis`: a Redis connection (clone it to get a `&mut` one: clones share the connection).
//! - The key helpers ([`Storefront::listing_key`] and friends): the tests look at those keys.
//! - [`Storefront::cached_listing`] and [`Storefront::wait_for_listing`]: reading and waiting
//!   for a cached listing, written for you.
//! - [`shared::codec`]: `encode` / `decode` between your types and JSON bytes.
//!
//! The given parts (settings, errors, the lock's state, [`PageRecord`], the [`Storefront`]'s
//! state and helpers) are in `src/given.rs`.

#![warn(missing_docs)]

mod given;

use std::time::Duration;

use redis::RedisResult;
use shared::Product;
use shared::RedisConn;

pub use given::{Lock, PageRecord, Settings, Storefront, StorefrontError, now_ms};

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
        let _ = (redis, key, ttl);
        todo!("task 1a: SET the lock with a random token, only if it does not exist, with a TTL")
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
        let _ = redis;
        todo!("task 1b: delete the lock only if it still holds our token, atomically")
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
        let _ = category;
        todo!("task 2: one load per stampede, through the lock")
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
        let _ = category;
        todo!("task 3: serve stale at once, refresh once in the background")
    }
}
