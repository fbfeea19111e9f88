//! The given parts of the API-gateway exercise: the limits, the gateway's quota state, where each
//! API key's counters live, and the decision a check returns. Written for you; the tasks are in
//! `lib.rs`. (The worked answer in `solutions/rate-limiting` includes this very file, so the two
//! can never drift apart.)

use std::time::Duration;

use redis::{FromRedisValue, ParsingError, Value};
use shared::{Namespace, RedisConn};

/// The quota every API key gets, per limiter.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Fixed window and sliding log: how many requests one key may make per window.
    pub requests: u32,
    /// Fixed window and sliding log: the window's length.
    pub window: Duration,
    /// Token bucket: how many tokens a full bucket holds, the largest burst a key may send at once.
    pub burst: u32,
    /// Token bucket: one token comes back every `refill_every`, until the bucket is full.
    pub refill_every: Duration,
}

/// The quotas of one gateway instance. Every instance has its own connection; they share the
/// Redis, and so the quotas.
pub struct Quotas {
    /// The Redis connection (clone it to get a `&mut` one: clones share the connection).
    pub redis: RedisConn,
    /// The prefix of every key; the key functions below apply it.
    pub namespace: Namespace,
    /// The quota to enforce.
    pub limits: Limits,
}

impl Quotas {
    /// Where the fixed-window counter of `api_key` lives (task 1).
    pub fn window_key(&self, api_key: &str) -> String {
        format!("{}:window", self.namespace.key(api_key))
    }

    /// Where the token bucket of `api_key` lives (task 2).
    pub fn bucket_key(&self, api_key: &str) -> String {
        format!("{}:bucket", self.namespace.key(api_key))
    }

    /// Where the sliding log of `api_key` lives (task 3): a sorted set.
    pub fn log_key(&self, api_key: &str) -> String {
        format!("{}:log", self.namespace.key(api_key))
    }
}

/// What a limiter decided about one request, and what the gateway tells the client
/// (`429 Too Many Requests` with `Retry-After`, and the `RateLimit-Remaining` and
/// `RateLimit-Reset` headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go through to the partner API.
    pub allowed: bool,
    /// How many more requests the key may make right now, after this one.
    pub remaining: u32,
    /// Refused: how long until a request would be allowed. Allowed: zero.
    pub retry_after: Duration,
    /// How long until the key has its whole quota again.
    pub reset_after: Duration,
}

impl Decision {
    /// A decision from the four integers a script returns: allowed (1 or 0), remaining, and
    /// the two durations in milliseconds. Negative numbers count as zero.
    pub fn from_millis(
        allowed: i64,
        remaining: i64,
        retry_after_ms: i64,
        reset_after_ms: i64,
    ) -> Self {
        let ms = |n: i64| Duration::from_millis(n.max(0) as u64);
        Decision {
            allowed: allowed == 1,
            remaining: remaining.clamp(0, u32::MAX as i64) as u32,
            retry_after: ms(retry_after_ms),
            reset_after: ms(reset_after_ms),
        }
    }
}

/// A script (or a transaction) may answer with an array of four integers,
/// `{allowed, remaining, retry_after_ms, reset_after_ms}`, and be read straight into a
/// [`Decision`]: `let decision: Decision = script.key(&key).invoke_async(&mut conn).await?;`.
impl FromRedisValue for Decision {
    fn from_redis_value(value: Value) -> Result<Self, ParsingError> {
        let (allowed, remaining, retry_after_ms, reset_after_ms) =
            <(i64, i64, i64, i64)>::from_redis_value(value)?;
        Ok(Decision::from_millis(
            allowed,
            remaining,
            retry_after_ms,
            reset_after_ms,
        ))
    }
}
