//! # Solution: cache two new endpoints of the shop, each with the pattern it needs
//!
//! The worked answer to `exercises/capstone`. Read the exercise first: the task descriptions are
//! the same here, the given parts are the exercise's own `given.rs`, included as it is, and only
//! the task bodies are filled in.
//!
//! The classic mistakes live beside this answer, not in it: each file in `mistakes/` is a patch
//! that plants one, with a note on what it breaks. CI applies each and checks that the exercise's
//! suite fails. To watch one fail: `git apply solutions/capstone/mistakes/<name>.patch`, run
//! `cargo test -p capstone-solution`, then `git apply -R` the same file.

#![warn(missing_docs)]

#[path = "../../../exercises/capstone/src/given.rs"]
mod given;

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use shared::{RedisConn, codec};

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
        let mut conn = self.instance.conn.clone();
        let read = conn.get::<_, Option<u64>>(self.instance.generation_key(category));
        let Some(generation) = within(read).await else {
            return self.shop.summary_from_db(category).await;
        };
        let key = self.instance.summary_key(category, generation.unwrap_or(0));
        let cached = within(conn.get::<_, Option<Vec<u8>>>(&key)).await.flatten();
        if let Some(summary) = cached.and_then(|bytes| codec::decode(&bytes).ok()) {
            return Ok(summary);
        }
        let summary = self.shop.summary_from_db(category).await?;
        let bytes = codec::encode(&summary).expect("a summary encodes");
        let ttl = SUMMARY_TTL.as_secs();
        within(conn.set_ex::<_, _, ()>(&key, bytes, ttl)).await;
        Ok(summary)
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
        let Some(version) = self.shop.commit_price(id, price_cents).await? else {
            return Ok(None);
        };
        let key = self.instance.generation_key(category_of(id));
        let mut conn = self.instance.conn.clone();
        let mut raise = redis::pipe();
        raise
            .atomic()
            .incr(&key, 1)
            .ignore()
            .expire(&key, GENERATION_TTL.as_secs() as i64)
            .ignore();
        within(raise.query_async::<()>(&mut conn)).await;
        Ok(Some(version))
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
        let mut conn = self.instance.conn.clone();
        let key = self.instance.dashboard_key();
        let Some(stored) = within(conn.get::<_, Option<Vec<u8>>>(&key)).await else {
            return self.shop.dashboard_from_db().await;
        };
        let stamped = stored.and_then(|bytes| codec::decode::<Stamped>(&bytes).ok());
        match stamped {
            Some(stamped) if now_ms < stamped.computed_ms + FRESH_MS => Ok(stamped.dashboard),
            Some(stamped) if now_ms < stamped.computed_ms + MAX_STALE_MS => {
                self.refresh_in_background(now_ms).await;
                Ok(stamped.dashboard)
            }
            _ => {
                let dashboard = self.shop.dashboard_from_db().await?;
                store(&mut conn, &key, &dashboard, now_ms, now_ms).await;
                Ok(dashboard)
            }
        }
    }

    /// Starts a refresh stamped `now_ms`, unless another request, here or on another instance,
    /// holds the lock.
    async fn refresh_in_background(&self, now_ms: u64) {
        let mut conn = self.instance.conn.clone();
        let lock = self.instance.refresh_lock_key();
        let token = format!("{:016x}", rand::random::<u64>());
        let mut take = redis::cmd("SET");
        take.arg(&lock)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(LOCK_TTL_MS);
        let Some(Some(_)) = within(take.query_async::<Option<String>>(&mut conn)).await else {
            return; // someone else refreshes (or Redis failed: serve stale, try again later)
        };
        let (shop, key) = (self.shop.clone(), self.instance.dashboard_key());
        self.refreshes.spawn(async move {
            // A failed refresh leaves the stale dashboard; the next stale read tries again.
            if let Ok(dashboard) = shop.dashboard_from_db().await {
                store(&mut conn, &key, &dashboard, now_ms, now_ms).await;
            }
            let release = redis::Script::new(RELEASE);
            let mut release = release.key(&lock);
            release.arg(&token);
            within(release.invoke_async::<i64>(&mut conn)).await;
        });
    }
}

/// Deletes the lock only if it still holds the token: a lock that expired and was taken by
/// another refresher is theirs.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                       return redis.call('DEL', KEYS[1]) else return 0 end";

/// Stores `dashboard` stamped `computed_ms`, with a TTL that ends when it is too old to serve, as
/// seen at `now_ms`.
async fn store(
    conn: &mut RedisConn,
    key: &str,
    dashboard: &Dashboard,
    computed_ms: u64,
    now_ms: u64,
) {
    let stamped = Stamped {
        dashboard: dashboard.clone(),
        computed_ms,
    };
    let left = (computed_ms + MAX_STALE_MS).saturating_sub(now_ms).max(1);
    let bytes = codec::encode(&stamped).expect("a dashboard encodes");
    within(conn.pset_ex::<_, _, ()>(key, bytes, left)).await;
}

/// A Redis call within [`REDIS_TIMEOUT`]: `None` if it failed or took longer.
async fn within<T>(call: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
    tokio::time::timeout(REDIS_TIMEOUT, call).await.ok()?.ok()
}
