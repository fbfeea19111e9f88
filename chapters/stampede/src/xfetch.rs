//! Probabilistic early recomputation, "XFetch" (Vattani, Chierichetti and Lowenstein, "Optimal
//! Probabilistic Cache Stampede Prevention", VLDB 2015).
//!
//! A lock makes everyone wait for one load *after* the key expired. XFetch avoids the expiry: each
//! request that reads the value rolls a die, and recomputes early if
//!
//! ```text
//! now - delta * beta * ln(rand()) >= expiry        rand() uniform in (0, 1]
//! ```
//!
//! `delta` is how long the last recomputation took, `expiry` when the value expires, `beta` a knob
//! (1 by default). `-ln(rand())` is an exponentially distributed number, mostly below 1 and rarely
//! large, so a request recomputes when the remaining lifetime is less than a random multiple of
//! the recomputation time: almost never an hour before expiry, often in its last `delta`. Under
//! steady traffic the value is refreshed shortly before it expires, and nobody sees a miss. Slow
//! recomputations start earlier, which is what you want. The refresh is not exclusive: the
//! requests that read the key while it is being recomputed keep rolling the die, and for a key read
//! many times per `delta` one or two of them usually recompute as well.
//!
//! The value, `delta` and `expiry` are stored together, so a hit is one GET, the same as a plain
//! cache. Two things the algorithm does not do: it cannot help a burst that arrives *after* the
//! key expired (every request misses, as in the baseline), and the request that recomputes pays for
//! the load itself; stale-while-revalidate moves that to the background.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use shared::Namespace;
use shared::RedisConn;

use crate::cache::{Lookup, RedisCache};
use crate::settings::Settings;
use crate::source::Source;
use crate::strategy::{self, Error, Stats, Strategy};

// ANCHOR: record
/// What XFetch stores under a key: the value with what the formula needs, read in one GET.
#[derive(Serialize, Deserialize)]
pub struct Recomputable<T> {
    /// The cached value.
    pub value: T,
    /// How long the recomputation that produced `value` took, in milliseconds.
    pub delta_ms: f64,
    /// When `value` expires, in milliseconds since the Unix epoch.
    pub expiry_ms: f64,
}
// ANCHOR_END: record

// ANCHOR: formula
/// The published test: recompute now if `now - delta * beta * ln(rand) >= expiry`. `rand` must be
/// in (0, 1]; all times in milliseconds.
pub fn recompute_early(now_ms: f64, delta_ms: f64, beta: f64, expiry_ms: f64, rand: f64) -> bool {
    now_ms - delta_ms * beta * rand.ln() >= expiry_ms
}
// ANCHOR_END: formula

/// XFetch: probabilistic early recomputation.
pub struct XFetch<S: Source> {
    cache: RedisCache,
    source: Arc<S>,
    settings: Settings,
}

impl<S: Source> XFetch<S> {
    /// The strategy for keys under `namespace`, through `conn`, loading from `source`.
    pub fn new(conn: RedisConn, namespace: Namespace, source: Arc<S>, settings: Settings) -> Self {
        XFetch {
            cache: RedisCache::new(conn, namespace, settings.redis_timeout),
            source,
            settings,
        }
    }
}

impl<S: Source> Strategy for XFetch<S> {
    type Value = S::Value;

    // ANCHOR: get
    async fn get(&self, local: &str) -> Result<S::Value, Error> {
        let key = self.cache.key(local);
        let lookup = self.cache.read::<Recomputable<S::Value>>(&key).await;
        let can_store = !matches!(lookup, Lookup::Unavailable);
        match lookup {
            Lookup::Found(record) => {
                // 1 - random() is in (0, 1], so ln() is finite.
                let rand = 1.0 - rand::random::<f64>();
                let early = recompute_early(
                    now_ms(),
                    record.delta_ms,
                    self.settings.beta,
                    record.expiry_ms,
                    rand,
                );
                if !early {
                    self.cache.metrics.hits.inc();
                    return Ok(record.value);
                }
                self.cache.metrics.refreshes.inc();
            }
            Lookup::Missing | Lookup::Unavailable => self.cache.metrics.misses.inc(),
        }

        let started = Instant::now();
        let value = strategy::load(&*self.source, &self.cache.metrics, local).await?;
        let delta = started.elapsed();
        if can_store {
            let record = Recomputable {
                value,
                delta_ms: delta.as_secs_f64() * 1e3,
                expiry_ms: now_ms() + self.settings.ttl.as_secs_f64() * 1e3,
            };
            self.cache.write(&key, &record, self.settings.ttl).await;
            return Ok(record.value);
        }
        Ok(value)
    }
    // ANCHOR_END: get

    fn stats(&self) -> Stats {
        self.cache.metrics.snapshot()
    }
}

/// Wall-clock milliseconds since the Unix epoch ([`shared::clock`]): expiries are compared across
/// instances, so they are wall-clock times, not `Instant`s. Clock skew between instances shifts
/// when they refresh early, nothing more; the Redis TTL still ends the value on time.
fn now_ms() -> f64 {
    shared::clock::now_ms() as f64
}

#[cfg(test)]
mod tests {
    use super::recompute_early;

    #[test]
    fn the_formula_refreshes_near_expiry_and_not_long_before() {
        let (delta, beta, expiry) = (100.0, 1.0, 10_000.0);
        // An hour before expiry, even an unlucky roll (ln(1e-9) = -20.7) stays far below it.
        assert!(!recompute_early(
            expiry - 3_600_000.0,
            delta,
            beta,
            expiry,
            1e-9
        ));
        // At expiry every roll recomputes, including the luckiest (ln 1 = 0).
        assert!(recompute_early(expiry, delta, beta, expiry, 1.0));
        // 50 ms before expiry, a roll below e^-0.5 (about 0.61) recomputes.
        assert!(recompute_early(expiry - 50.0, delta, beta, expiry, 0.6));
        assert!(!recompute_early(expiry - 50.0, delta, beta, expiry, 0.62));
        // beta 0 never recomputes early.
        assert!(!recompute_early(expiry - 1.0, delta, 0.0, expiry, 1e-9));
    }
}
