//! # Rate limiting
//!
//! A rate limit is a promise to the backend: no client gets more than N requests per window,
//! however many instances of the API serve it. In-process counters cannot keep it (each instance
//! counts only what it sees), so the count lives in Redis, and the usual tutorial code for that
//! is wrong in ways that only show under load. This crate builds limiters that keep the promise,
//! in the order the chapter argues:
//!
//! - [`limit`]: what a limit is, and the decision every limiter returns (allowed, remaining,
//!   retry-after, reset-after, and the time it was made on Redis's clock);
//! - [`limiter`]: five algorithms, each one Lua script: a fixed window, a sliding log, a sliding
//!   window counter, a token bucket and GCRA. One round trip, Redis's clock, only admitted
//!   requests recorded, every key's expiry set in the call that creates it;
//! - [`client`]: who the client is, with `X-Forwarded-For` believed only from your own proxies;
//! - [`source`]: the source material's versions, kept as counter-examples: a log whose members
//!   collapse, rejections that count, an `INCR` and an `EXPIRE` in two calls;
//! - [`fallback`]: what to answer while Redis is down, a policy chosen in advance;
//! - [`measure`]: how the demo judges a limiter, from the times of what it admitted, against a
//!   perfect sliding window.

#![warn(missing_docs)]

pub mod limit;

pub mod limiter;

pub mod client;

pub mod source;

pub mod fallback;

pub mod measure;

pub use client::client_ip;
pub use fallback::{DecidedBy, Guarded, OnRedisDown};
pub use limit::{Decision, Limit};
pub use limiter::{Algorithm, Limiter, RedisLimiter};
pub use source::{SourceSlidingLog, TwoCallFixedWindow};
