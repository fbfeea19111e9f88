//! # Exercise: an API gateway's quotas
//!
//! A company sells access to a partner's API. Each customer calls it with an API key, through a
//! gateway that runs as several instances behind a load balancer, and each key has a quota: the
//! partner bills the company for every request it lets through. The quotas live in Redis, so every
//! instance sees the same count. You will write three limiters of rising difficulty, and the
//! function that says who the client is. Run the graded tests with
//!
//! ```text
//! cargo test -p rate-limiting-exercise
//! ```
//!
//! and replace each `todo!()` until they pass. The tests of one task run alone with
//! `cargo test -p rate-limiting-exercise task1` (or `task2`, `task3`). They use a real Redis, two
//! gateway instances at once, short windows (a few hundred milliseconds), and they read your keys
//! and their TTLs, watch which commands (and arguments) reach the server, and stop it to see that
//! a Redis error comes back to the caller. Stuck? Each task has a hint in
//! `exercises/rate-limiting/HINTS.md` (also in the book), and a worked answer in
//! `solutions/rate-limiting`.
//!
//! What you have to work with (all given, in `src/given.rs`):
//! - [`Quotas`]: one gateway instance's connection, its namespace and its [`Limits`];
//! - where each API key's state lives: [`Quotas::window_key`], [`Quotas::bucket_key`],
//!   [`Quotas::log_key`]; the tests look there. A key's keys share a hash slot, so a script may
//!   touch them together on Redis Cluster too;
//! - [`Decision`], what every limiter returns; a script that answers with four integers
//!   `{allowed (1 or 0), remaining, retry_after_ms, reset_after_ms}` is read straight into one
//!   (`let decision: Decision = script.key(&key).arg(..).invoke_async(&mut conn).await?;`), or
//!   use [`Decision::from_millis`];
//! - the crates `redis` (`redis::Script` runs a Lua script, loading it the first time), and
//!   `rand` (`rand::random::<u64>()`).
//!
//! In every task, time is Redis's: a script reads it with `redis.call('TIME')` (seconds and
//! microseconds), or Redis counts it for you in a key's TTL. The gateway instances' own clocks
//! differ, so never read a clock in Rust and pass it in (the tests look at every argument).

#![warn(missing_docs)]

mod given;

use std::net::IpAddr;

pub use given::{Decision, Limits, Quotas};

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
    let _ = (peer, forwarded_for, trusted_proxies);
    todo!("task 1a: trust the header only behind trusted proxies, and walk it from the right")
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
        let _ = api_key;
        todo!("task 1b: count and set the TTL in one atomic call; never extend the TTL")
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
        let _ = api_key;
        todo!("task 2: one script: TIME, refill up to the burst, take a token or refuse")
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
        let _ = api_key;
        todo!("task 3: one script: TIME, trim, count, record only what is admitted")
    }
}
