//! The distributed lock: one load across every instance, and waiters woken by the value.
//!
//! On a miss a request tries to take the key's lock. The one that gets it re-checks the cache,
//! loads, stores, announces the key and releases the lock. Everyone else waits for the
//! announcement and then reads the value the holder stored. Each step fixes a way the textbook
//! version fails:
//!
//! - **the holder re-checks the cache after taking the lock.** A request whose GET missed just
//!   before the previous holder stored the value takes the lock right after that holder releases
//!   it; without a second look it loads again (the source material's lock did this in 13-20% of
//!   cold-key trials);
//! - **waiters are woken, not polling**, so they are served as soon as the value exists instead of
//!   at the next tick of a 100 ms sleep ([`crate::wakeup`]);
//! - **a wait never outlasts the holder's lock.** If the lock runs out before any announcement,
//!   the holder died or stalled: the waiters try to take the lock again, and one of them loads.
//!   Nobody waits forever on a crashed process;
//! - **a waiter that runs out of patience does not load.** Past `max_wait` it gives up with
//!   [`Error::GaveUp`], which the caller can turn into a 503 or a default. Loading at the
//!   deadline, as the source material's waiters did, brings the stampede back at the worst moment:
//!   when the database is already too slow to answer one query in time;
//! - **release checks the token** ([`crate::lock`]), so a holder whose lock expired cannot free
//!   the lock a newer holder took.
//!
//! If Redis itself fails, there is nothing to coordinate through: the request loads on its own
//! and the failure is counted, as in every other strategy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use shared::Namespace;

use crate::cache::{Lookup, RedisCache};
use crate::lock::{self, Attempt, Lock};
use crate::source::Source;
use crate::strategy::{self, Error, Policy, Stats, Strategy};
use crate::wakeup::Wakeups;

pub struct LockedLoader<S: Source> {
    cache: RedisCache,
    source: Arc<S>,
    policy: Policy,
    wakeups: Wakeups,
}

impl<S: Source> LockedLoader<S> {
    /// `client` opens this instance's pub/sub subscription; `conn` carries everything else.
    pub async fn new(
        conn: ConnectionManager,
        client: redis::Client,
        namespace: Namespace,
        source: Arc<S>,
        policy: Policy,
    ) -> Self {
        let wakeups = Wakeups::subscribe(client, namespace.key("loaded")).await;
        LockedLoader {
            cache: RedisCache::new(conn, namespace, policy.redis_timeout),
            source,
            policy,
            wakeups,
        }
    }

    // ANCHOR: get
    async fn get(&self, local: &str) -> Result<S::Value, Error> {
        let key = self.cache.key(local);
        match self.cache.read(&key).await {
            Lookup::Found(value) => {
                self.cache.metrics.hits.inc();
                return Ok(value);
            }
            Lookup::Missing => self.cache.metrics.misses.inc(),
            Lookup::Unavailable => {
                self.cache.metrics.misses.inc();
                return self.load(local).await;
            }
        }
        let started = Instant::now();
        loop {
            match self.try_lock(&key).await {
                Some(Attempt::Acquired(lock)) => return self.load_holding(local, &key, lock).await,
                Some(Attempt::Held { expires_in }) => {
                    if let Some(value) = self.wait(local, &key, expires_in, started).await? {
                        return Ok(value);
                    }
                    // The lock ran out before the value came: its holder died or stalled.
                    // Go round and try to take it over.
                }
                // Redis failed: no lock to be had, so load alone.
                None => return self.load(local).await,
            }
        }
    }
    // ANCHOR_END: get

    // ANCHOR: holder
    /// The lock holder's work: look again, load, store, announce, release.
    async fn load_holding(&self, local: &str, key: &str, lock: Lock) -> Result<S::Value, Error> {
        let result = match self.cache.read(key).await {
            // Stored by the holder before us, between our miss and our lock.
            Lookup::Found(value) => Ok(value),
            _ => {
                let loaded = self.load(local).await;
                if let Ok(value) = &loaded {
                    self.cache.write(key, value, self.policy.ttl).await;
                }
                loaded
            }
        };
        // Announce even a failed load: the waiters then try the lock at once rather than
        // waiting out its TTL.
        let mut conn = self.cache.conn();
        self.cache
            .bounded(conn.publish::<_, _, ()>(self.wakeups.channel(), key))
            .await;
        self.cache.bounded(lock.release(&mut conn)).await;
        result
    }
    // ANCHOR_END: holder

    // ANCHOR: wait
    /// Waits for the holder's announcement, for at most as long as its lock has to live and never
    /// past `max_wait` from `started`. `Ok(None)`: no value yet, try the lock again.
    async fn wait(
        &self,
        local: &str,
        key: &str,
        expires_in: Option<Duration>,
        started: Instant,
    ) -> Result<Option<S::Value>, Error> {
        let left = self.policy.max_wait.saturating_sub(started.elapsed());
        if left.is_zero() {
            self.cache.metrics.gave_up.inc();
            return Err(Error::GaveUp {
                key: local.to_string(),
                waited: started.elapsed(),
            });
        }
        // Listen first, then look: a value stored in between is either seen or announced.
        let mut waiter = self.wakeups.listen();
        if let Lookup::Found(value) = self.cache.read(key).await {
            return Ok(Some(value));
        }
        self.cache.metrics.waits.inc();
        // A few ms past the lock's expiry, so that retrying finds it gone.
        let lock_left = expires_in.unwrap_or(self.policy.lock_ttl) + Duration::from_millis(5);
        waiter.wait_for(key, lock_left.min(left)).await;
        match self.cache.read(key).await {
            Lookup::Found(value) => Ok(Some(value)),
            _ => Ok(None),
        }
    }
    // ANCHOR_END: wait

    async fn try_lock(&self, key: &str) -> Option<Attempt> {
        let mut conn = self.cache.conn();
        self.cache
            .bounded(lock::try_acquire(
                &mut conn,
                &lock_key(key),
                self.policy.lock_ttl,
            ))
            .await
    }

    async fn load(&self, local: &str) -> Result<S::Value, Error> {
        strategy::load(&*self.source, &self.cache.metrics, local).await
    }
}

impl<S: Source> Strategy for LockedLoader<S> {
    type Value = S::Value;

    async fn get(&self, key: &str) -> Result<S::Value, Error> {
        LockedLoader::get(self, key).await
    }

    fn stats(&self) -> Stats {
        self.cache.metrics.snapshot()
    }
}

/// The lock of `key`; it shares the key's hash tag, so both live in one cluster slot.
pub fn lock_key(key: &str) -> String {
    format!("{key}:lock")
}
