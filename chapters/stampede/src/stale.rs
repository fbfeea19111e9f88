//! Stale-while-revalidate: serve the old value at once, refresh it in the background.
//!
//! A value has two ages. Until its *soft* TTL it is fresh. Between the soft and the *hard* TTL it
//! is stale but still served, immediately, while one background task loads the new value; no
//! request waits for the database. After the hard TTL Redis has dropped the key, and the next
//! request loads it the ordinary way.
//!
//! "One background task" must hold across instances, or each of them refreshes on its own: the
//! refresh is guarded by the same owner-checked lock as the lock strategy ([`crate::token_lock`]), on a
//! key of its own. Whoever takes it refreshes; everyone else keeps serving the stale value. If the
//! refresh fails or its process dies, the lock's TTL frees the way for the next attempt.
//!
//! The price is that readers see data up to `serve_stale_for` old, which is fine for a product
//! listing or a leaderboard and wrong for a bank balance. The miss path (a cold key, or one past
//! its hard TTL) is an ordinary miss: pair it with the lock if cold misses of hot keys matter.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use shared::Namespace;
use shared::RedisConn;
use shared::clock::now_ms;
use shared::worker::{Panicked, Tasks};

use crate::cache::{Lookup, RedisCache};
use crate::settings::Settings;
use crate::source::Source;
use crate::strategy::{self, Error, Stats, Strategy};
use crate::token_lock::{self, Attempt};

// ANCHOR: record
/// What stale-while-revalidate stores: the value and the end of its freshness, a soft expiry that
/// comes before the hard one (the key's Redis TTL).
#[derive(Serialize, Deserialize)]
pub struct SoftExpiring<T> {
    /// The cached value.
    pub value: T,
    /// Milliseconds since the Unix epoch after which `value` is stale.
    pub fresh_until_ms: u64,
}
// ANCHOR_END: record

/// Stale-while-revalidate: stale values served at once, one refresh across instances.
pub struct StaleWhileRevalidate<S: Source> {
    inner: Arc<Inner<S>>,
    /// The background refreshes this instance started, so shutdown can wait for them; dropping
    /// the strategy aborts the ones still running.
    refreshes: Tasks,
    /// Keys this instance is trying to refresh right now. A burst of stale reads then makes one
    /// attempt at the refresh lock per instance, not one per read.
    attempting: Arc<Mutex<HashSet<String>>>,
}

/// What a background refresh needs, shared with the task that runs it.
struct Inner<S: Source> {
    cache: RedisCache,
    source: Arc<S>,
    settings: Settings,
}

impl<S: Source> StaleWhileRevalidate<S> {
    /// The strategy for keys under `namespace`, through `conn`, loading from `source`.
    pub fn new(conn: RedisConn, namespace: Namespace, source: Arc<S>, settings: Settings) -> Self {
        StaleWhileRevalidate {
            inner: Arc::new(Inner {
                cache: RedisCache::new(conn, namespace, settings.redis_timeout),
                source,
                settings,
            }),
            refreshes: Tasks::new("stale-while-revalidate refresh"),
            attempting: Arc::default(),
        }
    }

    /// Waits until the background refreshes this instance has started so far are done; a
    /// refresh that panicked is the error.
    pub async fn finish_refreshes(&self) -> Result<(), Panicked> {
        self.refreshes.join().await
    }

    /// Abandons the background refreshes under way (a service stopping): each leaves the stale
    /// value in place, and its lock to expire.
    pub async fn abandon_refreshes(&self) {
        self.refreshes.abort().await;
    }

    // ANCHOR: get
    async fn get(&self, local: &str) -> Result<S::Value, Error> {
        let inner = &self.inner;
        let key = inner.cache.key(local);
        let lookup = inner.cache.read::<SoftExpiring<S::Value>>(&key).await;
        let can_store = !matches!(lookup, Lookup::Unavailable);
        if let Lookup::Found(record) = lookup {
            if now_ms() < record.fresh_until_ms {
                inner.cache.metrics.hits.inc();
            } else {
                inner.cache.metrics.stale_hits.inc();
                self.refresh_in_background(local).await;
            }
            return Ok(record.value);
        }
        inner.cache.metrics.misses.inc();
        let value = strategy::load(&*inner.source, &inner.cache.metrics, local).await?;
        if can_store {
            inner.store(&key, &value).await;
        }
        Ok(value)
    }
    // ANCHOR_END: get

    // ANCHOR: refresh
    /// Starts a refresh of `local` unless another request, here or in another instance, has.
    async fn refresh_in_background(&self, local: &str) {
        let inner = self.inner.clone();
        let key = inner.cache.key(local);
        let Some(claim) = inner.claim(&self.attempting, &key).await else {
            return; // a request here, or another instance, is refreshing it (or Redis failed)
        };
        let attempting = self.attempting.clone();
        let local = local.to_string();
        self.refreshes.spawn(async move {
            let mut claim = claim;
            loop {
                let changes = inner.changes(&key).await;
                // A failed refresh leaves the stale value in place; the next stale read tries
                // again.
                if let Ok(value) =
                    strategy::load(&*inner.source, &inner.cache.metrics, &local).await
                {
                    inner.store(&key, &value).await;
                }
                claim.release(&inner.cache).await;
                // A write acknowledged during the load (see `refresh_after_write`) may be missing
                // from what was stored: load again, unless someone else has taken the refresh
                // since (then theirs began after the write, or will see it as this one did).
                if inner.changes(&key).await == changes {
                    break;
                }
                match inner.claim(&attempting, &key).await {
                    Some(again) => claim = again,
                    None => break,
                }
            }
        });
    }
    // ANCHOR_END: refresh

    // ANCHOR: refresh_after_write
    /// Tells the cache that a write the value of `local` depends on has been committed: it is
    /// refreshed now, in the background, by this instance or by the one refreshing it already.
    /// Readers keep the value they had meanwhile: after the write, `local` is stale for at most
    /// the refresh under way and one more, not for the rest of its TTL.
    ///
    /// The write is counted on a key of its own (INCR) before the refresh is asked for; a refresh
    /// compares that count before its load and after its store, and loads again when it moved.
    /// With Redis unreachable the count is lost, and `local` is refreshed when it goes stale.
    pub async fn refresh_after_write(&self, local: &str) {
        let inner = &self.inner;
        let changes = changes_key(&inner.cache.key(local));
        let hard_ttl = inner.settings.ttl + inner.settings.serve_stale_for;
        let mut conn = inner.cache.conn();
        let mut count = redis::pipe();
        count
            .incr(&changes, 1)
            .ignore()
            .pexpire(&changes, hard_ttl.as_millis() as i64)
            .ignore();
        let counted: Option<()> = inner.cache.bounded(count.query_async(&mut conn)).await;
        if counted.is_some() {
            self.refresh_in_background(local).await;
        }
    }
    // ANCHOR_END: refresh_after_write
}

impl<S: Source> Inner<S> {
    /// Claims the refresh of `key`: this instance's mark that a request of its own is on it, then
    /// the lock across instances. `None` when either is taken (or Redis failed).
    async fn claim(&self, attempting: &Arc<Mutex<HashSet<String>>>, key: &str) -> Option<Claim> {
        if !attempting
            .lock()
            .expect("attempting lock")
            .insert(key.to_string())
        {
            return None; // a request of this instance is on it
        }
        let attempting = Attempting(attempting.clone(), key.to_string());
        let mut conn = self.cache.conn();
        let guard = refresh_key(key);
        let attempt = token_lock::try_acquire(&mut conn, &guard, self.settings.lock_ttl);
        let Some(Attempt::Acquired(lock)) = self.cache.bounded(attempt).await else {
            return None; // another instance is refreshing it (or Redis failed: try later)
        };
        self.cache.metrics.refreshes.inc();
        Some(Claim {
            lock,
            _attempting: attempting,
        })
    }

    /// The writes counted against `key` so far (`None`: none, or Redis failed).
    async fn changes(&self, key: &str) -> Option<i64> {
        let mut conn = self.cache.conn();
        let mut read = redis::cmd("GET");
        read.arg(changes_key(key));
        self.cache
            .bounded(read.query_async::<Option<i64>>(&mut conn))
            .await
            .flatten()
    }

    /// Stores `value` as fresh for `ttl`, kept in Redis for `ttl + serve_stale_for`.
    async fn store(&self, key: &str, value: &S::Value) {
        let record = SoftExpiring {
            value,
            fresh_until_ms: now_ms() + self.settings.ttl.as_millis() as u64,
        };
        let hard_ttl = self.settings.ttl + self.settings.serve_stale_for;
        self.cache.write(key, &record, hard_ttl).await;
    }
}

impl<S: Source> Strategy for StaleWhileRevalidate<S> {
    type Value = S::Value;

    async fn get(&self, key: &str) -> Result<S::Value, Error> {
        StaleWhileRevalidate::get(self, key).await
    }

    fn stats(&self) -> Stats {
        self.inner.cache.metrics.snapshot()
    }
}

/// Marks a key as being refreshed by this instance until dropped, whichever way the attempt ends.
struct Attempting(Arc<Mutex<HashSet<String>>>, String);

/// The right to refresh a key: the lock across instances and this instance's mark.
struct Claim {
    lock: token_lock::TokenLock,
    _attempting: Attempting,
}

impl Claim {
    /// Gives the refresh up: the lock first, then the mark.
    async fn release(self, cache: &RedisCache) {
        let mut conn = cache.conn();
        cache.bounded(self.lock.release(&mut conn)).await;
    }
}

impl Drop for Attempting {
    fn drop(&mut self) {
        self.0.lock().expect("attempting lock").remove(&self.1);
    }
}

/// The key of the lock that lets one request refresh `key`.
pub fn refresh_key(key: &str) -> String {
    format!("{key}:refresh")
}

/// The key that counts the writes acknowledged against `key`
/// ([`StaleWhileRevalidate::refresh_after_write`]).
pub fn changes_key(key: &str) -> String {
    format!("{key}:changes")
}
