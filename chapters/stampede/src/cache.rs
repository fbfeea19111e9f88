//! The Redis plumbing every strategy shares: typed reads and writes, each within a time budget.
//!
//! The strategies store different records (a bare value, a value with its recompute time and
//! expiry, a value with a soft deadline), so this layer is generic over the record. It makes the
//! same promises the cache-aside lesson made, with the same shared parts ([`shared::budget`]): a
//! Redis call that fails or runs out of time is counted and reported as [`Lookup::Unavailable`],
//! never as an error, and bytes that do not decode are counted as corrupt and reported as
//! [`Lookup::Missing`], so the next store overwrites them.

use std::future::Future;
use std::time::Duration;

use redis::{AsyncCommands, RedisResult};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::RedisConn;
use shared::budget::{self, Trouble};
use shared::{Namespace, codec};

use crate::strategy::Metrics;

pub use shared::Lookup;

/// One strategy instance's Redis: its connection, namespace, time budget and counters.
pub struct RedisCache {
    conn: RedisConn,
    namespace: Namespace,
    timeout: Duration,
    /// The strategy's counters, Redis errors and corrupt entries included.
    pub metrics: Metrics,
}

impl RedisCache {
    /// Keys under `namespace`, through `conn`, each call within `timeout`.
    pub fn new(conn: RedisConn, namespace: Namespace, timeout: Duration) -> Self {
        RedisCache {
            conn,
            namespace,
            timeout,
            metrics: Metrics::default(),
        }
    }

    /// The Redis key of the lesson's key `local`.
    pub fn key(&self, local: &str) -> String {
        self.namespace.key(local)
    }

    /// A handle on the connection, for commands this layer does not wrap.
    pub fn conn(&self) -> RedisConn {
        self.conn.clone()
    }

    /// One GET, decoded as `R`.
    pub async fn read<R: DeserializeOwned>(&self, key: &str) -> Lookup<R> {
        let trouble = Trouble {
            errors: &self.metrics.errors,
            corrupt: &self.metrics.corrupt,
        };
        budget::get(&self.conn, key, self.timeout, trouble).await
    }

    /// One SET with a TTL. Returns whether it was stored.
    pub async fn write<R: Serialize>(&self, key: &str, record: &R, ttl: Duration) -> bool {
        let bytes = codec::encode(record).expect("cache records serialize to JSON");
        let mut conn = self.conn.clone();
        let ttl_ms = ttl.as_millis().max(1) as u64;
        self.bounded(conn.pset_ex::<_, _, ()>(key, bytes, ttl_ms))
            .await
            .is_some()
    }

    /// Runs one Redis call within the time budget ([`shared::budget::within`]); a failure or a
    /// timeout is counted and becomes `None`.
    pub async fn bounded<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Option<T> {
        budget::within(self.timeout, &self.metrics.errors, call).await
    }
}
