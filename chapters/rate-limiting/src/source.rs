//! The source material's limiters, kept as counter-examples the demo runs beside the five.
//!
//! Each is what a tutorial commonly shows, and each goes wrong in a way a test can see:
//!
//! - [`SourceSlidingLog`]: a pipeline that trims, counts, adds and expires, with the current
//!   *second* as the sorted-set member. Every request in the same second is the same member, so
//!   the set holds at most one entry per second and the limit is never reached. And the request is
//!   added before the count is checked, so refused requests count too:
//!   [`SourceSlidingLog::with_unique_members`] fixes the first flaw to show the second, a client
//!   that keeps retrying is refused for ever;
//! - [`TwoCallFixedWindow`]: `INCR`, then `EXPIRE` in a second call when the count is 1. A process
//!   that dies between the two leaves a counter with no expiry, and its client is refused for
//!   good. [`TwoCallFixedWindow::crash_before_expire`] makes a client's next new counter miss its
//!   `EXPIRE`, as that crash would.
//!
//! The instance clock's flaw is shown with the lesson's own token bucket fed each instance's clock
//! ([`crate::RedisLimiter::check_on_clock`]); the trusted `X-Forwarded-For`, in [`crate::client`].
//! Each also asks Redis for `TIME` in the same round trip, only so the demo can measure them on the
//! clock it measures the others on.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use redis::RedisResult;
use shared::{Namespace, RedisConn};

use crate::limit::{Decision, Limit};
use crate::limiter::Limiter;

/// The source's sliding log, as written.
pub struct SourceSlidingLog {
    limit: Limit,
    conn: RedisConn,
    namespace: Namespace,
    /// `false`: the member is the current second, as the source has it.
    unique_members: bool,
    next: AtomicU64,
}

impl SourceSlidingLog {
    /// The source's version: the second as member, the request added before the check.
    pub fn new(limit: Limit, conn: RedisConn, namespace: Namespace) -> Self {
        SourceSlidingLog {
            limit,
            conn,
            namespace,
            unique_members: false,
            next: AtomicU64::new(0),
        }
    }

    /// The same with unique members and microsecond scores: only the counted rejections left.
    pub fn with_unique_members(limit: Limit, conn: RedisConn, namespace: Namespace) -> Self {
        SourceSlidingLog {
            unique_members: true,
            ..Self::new(limit, conn, namespace)
        }
    }

    /// The client's key.
    pub fn key(&self, client: &str) -> String {
        self.namespace.key(&format!("source-log:{client}"))
    }
}

impl Limiter for SourceSlidingLog {
    async fn check(&self, client: &str) -> RedisResult<Decision> {
        let key = self.key(client);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let window = self.limit.window;
        // The source's scores are whole seconds; the fixed version's, microseconds.
        let (score, start, member) = if self.unique_members {
            let us = now.as_micros() as f64;
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            (us, us - window.as_micros() as f64, format!("{us}-{n}"))
        } else {
            let s = now.as_secs() as f64;
            (s, s - window.as_secs_f64(), format!("{s}"))
        };
        let (_, count, _, _, time): ((), u32, (), (), (u64, u64)) = redis::pipe()
            .zrembyscore(&key, 0, start)
            .zcard(&key)
            .zadd(&key, member, score) // before the check: refused requests are recorded too
            .expire(&key, window.as_secs().max(1) as i64)
            .cmd("TIME")
            .query_async(&mut self.conn.clone())
            .await?;
        let allowed = count < self.limit.requests;
        Ok(Decision {
            allowed,
            remaining: self.limit.requests.saturating_sub(count + 1),
            retry_after: if allowed { Default::default() } else { window },
            reset_after: window,
            at_us: time.0 * 1_000_000 + time.1,
        })
    }
}

/// The source's fixed window: `INCR`, then `EXPIRE` in a second call.
pub struct TwoCallFixedWindow {
    limit: Limit,
    conn: RedisConn,
    namespace: Namespace,
    /// The client whose next new counter misses its `EXPIRE`, as if the process died between
    /// the two calls.
    crash: Mutex<Option<String>>,
}

impl TwoCallFixedWindow {
    /// The source's version.
    pub fn new(limit: Limit, conn: RedisConn, namespace: Namespace) -> Self {
        TwoCallFixedWindow {
            limit,
            conn,
            namespace,
            crash: Mutex::new(None),
        }
    }

    /// The next counter this creates for `client` is left without its expiry, as a crash
    /// between the two calls would leave it.
    pub fn crash_before_expire(&self, client: &str) {
        *self.crash.lock().expect("crash lock") = Some(client.to_string());
    }

    /// The client's key.
    pub fn key(&self, client: &str) -> String {
        self.namespace.key(&format!("two-call:{client}"))
    }
}

impl Limiter for TwoCallFixedWindow {
    async fn check(&self, client: &str) -> RedisResult<Decision> {
        let key = self.key(client);
        let mut conn = self.conn.clone();
        let (count, time): (u32, (u64, u64)) = redis::pipe()
            .incr(&key, 1)
            .cmd("TIME")
            .query_async(&mut conn)
            .await?;
        let crashed = count == 1 && {
            let mut crash = self.crash.lock().expect("crash lock");
            crash.take_if(|who| who == client).is_some()
        };
        if count == 1 && !crashed {
            let _: () = redis::AsyncCommands::expire(
                &mut conn,
                &key,
                self.limit.window.as_secs().max(1) as i64,
            )
            .await?;
        }
        let allowed = count <= self.limit.requests;
        // The source returns only the two figures; when its window ends it does not know.
        let window = self.limit.window;
        Ok(Decision {
            allowed,
            remaining: self.limit.requests.saturating_sub(count),
            retry_after: if allowed { Default::default() } else { window },
            reset_after: window,
            at_us: time.0 * 1_000_000 + time.1,
        })
    }
}
