//! The five limiters, each one Lua script: one round trip per decision, on Redis's clock.
//!
//! A limiter shared by several instances has two jobs that must not be split: read the client's
//! state and write the new one. Split across two calls, two instances read the same count and both
//! admit; or the process dies between an `INCR` and its `EXPIRE` and the counter never expires. A
//! script runs atomically on the server, so each limiter here is one `EVALSHA`: it reads Redis's
//! clock (`TIME`), decides, records only what it admitted, and sets the key's expiry in the same
//! call that creates it. Each uses one key per client, so it runs on Redis Cluster unchanged.

use std::sync::atomic::{AtomicU64, Ordering};

use redis::{RedisResult, Script};
use shared::{Namespace, RedisConn};

use crate::limit::{Decision, Limit};

/// Anything that decides whether a client's request may go ahead.
pub trait Limiter: Send + Sync {
    /// The decision for one request of `client`, recorded if allowed.
    fn check(&self, client: &str) -> impl Future<Output = RedisResult<Decision>> + Send;
}

shared::variants! {
    /// The five algorithms, in the order the chapter explains them.
    pub enum Algorithm {
        /// A counter per aligned window.
        FixedWindow = ("fixed-window", "fixed window"),
        /// A sorted set of the admitted requests' times: exact.
        SlidingLog = ("sliding-log", "sliding log"),
        /// Two windows' counts, the previous one weighted: an estimate.
        SlidingCounter = ("sliding-counter", "sliding window counter"),
        /// Tokens refilled with time, a burst at most.
        TokenBucket = ("token-bucket", "token bucket"),
        /// One theoretical arrival time per client.
        Gcra = ("gcra", "GCRA"),
    }
}

impl Algorithm {
    /// The algorithm's script.
    pub fn script(self) -> Script {
        Script::new(match self {
            Algorithm::FixedWindow => include_str!("scripts/fixed_window.lua"),
            Algorithm::SlidingLog => include_str!("scripts/sliding_log.lua"),
            Algorithm::SlidingCounter => include_str!("scripts/sliding_counter.lua"),
            Algorithm::TokenBucket => include_str!("scripts/token_bucket.lua"),
            Algorithm::Gcra => include_str!("scripts/gcra.lua"),
        })
    }
}

/// One of the five algorithms on Redis: a script, a limit, and where the clients' keys live.
pub struct RedisLimiter {
    algorithm: Algorithm,
    script: Script,
    limit: Limit,
    conn: RedisConn,
    namespace: Namespace,
    /// Makes the sliding log's members unique: this limiter's tag and a counter.
    members: Members,
}

impl RedisLimiter {
    /// `algorithm` enforcing `limit` through `conn`, its keys under `namespace`.
    pub fn new(algorithm: Algorithm, limit: Limit, conn: RedisConn, namespace: Namespace) -> Self {
        RedisLimiter {
            algorithm,
            script: algorithm.script(),
            limit,
            conn,
            namespace,
            members: Members::new(),
        }
    }

    /// The key holding `client`'s state: one key per client, in one hash slot by construction.
    pub fn key(&self, client: &str) -> String {
        self.namespace
            .key(&format!("{}:{client}", self.algorithm.slug()))
    }

    /// Which algorithm this is.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The limit it enforces.
    pub fn limit(&self) -> Limit {
        self.limit
    }

    /// The decision for `client` with the time taken from `clock_ms` instead of Redis's clock:
    /// the counter-example of instances that each read their own clock (token bucket only).
    pub async fn check_on_clock(&self, client: &str, clock_ms: f64) -> RedisResult<Decision> {
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(self.key(client))
            .arg(self.limit.requests)
            .arg(self.limit.window_ms())
            .arg(self.limit.burst)
            .arg(format!("{clock_ms:.3}"));
        let reply: Vec<i64> = invocation.invoke_async(&mut self.conn.clone()).await?;
        Decision::from_reply(&reply)
    }
}

impl Limiter for RedisLimiter {
    async fn check(&self, client: &str) -> RedisResult<Decision> {
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(self.key(client))
            .arg(self.limit.requests)
            .arg(self.limit.window_ms());
        match self.algorithm {
            Algorithm::SlidingLog => invocation.arg(self.members.next()),
            Algorithm::TokenBucket | Algorithm::Gcra => invocation.arg(self.limit.burst),
            Algorithm::FixedWindow | Algorithm::SlidingCounter => &mut invocation,
        };
        let reply: Vec<i64> = invocation.invoke_async(&mut self.conn.clone()).await?;
        Decision::from_reply(&reply)
    }
}

/// Sorted-set members no other request uses: a random tag per limiter (so per instance) and a
/// counter. The time is the score, never the member.
struct Members {
    tag: u64,
    next: AtomicU64,
}

impl Members {
    fn new() -> Self {
        Members {
            tag: rand::random(),
            next: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        format!(
            "{:x}-{}",
            self.tag,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}
