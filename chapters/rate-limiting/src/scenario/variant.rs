//! The limiters the demo runs side by side: the five, and the source's versions beside them.

use rate_limiting::{
    Algorithm, Decision, Limit, Limiter, RedisLimiter, SourceSlidingLog, TwoCallFixedWindow,
};
use redis::RedisResult;
use shared::{Instance, Namespace};

shared::variants! {
    /// Every limiter the demo measures, in the order of its table.
    pub enum Variant {
        /// The lesson's fixed window.
        FixedWindow = ("fixed-window", "fixed window"),
        /// The lesson's sliding log.
        SlidingLog = ("sliding-log", "sliding log"),
        /// The lesson's sliding window counter.
        SlidingCounter = ("sliding-counter", "sliding window counter"),
        /// The lesson's token bucket.
        TokenBucket = ("token-bucket", "token bucket"),
        /// The lesson's GCRA.
        Gcra = ("gcra", "GCRA"),
        /// The source's sliding log: the second as member, the request added before the check.
        SourceLog = ("source-log", "source: log, second as member"),
        /// The source's log with unique members: rejections still recorded.
        CountsRefusals = ("counts-refusals", "source: log, refusals recorded"),
        /// `INCR`, then `EXPIRE` in a second call, with one crash between the two.
        TwoCalls = ("two-calls", "source: INCR, crash, EXPIRE"),
        /// The lesson's token bucket fed each instance's clock, one instance ahead.
        LocalClocks = ("local-clocks", "token bucket, instance clocks"),
    }
}

impl Variant {
    /// The most a limiter of this kind admits in any window of the limit's length.
    pub fn bound(self, limit: Limit) -> Bound {
        match self.algorithm() {
            Some(Algorithm::FixedWindow) => Bound::AtMost(2 * limit.requests),
            Some(Algorithm::SlidingLog) => Bound::AtMost(limit.requests),
            Some(Algorithm::SlidingCounter) => Bound::About(limit.requests),
            Some(Algorithm::TokenBucket | Algorithm::Gcra) => {
                Bound::AtMost(limit.requests + limit.burst)
            }
            None => Bound::Broken,
        }
    }

    /// The lesson's algorithm this variant is, if it is one of the five.
    pub fn algorithm(self) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.slug() == self.slug())
    }
}

/// What a limiter admits at most in any window of the limit's length.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub enum Bound {
    /// Never more than this: the fixed window twice the limit (a burst either side of an edge),
    /// the sliding log the limit, the buckets the limit plus the burst.
    AtMost(u32),
    /// About this: the sliding window counter is an estimate.
    About(u32),
    /// The version promises a limit it does not keep.
    Broken,
}

/// One variant's limiter on one instance.
pub enum Built {
    /// One of the five, on Redis's clock.
    Lesson(RedisLimiter),
    /// The source's sliding log, either version.
    SourceLog(SourceSlidingLog),
    /// The source's fixed window.
    TwoCalls(TwoCallFixedWindow),
    /// The token bucket on this instance's clock, `skew_ms` off.
    LocalClock(RedisLimiter, f64),
}

impl Built {
    /// `variant` on `instance`, its keys under `namespace`; this instance's clock is `skew_ms`
    /// ahead (only the instance-clock variant reads it).
    pub fn new(
        variant: Variant,
        limit: Limit,
        instance: &Instance,
        namespace: &Namespace,
        skew_ms: f64,
    ) -> Built {
        let conn = instance.conn.clone();
        let namespace = namespace.child(variant.slug());
        match variant {
            Variant::SourceLog => Built::SourceLog(SourceSlidingLog::new(limit, conn, namespace)),
            Variant::CountsRefusals => Built::SourceLog(SourceSlidingLog::with_unique_members(
                limit, conn, namespace,
            )),
            Variant::TwoCalls => Built::TwoCalls(TwoCallFixedWindow::new(limit, conn, namespace)),
            Variant::LocalClocks => Built::LocalClock(
                RedisLimiter::new(Algorithm::TokenBucket, limit, conn, namespace),
                skew_ms,
            ),
            Variant::FixedWindow
            | Variant::SlidingLog
            | Variant::SlidingCounter
            | Variant::TokenBucket
            | Variant::Gcra => {
                let algorithm = variant.algorithm().expect("one of the five");
                Built::Lesson(RedisLimiter::new(algorithm, limit, conn, namespace))
            }
        }
    }

    /// The decision for `client`.
    pub async fn check(&self, client: &str) -> RedisResult<Decision> {
        match self {
            Built::Lesson(limiter) => limiter.check(client).await,
            Built::SourceLog(limiter) => limiter.check(client).await,
            Built::TwoCalls(limiter) => limiter.check(client).await,
            Built::LocalClock(limiter, skew_ms) => {
                let clock = shared::clock::now_ms() as f64 + skew_ms;
                limiter.check_on_clock(client, clock).await
            }
        }
    }

    /// For the two-call version: `client`'s next new counter misses its expiry.
    pub fn crash_before_expire(&self, client: &str) {
        if let Built::TwoCalls(limiter) = self {
            limiter.crash_before_expire(client);
        }
    }
}

impl Built {
    /// The key `client`'s state is kept under.
    pub fn key(&self, client: &str) -> String {
        match self {
            Built::Lesson(limiter) | Built::LocalClock(limiter, _) => limiter.key(client),
            Built::SourceLog(limiter) => limiter.key(client),
            Built::TwoCalls(limiter) => limiter.key(client),
        }
    }
}
