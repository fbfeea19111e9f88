//! In-process single flight: concurrent misses for one key inside one process share one load.
//!
//! The first request to miss starts a *flight*; requests for the same key that miss while it is in
//! the air wait for it and take a copy of its value. It costs no Redis round trip and no
//! coordination, and it bounds a stampede to one load *per process*: with 4 application
//! instances, 4 loads. The lock strategy brings that to one across all of them.
//!
//! The flight re-checks Redis before it loads. Without that, a request whose GET missed just
//! before the previous flight stored the value would start a second flight, and a second load, a
//! moment after the first one landed.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use shared::Namespace;
use shared::RedisConn;
use tokio::sync::OnceCell;

use crate::cache::{Lookup, RedisCache};
use crate::settings::Settings;
use crate::source::Source;
use crate::strategy::{self, Error, Stats, Strategy};

// ANCHOR: flights
/// The flights in the air, by key. A flight is a cell the first caller fills; everyone else who
/// finds the cell awaits it.
pub struct Flights<T> {
    in_air: Mutex<HashMap<String, Arc<OnceCell<T>>>>,
}

impl<T: Clone> Flights<T> {
    /// No flights in the air.
    pub fn new() -> Self {
        Flights {
            in_air: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `work` for `key` unless a flight for `key` is already in the air, in which case waits
    /// for it and returns a copy of its outcome, error or not: when the database is failing, the
    /// waiters should not each try again in turn. If the caller running `work` is cancelled, one
    /// of the waiters runs it instead.
    pub async fn run<F, Fut>(&self, key: &str, work: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let flight = self
            .in_air
            .lock()
            .expect("flights lock")
            .entry(key.to_string())
            .or_default()
            .clone();
        let outcome = flight.get_or_init(work).await.clone();
        // Landed: forget the flight, so the next miss (after the next expiry) starts a new one.
        let mut in_air = self.in_air.lock().expect("flights lock");
        if in_air.get(key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            in_air.remove(key);
        }
        outcome
    }
}
// ANCHOR_END: flights

impl<T: Clone> Default for Flights<T> {
    fn default() -> Self {
        Flights::new()
    }
}

/// In-process single flight: one load per key per process at a time.
pub struct SingleFlight<S: Source> {
    cache: RedisCache,
    source: Arc<S>,
    settings: Settings,
    flights: Flights<Result<S::Value, Error>>,
}

impl<S: Source> SingleFlight<S> {
    /// The strategy for keys under `namespace`, through `conn`, loading from `source`.
    pub fn new(conn: RedisConn, namespace: Namespace, source: Arc<S>, settings: Settings) -> Self {
        SingleFlight {
            cache: RedisCache::new(conn, namespace, settings.redis_timeout),
            source,
            settings,
            flights: Flights::new(),
        }
    }
}

impl<S: Source> Strategy for SingleFlight<S> {
    type Value = S::Value;

    // ANCHOR: get
    async fn get(&self, local: &str) -> Result<S::Value, Error> {
        let key = self.cache.key(local);
        if let Lookup::Found(value) = self.cache.read(&key).await {
            self.cache.metrics.hits.inc();
            return Ok(value);
        }
        self.cache.metrics.misses.inc();
        self.flights
            .run(&key, || async {
                // The flight before this one may have stored the value since our GET.
                let lookup = self.cache.read(&key).await;
                if let Lookup::Found(value) = lookup {
                    return Ok(value);
                }
                let value = strategy::load(&*self.source, &self.cache.metrics, local).await?;
                if let Lookup::Missing = lookup {
                    self.cache.write(&key, &value, self.settings.ttl).await;
                }
                Ok(value)
            })
            .await
    }
    // ANCHOR_END: get

    fn stats(&self) -> Stats {
        self.cache.metrics.snapshot()
    }
}
