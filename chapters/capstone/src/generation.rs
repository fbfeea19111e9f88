//! A derived value (counts, a list) cached under a *generation* that every write replaces after it
//! commits: never behind an acknowledged write, and no delete race.
//!
//! The generation is a key holding a number. A reader reads it, then the value stored under it; a
//! write, once committed, replaces the number with a random one, so no number is ever handed out
//! twice (not even after an administrator's clear removed the key, which an `INCR` would count
//! again from 1). A reader that was computing while a write committed stores its value under a
//! generation nobody asks for again, which a plain `DEL` after the write would not prevent (the
//! invalidation chapter measures that window). Old generations' values expire by their TTL. A
//! write whose new generation Redis did not take (Redis down or stalled for that moment) is owed:
//! this instance's next read replaces the generation before it reads, so the value is behind only
//! until Redis answers again. (A Redis restarted from its append-only file comes back with the
//! old generation; the fault run found the stale lists this left before the debt was kept.) If the
//! instance stops first, the TTL is the bound.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::budget;
use shared::metrics::Counter;
use shared::{Namespace, RedisConn};

/// What a generational cache counted.
#[derive(Default, Debug)]
pub struct GenerationCounts {
    /// Values answered from Redis.
    pub hits: Counter,
    /// Values computed by a query.
    pub misses: Counter,
    /// Redis calls that failed or ran out of time.
    pub redis_errors: Counter,
}

/// Values cached under one generation, in one namespace.
pub struct Generational {
    conn: RedisConn,
    namespace: Namespace,
    ttl: Duration,
    timeout: Duration,
    /// A write's new generation that Redis did not take, owed until it does.
    owed: AtomicBool,
    /// What it counted.
    pub counts: GenerationCounts,
}

impl Generational {
    /// Values under `namespace`, each kept `ttl`, each Redis call given `timeout`.
    pub fn new(conn: RedisConn, namespace: Namespace, ttl: Duration, timeout: Duration) -> Self {
        Generational {
            conn,
            namespace,
            ttl,
            timeout,
            owed: AtomicBool::new(false),
            counts: GenerationCounts::default(),
        }
    }

    // ANCHOR: get
    /// The value called `name`: from Redis under the current generation, or computed and stored
    /// there. With Redis unreachable or slow, computed and not stored.
    pub async fn get<T, F>(&self, name: &str, compute: impl FnOnce() -> F) -> Result<T, sqlx::Error>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<T, sqlx::Error>>,
    {
        if self.owed.load(Ordering::Relaxed) {
            self.changed().await;
        }
        let mut conn = self.conn.clone();
        let errors = &self.counts.redis_errors;
        let read = conn.get::<_, Option<u64>>(self.namespace.key("generation"));
        let Some(generation) = budget::within(self.timeout, errors, read).await else {
            return compute().await;
        };
        let key = (self.namespace).key(&format!("{name}:{}", generation.unwrap_or_default()));
        let read = conn.get::<_, Option<Vec<u8>>>(&key);
        let cached = budget::within(self.timeout, errors, read).await.flatten();
        if let Some(value) = cached.and_then(|bytes| shared::codec::decode(&bytes).ok()) {
            self.counts.hits.inc();
            return Ok(value);
        }
        self.counts.misses.inc();
        let value = compute().await?;
        let bytes = shared::codec::encode(&value).expect("a derived value encodes");
        let ttl = self.ttl.as_millis().max(1) as u64;
        let store = conn.pset_ex::<_, _, ()>(&key, bytes, ttl);
        budget::within(self.timeout, errors, store).await;
        Ok(value)
    }

    /// After a committed write: a new generation, never used before, so no reader finds a value
    /// from before the write. The number and its TTL go in one command, so the generation never
    /// lives without one. If Redis does not take it, it is owed (see the module's notes).
    pub async fn changed(&self) {
        let mut conn = self.conn.clone();
        let key = self.namespace.key("generation");
        // It lives as long as any value under it could, and a day more.
        let ttl = 86_400 + self.ttl.as_secs();
        let set = conn.set_ex::<_, _, ()>(&key, rand::random::<u64>() >> 1, ttl);
        let taken = budget::within(self.timeout, &self.counts.redis_errors, set).await;
        self.owed.store(taken.is_none(), Ordering::Relaxed);
    }
    // ANCHOR_END: get
}
