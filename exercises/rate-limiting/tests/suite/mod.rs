//! The suite shared by the exercise and the solution: `super::subject` is whichever crate runs it.
//!
//! Each test gets its own namespace; Redis is `REDIS_URL`, or a private cluster with
//! `REDIS_CLUSTER=1`, else a private server, and the tests that watch which commands reach Redis
//! always start a private one. Time is the subject of most tests: they use short windows, and
//! bound every duration a limiter reports by the instants the test measured around its calls
//! (a call's Redis time lies between the moment it was sent and the moment its answer came), so
//! a slow machine makes no test fail, only a wrong answer does. Where a fraction of a millisecond
//! matters (a wait rounded up, not down), they read Redis's own clock (`TIME`) around the call.

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{AsyncCommands, RedisResult};
use shared::exercise::{Site, joined, quiet_repeated_todos};

use super::subject::{Decision, Limits, Quotas, client_ip};

const PACKAGE: &str = "rate-limiting-exercise";

/// The slack, in ms, for rounding to whole milliseconds on both sides of a comparison, and for
/// the drift between Redis's clock (the wall clock) and the test's (a monotonic one).
const SLACK: i64 = 3;

async fn site() -> Site {
    Site::from_env(PACKAGE).await
}

async fn site_with_private_redis() -> Site {
    Site::private(PACKAGE).await
}

/// Limits for the fixed window and the sliding log (`requests` per `window_ms`).
fn per_window(requests: u32, window_ms: u64) -> Limits {
    Limits {
        requests,
        window: Duration::from_millis(window_ms),
        burst: 1,
        refill_every: Duration::from_secs(60),
    }
}

/// Limits for the token bucket (`burst` tokens, one back every `refill_ms`).
fn bucket(burst: u32, refill_ms: u64) -> Limits {
    Limits {
        requests: 1,
        window: Duration::from_secs(60),
        burst,
        refill_every: Duration::from_millis(refill_ms),
    }
}

/// Gateway instances on the site, and what the tests look at.
trait Gateway {
    /// One gateway instance with its own connection.
    async fn gateway(&self, limits: Limits) -> Quotas;
    /// The PTTL of `key` in ms (-1: no TTL, -2: no key), on the site's connection.
    async fn pttl(&self, key: &str) -> i64;
    /// Every key of the test's namespace, with its PTTL.
    async fn keys_with_ttl(&self) -> Vec<(String, i64)>;
}

impl Gateway for Site {
    async fn gateway(&self, limits: Limits) -> Quotas {
        let instance = self.instance().await.unwrap();
        Quotas {
            redis: instance.conn,
            namespace: instance.namespace,
            limits,
        }
    }

    async fn pttl(&self, key: &str) -> i64 {
        self.conn().pttl(key).await.unwrap()
    }

    async fn keys_with_ttl(&self) -> Vec<(String, i64)> {
        let keys = self.namespace().keys(&mut self.conn()).await.unwrap();
        let mut found = Vec::new();
        for key in keys {
            let ttl = self.pttl(&key).await;
            found.push((key, ttl));
        }
        found
    }
}

/// One call and the instants around it: Redis decided between `sent` and `answered`.
#[derive(Clone, Copy, Debug)]
struct Timed {
    decision: Decision,
    sent: Instant,
    answered: Instant,
}

async fn timed(call: impl Future<Output = RedisResult<Decision>>) -> Timed {
    let sent = Instant::now();
    let decision = call
        .await
        .expect("a limiter's check: Redis answered with an error");
    Timed {
        decision,
        sent,
        answered: Instant::now(),
    }
}

/// `later - earlier` in ms, negative if `later` is earlier.
fn ms_between(earlier: Instant, later: Instant) -> i64 {
    if later >= earlier {
        later.duration_since(earlier).as_millis() as i64
    } else {
        -(earlier.duration_since(later).as_millis() as i64)
    }
}

fn ms(duration: Duration) -> i64 {
    duration.as_millis() as i64
}

/// The range, in ms, a duration reported by `call` must be in if it is the time until
/// `deadline_ms` after an event Redis saw between `event.sent` and `event.answered`: the event at
/// Redis time E, the call at Redis time C, the answer is E + deadline - C.
fn until_after(event: &Timed, deadline_ms: i64, call: &Timed) -> (i64, i64) {
    let low = deadline_ms - ms_between(event.sent, call.answered) - SLACK;
    let high = deadline_ms - ms_between(event.answered, call.sent) + SLACK;
    (low.max(0), high)
}

/// What one try of a test that times requests found: the machine stalled in it (or timed it too
/// loosely), so its timings say nothing (try again with a fresh key), or it ran as planned and
/// its assertions passed.
enum Trial {
    Stalled,
    Done,
}

/// Runs `trial` with a fresh API key (`key-1`, then `key-2`, ...) until one try runs without the
/// machine stalling, at most `tries` times: the instants a test measured tell a stall from a
/// wrong answer, and a stall fails nothing. As many stalls in a row fail the test, saying that the
/// tries `stalled` and the machine is too slow.
async fn without_stalls(tries: u32, stalled: &str, mut trial: impl AsyncFnMut(String) -> Trial) {
    for attempt in 1..=tries {
        if let Trial::Done = trial(format!("key-{attempt}")).await {
            return;
        }
    }
    panic!("{tries} tries in a row {stalled}: the machine is too slow");
}

/// Redis's own clock (`TIME`), in µs since 1970.
async fn redis_now_us(site: &Site) -> i64 {
    let (seconds, micros): (i64, i64) = redis::cmd("TIME")
        .query_async(&mut site.conn())
        .await
        .expect("TIME, read by the test: Redis answered with an error");
    seconds * 1_000_000 + micros
}

/// One call between two readings of Redis's clock, each sent once the one before it was
/// answered: a script the call ran read `TIME` between `before_us` and `after_us`. Timed to the
/// microsecond, where [`Timed`] is timed to the millisecond on the test's own clock.
#[derive(Clone, Copy, Debug)]
struct OnRedisClock {
    decision: Decision,
    before_us: i64,
    after_us: i64,
}

async fn on_redis_clock(
    site: &Site,
    call: impl Future<Output = RedisResult<Decision>>,
) -> OnRedisClock {
    let before_us = redis_now_us(site).await;
    let decision = call
        .await
        .expect("a limiter's check: Redis answered with an error");
    OnRedisClock {
        decision,
        before_us,
        after_us: redis_now_us(site).await,
    }
}

fn assert_within(what: &str, found: i64, (low, high): (i64, i64), cause: &str) {
    assert!(
        (low..=high).contains(&found),
        "{what}: expected {low} to {high} ms (bounded by the instants the test measured), found \
         {found} ms. {cause}"
    );
}

/// Which commands reached a private server (`shared::CommandWatch`), sorted as the tests read
/// them: the commands scripts ran are how a test sees a script read Redis's clock with `TIME`.
struct Monitor(shared::CommandWatch);

/// The commands since the last look: those clients sent, and those scripts ran.
struct Sent {
    by_clients: Vec<String>,
    by_scripts: Vec<String>,
    /// The arguments of the commands clients sent, each command's after its name.
    arguments: Vec<String>,
}

impl Monitor {
    async fn start(site: &Site) -> Monitor {
        Monitor(site.server().watch_commands().await.unwrap())
    }

    async fn since_last(&mut self) -> Sent {
        let mut sent = Sent {
            by_clients: Vec::new(),
            by_scripts: Vec::new(),
            arguments: Vec::new(),
        };
        for command in self.0.since_last_in_full().await {
            if command.by_script {
                sent.by_scripts.push(command.name);
            } else {
                sent.by_clients.push(command.name);
                sent.arguments.extend(command.args);
            }
        }
        sent
    }
}

/// A gateway on a private Redis that MONITOR watches, its `check` already run once on another
/// key: a script is loaded into Redis the first time it runs, and the load is not what the tests
/// look at.
async fn watched(
    limits: Limits,
    check: fn(Arc<Quotas>, &'static str) -> Check,
) -> (Site, Arc<Quotas>, Monitor) {
    let site = site_with_private_redis().await;
    let quotas = Arc::new(site.gateway(limits).await);
    check(quotas.clone(), "warm-up")
        .await
        .expect("a check with Redis running: Redis answered with an error");
    let monitor = Monitor::start(&site).await;
    (site, quotas, monitor)
}

/// Whether `commands` are one script call.
fn one_script(commands: &[String]) -> bool {
    commands.len() == 1 && commands[0].starts_with("EVAL")
}

/// The arguments that are a time: a number within a minute of now, in seconds, milliseconds,
/// microseconds or nanoseconds since 1970 (a clock read in Rust and passed in). Nothing else a
/// limiter passes comes near: limits, durations, and random ids (1 in billions).
fn clocks_among(arguments: &[String]) -> Vec<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    arguments
        .iter()
        .filter(|argument| {
            argument.trim().parse::<f64>().is_ok_and(|n| {
                [1.0, 1e3, 1e6, 1e9]
                    .iter()
                    .any(|unit| (n - now * unit).abs() <= 60.0 * unit)
            })
        })
        .cloned()
        .collect()
}

/// Fails unless the script's own `TIME` is the only clock: it ran `TIME`, and no argument was a
/// time.
fn assert_on_redis_s_clock(what: &str, sent: &Sent) {
    assert!(
        sent.by_scripts.iter().any(|c| c == "TIME"),
        "commands the {what}'s script ran: expected a TIME (Redis's clock), found {:?}. A time \
         read in Rust and passed in is the gateway instance's own clock, and instances' clocks \
         differ: a fast one lets requests through early",
        sent.by_scripts
    );
    let clocks = clocks_among(&sent.arguments);
    assert!(
        clocks.is_empty(),
        "arguments of the {what}'s script call: expected none to be a time, found {clocks:?} \
         (within a minute of now, in seconds, ms, µs or ns since 1970) among {:?}. The script \
         must use the TIME it reads, not a time read in Rust and passed in: instances' clocks \
         differ",
        sent.arguments
    );
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// One limiter's check of an API key, spawnable.
type Check = std::pin::Pin<Box<dyn Future<Output = RedisResult<Decision>> + Send>>;

/// Runs `calls` checks of `check` on `api_key` at once, alternating between two instances.
async fn concurrent(
    a: &Arc<Quotas>,
    b: &Arc<Quotas>,
    calls: usize,
    api_key: &'static str,
    check: fn(Arc<Quotas>, &'static str) -> Check,
) -> Vec<Decision> {
    let tasks: Vec<_> = (0..calls)
        .map(|i| {
            let quotas = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(check(quotas, api_key))
        })
        .collect();
    let mut decisions = Vec::new();
    for task in tasks {
        decisions.push(
            joined(task)
                .await
                .expect("a limiter's check: Redis answered with an error"),
        );
    }
    decisions
}

// ---- task 1a: who the client is ----------------------------------------------------------------

const PROXIES: [&str; 3] = ["10.0.0.1", "10.0.0.2", "fd00::1"];

fn proxies() -> Vec<IpAddr> {
    PROXIES.iter().map(|p| ip(p)).collect()
}

fn assert_client(peer: &str, header: Option<&str>, expected: &str, cause: &str) {
    quiet_repeated_todos();
    let found = client_ip(ip(peer), header, &proxies());
    assert_eq!(
        found,
        ip(expected),
        "client_ip(peer {peer}, X-Forwarded-For {header:?}, trusted proxies {PROXIES:?}): \
         expected {expected}, found {found}. {cause}"
    );
}

#[test]
fn task1_an_untrusted_peer_is_the_client_whatever_the_header_says() {
    let cause = "A peer that is not a trusted proxy wrote the header itself: believing it lets \
                 any client name itself, and get a fresh quota with every request";
    assert_client("198.51.100.9", Some("203.0.113.7"), "198.51.100.9", cause);
    assert_client("198.51.100.9", Some("10.0.0.1"), "198.51.100.9", cause);
    assert_client(
        "198.51.100.9",
        Some("203.0.113.7, 10.0.0.2"),
        "198.51.100.9",
        cause,
    );
    assert_client(
        "198.51.100.9",
        None,
        "198.51.100.9",
        "No header: the peer is the client",
    );
}

/// Entries are separated by a comma and, often, a space: "a, b" holds "a" and " b", and " b"
/// parses as an address only once trimmed.
fn assert_entries_are_trimmed() {
    assert_client(
        "10.0.0.1",
        Some("203.0.113.9, 10.0.0.2"),
        "203.0.113.9",
        "Each entry is trimmed of spaces before it is parsed: \" 10.0.0.2\" is the trusted proxy \
         10.0.0.2, not an unparsable entry that ends the walk",
    );
}

#[test]
fn task1_behind_trusted_proxies_the_client_is_the_first_untrusted_hop_from_the_right() {
    assert_entries_are_trimmed();
    assert_client(
        "10.0.0.1",
        Some("203.0.113.7"),
        "203.0.113.7",
        "Behind a trusted proxy, the header's last entry is the address it got the request from",
    );
    let left_most = "The left-most entry is whatever the client sent: walk from the right, and \
                     stop at the first address that is not a trusted proxy";
    assert_client(
        "10.0.0.1",
        Some("6.6.6.6, 203.0.113.7"),
        "203.0.113.7",
        left_most,
    );
    assert_client(
        "10.0.0.1",
        Some("6.6.6.6, 203.0.113.7, 10.0.0.2"),
        "203.0.113.7",
        left_most,
    );
    assert_client(
        "10.0.0.1",
        Some(" 2001:db8::7 ,fd00::1"),
        "2001:db8::7",
        "Entries are trimmed of spaces, and may be IPv6 addresses; fd00::1 is a trusted proxy",
    );
    assert_client(
        "10.0.0.1",
        Some("10.0.0.2"),
        "10.0.0.2",
        "Every hop is a trusted proxy: the walk runs out, and the client is the last trusted hop",
    );
    assert_client(
        "10.0.0.1",
        None,
        "10.0.0.1",
        "A trusted proxy that sent no header: the client is the last trusted hop, the peer",
    );
}

#[test]
fn task1_an_unparsable_entry_ends_the_walk_at_the_last_trusted_hop() {
    let cause = "An entry that is not an address ends the walk: no proxy of ours wrote it, so \
                 nothing to its left can be believed. The client is the last trusted hop; \
                 skipping the entry instead lets a client put any address behind it";
    assert_entries_are_trimmed();
    assert_client("10.0.0.1", Some("203.0.113.7, unknown"), "10.0.0.1", cause);
    assert_client(
        "10.0.0.1",
        Some("203.0.113.7, garbage, 10.0.0.2"),
        "10.0.0.2",
        cause,
    );
    assert_client("10.0.0.1", Some("203.0.113.7:4711"), "10.0.0.1", cause);
    assert_client("10.0.0.1", Some("203.0.113.7,,10.0.0.2"), "10.0.0.2", cause);
    assert_client("10.0.0.1", Some(""), "10.0.0.1", cause);
}

// ---- task 1b: a fixed window done right --------------------------------------------------------

fn fixed(quotas: Arc<Quotas>, api_key: &'static str) -> Check {
    Box::pin(async move { quotas.fixed_window(api_key).await })
}

#[tokio::test]
async fn task1_a_window_admits_exactly_the_limit() {
    let site = site().await;
    let a = Arc::new(site.gateway(per_window(5, 10_000)).await);
    let b = Arc::new(site.gateway(per_window(5, 10_000)).await);
    let mut calls = Vec::new();
    for n in 0..7 {
        let quotas = if n % 2 == 0 { &a } else { &b };
        calls.push(timed(quotas.fixed_window("key-a")).await);
    }
    let first = calls[0];
    for (n, call) in calls.iter().enumerate() {
        let d = call.decision;
        let (allowed, remaining) = if n < 5 {
            (true, 4 - n as u32)
        } else {
            (false, 0)
        };
        assert_eq!(
            (d.allowed, d.remaining),
            (allowed, remaining),
            "request {} of key-a in one window of 10 s with a limit of 5 (on two instances): \
             expected allowed {allowed}, remaining {remaining}, found {d:?}. Off by one at the \
             limit, or is `remaining` counted before this request?",
            n + 1
        );
        let window_end = until_after(&first, 10_000, call);
        assert_within(
            &format!("reset_after of request {} of key-a", n + 1),
            ms(d.reset_after),
            window_end,
            "reset_after is the time until the window ends: the counter's TTL, set when the \
             window's first request came",
        );
        if allowed {
            assert_eq!(
                d.retry_after,
                Duration::ZERO,
                "retry_after of an admitted request: expected zero, found {d:?}"
            );
        } else {
            assert_within(
                &format!("retry_after of refused request {} of key-a", n + 1),
                ms(d.retry_after),
                window_end,
                "a refused client may retry when the window ends",
            );
        }
    }
    let other = a.fixed_window("key-b").await.unwrap();
    assert!(
        other.allowed && other.remaining == 4,
        "the first request of key-b, after key-a used up its window: expected allowed with 4 \
         remaining, found {other:?}. Does every API key get a counter of its own (window_key)?"
    );
    let decisions = concurrent(&a, &b, 20, "key-c", fixed).await;
    let admitted = decisions.iter().filter(|d| d.allowed).count();
    assert_eq!(
        admitted, 5,
        "20 requests of key-c at once on two gateway instances, limit 5: expected exactly 5 \
         admitted, found {admitted}. Is the check and the count one atomic step?"
    );
}

#[tokio::test]
async fn task1_the_counter_expires_with_its_window_and_is_never_extended() {
    let site = site().await;
    let quotas = site.gateway(per_window(3, 3_000)).await;
    let first = timed(quotas.fixed_window("key-a")).await;
    let ttl = site.pttl(&quotas.window_key("key-a")).await;
    let looked = Instant::now();
    let expected = (3_000 - ms_between(first.sent, looked) - SLACK, 3_000);
    assert_within(
        "PTTL of window_key(\"key-a\") right after its first request (window 3 s)",
        ttl,
        expected,
        "The counter must be created with the window's TTL (-1: no TTL at all, a counter that \
         never expires and a key refused for ever; -2: no key at window_key)",
    );
    for (key, ttl) in site.keys_with_ttl().await {
        assert!(
            (1..=3_000).contains(&ttl),
            "PTTL of {key}, a key the fixed window wrote: expected 1 to 3,000 ms (the window), \
             found {ttl} ms. Every key it writes must expire with the window"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut calls = Vec::new();
    for _ in 0..4 {
        calls.push(timed(quotas.fixed_window("key-a")).await);
    }
    let decisions: Vec<bool> = calls.iter().map(|call| call.decision.allowed).collect();
    assert_eq!(
        decisions,
        [true, true, false, false],
        "requests 2 to 5 of key-a, limit 3, in the first window: which were admitted"
    );
    for (n, call) in calls.iter().enumerate() {
        let verdict = if call.decision.allowed {
            "admitted"
        } else {
            "refused"
        };
        assert_within(
            &format!(
                "reset_after of request {} of key-a ({verdict}), 300 ms or more after the first \
                 (window 3 s)",
                n + 2
            ),
            ms(call.decision.reset_after),
            until_after(&first, 3_000, call),
            "reset_after is the time until the window ends, for every request of the window: \
             the counter's TTL (PTTL), not the whole window again on each admitted request",
        );
    }
    let later = site.pttl(&quotas.window_key("key-a")).await;
    let high = 3_000 - 300 + SLACK;
    assert!(
        (1..=high).contains(&later),
        "PTTL of window_key(\"key-a\") 300 ms or more after the window opened, after 2 admitted \
         and 2 refused requests: expected 1 to {high} ms, found {later} ms. A later request \
         extended the TTL (an EXPIRE on every call): a client that keeps calling would never \
         see its window end"
    );
    for (key, ttl) in site.keys_with_ttl().await {
        assert!(
            (1..=3_000).contains(&ttl),
            "PTTL of {key}, a key the fixed window wrote, after admitted and refused requests: \
             expected 1 to 3,000 ms (the window), found {ttl} ms (-1: no TTL). Every key it \
             writes, refused requests' included (a count of refusals?), must expire with the \
             window, or keys pile up for ever"
        );
    }
}

#[tokio::test]
async fn task1_a_client_that_keeps_calling_gets_through_when_the_window_ends() {
    let site = site().await;
    let quotas = site.gateway(per_window(2, 400)).await;
    let first = timed(quotas.fixed_window("key-a")).await;
    let second = quotas.fixed_window("key-a").await.unwrap();
    assert!(
        first.decision.allowed && second.allowed,
        "the first two requests of key-a, limit 2: expected both admitted, found {:?} and \
         {second:?}",
        first.decision
    );
    let give_up = first.sent + Duration::from_millis(400 + 2_000);
    let mut refused = 0;
    let through = loop {
        let call = timed(quotas.fixed_window("key-a")).await;
        if call.decision.allowed {
            break call;
        }
        refused += 1;
        assert_within(
            &format!("retry_after of refusal {refused} in the window of 400 ms"),
            ms(call.decision.retry_after),
            until_after(&first, 400, &call),
            "retry_after is the time until the window that the first request opened ends",
        );
        assert!(
            Instant::now() < give_up,
            "key-a, limit 2 per 400 ms, retried every 25 ms after its two requests: expected \
             admitted again once the window ended, 400 ms after the first; still refused after \
             {refused} tries and {} ms. Does every request extend the TTL (an EXPIRE on every \
             call), or do refused requests keep the block alive?",
            ms_between(first.sent, Instant::now())
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let waited = ms_between(first.sent, through.answered);
    assert!(
        waited >= 400 - SLACK,
        "key-a got through again {waited} ms after its window opened: expected 400 ms or more \
         (the window's length). Is the TTL in the right unit (PEXPIRE takes ms, EXPIRE seconds)?"
    );
    assert!(
        refused > 0,
        "key-a was never refused after its two requests: the limit of 2 was not enforced"
    );
    // A new window: its first request went through; use it up, then wait what we are told.
    let mut refusal = quotas.fixed_window("key-a").await.unwrap();
    if refusal.allowed {
        refusal = quotas.fixed_window("key-a").await.unwrap();
    }
    assert!(
        !refusal.allowed,
        "the third request of the new window: expected refused"
    );
    tokio::time::sleep(refusal.retry_after + Duration::from_millis(5)).await;
    let after = quotas.fixed_window("key-a").await.unwrap();
    assert!(
        after.allowed,
        "key-a after waiting the retry_after it was given ({:?}) plus 5 ms: expected admitted, \
         found {after:?}. retry_after must be the time until the window ends",
        refusal.retry_after
    );
}

#[tokio::test]
async fn task1_one_check_is_one_atomic_round_trip() {
    let (site, quotas, mut monitor) = watched(per_window(1, 5_000), fixed).await;
    for (n, what) in [
        (1, "the first (opens the window)"),
        (2, "the second (refused)"),
    ] {
        quotas.fixed_window("key-a").await.unwrap();
        let look = monitor.since_last().await;
        let clocks = clocks_among(&look.arguments);
        assert!(
            clocks.is_empty(),
            "arguments sent by request {n} of key-a: expected none to be a time, found \
             {clocks:?} (within a minute of now, in seconds, ms, µs or ns since 1970) among {:?}. \
             Time is Redis's: the counter's TTL, or TIME in a script; instances' clocks differ",
            look.arguments
        );
        let sent = look.by_clients;
        let transaction = sent.first().map(String::as_str) == Some("MULTI")
            && sent.last().map(String::as_str) == Some("EXEC")
            && sent.iter().filter(|c| *c == "MULTI").count() == 1;
        assert!(
            one_script(&sent) || transaction,
            "commands sent by request {n} of key-a, {what}: expected one script call (EVAL or \
             EVALSHA) or one MULTI ... EXEC, found {sent:?}. An INCR and then an EXPIRE in two \
             calls leave, if the gateway dies between them, a counter with no TTL: that key is \
             refused for ever"
        );
    }
    let ttl = site.pttl(&quotas.window_key("key-a")).await;
    assert!(
        (1..=5_000).contains(&ttl),
        "PTTL of window_key(\"key-a\") after two requests: expected 1 to 5,000 ms, found {ttl}"
    );
}

// ---- task 2: a token bucket on Redis's clock ---------------------------------------------------

fn take(quotas: Arc<Quotas>, api_key: &'static str) -> Check {
    Box::pin(async move { quotas.token_bucket(api_key).await })
}

#[tokio::test]
async fn task2_a_full_bucket_admits_its_burst_then_refuses() {
    let site = site().await;
    let a = Arc::new(site.gateway(bucket(5, 10_000)).await);
    let b = Arc::new(site.gateway(bucket(5, 10_000)).await);
    let mut calls = Vec::new();
    for n in 0..7 {
        let quotas = if n % 2 == 0 { &a } else { &b };
        calls.push(timed(quotas.token_bucket("key-a")).await);
    }
    let first = calls[0];
    for (n, call) in calls.iter().enumerate() {
        let d = call.decision;
        let (allowed, remaining) = if n < 5 {
            (true, 4 - n as u32)
        } else {
            (false, 0)
        };
        assert_eq!(
            (d.allowed, d.remaining),
            (allowed, remaining),
            "request {} of key-a, a full bucket of 5 that gets a token back every 10 s: \
             expected allowed {allowed}, remaining {remaining} (whole tokens left after this \
             request), found {d:?}",
            n + 1
        );
        // Tokens taken: n + 1 for an admitted request, 5 once the bucket is empty; each comes
        // back 10 s after the first request took the bucket below full.
        let taken = (n as i64 + 1).min(5);
        assert_within(
            &format!("reset_after of request {} of key-a", n + 1),
            ms(d.reset_after),
            until_after(&first, taken * 10_000, call),
            "reset_after is the time until the bucket is full: the missing tokens times \
             refill_every, less what has trickled back since the first request",
        );
        if !allowed {
            assert_within(
                &format!("retry_after of refused request {} of key-a", n + 1),
                ms(d.retry_after),
                until_after(&first, 10_000, call),
                "retry_after is the time until one whole token is back: refill_every less what \
                 has trickled back since the first request took the bucket below full",
            );
        }
    }
    let decisions = concurrent(&a, &b, 20, "key-c", take).await;
    let admitted = decisions.iter().filter(|d| d.allowed).count();
    assert_eq!(
        admitted, 5,
        "20 requests of key-c at once on two gateway instances, a full bucket of 5: expected \
         exactly 5 admitted, found {admitted}. Are read, refill and take one script?"
    );
}

#[tokio::test]
async fn task2_a_client_retrying_while_refused_gets_its_token_on_time() {
    let site = site().await;
    let quotas = site.gateway(bucket(1, 500)).await;
    let first = timed(quotas.token_bucket("key-a")).await;
    assert!(
        first.decision.allowed,
        "the first request of key-a, a full bucket of 1 (burst 1, a token back every 500 ms): \
         expected admitted, found {:?}. A full bucket of 1 holds exactly one token, and a \
         request takes one when the bucket holds at least one whole token (tokens >= 1, not > 1)",
        first.decision
    );
    let give_up = first.sent + Duration::from_millis(500 + 2_000);
    let mut refused = 0;
    let through = loop {
        let call = timed(quotas.token_bucket("key-a")).await;
        if call.decision.allowed {
            break call;
        }
        refused += 1;
        assert_within(
            &format!("retry_after of refusal {refused} (bucket of 1, a token every 500 ms)"),
            ms(call.decision.retry_after),
            until_after(&first, 500, &call),
            "retry_after is the time until one whole token is back, counting what has trickled \
             back since the first request: not a full refill_every, not measured from the last \
             request, and refused requests take nothing",
        );
        assert!(
            Instant::now() < give_up,
            "key-a, a bucket of 1 with a token back every 500 ms, retried every 20 ms after its \
             first request: expected admitted 500 ms after it; still refused after {refused} \
             tries and {} ms. Do refused requests take a token, or reset the refill's clock?",
            ms_between(first.sent, Instant::now())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let waited = ms_between(first.sent, through.answered);
    assert!(
        waited >= 500 - SLACK && refused > 0,
        "key-a got its next token {waited} ms after taking the only one (after {refused} \
         refusals): expected 500 ms or more (refill_every). Does the refill use microseconds and \
         milliseconds consistently?"
    );
    let refusal = quotas.token_bucket("key-a").await.unwrap();
    assert!(
        !refusal.allowed,
        "a request right after the token was taken: expected refused"
    );
    tokio::time::sleep(refusal.retry_after + Duration::from_millis(5)).await;
    let after = quotas.token_bucket("key-a").await.unwrap();
    assert!(
        after.allowed,
        "key-a after waiting the retry_after it was given ({:?}) plus 5 ms: expected admitted, \
         found {after:?}",
        refusal.retry_after
    );
}

#[tokio::test]
async fn task2_retry_after_counts_what_has_trickled_back() {
    let site = site().await;
    let quotas = site.gateway(bucket(2, 1_000)).await;
    without_stalls(4, "took over a second for 600 ms of sleeps", async |api_key| {
        // Two requests 300 ms apart empty a bucket of 2; 300 ms later, 0.6 of a token is back:
        // the next whole one comes 1,000 ms after the first request, about 400 ms from now.
        let first = timed(quotas.token_bucket(&api_key)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let second = timed(quotas.token_bucket(&api_key)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let third = timed(quotas.token_bucket(&api_key)).await;
        assert!(
            first.decision.allowed && second.decision.allowed,
            "two requests 300 ms apart on a full bucket of 2: expected both admitted, found \
             {:?} and {:?}",
            first.decision,
            second.decision
        );
        if third.decision.allowed && ms_between(first.sent, third.answered) >= 1_000 {
            // The machine slept long enough for the token to come back: try again.
            return Trial::Stalled;
        }
        assert!(
            !third.decision.allowed,
            "a third request {} ms after the first, on a bucket of 2 that gets a token every \
             1,000 ms: expected refused, found {:?}",
            ms_between(first.sent, third.answered),
            third.decision
        );
        assert_within(
            "retry_after of the third request (bucket of 2, a token every 1,000 ms, requests \
             at 0, 300 and 600 ms)",
            ms(third.decision.retry_after),
            until_after(&first, 1_000, &third),
            "The next token is due 1,000 ms after the first request took the bucket below full, \
             about 400 ms from the third: not a full refill_every (1,000), and not refill_every \
             from the last request (about 700)",
        );
        assert_within(
            "reset_after of the third request",
            ms(third.decision.reset_after),
            until_after(&first, 2_000, &third),
            "reset_after is the time until the bucket is full: two tokens, the first due \
             1,000 ms after the first request",
        );
        Trial::Done
    })
    .await;
}

/// A wait cut down to whole ms falls short by the wait's fraction of a ms, and a refusal catches
/// it when that fraction is more than the readings of Redis's clock leave uncertain: at most how
/// far apart, in µs, the readings around the first request are, plus those around the refusal.
/// So a try times the wait from a first request read within `FIRST_WITHIN_US`...
const FIRST_WITHIN_US: i64 = 250;
/// ... and counts the refusals read within `SHARP_WITHIN_US` in all: each catches a wait cut down
/// with an even chance or better...
const SHARP_WITHIN_US: i64 = 500;
/// ... until it has this many.
const SHARP_REFUSALS: u32 = 10;

/// The first request of a key takes its only place, then the test asks again every 3 ms, each call
/// between two readings of Redis's clock ([`on_redis_clock`]). The place is back `wait_ms` after
/// the first request (what is `due` then), and every refusal's `retry_after`, in whole ms, must
/// cover all of the wait left, to the microsecond: that holds for a right answer however slow
/// the machine. A key whose first request was read close together is timed until
/// [`SHARP_REFUSALS`] refusals in all were timed closely (each has an even chance or better of
/// catching a wait cut down); a key read loosely is skipped, and a machine too busy to time any
/// closely within `TRIES` keys proves less, which the test says on stderr rather than failing a
/// right answer.
async fn assert_retry_after_never_short(
    limits: Limits,
    limiter: impl AsyncFn(&Quotas, &str) -> RedisResult<Decision>,
    setting: &str,
    due: &str,
    wait_ms: i64,
) {
    const TRIES: u32 = 20;
    let site = site().await;
    let quotas = site.gateway(limits).await;
    // A script is loaded the first time it runs, in two more round trips: not in a timed call.
    limiter(&quotas, "warm-up")
        .await
        .expect("a check with Redis running: Redis answered with an error");
    let wait_us = wait_ms * 1_000;
    let mut sharp = 0;
    for attempt in 1..=TRIES {
        let api_key = format!("key-{attempt}");
        let first = on_redis_clock(&site, limiter(&quotas, &api_key)).await;
        assert!(
            first.decision.allowed,
            "the first request of {api_key} ({setting}): expected admitted, found {:?}",
            first.decision
        );
        let first_within = first.after_us - first.before_us;
        if first_within > FIRST_WITHIN_US {
            continue; // too loose to time the wait from: another key
        }
        let mut refused = 0;
        loop {
            let call = on_redis_clock(&site, limiter(&quotas, &api_key)).await;
            if call.decision.allowed {
                if refused == 0 && call.after_us - first.before_us < wait_us {
                    panic!(
                        "a request of {api_key} right after its first ({setting}), {} µs later \
                         on Redis's clock: expected refused until {due}, {wait_ms} ms after the \
                         first, found {:?}",
                        call.after_us - first.before_us,
                        call.decision
                    );
                }
                break; // the wait is over: another key, if more close refusals are wanted
            }
            refused += 1;
            // The first request's script ran at or after `first.before_us`, this one's at or
            // before `call.after_us`: the wait left is at least their distance to the due time.
            let shortest_us = first.before_us + wait_us - call.after_us;
            let found = ms(call.decision.retry_after);
            assert!(
                found * 1_000 >= shortest_us,
                "retry_after of refusal {refused} of {api_key} ({setting}): {due} {wait_ms} ms \
                 after the first request, which Redis's clock (TIME, read by the test before and \
                 after each call) puts at least {shortest_us} µs after this refusal; expected at \
                 least {} ms, found {found} ms. retry_after is never shorter than the wait, to the \
                 microsecond: round it up to the millisecond. A wait cut down to whole ms (an \
                 integer division, math.floor) sends the client back up to 1 ms early, to be \
                 refused again",
                (shortest_us + 999).div_euclid(1_000)
            );
            if first_within + (call.after_us - call.before_us) <= SHARP_WITHIN_US {
                sharp += 1;
                if sharp == SHARP_REFUSALS {
                    return;
                }
            }
            assert!(
                call.before_us - first.after_us <= wait_us + 2_000_000,
                "{api_key} ({setting}), asked again every 3 ms after its first request: expected \
                 admitted once {due}, {wait_ms} ms after the first; still refused after \
                 {refused} tries and {} ms on Redis's clock",
                (call.before_us - first.after_us) / 1_000
            );
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    eprintln!(
        "{setting}: only {sharp} of {SHARP_REFUSALS} refusals in {TRIES} keys were timed to \
         within {SHARP_WITHIN_US} µs (the machine is busy); every refusal's retry_after covered \
         its wait, but a wait cut down by under a ms may have gone unseen"
    );
}

#[tokio::test]
async fn task2_retry_after_is_rounded_up_never_short_of_the_wait() {
    assert_retry_after_never_short(
        bucket(1, 300),
        Quotas::token_bucket,
        "a bucket of 1, a token back every 300 ms",
        "the token is back",
        300,
    )
    .await;
}

#[tokio::test]
async fn task2_the_refill_never_fills_past_the_burst() {
    let site = site().await;
    let quotas = site.gateway(bucket(3, 200)).await;
    let first = quotas.token_bucket("key-a").await.unwrap();
    assert!(
        first.allowed && first.remaining == 2,
        "the first request of a full bucket of 3: expected admitted with 2 remaining, found \
         {first:?}"
    );
    // Long enough for 3.5 tokens to trickle back into a bucket one token short of full, and short
    // enough that a bucket whose TTL is as long as the task allows (burst * refill_every + 1 s)
    // is still there.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let started = Instant::now();
    let mut decisions = Vec::new();
    for _ in 0..8 {
        decisions.push(quotas.token_bucket("key-a").await.unwrap());
    }
    let spent = ms_between(started, Instant::now());
    let admitted = decisions.iter().filter(|d| d.allowed).count() as i64;
    let most = 3 + spent / 200;
    assert!(
        (3..=most).contains(&admitted),
        "8 quick requests (over {spent} ms) on a bucket of 3 left alone for 0.7 s, a token \
         back every 200 ms: expected 3 admitted (plus one per 200 ms they took: at most {most}), \
         found {admitted}. The refill must stop at the burst: min(burst, tokens + refill)"
    );
    let top = decisions[0];
    assert_eq!(
        (top.allowed, top.remaining),
        (true, 2),
        "the first of those requests: expected admitted with 2 remaining (a full bucket of 3 \
         less this one), found {top:?}"
    );
    assert_within(
        "reset_after of that request",
        ms(top.reset_after),
        (200 - SLACK, 200 + SLACK),
        "One token short of full is refill_every from full (a bucket that overflowed says 0)",
    );
}

#[tokio::test]
async fn task2_the_bucket_expires_once_it_would_be_full() {
    let site = site().await;
    let quotas = site.gateway(bucket(4, 1_000)).await;
    let key = quotas.bucket_key("key-a");
    let most = 4 * 1_000 + 1_000;
    let mut last = None;
    for n in 1..=6 {
        let call = timed(quotas.token_bucket("key-a")).await;
        let ttl = site.pttl(&key).await;
        let low = ms(call.decision.reset_after) - ms_between(call.sent, Instant::now()) - SLACK;
        assert!(
            ttl >= 1 && ttl >= low && ttl <= most,
            "PTTL of bucket_key(\"key-a\") after request {n} (bucket of 4, a token every \
             1,000 ms; reset_after {:?}): expected {} to {most} ms, found {ttl} (-1: no TTL; -2: no \
             key). The key must expire no sooner than the bucket is full again (an earlier \
             expiry hands out a full bucket too soon) and no later than burst * refill_every + \
             1 s, set in the same script",
            call.decision.reset_after,
            low.max(1)
        );
        last = Some(call);
    }
    let last = last.unwrap();
    assert!(
        !last.decision.allowed,
        "request 6 on a bucket of 4: expected refused, found {:?}",
        last.decision
    );
    for (key, ttl) in site.keys_with_ttl().await {
        assert!(
            (1..=most).contains(&ttl),
            "PTTL of {key}, a key the token bucket wrote: expected 1 to {most} ms, found {ttl}"
        );
    }
}

#[tokio::test]
async fn task2_every_request_renews_the_bucket_s_ttl() {
    let site = site().await;
    let quotas = site.gateway(bucket(2, 1_000)).await;
    without_stalls(4, "stalled for over a second between requests", async |api_key| {
        // A bucket of 2, a token back every 1,000 ms: requests at 0 and 1,500 ms leave one token
        // at 1,500 ms. At 2,050 ms the bucket holds 1.55 (one is taken), and right after 0.55:
        // refused. A key whose TTL was set only when it was created (2 s) is gone at 2,050 ms,
        // and hands out a full bucket.
        let key = quotas.bucket_key(&api_key);
        let first = timed(quotas.token_bucket(&api_key)).await;
        tokio::time::sleep_until((first.answered + Duration::from_millis(1_500)).into()).await;
        let second = timed(quotas.token_bucket(&api_key)).await;
        let ttl = site.pttl(&key).await;
        let looked = Instant::now();
        tokio::time::sleep_until((first.answered + Duration::from_millis(2_050)).into()).await;
        let third = timed(quotas.token_bucket(&api_key)).await;
        let fourth = timed(quotas.token_bucket(&api_key)).await;
        if ms_between(first.sent, second.answered) >= 2_000
            || ms_between(second.sent, fourth.answered) >= 1_000
        {
            // The machine stalled for the better part of a token: try again.
            return Trial::Stalled;
        }
        assert!(
            first.decision.allowed && second.decision.allowed && second.decision.remaining == 1,
            "requests at 0 and about 1,500 ms on a full bucket of 2, a token back every \
             1,000 ms: expected both admitted, the second with 1 token remaining, found {:?} and \
             {:?}",
            first.decision,
            second.decision
        );
        let low = ms(second.decision.reset_after) - ms_between(second.sent, looked) - SLACK;
        assert!(
            ttl >= low.max(1),
            "PTTL of bucket_key({api_key:?}) right after its second request, about 1,500 ms after \
             the first (bucket of 2, a token every 1,000 ms, reset_after {:?}): expected at least \
             {} ms, found {ttl} (-2: no key). The TTL must be set again by every request: a TTL \
             set only when the key was created runs out while tokens are still missing, and the \
             next request finds a full bucket",
            second.decision.reset_after,
            low.max(1)
        );
        assert!(
            third.decision.allowed && !fourth.decision.allowed,
            "requests at about 0, 1,500, 2,050 ms and right after, on a bucket of 2 with a token \
             back every 1,000 ms: the bucket holds 1 token at 1,500 ms, about 1.55 at 2,050 ms: \
             expected the third admitted and the fourth refused, found {:?} and {:?}. Did the \
             key expire (a TTL set only when it was created) and hand out a full bucket?",
            third.decision,
            fourth.decision
        );
        Trial::Done
    })
    .await;
}

#[tokio::test]
async fn task2_one_script_on_redis_s_clock() {
    let (_site, quotas, mut monitor) = watched(bucket(2, 1_000), take).await;
    quotas.token_bucket("key-a").await.unwrap();
    let sent = monitor.since_last().await;
    assert!(
        one_script(&sent.by_clients),
        "commands sent by one token_bucket() call: expected one script call (EVAL or EVALSHA), \
         found {:?}. A read in Rust and a write after it let two instances take the same last \
         token",
        sent.by_clients
    );
    assert_on_redis_s_clock("token bucket", &sent);
}

// ---- task 3: a sliding log that is exact and bounded -------------------------------------------

fn log(quotas: Arc<Quotas>, api_key: &'static str) -> Check {
    Box::pin(async move { quotas.sliding_log(api_key).await })
}

/// The members of `key`'s sorted set.
async fn members(site: &Site, key: &str) -> Vec<String> {
    site.conn().zrange(key, 0, -1).await.unwrap()
}

#[tokio::test]
async fn task3_a_burst_admits_exactly_the_limit() {
    let site = site().await;
    let a = Arc::new(site.gateway(per_window(5, 10_000)).await);
    let b = Arc::new(site.gateway(per_window(5, 10_000)).await);
    let decisions = concurrent(&a, &b, 12, "key-a", log).await;
    let admitted = decisions.iter().filter(|d| d.allowed).count();
    let logged = members(&site, &a.log_key("key-a")).await;
    assert_eq!(
        (admitted, logged.len()),
        (5, 5),
        "12 requests of key-a at once on two instances, 5 per 10 s: expected 5 admitted and 5 \
         entries in the log, found {admitted} admitted and entries {logged:?}. Entries whose \
         member is the timestamp alone collapse into one when requests share an instant, and \
         the log undercounts; refused requests must not be logged"
    );
    for member in &logged {
        assert!(
            member.trim().parse::<f64>().is_err(),
            "a member of log_key(\"key-a\"): {member:?} is a bare number, the timestamp alone. \
             Two requests of the same microsecond on two instances would be one entry: add a \
             request id"
        );
    }
    let scored: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(a.log_key("key-a"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut site.conn())
        .await
        .unwrap();
    let mut ids: Vec<String> = scored
        .iter()
        .map(|(member, score)| member.replacen(&format!("{score:.0}"), "", 1))
        .collect();
    ids.sort();
    ids.dedup();
    assert!(
        ids.len() == scored.len(),
        "members of log_key(\"key-a\") with their timestamp (the score) taken out: expected a \
         different request id in each, found the entries {scored:?}. A constant suffix is no \
         request id: two requests of the same microsecond would be one entry. Add one of its \
         own to every request (rand::random::<u64>())"
    );
    let mut remaining: Vec<u32> = decisions
        .iter()
        .filter(|d| d.allowed)
        .map(|d| d.remaining)
        .collect();
    remaining.sort();
    assert_eq!(
        remaining,
        [0, 1, 2, 3, 4],
        "`remaining` of the 5 admitted requests, sorted: each is the room left after it"
    );

    let mut calls = Vec::new();
    for n in 0..6 {
        let quotas = if n % 2 == 0 { &a } else { &b };
        calls.push(timed(quotas.sliding_log("key-b")).await);
    }
    for (n, call) in calls.iter().enumerate() {
        let d = call.decision;
        let (allowed, remaining) = if n < 5 {
            (true, 4 - n as u32)
        } else {
            (false, 0)
        };
        assert_eq!(
            (d.allowed, d.remaining),
            (allowed, remaining),
            "request {} of key-b, 5 per 10 s: expected allowed {allowed}, remaining \
             {remaining}, found {d:?}. Off by one at the limit?",
            n + 1
        );
        if allowed {
            assert_eq!(
                (d.retry_after, ms(d.reset_after)),
                (Duration::ZERO, 10_000),
                "retry_after and reset_after (ms) of admitted request {} of key-b: zero, and \
                 the window (its own entry is the newest), found {d:?}",
                n + 1
            );
        }
    }
    let refused = calls[5];
    assert_within(
        "retry_after of the refused 6th request of key-b",
        ms(refused.decision.retry_after),
        until_after(&calls[0], 10_000, &refused),
        "retry_after is the time until the oldest entry leaves the window: its time plus the \
         window, less now",
    );
    assert_within(
        "reset_after of the refused 6th request of key-b",
        ms(refused.decision.reset_after),
        until_after(&calls[4], 10_000, &refused),
        "reset_after is the time until the newest entry leaves the window",
    );
    let ttl = site.pttl(&a.log_key("key-b")).await;
    let low = ms(refused.decision.reset_after) - ms_between(refused.sent, Instant::now()) - SLACK;
    assert!(
        ttl >= low.max(1) && ttl <= 11_000,
        "PTTL of log_key(\"key-b\"): expected {} to 11,000 ms (no sooner than its newest entry \
         leaves the window, at most the window + 1 s), found {ttl} (-1: no TTL, a log that \
         never goes)",
        low.max(1)
    );
}

#[tokio::test]
async fn task3_refused_requests_are_not_logged_and_a_retrying_client_gets_through() {
    let site = site().await;
    let quotas = site.gateway(per_window(3, 400)).await;
    let key = quotas.log_key("key-a");
    let first = timed(quotas.sliding_log("key-a")).await;
    for _ in 0..2 {
        quotas.sliding_log("key-a").await.unwrap();
    }
    let give_up = first.sent + Duration::from_millis(400 + 2_000);
    let mut refused = 0;
    let through = loop {
        let call = timed(quotas.sliding_log("key-a")).await;
        let logged = members(&site, &key).await.len();
        assert!(
            logged <= 3,
            "entries in log_key(\"key-a\") after {refused} refusals (limit 3 per 400 ms): \
             expected at most 3, found {logged}. Only admitted requests may be logged: add the \
             entry after the check, not before it"
        );
        if call.decision.allowed {
            break call;
        }
        refused += 1;
        assert_within(
            &format!("retry_after of refusal {refused} (3 per 400 ms)"),
            ms(call.decision.retry_after),
            until_after(&first, 400, &call),
            "retry_after is the time until the oldest entry, the first request's, leaves the \
             window",
        );
        assert!(
            Instant::now() < give_up,
            "key-a, 3 per 400 ms, retried every 20 ms after 3 requests: expected admitted once \
             the first left the window, 400 ms after it; still refused after {refused} tries and \
             {} ms. Are refused requests logged, or old entries never removed?",
            ms_between(first.sent, Instant::now())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let waited = ms_between(first.sent, through.answered);
    assert!(
        waited >= 400 - SLACK && refused > 0,
        "key-a got through {waited} ms after its first request, after {refused} refusals: \
         expected 400 ms or more (the window). Are scores and the window in the same unit?"
    );
}

#[tokio::test]
async fn task3_retry_after_is_when_the_oldest_entry_leaves() {
    let site = site().await;
    let quotas = site.gateway(per_window(2, 1_000)).await;
    without_stalls(
        4,
        "took over a second for 500 ms of sleeps",
        async |api_key| {
            let first = timed(quotas.sliding_log(&api_key)).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let second = timed(quotas.sliding_log(&api_key)).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let third = timed(quotas.sliding_log(&api_key)).await;
            if ms_between(first.sent, third.answered) >= 1_000 {
                return Trial::Stalled; // the machine slept through the window: try again
            }
            assert!(
                first.decision.allowed && second.decision.allowed && !third.decision.allowed,
                "requests at 0, 300 and 500 ms, 2 per 1,000 ms: expected admitted, admitted, \
             refused, found {:?}, {:?}, {:?}",
                first.decision,
                second.decision,
                third.decision
            );
            assert_within(
                "retry_after of the third request (2 per 1,000 ms, requests at 0, 300 and 500 ms)",
                ms(third.decision.retry_after),
                until_after(&first, 1_000, &third),
                "The oldest entry leaves the window 1,000 ms after the first request, about 500 ms \
             after the third: not the whole window (1,000), not the newest entry's (about 800)",
            );
            assert_within(
                "reset_after of the third request",
                ms(third.decision.reset_after),
                until_after(&second, 1_000, &third),
                "reset_after is the time until the newest entry, the second request's, leaves",
            );
            tokio::time::sleep(third.decision.retry_after + Duration::from_millis(5)).await;
            let after = quotas.sliding_log(&api_key).await.unwrap();
            assert!(
                after.allowed,
                "a request after waiting the retry_after it was given ({:?}) plus 5 ms: expected \
             admitted, found {after:?}",
                third.decision.retry_after
            );
            // The first entry has left the window; the second is still in it, and keeps the set
            // alive: the set holds the second and this one.
            let logged = members(&site, &quotas.log_key(&api_key)).await;
            assert!(
                logged.len() <= 2,
                "log_key({api_key:?}) after the first request left the window and a new one was \
             admitted, 2 per 1,000 ms: expected at most 2 entries, found {logged:?}. Entries \
             older than the window must be removed (ZREMRANGEBYSCORE) in the same script, or \
             the log of a busy key grows without bound"
            );
            Trial::Done
        },
    )
    .await;
}

#[tokio::test]
async fn task3_retry_after_is_rounded_up_never_short_of_the_wait() {
    assert_retry_after_never_short(
        per_window(1, 300),
        Quotas::sliding_log,
        "1 per 300 ms",
        "the first request's entry leaves the window",
        300,
    )
    .await;
}

#[tokio::test]
async fn task3_old_entries_are_trimmed_and_the_set_lives_as_long_as_its_newest() {
    let site = site().await;
    let quotas = site.gateway(per_window(3, 1_000)).await;
    without_stalls(4, "stalled for most of a window between requests", async |api_key| {
        // 3 per 1,000 ms: requests at 0 and 500 ms, then at 1,050 ms the first has left the
        // window and the second has not: room for 2, so the third is admitted with 1 remaining,
        // the fourth with 0, and the fifth is refused.
        let key = quotas.log_key(&api_key);
        let first = timed(quotas.sliding_log(&api_key)).await;
        tokio::time::sleep_until((first.answered + Duration::from_millis(500)).into()).await;
        let second = timed(quotas.sliding_log(&api_key)).await;
        let ttl = site.pttl(&key).await;
        let looked = Instant::now();
        tokio::time::sleep_until((first.answered + Duration::from_millis(1_050)).into()).await;
        let mut later = Vec::new();
        for _ in 0..3 {
            later.push(timed(quotas.sliding_log(&api_key)).await);
        }
        let logged = members(&site, &key).await;
        if ms_between(first.sent, second.answered) >= 900
            || ms_between(second.sent, later[2].answered) >= 1_000
        {
            return Trial::Stalled; // the machine stalled for most of a window: try again
        }
        assert!(
            first.decision.allowed && second.decision.allowed && second.decision.remaining == 1,
            "requests at 0 and about 500 ms, 3 per 1,000 ms: expected both admitted, the second \
             with 1 remaining, found {:?} and {:?}",
            first.decision,
            second.decision
        );
        let low = 1_000 - ms_between(second.sent, looked) - SLACK;
        assert!(
            ttl >= low.max(1) && ttl <= 2_000,
            "PTTL of log_key({api_key:?}) right after its second request, about 500 ms after \
             the first, 3 per 1,000 ms: expected {} to 2,000 ms (until the newest entry leaves \
             the window), found {ttl} (-1: no TTL). Set the TTL on every admitted request, to the \
             window from now: a TTL set only with the first entry, or measured from the oldest, \
             drops the second request's entry while it is still in the window",
            low.max(1)
        );
        let third = later[0].decision;
        let cause = match third.remaining {
            0 => {
                "Found 0: the first entry, over a window old, was still counted. Remove the \
                  entries that left the window on every request, before counting, not only when \
                  the set looks full"
            }
            2 => {
                "Found 2: the second entry, still in the window, was gone. Did the set expire \
                  with the first entry's TTL?"
            }
            _ => "remaining is the room left after this request",
        };
        assert!(
            third.allowed && third.remaining == 1,
            "a request at about 1,050 ms, after requests at 0 and 500 ms, 3 per 1,000 ms: the \
             first has left the window, the second has not; expected admitted with 1 remaining, \
             found {third:?}. {cause}"
        );
        let (fourth, fifth) = (later[1].decision, later[2].decision);
        assert!(
            fourth.allowed && fourth.remaining == 0 && !fifth.allowed,
            "two more requests right after it: expected admitted with 0 remaining, then \
             refused (the second, third and fourth are in the window), found {fourth:?} and \
             {fifth:?}"
        );
        assert!(
            logged.len() == 3,
            "log_key({api_key:?}) after those requests: expected 3 entries (the second's, the \
             third's and the fourth's), found {logged:?}. Entries that left the window must be \
             removed on every request"
        );
        Trial::Done
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task3_never_more_than_the_limit_in_any_window() {
    let site = site().await;
    let a = Arc::new(site.gateway(per_window(4, 300)).await);
    let b = Arc::new(site.gateway(per_window(4, 300)).await);
    let until = Instant::now() + Duration::from_millis(1_200);
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let quotas = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                let mut admitted = Vec::new();
                while Instant::now() < until {
                    let call = timed(quotas.sliding_log("key-a")).await;
                    if call.decision.allowed {
                        admitted.push(call);
                    }
                    tokio::time::sleep(Duration::from_millis(7)).await;
                }
                admitted
            })
        })
        .collect();
    let mut admitted = Vec::new();
    for client in clients {
        admitted.extend(joined(client).await);
    }
    admitted.sort_by_key(|call| call.sent);
    assert!(
        admitted.len() >= 4,
        "6 clients calling for 1.2 s, 4 per 300 ms: expected at least 4 admitted, found {}",
        admitted.len()
    );
    for five in admitted.windows(5) {
        let span = ms_between(five[0].sent, five.iter().map(|c| c.answered).max().unwrap());
        assert!(
            span >= 300 - SLACK,
            "5 requests admitted within {span} ms, limit 4 per 300 ms: the log let one too many \
             through. Is the count taken after trimming, compared with < limit, and are same- \
             instant requests separate entries?"
        );
    }
    // One more request, so that the log is there to look at. (A machine that stalls for the
    // whole window between the request and the look finds it gone: once more, then.)
    let key = a.log_key("key-a");
    let (mut logged, mut ttl) = (0, -2);
    for _ in 0..5 {
        a.sliding_log("key-a").await.unwrap();
        logged = members(&site, &key).await.len();
        ttl = site.pttl(&key).await;
        if ttl != -2 {
            break;
        }
    }
    // PTTL 0 is a set whose newest entry leaves within the millisecond: after a refused
    // request, the newest entry may be almost a window old.
    assert!(
        logged <= 4 && (0..=1_300).contains(&ttl),
        "log_key(\"key-a\") after 1.2 s of traffic and one more request, 4 per 300 ms: expected \
         at most 4 entries and a PTTL of 0 to 1,300 ms, found {logged} entries and {ttl} ms (-1: \
         no TTL). Entries older than the window must be removed in the same script, and the set \
         must expire"
    );
}

#[tokio::test]
async fn task3_one_script_on_redis_s_clock() {
    let (_site, quotas, mut monitor) = watched(per_window(2, 1_000), log).await;
    quotas.sliding_log("key-a").await.unwrap();
    let sent = monitor.since_last().await;
    assert!(
        one_script(&sent.by_clients),
        "commands sent by one sliding_log() call: expected one script call (EVAL or EVALSHA), \
         found {:?}. A count and an add in two calls let two instances both take the last \
         place",
        sent.by_clients
    );
    assert_on_redis_s_clock("sliding log", &sent);
}

// ---- every task: a Redis error comes back ------------------------------------------------------

/// Stops a private Redis after one good check, then makes one more: it must come back as an
/// error, soon.
async fn with_redis_stopped(what: &str, check: fn(Arc<Quotas>, &'static str) -> Check) {
    let site = site_with_private_redis().await;
    let quotas = Arc::new(site.gateway(per_window(5, 10_000)).await);
    check(quotas.clone(), "key-a")
        .await
        .expect("a check with Redis running: Redis answered with an error");
    site.server().stop();
    let bound = Duration::from_secs(10);
    let started = Instant::now();
    let outcome = tokio::time::timeout(bound, check(quotas, "key-a")).await;
    let Ok(answer) = outcome else {
        panic!(
            "{what} with Redis stopped: expected an error, found no answer within {bound:?} \
             (a generous bound: this is a stall, not a speed test). Retrying a Redis error \
             stalls every request the gateway checks: return it at once"
        );
    };
    assert!(
        answer.is_err(),
        "{what} with Redis stopped, answered after {} ms: expected the Redis error, found \
         {answer:?}. A limiter that decides on its own when Redis fails (admits, or refuses) \
         takes the gateway's policy out of its hands: return the error",
        ms_between(started, Instant::now())
    );
}

#[tokio::test]
async fn task1_a_redis_error_comes_back_at_once() {
    with_redis_stopped("fixed_window()", fixed).await;
}

#[tokio::test]
async fn task2_a_redis_error_comes_back_at_once() {
    with_redis_stopped("token_bucket()", take).await;
}

#[tokio::test]
async fn task3_a_redis_error_comes_back_at_once() {
    with_redis_stopped("sliding_log()", log).await;
}
