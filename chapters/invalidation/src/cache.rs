//! The cache every strategy reads through: cache-aside over Redis, with a lease.
//!
//! Each strategy differs only in what it does after a write and in which key it reads; the read
//! itself is the cache-aside lesson's: look in Redis, on a miss take the key's lease, load, store
//! if the lease survived ([`shared::lease`]). Redis trouble is a miss answered by the database,
//! an unreadable entry is a miss that gets overwritten. Invalidation deletes a key together with
//! its lease, so a reader that loaded before the write cannot store its old row afterwards.

use std::future::Future;

use redis::AsyncCommands;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::RedisConn;
use shared::budget::{self, Trouble};
use shared::lease::{Answered, Leases, with_leases};
use shared::metrics::{CacheMetrics, CacheStats, Counter};

use crate::settings::Settings;

/// A cache-aside reader over one connection, with its own counters.
pub struct Cache {
    conn: RedisConn,
    settings: Settings,
    leases: Leases,
    metrics: CacheMetrics,
    /// Redis commands sent to invalidate, by whichever strategy uses this cache.
    pub invalidation_commands: Counter,
}

impl Cache {
    /// A cache on `conn`, as `settings` say.
    pub fn new(conn: RedisConn, settings: Settings) -> Self {
        let leases = Leases::new(conn.clone(), settings.lease_ttl, settings.redis_timeout);
        Cache {
            conn,
            settings,
            leases,
            metrics: CacheMetrics::default(),
            invalidation_commands: Counter::default(),
        }
    }

    /// The connection, for a strategy's own commands.
    pub fn conn(&self) -> RedisConn {
        self.conn.clone()
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Hits, misses, loads and Redis errors so far.
    pub fn stats(&self) -> CacheStats {
        self.metrics.snapshot()
    }

    /// The counters, for a strategy with a read path of its own to count on.
    pub fn counters(&self) -> &CacheMetrics {
        &self.metrics
    }

    /// Where a strategy counts a failed Redis call of its own.
    pub fn errors(&self) -> &Counter {
        &self.metrics.errors
    }

    /// The value under `key`, from Redis, else from `load` (then stored if the lease survived).
    pub async fn get_or_load<T, F, Fut>(&self, key: &str, load: F) -> Result<T, sqlx::Error>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let trouble = Trouble {
            errors: &self.metrics.errors,
            corrupt: &self.metrics.corrupt,
        };
        let ttl = self.settings.ttl;
        let (value, answered) = self.leases.get_or_load(key, ttl, trouble, load).await?;
        match answered {
            Answered::Cache => self.metrics.hits.inc(),
            Answered::Loader => {
                self.metrics.misses.inc();
                self.metrics.loads.inc();
            }
        }
        Ok(value)
    }

    /// Deletes `keys` and their leases, in one command (the keys must share a hash slot).
    /// Returns whether Redis did it; a failure is counted, and then only the TTL bounds how long
    /// the old values can be read.
    pub async fn delete(&self, keys: &[String]) -> bool {
        self.invalidation_commands.inc();
        let mut conn = self.conn.clone();
        let deleted = conn.del::<_, ()>(with_leases(keys));
        budget::within(self.settings.redis_timeout, &self.metrics.errors, deleted)
            .await
            .is_some()
    }
}
