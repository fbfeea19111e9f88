//! What the limiters promise, checked against a real Redis (a server, a shared server or a
//! cluster, as the environment says), and what the source's versions break.

use std::net::IpAddr;
use std::time::Duration;

use rate_limiting::client::client_ip_trusting_anyone;
use rate_limiting::{
    Algorithm, DecidedBy, Guarded, Limit, Limiter, OnRedisDown, RedisLimiter, SourceSlidingLog,
    TwoCallFixedWindow, client_ip,
};
use redis::AsyncCommands;
use shared::{DbOptions, ServerOptions, Stage};

async fn stage() -> Stage {
    Stage::from_env("rate-limiting-test", DbOptions::default())
        .await
        .expect("a Redis for the tests")
}

fn limiter(stage: &Stage, algorithm: Algorithm, limit: Limit) -> RedisLimiter {
    RedisLimiter::new(
        algorithm,
        limit,
        stage.conn(),
        stage.namespace().child(algorithm.slug()),
    )
}

/// Sends `n` requests for `client` back to back; how many were admitted.
async fn burst(limiter: &impl Limiter, client: &str, n: u32) -> u32 {
    let mut admitted = 0;
    for _ in 0..n {
        admitted += u32::from(limiter.check(client).await.unwrap().allowed);
    }
    admitted
}

#[tokio::test]
async fn every_limiter_admits_its_limit_of_a_burst_and_counts_down() {
    let stage = stage().await;
    // A long window, so that no refill or window edge falls inside the burst.
    let limit = Limit::per(10, Duration::from_secs(60)).with_burst(10);
    for algorithm in Algorithm::ALL {
        let limiter = limiter(&stage, algorithm, limit);
        let mut remaining = Vec::new();
        for _ in 0..15 {
            let decision = limiter.check("client").await.unwrap();
            if decision.allowed {
                remaining.push(decision.remaining);
                assert_eq!(
                    decision.retry_after,
                    Duration::ZERO,
                    "{algorithm}: admitted, yet a retry-after"
                );
            } else {
                // The counter's estimate can refuse past the window's end: a window full from its
                // start still weighs on the next one (a burst of 10 counts as 9 a tenth of the
                // way in), so its retry-after reaches up to two windows. CI caught this when a
                // burst began in the first seconds of an aligned minute.
                let most = if algorithm == Algorithm::SlidingCounter {
                    2 * limit.window
                } else {
                    limit.window
                };
                assert!(
                    decision.retry_after > Duration::ZERO && decision.retry_after <= most,
                    "{algorithm}: refused with retry-after {:?}, expected more than zero and at \
                     most {most:?}",
                    decision.retry_after
                );
            }
        }
        // The fixed window may meet an aligned edge inside the burst; then it admits more, never
        // fewer. The others admit exactly the limit.
        let expected: Vec<u32> = (0..10).rev().collect();
        if algorithm != Algorithm::FixedWindow || remaining.len() == 10 {
            assert_eq!(
                remaining, expected,
                "{algorithm}: the remaining counts of a burst of 15 against a limit of 10"
            );
        }
    }
}

#[tokio::test]
async fn a_decision_is_one_command_one_round_trip() {
    // MONITOR watches one server: a private one, whatever the environment says.
    let stage = Stage::private(
        "rate-limiting-test",
        DbOptions::default(),
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let limit = Limit::per(5, Duration::from_secs(10));
    let mut watch = stage.server().watch_commands().await.unwrap();
    for algorithm in Algorithm::ALL {
        let limiter = limiter(&stage, algorithm, limit);
        limiter.check("warm").await.unwrap(); // the first call may load the script
        watch.since_last().await;
        limiter.check("client").await.unwrap();
        let sent = watch.since_last().await;
        assert_eq!(
            sent,
            ["EVALSHA"],
            "{algorithm}: the commands one decision sent, expected one script call"
        );
    }
}

#[tokio::test]
async fn every_key_has_an_expiry_from_the_call_that_creates_it() {
    let stage = stage().await;
    let limit = Limit::per(5, Duration::from_millis(2000)).with_burst(5);
    let mut conn = stage.conn();
    for algorithm in Algorithm::ALL {
        let limiter = limiter(&stage, algorithm, limit);
        limiter.check("ttl").await.unwrap();
        let ttl: i64 = conn.pttl(limiter.key("ttl")).await.unwrap();
        // The fixed window's key lives to the end of its aligned window (up to 2 s), the log's a
        // window, the counter's up to two, a bucket's until it is full again (one token's time,
        // 400 ms here).
        let (low, high) = match algorithm {
            Algorithm::FixedWindow => (1, 2000),
            Algorithm::SlidingLog => (1500, 2000),
            Algorithm::SlidingCounter => (2000, 4000),
            Algorithm::TokenBucket | Algorithm::Gcra => (100, 400),
        };
        assert!(
            (low..=high).contains(&ttl),
            "{algorithm}: PTTL {ttl} ms after one request, expected {low} to {high} ms (-1: no \
             expiry; the key would outlive the client)"
        );
    }
}

#[tokio::test]
async fn the_sliding_log_is_exact_and_bounded_in_memory() {
    let stage = stage().await;
    let limit = Limit::per(5, Duration::from_millis(300));
    let log = limiter(&stage, Algorithm::SlidingLog, limit);
    let mut conn = stage.conn();
    let mut admitted_times = Vec::new();
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_millis(1000) {
        let decision = log.check("hammer").await.unwrap();
        if decision.allowed {
            admitted_times.push(decision.at_us);
        }
        let members: u64 = conn.zcard(log.key("hammer")).await.unwrap();
        assert!(
            members <= 5,
            "the log holds {members} entries, expected at most the limit 5: is it trimmed in \
             the same call?"
        );
    }
    let worst = rate_limiting::measure::worst_window(&admitted_times, 300_000);
    assert_eq!(
        worst, 5,
        "the most admitted in any 300 ms window on Redis's clock, expected exactly the limit"
    );
    assert!(
        admitted_times.len() >= 10,
        "admitted {} in 1 s of retrying, expected at least 10: refusals must not keep the \
         window full",
        admitted_times.len()
    );
}

// ANCHOR: source_log
#[tokio::test]
async fn the_sources_log_collapses_a_seconds_requests_and_never_limits() {
    let stage = stage().await;
    let limit = Limit::per(5, Duration::from_secs(1));
    let source = SourceSlidingLog::new(limit, stage.conn(), stage.namespace().child("source"));
    let admitted = burst(&source, "client", 20).await;
    assert!(
        admitted > 5,
        "the source's log admitted {admitted} of 20 against a limit of 5; this test documents \
         its flaw (same-second members collapse)"
    );
    let lesson = limiter(&stage, Algorithm::SlidingLog, limit);
    assert_eq!(
        burst(&lesson, "client", 20).await,
        5,
        "the lesson's log, unique members"
    );
}
// ANCHOR_END: source_log

// ANCHOR: refusals
#[tokio::test]
async fn recording_refusals_locks_out_a_client_that_keeps_retrying() {
    let stage = stage().await;
    let limit = Limit::per(3, Duration::from_millis(300));
    let counted = SourceSlidingLog::with_unique_members(
        limit,
        stage.conn(),
        stage.namespace().child("counted"),
    );
    let lesson = limiter(&stage, Algorithm::SlidingLog, limit);
    let (mut counted_admitted, mut lesson_admitted) = (0, 0);
    let started = tokio::time::Instant::now();
    // Retrying every 10 ms for a second: three windows and more.
    while started.elapsed() < Duration::from_secs(1) {
        counted_admitted += u32::from(counted.check("retrier").await.unwrap().allowed);
        lesson_admitted += u32::from(lesson.check("retrier").await.unwrap().allowed);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        counted_admitted, 3,
        "recording refusals: only the first window's 3 get through, each refusal keeps the \
         window full"
    );
    assert!(
        lesson_admitted >= 9,
        "the lesson's log let the retrier through {lesson_admitted} times in 1 s, expected at \
         least 9 (3 per 300 ms)"
    );
}
// ANCHOR_END: refusals

// ANCHOR: crash
#[tokio::test]
async fn a_crash_between_incr_and_expire_blocks_a_client_for_good() {
    let stage = stage().await;
    let limit = Limit::per(3, Duration::from_secs(1));
    let source = TwoCallFixedWindow::new(limit, stage.conn(), stage.namespace().child("two-calls"));
    source.crash_before_expire("client");
    assert_eq!(burst(&source, "client", 5).await, 3);
    let mut conn = stage.conn();
    let ttl: i64 = conn.pttl(source.key("client")).await.unwrap();
    assert_eq!(
        ttl, -1,
        "the counter created just before the crash has no expiry"
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        burst(&source, "client", 1).await,
        0,
        "a window later the client is still refused"
    );
    let _: () = conn.del(source.key("client")).await.unwrap();
    // The lesson's fixed window sets the expiry in the call that counts: no such crash exists.
    let lesson = limiter(&stage, Algorithm::FixedWindow, limit);
    lesson.check("client").await.unwrap();
    let ttl: i64 = conn.pttl(lesson.key("client")).await.unwrap();
    assert!(
        (1..=1000).contains(&ttl),
        "the lesson's counter: PTTL {ttl} ms, expected 1 to 1000"
    );
}
// ANCHOR_END: crash

#[tokio::test]
async fn a_retry_after_is_when_a_request_is_allowed_again() {
    let stage = stage().await;
    let limit = Limit::per(4, Duration::from_millis(400)).with_burst(2);
    for algorithm in Algorithm::ALL {
        let limiter = limiter(&stage, algorithm, limit);
        let refused = loop {
            let decision = limiter.check("patient").await.unwrap();
            if !decision.allowed {
                break decision;
            }
        };
        tokio::time::sleep(refused.retry_after + Duration::from_millis(20)).await;
        let again = limiter.check("patient").await.unwrap();
        assert!(
            again.allowed,
            "{algorithm}: refused again after waiting the retry-after of {:?}",
            refused.retry_after
        );
    }
}

#[tokio::test]
async fn instances_reading_their_own_clocks_let_a_client_through_too_often() {
    let stage = stage().await;
    // 20 a second: the clock 100 ms ahead refills 2 tokens each time the bucket was last written
    // by an instance on time, enough for it and the next instance on time to be admitted, whose
    // write sets the bucket's time back again.
    let limit = Limit::per(20, Duration::from_secs(1)).with_burst(5);
    let ns = stage.namespace().child("clocks");
    let local = RedisLimiter::new(
        Algorithm::TokenBucket,
        limit,
        stage.conn(),
        ns.child("local"),
    );
    let shared = RedisLimiter::new(
        Algorithm::TokenBucket,
        limit,
        stage.conn(),
        ns.child("redis"),
    );
    let (mut local_admitted, mut shared_admitted) = (0, 0);
    // For a second, a request every 2 ms, spread over four instances in turn, the first one's
    // clock 100 ms ahead. A bucket of 5 refilling 20 per second admits about 25 in that second.
    let started = tokio::time::Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(1) {
        let skew = if i % 4 == 0 { 100.0 } else { 0.0 };
        let clock = shared::clock::now_ms() as f64 + skew;
        local_admitted += u32::from(local.check_on_clock("client", clock).await.unwrap().allowed);
        shared_admitted += u32::from(shared.check("client").await.unwrap().allowed);
        i += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(
        shared_admitted <= 26,
        "on Redis's clock the bucket admitted {shared_admitted} in 1 s, expected at most 26 (a \
         burst of 5, 20 a second, and one for timing)"
    );
    assert!(
        local_admitted >= 2 * shared_admitted,
        "on instance clocks, one 100 ms ahead, it admitted {local_admitted} against \
         {shared_admitted} on Redis's: expected at least twice as many; this test documents the \
         flaw"
    );
}

#[test]
fn the_client_is_who_your_own_proxies_say_it_is() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let proxies = [ip("10.0.0.1"), ip("10.0.0.2")];
    // A client that talks to the API directly cannot pick its key with a header.
    assert_eq!(
        client_ip(ip("203.0.113.9"), Some("1.2.3.4"), &proxies),
        ip("203.0.113.9")
    );
    // Behind two proxies: the right-most address that is not one of them.
    assert_eq!(
        client_ip(
            ip("10.0.0.1"),
            Some("1.2.3.4, 198.51.100.7, 10.0.0.2"),
            &proxies
        ),
        ip("198.51.100.7")
    );
    // What the client wrote itself (left of the first untrusted hop, or unparsable) is ignored.
    assert_eq!(
        client_ip(ip("10.0.0.1"), Some("garbage, 198.51.100.7"), &proxies),
        ip("198.51.100.7")
    );
    assert_eq!(
        client_ip(ip("10.0.0.1"), Some("198.51.100.7, garbage"), &proxies),
        ip("10.0.0.1")
    );
    assert_eq!(client_ip(ip("10.0.0.1"), None, &proxies), ip("10.0.0.1"));
    // The source's way: any peer picks its key.
    assert_eq!(
        client_ip_trusting_anyone(ip("203.0.113.9"), Some("1.2.3.4")),
        ip("1.2.3.4")
    );
}

#[tokio::test]
async fn while_redis_is_paused_the_policy_decides_and_redis_decides_again_after() {
    let stage = Stage::private(
        "rate-limiting-test",
        DbOptions::default(),
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let limit = Limit::per(8, Duration::from_secs(10)).with_burst(8);
    let budget = Duration::from_millis(50);
    let guard = |policy| {
        Guarded::new(
            limiter(&stage, Algorithm::TokenBucket, limit),
            limit,
            2,
            policy,
            budget,
        )
    };
    let (open, closed) = (guard(OnRedisDown::FailOpen), guard(OnRedisDown::FailClosed));
    stage.server().pause(Duration::from_millis(1500)).unwrap();
    let (mut open_admitted, mut closed_admitted) = (0, 0);
    for _ in 0..6 {
        let (decision, by) = open.check("client").await;
        assert_eq!(
            by,
            DecidedBy::Fallback,
            "Redis is paused: the fallback decides"
        );
        open_admitted += u32::from(decision.allowed);
        let (decision, by) = closed.check("client").await;
        assert_eq!(by, DecidedBy::Fallback);
        closed_admitted += u32::from(decision.allowed);
    }
    assert_eq!(
        open_admitted, 4,
        "failing open, one instance of two admits its share: 4 of the limit of 8"
    );
    assert_eq!(closed_admitted, 0, "failing closed refuses everything");
    assert_eq!(open.fallbacks.get(), 6);
    // Redis answers again: it decides.
    loop {
        let (_, by) = open.check("after").await;
        if by == DecidedBy::Redis {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (decision, by) = closed.check("after").await;
    assert_eq!(
        (decision.allowed, by),
        (true, DecidedBy::Redis),
        "failing closed ends with the pause"
    );
}
