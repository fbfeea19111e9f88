//! What a limit is, and what a limiter answers.
//!
//! Every limiter in this lesson takes the same [`Limit`] and returns the same [`Decision`], so the
//! demo, the tests and a service can swap one for another. The four figures of a decision are the
//! ones a service puts in its response headers: whether to serve, how many requests are left,
//! when to try again after a refusal (`Retry-After`), and when the client's quota is whole again.

use std::time::Duration;

/// A rate limit: `requests` per `window`, with room for a burst of `burst` requests at once for
/// the algorithms that have a bucket (token bucket, GCRA); the windowed ones ignore `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// How many requests a client may make per window.
    pub requests: u32,
    /// The window's length.
    pub window: Duration,
    /// How many requests a full bucket admits at once.
    pub burst: u32,
}

impl Limit {
    /// `requests` per `window`, with a burst of the same size.
    pub fn per(requests: u32, window: Duration) -> Limit {
        Limit {
            requests,
            window,
            burst: requests,
        }
    }

    /// The same limit with a bucket of `burst`.
    pub fn with_burst(self, burst: u32) -> Limit {
        Limit { burst, ..self }
    }

    /// The window in whole milliseconds, as the scripts take it.
    pub fn window_ms(&self) -> u64 {
        self.window.as_millis() as u64
    }
}

/// A limiter's answer to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Serve the request (`true`) or answer 429 Too Many Requests.
    pub allowed: bool,
    /// How many more requests the client may make right now.
    pub remaining: u32,
    /// After a refusal, how long until a request would be allowed (`Retry-After`); zero when
    /// allowed.
    pub retry_after: Duration,
    /// How long until the client's quota is whole again, as if it had made no request.
    pub reset_after: Duration,
    /// The Redis server's clock when it decided, in microseconds since the epoch: the one clock
    /// every instance shares, and the one the demo measures windows on.
    pub at_us: u64,
}

impl Decision {
    /// Reads a script's reply `{allowed, remaining, retry_after_ms, reset_after_ms, now_us}`.
    pub fn from_reply(reply: &[i64]) -> redis::RedisResult<Decision> {
        let [allowed, remaining, retry_ms, reset_ms, at_us] = reply else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "a limiter script returned a reply of the wrong shape",
                format!("{reply:?}"),
            )));
        };
        let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
        Ok(Decision {
            allowed: *allowed == 1,
            remaining: (*remaining).max(0) as u32,
            retry_after: ms(*retry_ms),
            reset_after: ms(*reset_ms),
            at_us: (*at_us).max(0) as u64,
        })
    }
}
