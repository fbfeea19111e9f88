//! Eviction, measured: which keys a full cache gives up decides its hit ratio.
//!
//! The source material names LRU, LFU, FIFO and hybrids, and measures none. Here each runs on
//! one trace of requests, and the hit ratio is counted:
//!
//! - **FIFO** ([`Fifo`], the source's L1) evicts the oldest insertion, however hot;
//! - **LRU** evicts the key read longest ago: good for recency, and flushed by any scan of cold
//!   keys, since each of them was read more recently than the hot ones;
//! - **TinyLFU** (moka's default) keeps a compact frequency sketch and admits a new key only if
//!   it has been asked for more often than the one it would evict, so a one-off scan passes
//!   through without pushing the hot keys out;
//! - Redis's `allkeys-lru` and `allkeys-lfu`, the `maxmemory-policy` values, on a private
//!   server whose memory limit holds about as many values, each sampled approximately as Redis
//!   does.
//!
//! The trace is Zipf-skewed, as real traffic is; the *scan* variant inserts a one-off read of
//! cold keys, twice as many as the largest cache holds, halfway through, as a report or a
//! crawler would. Hit ratios are counted over a tenth of the trace from its half: after the
//! caches have warmed and, for the scan variant, right after the scan, while the caches recover
//! from it (the scan's own requests, all misses, are not counted).

use moka::policy::EvictionPolicy;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Zipf};
use serde::Serialize;
use shared::{RedisConn, RedisServer};

use crate::source::Fifo;

shared::variants! {
    /// An eviction policy in the process, in the order the demo shows them.
    pub enum Policy {
        /// First in, first out: the source material's.
        Fifo = ("fifo", "FIFO (source)"),
        /// Least recently used (moka with its LRU policy).
        Lru = ("lru", "LRU"),
        /// Frequency-based admission with LRU eviction (moka's default).
        TinyLfu = ("tinylfu", "TinyLFU (moka)"),
    }
}

shared::variants! {
    /// An eviction policy of Redis's, set with `maxmemory-policy` (its slug): Redis samples a few
    /// keys and evicts the best candidate among them, so both are approximations of their names.
    pub enum RedisPolicy {
        /// `allkeys-lru`: the key read longest ago among the sampled.
        AllKeysLru = ("allkeys-lru", "Redis allkeys-lru"),
        /// `allkeys-lfu`: the key read least often among the sampled (a decaying counter per key).
        AllKeysLfu = ("allkeys-lfu", "Redis allkeys-lfu"),
    }
}

/// A trace of requests, and the part of it that is counted.
pub struct Trace {
    /// The keys asked for, in order.
    pub keys: Vec<i64>,
    /// The requests counted: a tenth of the trace, from its half. Those before warm the cache.
    measured: std::ops::Range<usize>,
    /// The scan's requests, if any: always misses, and not counted.
    scan: std::ops::Range<usize>,
}

impl Trace {
    /// `len` requests over keys `1..=keys`, Zipf-skewed by `skew`.
    pub fn zipf(keys: u64, len: usize, skew: f64, seed: u64) -> Self {
        let zipf = Zipf::new(keys as f64, skew).expect("keys >= 1 and skew >= 0");
        let mut rng = StdRng::seed_from_u64(seed);
        let keys = (0..len).map(|_| zipf.sample(&mut rng) as i64).collect();
        Trace {
            keys,
            measured: len / 2..len / 2 + len / 10,
            scan: 0..0,
        }
    }

    /// The same trace with `count` never-seen keys read once each, halfway through.
    pub fn with_scan(mut self, count: usize) -> Self {
        let at = self.measured.start;
        let first_cold = self.keys.iter().max().copied().unwrap_or(0) + 1_000_000;
        let scan = (0..count as i64).map(|n| first_cold + n);
        self.keys.splice(at..at, scan);
        self.scan = at..at + count;
        self.measured.end += count;
        self
    }

    /// Whether request `index` counts towards the hit ratio.
    fn counts(&self, index: usize) -> bool {
        self.measured.contains(&index) && !self.scan.contains(&index)
    }
}

/// The hit ratio of a cache of `capacity` entries under `policy`, replaying `trace`: every miss
/// stores the key, as a cache-aside read would.
pub fn hit_ratio(policy: Policy, capacity: u64, trace: &Trace) -> f64 {
    let mut hits = Hits::default();
    match policy {
        Policy::Fifo => {
            let mut cache = Fifo::new(capacity as usize);
            for (index, &key) in trace.keys.iter().enumerate() {
                let hit = cache.get(key).is_some();
                if !hit {
                    cache.insert(key, ());
                }
                hits.count(trace.counts(index), hit);
            }
        }
        Policy::Lru | Policy::TinyLfu => {
            let eviction = match policy {
                Policy::Lru => EvictionPolicy::lru(),
                _ => EvictionPolicy::tiny_lfu(),
            };
            let cache = moka::sync::Cache::builder()
                .max_capacity(capacity)
                .eviction_policy(eviction)
                .build();
            for (index, &key) in trace.keys.iter().enumerate() {
                let hit = cache.get(&key).is_some();
                if !hit {
                    cache.insert(key, ());
                    // moka applies evictions in batches; applying them now keeps the cache at
                    // its size, as a simulation must.
                    cache.run_pending_tasks();
                }
                hits.count(trace.counts(index), hit);
            }
        }
    }
    hits.ratio()
}

/// Hits among the counted requests.
#[derive(Default)]
struct Hits {
    hits: u64,
    counted: u64,
}

impl Hits {
    fn count(&mut self, counts: bool, hit: bool) {
        if counts {
            self.counted += 1;
            self.hits += u64::from(hit);
        }
    }

    fn ratio(&self) -> f64 {
        self.hits as f64 / self.counted.max(1) as f64
    }
}

/// How big each value is in the Redis replay: big enough that the memory limit, even for a
/// small cache, is far above what a client's buffers take, so Redis can always evict to make room.
const VALUE_BYTES: usize = 4_096;

/// What a Redis replay found: the hit ratio, and how many keys the memory limit held at the end.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct RedisReplay {
    /// Hits among the counted requests.
    pub hit_ratio: f64,
    /// Keys in Redis when the trace ended.
    pub keys_held: u64,
}

/// Replays `trace` against a private Redis whose `maxmemory` holds about `capacity` values,
/// evicting with `policy`. Requests go in pipelined batches: the `GET`s of a batch, then a `SET`
/// for each miss.
pub async fn redis_hit_ratio(
    policy: RedisPolicy,
    capacity: u64,
    trace: &Trace,
) -> anyhow::Result<RedisReplay> {
    let server = RedisServer::start()?;
    let mut conn = shared::connection::connect(&server.url()).await?;
    let limit = memory_for(&mut conn, capacity).await?;
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg(policy.slug())
        .arg("maxmemory")
        .arg(limit)
        .query_async::<()>(&mut conn)
        .await?;
    let value = vec![b'v'; VALUE_BYTES];
    let mut hits = Hits::default();
    // Requests per round trip: few enough that one batch's values are a fifth of the limit.
    let per_batch = (capacity as usize / 5).clamp(1, 100);
    for (batch_start, batch) in trace.keys.chunks(per_batch).enumerate() {
        let mut gets = redis::pipe();
        for key in batch {
            gets.cmd("EXISTS").arg(key);
        }
        let found: Vec<bool> = gets.query_async(&mut conn).await?;
        let mut sets = redis::pipe();
        for (offset, (key, hit)) in batch.iter().zip(&found).enumerate() {
            hits.count(trace.counts(batch_start * per_batch + offset), *hit);
            if !hit {
                sets.set(key, &value).ignore();
            }
        }
        if found.contains(&false) {
            sets.query_async::<()>(&mut conn).await?;
        }
    }
    let keys_held = redis::cmd("DBSIZE").query_async(&mut conn).await?;
    Ok(RedisReplay {
        hit_ratio: hits.ratio(),
        keys_held,
    })
}

/// The `maxmemory` that holds about `capacity` of the replay's values on this server: its memory
/// in use now, plus `capacity` times what one value was measured to take (keys of the same
/// shape, filled and then removed: the server is ours).
async fn memory_for(conn: &mut RedisConn, capacity: u64) -> anyhow::Result<u64> {
    const SAMPLE: u64 = 1_000;
    let before = used_memory(conn).await?;
    let value = vec![b'v'; VALUE_BYTES];
    let mut fill = redis::pipe();
    for key in 0..SAMPLE as i64 {
        fill.set(1_000_000_000 + key, &value).ignore();
    }
    fill.query_async::<()>(conn).await?;
    let per_value = used_memory(conn).await?.saturating_sub(before) / SAMPLE;
    redis::cmd("FLUSHALL").query_async::<()>(conn).await?;
    Ok(used_memory(conn).await? + capacity * per_value)
}

async fn used_memory(conn: &mut RedisConn) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    Ok(info
        .lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0))
}
