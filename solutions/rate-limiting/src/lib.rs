//! # Solution: an API gateway's quotas
//!
//! The worked answer to `exercises/rate-limiting`. Read the exercise first: the task descriptions
//! are the same here, the given parts are the exercise's own `given.rs`, included as it is, and
//! only the task bodies are filled in.
//!
//! The classic mistakes live beside this answer, not in it: each file in `mistakes/` is a patch
//! that plants one, with a note on what it breaks. CI applies each and checks that the exercise's
//! suite fails. To watch one fail: `git apply solutions/rate-limiting/mistakes/<name>.patch`, run
//! `cargo test -p rate-limiting-solution`, then `git apply -R` the same file.

#![warn(missing_docs)]

#[path = "../../../exercises/rate-limiting/src/given.rs"]
mod given;

use std::net::IpAddr;
use std::sync::LazyLock;

use redis::Script;

pub use given::{Decision, Limits, Quotas};

/// Task 1b. KEYS[1]: the counter. ARGV: the limit, the window in ms.
/// Only admitted requests are counted; the TTL is set when the window opens and never again.
static FIXED_WINDOW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local limit = tonumber(ARGV[1])
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= limit then
    local ttl = redis.call('PTTL', KEYS[1])
    if ttl < 0 then
        -- A counter without a TTL (left by an older version) must not block for ever.
        redis.call('PEXPIRE', KEYS[1], ARGV[2])
        ttl = tonumber(ARGV[2])
    end
    ttl = math.max(ttl, 1)
    return {0, 0, ttl, ttl}
end
if count == 0 then
    redis.call('SET', KEYS[1], 1, 'PX', ARGV[2])
else
    redis.call('INCR', KEYS[1])
end
return {1, limit - count - 1, 0, redis.call('PTTL', KEYS[1])}
",
    )
});

/// The first lines of the scripts on Redis's clock (tasks 2 and 3): `now`, Redis's time in
/// microseconds since 1970.
///
/// `now` is a whole number (about 1.7e15) that a Lua number holds exactly, and `redis.call` hands
/// a number to Redis with all its digits (`%.17g`, or as an integer on newer servers), so `HSET`
/// and `ZADD` store it to the microsecond. Only Lua's own `tostring` and `..` keep 14 digits
/// (`1.7000000001235e+15`): that is why the log's member is built with `string.format('%d', now)`.
const REDIS_NOW: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
";

/// A script that starts with [`REDIS_NOW`]: `body` reads the time as `now`.
fn on_redis_clock(body: &str) -> Script {
    Script::new(&format!("{REDIS_NOW}{body}"))
}

/// Task 2. KEYS[1]: a hash {tokens, at}. ARGV: the burst, microseconds per token.
/// Time is Redis's, in microseconds; tokens are fractional, so nothing that trickled back is lost.
static TOKEN_BUCKET: LazyLock<Script> = LazyLock::new(|| {
    on_redis_clock(
        r"
local burst = tonumber(ARGV[1])
local every = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or at == nil then
    tokens = burst
else
    tokens = math.min(burst, tokens + math.max(0, now - at) / every)
end
local allowed = 0
if tokens >= 1 then
    tokens = tokens - 1
    allowed = 1
end
local retry_after = 0
if allowed == 0 then
    -- Rounded up: a wait cut down to whole ms would send the client back too early.
    retry_after = math.ceil((1 - tokens) * every / 1000)
end
local reset_after = math.ceil((burst - tokens) * every / 1000)
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('PEXPIRE', KEYS[1], reset_after + 1)
return {allowed, math.floor(tokens), retry_after, reset_after}
",
    )
});

/// Task 3. KEYS[1]: the sorted set. ARGV: the limit, the window in microseconds, a request id.
static SLIDING_LOG: LazyLock<Script> = LazyLock::new(|| {
    on_redis_clock(
        r"
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
    redis.call('ZADD', KEYS[1], now, string.format('%d-%s', now, ARGV[3]))
    local window_ms = math.ceil(window / 1000)
    redis.call('PEXPIRE', KEYS[1], window_ms)
    return {1, limit - count - 1, 0, window_ms}
end
local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
local newest = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
return {0, 0, math.ceil((oldest + window - now) / 1000), math.ceil((newest + window - now) / 1000)}
",
    )
});

/// ## Task 1a: who the client is
///
/// Returns the address a request's quota is counted against. `peer` is the address the TCP
/// connection came from, `forwarded_for` the request's `X-Forwarded-For` header, if any (a
/// comma-separated list of addresses, each proxy appending the address it got the request from,
/// so the right-most entry is the newest), and `trusted_proxies` the load balancers and proxies
/// the company runs in front of the gateway.
///
/// - A `peer` that is not a trusted proxy is the client, whatever the header says: anyone can
///   send any `X-Forwarded-For`, and a client that could name itself would get a fresh quota with
///   every request.
/// - Behind a trusted proxy, walk the header from the right. Keep the last trusted hop, starting
///   with `peer`. Each entry, trimmed of spaces, is either an address ([`IpAddr`]'s `parse`:
///   `203.0.113.7`, `2001:db8::1`) or not (a port, a name, `unknown`, an empty entry). A trusted
///   proxy becomes the last trusted hop, and the walk goes on; the first address that is not a
///   trusted proxy is the client. An entry that does not parse ends the walk: the client is then
///   the last trusted hop, as it is when the entries run out (or there is no header).
/// - So the left-most entry is the client only when every proxy after it is trusted: a client
///   can put anything it likes on the left.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted_proxies: &[IpAddr]) -> IpAddr {
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let mut last_trusted = peer;
    for entry in forwarded_for.unwrap_or("").rsplit(',') {
        let Ok(hop) = entry.trim().parse::<IpAddr>() else {
            // An entry no proxy of ours would write: nothing left of it can be believed.
            break;
        };
        if !trusted_proxies.contains(&hop) {
            return hop;
        }
        last_trusted = hop;
    }
    last_trusted
}

impl Quotas {
    /// ## Task 1b: a fixed window done right
    ///
    /// Admits at most `limits.requests` requests of `api_key` per window of `limits.window`.
    ///
    /// - A window starts at the first request of a key that has no window open, and lasts
    ///   `limits.window` on Redis's clock: the counter at [`Quotas::window_key`] is created with
    ///   that TTL and expires when the window ends. Every key of the namespace this creates, for
    ///   admitted and refused requests alike, has a TTL of at most `limits.window` (the tests
    ///   read the TTL of every key in the namespace).
    /// - Later requests in the window never extend that TTL: a client that keeps calling while it
    ///   is refused gets through once the window ends.
    /// - A refused request must not make the refusal last longer: count only admitted requests,
    ///   or count them all but leave the TTL alone.
    /// - One round trip, atomic, with the TTL in it: one script (`EVAL`/`EVALSHA`) or one
    ///   `MULTI`/`EXEC` transaction, and no other command (the tests watch the server). An `INCR`
    ///   and then an `EXPIRE` in a second call leave, if the gateway dies between them, a counter
    ///   that never expires: a key refused for ever.
    ///
    /// - A Redis error (a refused connection, a script error) is returned as the `Err`, at once:
    ///   never admit or refuse on your own, and never retry. Whether a gateway lets requests
    ///   through while Redis is down is its policy, not the limiter's, and a limiter that retries
    ///   stalls every request it checks. (The same holds in tasks 2 and 3.)
    ///
    /// The decision: `remaining` is the requests left in this window after this one (0 when
    /// refused); `reset_after` is the time until the window ends (the counter's TTL), for every
    /// request of the window, admitted or refused, not the whole window each time; `retry_after`
    /// is zero when admitted, else the time until the window ends, so that a client that waits
    /// that long (the tests add 5 ms) gets through.
    pub async fn fixed_window(&self, api_key: &str) -> redis::RedisResult<Decision> {
        let mut invocation = FIXED_WINDOW.key(self.window_key(api_key));
        invocation
            .arg(self.limits.requests)
            .arg(millis(self.limits.window));
        invocation.invoke_async(&mut self.redis.clone()).await
    }

    /// ## Task 2: a token bucket on Redis's clock
    ///
    /// Admits the requests of `api_key` from a bucket at [`Quotas::bucket_key`] that holds up
    /// to `limits.burst` tokens and starts full. One token comes back every
    /// `limits.refill_every`, continuously (after half of `refill_every`, half a token), and the
    /// bucket never holds more than `limits.burst`, however long it was left alone.
    ///
    /// - A request takes one token if the bucket holds at least one whole token; otherwise it is
    ///   refused and takes nothing: a client that keeps retrying while refused gets its token
    ///   exactly when it would have without the retries.
    /// - One Lua script per request, sent as one command (`EVAL`/`EVALSHA`): read, refill, take
    ///   and write in one step, so two gateway instances cannot both take the last token. The
    ///   script reads the time with `redis.call('TIME')` and uses it; a time read in Rust and
    ///   passed as an argument is refused by the tests, which watch the server: the script must
    ///   call `TIME`, and no argument may be a time (a number within a minute of now, in
    ///   seconds, milliseconds, microseconds or nanoseconds since 1970).
    /// - `remaining` is the whole tokens left after this request; `retry_after`, when refused,
    ///   is the time until the bucket holds one whole token, counting what has already trickled
    ///   back (not a full `refill_every`, and not measured from the last request), rounded up to
    ///   the millisecond; zero when admitted. `reset_after` is the time until the bucket is full.
    /// - `retry_after` is never shorter than the true wait, counted to the microsecond that `TIME`
    ///   gives (keep the microseconds): a client that waits exactly that long gets through. A
    ///   wait cut down to whole milliseconds (an integer division, `math.floor`) sends it back up
    ///   to 1 ms early, to be refused again. The tests time the wait on Redis's clock.
    /// - The key gets its TTL in the same script, on every request (a TTL set only when the key
    ///   is created runs out while tokens are still missing): at least `reset_after` (a key that
    ///   expires sooner hands the client a full bucket too early) and at most
    ///   `burst * refill_every` + 1 s.
    /// - A Redis error is returned as the `Err`, at once, as in task 1b: never admit or refuse on
    ///   your own, never retry.
    pub async fn token_bucket(&self, api_key: &str) -> redis::RedisResult<Decision> {
        let mut invocation = TOKEN_BUCKET.key(self.bucket_key(api_key));
        invocation
            .arg(self.limits.burst)
            .arg(self.limits.refill_every.as_micros().max(1) as u64);
        invocation.invoke_async(&mut self.redis.clone()).await
    }

    /// ## Task 3: a sliding log that is exact and bounded
    ///
    /// Admits at most `limits.requests` requests of `api_key` in any span of `limits.window` on
    /// Redis's clock, exactly, with a log of admitted requests: the sorted set at
    /// [`Quotas::log_key`].
    ///
    /// - Each entry's score is the request's time on Redis's clock (`TIME`, in microseconds); an
    ///   entry counts while it is less than `limits.window` old.
    /// - Each entry's member is unique to its request. The timestamp alone is not: two gateway
    ///   instances can send requests in the same microsecond, and a sorted set keeps one entry
    ///   per member. Add a request id of its own to every request (e.g.
    ///   `"1700000000123456-8f14e45fceea167a"`, from `rand::random::<u64>()`); the tests refuse
    ///   members that are bare numbers, and members that, their timestamp taken out, are the
    ///   same for two requests (a constant suffix such as `"-req"` is no request id).
    /// - One Lua script per request, sent as one command, reading `TIME` itself and using it (no
    ///   argument may be a time, as in task 2): on every request it removes the entries that
    ///   have left the window, then counts the rest (not only when the set looks full: stale
    ///   entries would make `remaining` too low), and adds an entry only if the request is
    ///   admitted. A refused request is not recorded, so the set never holds more than
    ///   `limits.requests` entries.
    /// - `remaining` is the requests the window has room for after this one (0 when refused);
    ///   `retry_after`, when refused, is the time until the oldest entry leaves the window,
    ///   rounded up to the millisecond (never shorter than the true wait, as in task 2), zero
    ///   when admitted; `reset_after` is the time until the newest entry leaves it (the whole
    ///   quota is back).
    /// - The set gets its TTL in the same script, on every admitted request: at least until its
    ///   newest entry leaves the window (a TTL set only with the first entry, or measured from
    ///   the oldest, drops entries still in the window), at most `limits.window` + 1 s.
    /// - A Redis error is returned as the `Err`, at once, as in task 1b.
    pub async fn sliding_log(&self, api_key: &str) -> redis::RedisResult<Decision> {
        let mut invocation = SLIDING_LOG.key(self.log_key(api_key));
        invocation
            .arg(self.limits.requests)
            .arg(self.limits.window.as_micros().max(1) as u64)
            .arg(format!("{:016x}", rand::random::<u64>()));
        invocation.invoke_async(&mut self.redis.clone()).await
    }
}

/// A duration in whole milliseconds, at least 1 (`PX 0` is an error).
fn millis(duration: std::time::Duration) -> u64 {
    duration.as_millis().max(1) as u64
}
