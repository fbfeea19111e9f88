//! The cache-aside cache: look in Redis, else load and store.
//!
//! [`CacheAside::get_or_load`] is the read path and [`CacheAside::invalidate`] the write path's
//! half. Around that core sit three defences.
//!
//! **Redis trouble is a miss, not an error.** Every Redis call runs under the settings' time budget. A
//! call that fails or runs out of time is counted in `errors` and the request carries on as a miss:
//! the caller gets the database's answer, a little slower, never a Redis error. The connection
//! manager reconnects in the background, so when Redis returns, hits return without a restart.
//!
//! **An unreadable entry is a miss.** Bytes that do not decode (another program's data, an older
//! version of this struct) are counted in `corrupt`, and the freshly loaded value overwrites them.
//!
//! **A lease closes the read/write race.** Without it, this interleaving leaves a stale value in
//! the cache until its TTL runs out:
//!
//! ```text
//! reader: GET user:42        -> miss
//! reader: SELECT user 42     -> old row
//!                                        writer: UPDATE user 42
//!                                        writer: DEL user:42
//! reader: SET user:42 old row            (stale for the whole TTL)
//! ```
//!
//! So before loading, a reader takes a lease, `SET key:lease token NX`, and it may store only while
//! its token is still there, checked and written in one Lua script ([`shared::lease`], which the
//! invalidation lesson uses too). Invalidation deletes the key *and* the lease, so a reader that
//! loaded before the write can no longer store what it read. The lease and the key share a hash
//! tag, so the script touches one slot and runs on Redis Cluster.
//! Readers that miss while another holds the lease load for themselves and do not store; keeping
//! them off the database too is the stampede lesson's subject.

use std::future::Future;

use redis::{AsyncCommands, RedisResult};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::RedisConn;
use shared::budget::{self, Lookup, Trouble};
use shared::lease::{Leases, with_leases};
use shared::metrics::{CacheMetrics, CacheStats};
use shared::{Namespace, codec};

use crate::cached::Cached;
use crate::settings::Settings;

/// A cache-aside cache over one Redis connection and namespace: reads through
/// [`get_or_load`](Self::get_or_load), invalidation after writes, and its own counters.
pub struct CacheAside {
    redis: RedisConn,
    namespace: Namespace,
    settings: Settings,
    leases: Leases,
    metrics: CacheMetrics,
}

impl CacheAside {
    /// A cache writing under `namespace` through `redis`, as `settings` say.
    pub fn new(redis: RedisConn, namespace: Namespace, settings: Settings) -> Self {
        let leases = Leases::new(redis.clone(), settings.lease_ttl, settings.redis_timeout);
        CacheAside {
            redis,
            namespace,
            settings,
            leases,
            metrics: CacheMetrics::default(),
        }
    }

    // ANCHOR: get_or_load
    /// The value under `key`, from Redis if it is there, else from `load`, which is then stored.
    /// `load` answers `Ok(None)` when the row does not exist; that answer is cached too, briefly.
    /// Only `load`'s own errors reach the caller; Redis errors become misses.
    pub async fn get_or_load<T, F, Fut, E>(&self, key: &str, load: F) -> Result<Option<T>, E>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<T>, E>>,
    {
        let key = self.namespace.key(key);
        let lookup = self.lookup(&key).await;
        if let Lookup::Found(entry) = lookup {
            return Ok(entry.into_option());
        }
        let lease = match lookup {
            Lookup::Missing => self.take_lease(&key).await,
            _ => None,
        };

        self.metrics.loads.inc();
        let value = load().await?;

        if let Some(token) = lease {
            self.store(&key, &token, &Cached::from(value.as_ref()))
                .await;
        }
        Ok(value)
    }
    // ANCHOR_END: get_or_load

    // ANCHOR: invalidate
    /// Forgets `key` after the database changed: deletes the value and any reader's lease, so the
    /// next read loads the new row. If Redis cannot be reached the error is counted and the TTL
    /// bounds how long the old value can be served.
    pub async fn invalidate(&self, key: &str) {
        let key = self.namespace.key(key);
        let mut conn = self.redis.clone();
        self.bounded(conn.del::<_, ()>(with_leases(&[key]))).await;
    }
    // ANCHOR_END: invalidate

    /// The hit, miss, load, error and corruption counts so far.
    pub fn stats(&self) -> CacheStats {
        self.metrics.snapshot()
    }

    // ANCHOR: lookup
    /// One budgeted GET, counted as a hit (a negative one for a cached "absent") or a miss.
    /// Unreadable bytes are counted as corrupt and come back as a miss, to be overwritten.
    async fn lookup<T: DeserializeOwned>(&self, key: &str) -> Lookup<Cached<T>> {
        let trouble = Trouble {
            errors: &self.metrics.errors,
            corrupt: &self.metrics.corrupt,
        };
        let budget = self.settings.redis_timeout;
        let lookup = budget::get::<Cached<T>>(&self.redis, key, budget, trouble).await;
        match &lookup {
            Lookup::Found(entry) => {
                self.metrics.hits.inc();
                if matches!(entry, Cached::Absent) {
                    self.metrics.negative_hits.inc();
                }
            }
            Lookup::Missing | Lookup::Unavailable => self.metrics.misses.inc(),
        }
        lookup
    }
    // ANCHOR_END: lookup

    // ANCHOR: lease
    /// Takes the key's lease if nobody holds it; returns the token that proves it.
    async fn take_lease(&self, key: &str) -> Option<String> {
        self.leases.take(key, &self.metrics.errors).await
    }

    /// Stores `entry` if our lease survived; a write since we took it means we hold an old row.
    async fn store<T: Serialize>(&self, key: &str, token: &str, entry: &Cached<&T>) {
        let ttl = match entry {
            Cached::Present(_) => self.settings.value_ttl(),
            Cached::Absent => self.settings.negative_ttl,
        };
        let bytes = codec::encode(entry).expect("cache values serialize to JSON");
        let errors = &self.metrics.errors;
        self.leases.store(key, token, &bytes, ttl, errors).await;
    }
    // ANCHOR_END: lease

    // ANCHOR: bounded
    /// Runs one Redis call within the settings' time budget ([`shared::budget::within`]): a
    /// failure or a timeout is counted and becomes `None`; the caller falls back instead of
    /// failing.
    async fn bounded<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Option<T> {
        budget::within(self.settings.redis_timeout, &self.metrics.errors, call).await
    }
    // ANCHOR_END: bounded
}
