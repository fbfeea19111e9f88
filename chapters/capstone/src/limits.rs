//! The API's rate limit: the rate-limiting lesson's GCRA in Redis, shared by every instance, with
//! its fail-open fallback, and the headers that tell a client where it stands.
//!
//! The source's limiter made two mistakes this module must not: an `INCR` and an `EXPIRE` sent
//! apart (a process that dies between them leaves a counter that never expires, and the client is
//! refused for ever), and a client named by `X-Forwarded-For` whoever sent it (a client that
//! changes the header every request is a new client every request). The GCRA is one script that
//! sets its key's expiry in the call that writes it; the client is the API key it signs its
//! requests with, or else its address as the socket saw it, a forwarded address believed only
//! from a proxy the service was told to trust ([`rate_limiting::client_ip`]). An API key is a
//! client only if the service issued it: a made-up key is refused with 401, or a client that
//! sends a new one with every request would be a new client every request, the forged header
//! again by another name.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rate_limiting::{Algorithm, DecidedBy, Decision, Guarded, Limit, OnRedisDown, RedisLimiter};
use shared::{Namespace, RedisConn};

/// The policy's name in the `RateLimit` headers.
const POLICY: &str = "per-client";

/// The service's limiter: GCRA in Redis, each instance's share in memory while Redis is away.
pub struct RateLimiter {
    guarded: Guarded<RedisLimiter>,
    limit: Limit,
    /// The proxies whose `X-Forwarded-For` is believed (none by default).
    pub trusted_proxies: Vec<IpAddr>,
    /// The API keys issued: `u0` to `u{n-1}` (the load driver's tokens; a real service looks its
    /// keys up in a table).
    pub api_keys: u32,
}

impl RateLimiter {
    /// `per_second` requests a second per client, as many in a burst, shared by `instances`.
    pub fn new(
        conn: RedisConn,
        namespace: Namespace,
        per_second: u32,
        instances: u32,
        api_keys: u32,
    ) -> Self {
        let limit = Limit::per(per_second, Duration::from_secs(1)).with_burst(per_second);
        let redis = RedisLimiter::new(Algorithm::Gcra, limit, conn, namespace);
        let budget = Duration::from_millis(50);
        RateLimiter {
            guarded: Guarded::new(redis, limit, instances, OnRedisDown::FailOpen, budget),
            limit,
            trusted_proxies: Vec::new(),
            api_keys,
        }
    }

    /// The decision for `client`, and who made it.
    pub async fn check(&self, client: &str) -> (Decision, DecidedBy) {
        self.guarded.check(client).await
    }
}

// ANCHOR: client
/// Who a request counts against: its API key (`Authorization: Bearer ...`) if the service issued
/// it, or else its address, `X-Forwarded-For` believed only from a trusted proxy. A key the
/// service never issued is an error.
pub fn client_of(
    headers: &HeaderMap,
    peer: IpAddr,
    limiter: &RateLimiter,
) -> Result<String, UnknownKey> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match bearer {
        Some(key) => {
            let issued = key
                .strip_prefix('u')
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n < limiter.api_keys);
            match issued {
                true => Ok(format!("key:{key}")),
                false => Err(UnknownKey),
            }
        }
        None => {
            let forwarded = headers
                .get("x-forwarded-for")
                .and_then(|value| value.to_str().ok());
            let ip = rate_limiting::client_ip(peer, forwarded, &limiter.trusted_proxies);
            Ok(format!("ip:{ip}"))
        }
    }
}

/// An `Authorization` header with a key the service did not issue.
#[derive(Debug)]
pub struct UnknownKey;
// ANCHOR_END: client

// ANCHOR: middleware
/// Lets a request through or refuses it with `429` and `Retry-After`; either way the answer says
/// the policy and, when Redis decided, what is left.
pub async fn limit(
    State(limiter): State<Arc<RateLimiter>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let (client, known) = match client_of(request.headers(), peer.ip(), &limiter) {
        Ok(client) => (client, true),
        // A made-up key still counts, against the address that sent it: a flood of them is
        // limited like any other.
        Err(UnknownKey) => (format!("ip:{}", peer.ip()), false),
    };
    let (decision, decided_by) = limiter.check(&client).await;
    let mut response = if decision.allowed && known {
        next.run(request).await
    } else if decision.allowed {
        (StatusCode::UNAUTHORIZED, "unknown API key").into_response()
    } else {
        let mut refused = (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
        // Whole seconds, rounded up: a client that comes back sooner is refused again.
        let seconds = decision.retry_after.as_secs_f64().ceil().max(1.0) as u64;
        refused
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        refused
    };
    let headers = response.headers_mut();
    let window = limiter.limit.window.as_secs().max(1);
    let policy = format!("\"{POLICY}\";q={};w={window}", limiter.limit.requests);
    headers.insert(
        "ratelimit-policy",
        HeaderValue::from_str(&policy).expect("ASCII"),
    );
    // The fallback knows no remaining count: no field rather than a made-up one.
    if decided_by == DecidedBy::Redis {
        let reset = decision.reset_after.as_secs_f64().ceil() as u64;
        let state = format!("\"{POLICY}\";r={};t={reset}", decision.remaining);
        headers.insert("ratelimit", HeaderValue::from_str(&state).expect("ASCII"));
    }
    response
}
// ANCHOR_END: middleware
