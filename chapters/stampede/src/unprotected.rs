//! The baseline: cache-aside with nothing against a stampede.
//!
//! Read Redis; on a miss, load and store. Correct for a single request, and exactly what turns a
//! popular key's expiry into a burst of identical database queries: every request that arrives
//! between the expiry and the first store misses, and every miss loads.

use std::sync::Arc;

use shared::Namespace;
use shared::RedisConn;

use crate::cache::{Lookup, RedisCache};
use crate::settings::Settings;
use crate::source::Source;
use crate::strategy::{self, Error, Stats, Strategy};

/// Plain cache-aside with no protection against a stampede: the baseline.
pub struct Unprotected<S: Source> {
    cache: RedisCache,
    source: Arc<S>,
    settings: Settings,
}

impl<S: Source> Unprotected<S> {
    /// The strategy for keys under `namespace`, through `conn`, loading from `source`.
    pub fn new(conn: RedisConn, namespace: Namespace, source: Arc<S>, settings: Settings) -> Self {
        Unprotected {
            cache: RedisCache::new(conn, namespace, settings.redis_timeout),
            source,
            settings,
        }
    }
}

impl<S: Source> Strategy for Unprotected<S> {
    type Value = S::Value;

    // ANCHOR: get
    async fn get(&self, local: &str) -> Result<S::Value, Error> {
        let key = self.cache.key(local);
        let lookup = self.cache.read(&key).await;
        if let Lookup::Found(value) = lookup {
            self.cache.metrics.hits.inc();
            return Ok(value);
        }
        self.cache.metrics.misses.inc();
        let value = strategy::load(&*self.source, &self.cache.metrics, local).await?;
        if let Lookup::Missing = lookup {
            self.cache.write(&key, &value, self.settings.ttl).await;
        }
        Ok(value)
    }
    // ANCHOR_END: get

    fn stats(&self) -> Stats {
        self.cache.metrics.snapshot()
    }
}
