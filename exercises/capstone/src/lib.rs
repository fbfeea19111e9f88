//! # Exercise: cache two new endpoints of the shop, each with the pattern it needs
//!
//! The capstone service is getting two endpoints, and you choose nothing at random: each gets the
//! caching pattern its data and its readers call for, and the tests judge it the way an
//! experienced reviewer would, by counting the database queries it makes and measuring how old
//! an answer can be.
//!
//! - `GET /categories/{category}/summary`: a category's item count and price range. Cheap to
//!   compute, read on every category page, and wrong the moment a price in the category changes:
//!   it must never be older than the last acknowledged price change (task 1).
//! - `GET /dashboard`: every category's summary, an expensive report that nobody should wait for.
//!   It may be a little old, within a stated bound, but a reader never waits for a recomputation
//!   while an answer within the bound exists, and however many readers arrive at once, on however
//!   many instances, it is recomputed once (task 2).
//!
//! Run the graded tests with
//!
//! ```text
//! cargo test -p capstone-exercise
//! ```
//!
//! and replace each `todo!()` until they pass (`task1` or `task2` after the command runs one task).
//! They use a real Redis (a Redis Cluster too, in CI) and database, two service instances sharing
//! them, and they read your keys, their values and their TTLs. Stuck? Each task has a hint in
//! `exercises/capstone/HINTS.md` (also in the book), and a worked answer in
//! `solutions/capstone`.
//!
//! What you have to work with (all given, in `src/given.rs`):
//! - [`Shop`]: the items, and the three queries you need, each one counted query:
//!   [`Shop::summary_from_db`], [`Shop::dashboard_from_db`] and [`Shop::commit_price`];
//! - [`Instance`]: one service instance's Redis connection and namespace, and where every key
//!   lives ([`Instance::generation_key`], [`Instance::summary_key`], [`Instance::dashboard_key`],
//!   [`Instance::refresh_lock_key`]); the tests look there;
//! - [`Summary`], [`Dashboard`] and [`Stamped`], which go into Redis as JSON
//!   (`shared::codec::encode` and `decode`); the lifetimes [`SUMMARY_TTL`], [`GENERATION_TTL`],
//!   [`FRESH_MS`], [`MAX_STALE_MS`] and [`LOCK_TTL_MS`]; [`category_of`] (an item's category, for
//!   ever);
//! - [`Refreshes`], where a background refresh is spawned so that it can be waited for;
//! - the crates `redis`, `rand` and `tokio`.
//!
//! Every Redis call you make gets at most [`REDIS_TIMEOUT`] (`tokio::time::timeout`, or
//! `shared::budget::within`): Redis failing or slow is never an error of these endpoints, which
//! then answer from the database (and store nothing).

#![warn(missing_docs)]

mod given;

use std::sync::Arc;
use std::time::Duration;

pub use given::{
    CATEGORIES, Dashboard, FRESH_MS, GENERATION_TTL, Hold, Instance, LOCK_TTL_MS, MAX_STALE_MS,
    Refreshes, SUMMARY_TTL, Shop, Stamped, Summary, category_of,
};

/// The longest any one Redis call may take before the endpoint answers without Redis.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(200);

/// One instance's category summaries (task 1).
pub struct Summaries {
    /// This instance's Redis.
    pub instance: Instance,
    /// The shop.
    pub shop: Arc<Shop>,
}

impl Summaries {
    /// The summaries of `shop`, cached in `instance`'s Redis.
    pub fn new(instance: Instance, shop: Arc<Shop>) -> Self {
        Summaries { instance, shop }
    }

    /// ## Task 1a: a summary, cached under its category's generation
    ///
    /// `category`'s summary, from Redis when it is there and from one query when it is not:
    ///
    /// 1. read the category's *generation*, a number at [`Instance::generation_key`] (absent: 0);
    /// 2. read the summary at [`Instance::summary_key`]`(category, generation)`; if it is there
    ///    and decodes, it is the answer, and the database is not asked;
    /// 3. otherwise ask the database ([`Shop::summary_from_db`], one query) and store the summary
    ///    under that same key, as JSON, with a TTL of [`SUMMARY_TTL`].
    ///
    /// The order matters: the generation is read *before* the query. A price change that commits
    /// while your query runs changes the generation (task 1b), so the summary you computed from
    /// before the change goes under the old generation, where no reader looks again. Read the
    /// generation after the query and you store yesterday's prices where today's readers look.
    ///
    /// A value under the key that does not decode is a miss: recompute it and overwrite it. If
    /// reading the generation fails (Redis down, slower than [`REDIS_TIMEOUT`], or a value that
    /// is not a number), you cannot know which summary is current: answer from the database and
    /// store nothing.
    pub async fn summary(&self, category: &str) -> Result<Summary, sqlx::Error> {
        let _ = category;
        todo!(
            "task 1a: the generation, then the summary under it, else one query stored with its TTL"
        )
    }

    /// ## Task 1b: a price change that no summary survives
    ///
    /// Commits item `id`'s new price ([`Shop::commit_price`], one query) and returns its new
    /// version (`None`: no such item, and nothing else happens). Then, after the commit, give the
    /// item's category ([`category_of`]) a new generation: `INCR` its generation key, and set
    /// that key's TTL to [`GENERATION_TTL`] again (from this change, not the first) in the same
    /// `MULTI` transaction, so that no crash between the two leaves a generation that never
    /// expires. Only that category's: the other categories' summaries stay cached.
    ///
    /// The commit comes first: raise the generation before it and a reader may cache the old
    /// price under the new generation in between. Redis failing or slow after the commit is not
    /// an error: the price is committed, and the summaries expire by their TTL.
    pub async fn set_price(&self, id: i64, price_cents: i64) -> Result<Option<i64>, sqlx::Error> {
        let _ = (id, price_cents);
        todo!("task 1b: commit, then INCR and EXPIRE the category's generation in one MULTI")
    }
}

/// One instance's dashboard (task 2).
pub struct DashboardCache {
    /// This instance's Redis.
    pub instance: Instance,
    /// The shop.
    pub shop: Arc<Shop>,
    /// The refreshes this instance started in the background.
    pub refreshes: Arc<Refreshes>,
}

impl DashboardCache {
    /// The dashboard of `shop`, cached in `instance`'s Redis.
    pub fn new(instance: Instance, shop: Arc<Shop>) -> Self {
        DashboardCache {
            instance,
            shop,
            refreshes: Arc::default(),
        }
    }

    /// ## Task 2: a dashboard that is never too old and that nobody waits for
    ///
    /// The dashboard, at `now_ms` (milliseconds since 1970, passed in so the tests can move
    /// time). It lives at [`Instance::dashboard_key`] as a [`Stamped`] JSON value: the dashboard
    /// and `computed_ms`, the time its query *started*.
    ///
    /// - **Fresh** (`now_ms < computed_ms + FRESH_MS`): return it. No query.
    /// - **Stale** (from `computed_ms + FRESH_MS` up to, not including,
    ///   `computed_ms + MAX_STALE_MS`): return it at once, and start one refresh in the
    ///   background, unless one is already running on any instance. The refresh lock decides:
    ///   `SET` [`Instance::refresh_lock_key`] to a random token with `NX` and a TTL of
    ///   [`LOCK_TTL_MS`] (so a refresher that dies frees it). Only the request that takes it
    ///   refreshes, in a task spawned on [`DashboardCache::refreshes`]: one query
    ///   ([`Shop::dashboard_from_db`]), stored stamped with the `now_ms` of the read that started
    ///   it; then, whether the query succeeded or failed (a failed refresh leaves the stale
    ///   dashboard in place), the lock is released, but only if it still holds *this* token (a
    ///   random one per refresh: it may have expired and been taken by another refresher; compare
    ///   and delete in one Lua script). A stale read returns the stale dashboard, never the
    ///   refreshed one: it does not wait.
    /// - **Missing, undecodable, or too old** (`now_ms >= computed_ms + MAX_STALE_MS`): compute
    ///   it now, one query, store it stamped `now_ms`, and return it.
    ///
    /// Store it with a Redis TTL that ends when it becomes too old to serve: every store is
    /// stamped with a read's `now_ms`, so that is [`MAX_STALE_MS`]. Instances' clocks differ a
    /// little: a stamp later than `now_ms` is fresh, not an error. With Redis failing or slower
    /// than [`REDIS_TIMEOUT`], answer from the database each time (no lock, nothing stored).
    pub async fn get(&self, now_ms: u64) -> Result<Dashboard, sqlx::Error> {
        let _ = now_ms;
        todo!("task 2: fresh, stale with one refresh across instances, or computed now")
    }
}
