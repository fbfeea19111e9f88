//! The response cache: a tower layer that keeps whole responses in Redis.
//!
//! In front of the routes, it answers a request from Redis when it can and otherwise lets the
//! request through and stores the answer, if [`storable`] allows it. Per request:
//!
//! 1. the routes *describe* the request ([`Described`]): its group, its query normalised, and the
//!    user if the route is personal. A request they do not describe (a write, a bad query) goes
//!    straight through;
//! 2. with conditional requests on and an `If-None-Match` in the request, the entry's small fields
//!    (ETag, Cache-Control, Vary, when it was stored) are read, not its body: a match is a `304`;
//! 3. otherwise the whole entry: a hit is answered with an `Age` header, how long ago it was
//!    stored;
//! 4. a miss reads the group's *generation*, runs the request, and stores the answer only if
//!    the generation has not moved since: a write that committed while the request was loading
//!    raised it, and the old page it loaded is dropped instead of cached for a minute (the
//!    cache-aside race of the earlier lessons, closed the same way as by a lease).
//!
//! A write's handler names the groups it changed ([`Changed`]); on its way out the layer
//! invalidates each: one script raises the generation and unlinks every entry of the group. Every
//! Redis call has a time budget; past it, or with Redis down, requests go through to the
//! handlers, and nothing is stored.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use axum::middleware::Next;
use redis::Script;
use shared::clock::now_ms;
use shared::metrics::Counter;
use shared::{Namespace, RedisConn};

use crate::conditional;
use crate::key::{self, Described};
use crate::storable::storable;

/// How the routes describe a request the cache may answer; `None` for one it must not.
pub type Describe = fn(&axum::http::request::Parts) -> Option<Described>;

/// Set on a write's response by its handler: the groups whose entries the write made wrong.
#[derive(Clone, Debug, Default)]
pub struct Changed(pub Vec<String>);

/// The request headers the key covers, which is all a stored response may vary on.
pub const KEYED_HEADERS: &[&str] = &["accept-encoding"];

/// The response headers an entry keeps.
const KEPT: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::ETAG,
    header::CACHE_CONTROL,
    header::VARY,
];

/// The largest body stored; a larger one is passed through.
const LARGEST_BODY: usize = 1 << 20;

/// What the response cache did, counted.
#[derive(Debug, Default)]
pub struct ResponseStats {
    /// Requests answered with a stored response.
    pub hits: Counter,
    /// Requests answered with a `304` from the entry's ETag.
    pub not_modified: Counter,
    /// Requests the cache described but had no entry for.
    pub misses: Counter,
    /// Responses stored.
    pub stored: Counter,
    /// Responses not stored: the rules refused them, or a write came first.
    pub not_stored: Counter,
    /// Redis calls that failed or ran out of time.
    pub errors: Counter,
    /// Entries that could not be read back.
    pub corrupt: Counter,
    /// Groups invalidated by writes.
    pub invalidated: Counter,
}

/// Stores an entry if its group's generation is still the one read before loading.
/// KEYS: entry, generation, members. ARGV: generation read (`''` if none), TTL in ms, then the
/// entry's field/value pairs.
const STORE: &str = r"
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[3], KEYS[1])
if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[3], ARGV[2]) end
return 1
";

/// Invalidates a group: raises its generation and unlinks its entries.
/// KEYS: generation, members. ARGV: the generation's TTL in ms. Returns how many it unlinked.
const INVALIDATE: &str = r"
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
local entries = redis.call('SMEMBERS', KEYS[2])
for _, entry in ipairs(entries) do redis.call('UNLINK', entry) end
redis.call('DEL', KEYS[2])
return #entries
";

/// How long a generation outlives its last raise. A reader holds one for the length of one
/// request; the day is a margin of many orders of magnitude, and a key with no TTL is a leak.
const GENERATION_TTL: Duration = Duration::from_secs(24 * 3600);

/// The response cache's state, shared by every request.
pub struct ResponseCache {
    conn: RedisConn,
    namespace: Namespace,
    describe: Describe,
    conditional: bool,
    budget: Duration,
    store: Script,
    invalidate: Script,
    /// What it did.
    pub stats: ResponseStats,
}

impl ResponseCache {
    /// A cache in `namespace` through `conn`, for the requests `describe` accepts, answering
    /// `If-None-Match` from Redis if `conditional`; every Redis call within `budget`.
    pub fn new(
        conn: RedisConn,
        namespace: Namespace,
        describe: Describe,
        conditional: bool,
        budget: Duration,
    ) -> Arc<Self> {
        Arc::new(ResponseCache {
            conn,
            namespace,
            describe,
            conditional,
            budget,
            store: Script::new(STORE),
            invalidate: Script::new(INVALIDATE),
            stats: ResponseStats::default(),
        })
    }

    // ANCHOR: respond
    /// The layer's work for one request (see the module's documentation for the steps).
    pub async fn respond(
        State(cache): State<Arc<ResponseCache>>,
        request: Request,
        next: Next,
    ) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let Some(described) = (cache.describe)(&parts) else {
            let response = next.run(Request::from_parts(parts, body)).await;
            if let Some(Changed(groups)) = response.extensions().get::<Changed>() {
                for group in groups {
                    cache.invalidate(group).await;
                }
            }
            return response;
        };
        let key = key::response_key(
            &cache.namespace,
            &parts.method,
            parts.uri.path(),
            &parts.headers,
            &described,
        );
        let if_none_match = parts.headers.get(header::IF_NONE_MATCH).cloned();
        if let (true, Some(tags)) = (cache.conditional, &if_none_match)
            && let Some(headers) = cache.validators(&key).await
            && conditional::matches(tags, header_str(&headers, header::ETAG))
        {
            cache.stats.not_modified.inc();
            return conditional::not_modified(&headers);
        }
        if let Some(response) = cache.entry(&key).await {
            cache.stats.hits.inc();
            return response;
        }
        cache.stats.misses.inc();
        let generation = cache.generation(&described.group).await;
        let authorised = parts.headers.contains_key(header::AUTHORIZATION);
        let response = next.run(Request::from_parts(parts, body)).await;
        let (head, body) = response.into_parts();
        let Ok(bytes) = to_bytes(body, LARGEST_BODY).await else {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from("the response could not be read"))
                .expect("a static response");
        };
        match (
            storable(head.status, &head.headers, authorised, KEYED_HEADERS),
            generation,
        ) {
            (Ok(ttl), Some(generation)) => {
                let group = &described.group;
                if cache
                    .put(
                        &key,
                        group,
                        &generation,
                        head.status,
                        &head.headers,
                        &bytes,
                        ttl,
                    )
                    .await
                {
                    cache.stats.stored.inc();
                } else {
                    cache.stats.not_stored.inc();
                }
            }
            _ => cache.stats.not_stored.inc(),
        }
        let etag = head.headers.get(header::ETAG).and_then(|v| v.to_str().ok());
        if let (true, Some(tags), Some(etag)) = (cache.conditional, &if_none_match, etag)
            && head.status == StatusCode::OK
            && conditional::matches(tags, etag)
        {
            cache.stats.not_modified.inc();
            return conditional::not_modified(&head.headers);
        }
        Response::from_parts(head, Body::from(bytes))
    }
    // ANCHOR_END: respond

    /// The entry's validators and caching headers, with `Age`, without its body; `None` if
    /// there is no entry or Redis failed.
    async fn validators(&self, key: &str) -> Option<HeaderMap> {
        let mut conn = self.conn.clone();
        let mut hmget = redis::cmd("HMGET");
        hmget
            .arg(key)
            .arg(&["etag", "cache-control", "vary", "stored_ms"][..]);
        let fields: Vec<Option<String>> = self.within(hmget.query_async(&mut conn)).await?;
        let [Some(etag), control, vary, Some(stored)] = <[_; 4]>::try_from(fields).ok()? else {
            return None;
        };
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (header::ETAG, Some(etag)),
            (header::CACHE_CONTROL, control),
            (header::VARY, vary),
            (header::AGE, Some(age_since(stored.parse().ok()?))),
        ] {
            if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
                headers.insert(name, value);
            }
        }
        Some(headers)
    }

    /// The whole entry as a response with `Age`; `None` on a miss, a failure, or an entry that
    /// does not read back (counted as corrupt, and overwritten by the next store).
    async fn entry(&self, key: &str) -> Option<Response<Body>> {
        let mut conn = self.conn.clone();
        let fields: std::collections::HashMap<String, Vec<u8>> = self
            .within(redis::cmd("HGETALL").arg(key).query_async(&mut conn))
            .await?;
        if fields.is_empty() {
            return None;
        }
        let response = entry_response(&fields);
        if response.is_none() {
            self.stats.corrupt.inc();
        }
        response
    }

    /// The group's generation as stored (`""` if it has none yet), or `None` if Redis failed.
    async fn generation(&self, group: &str) -> Option<String> {
        let mut conn = self.conn.clone();
        let key = key::generation_key(&self.namespace, group);
        let read: Option<String> = self
            .within(redis::cmd("GET").arg(key).query_async(&mut conn))
            .await?;
        Some(read.unwrap_or_default())
    }

    /// Stores the response under `key` for `ttl` unless `group`'s generation moved past
    /// `generation`. Whether it stored.
    #[allow(clippy::too_many_arguments)]
    async fn put(
        &self,
        key: &str,
        group: &str,
        generation: &str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        ttl: Duration,
    ) -> bool {
        let mut call = self.store.prepare_invoke();
        call.key(key)
            .key(key::generation_key(&self.namespace, group))
            .key(key::members_key(&self.namespace, group))
            .arg(generation)
            .arg(ttl.as_millis() as u64)
            .arg("status")
            .arg(status.as_u16())
            .arg("stored_ms")
            .arg(now_ms());
        for name in KEPT {
            if let Some(value) = headers.get(&name) {
                call.arg(name.as_str()).arg(value.as_bytes());
            }
        }
        call.arg("body").arg(body);
        let mut conn = self.conn.clone();
        let stored: Option<i64> = self.within(call.invoke_async(&mut conn)).await;
        stored == Some(1)
    }

    // ANCHOR: invalidate
    /// Drops every entry of `group` and raises its generation, in one script. `false` if Redis
    /// did not answer in time.
    pub async fn invalidate(&self, group: &str) -> bool {
        let mut call = self.invalidate.prepare_invoke();
        call.key(key::generation_key(&self.namespace, group))
            .key(key::members_key(&self.namespace, group))
            .arg(GENERATION_TTL.as_millis() as u64);
        let mut conn = self.conn.clone();
        let unlinked: Option<i64> = self.within(call.invoke_async(&mut conn)).await;
        if unlinked.is_some() {
            self.stats.invalidated.inc();
        }
        unlinked.is_some()
    }
    // ANCHOR_END: invalidate

    async fn within<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
        shared::budget::within(self.budget, &self.stats.errors, call).await
    }
}

/// A stored entry as the response it was; `None` if a field is missing or unreadable.
fn entry_response(fields: &std::collections::HashMap<String, Vec<u8>>) -> Option<Response<Body>> {
    let text = |name: &str| std::str::from_utf8(fields.get(name)?).ok();
    let status = StatusCode::from_u16(text("status")?.parse().ok()?).ok()?;
    let stored_ms: u64 = text("stored_ms")?.parse().ok()?;
    let body = fields.get("body")?.clone();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    for name in KEPT {
        if let Some(value) = fields.get(name.as_str()) {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_bytes(value).ok()?);
        }
    }
    response.headers_mut().insert(
        header::AGE,
        HeaderValue::from_str(&age_since(stored_ms)).ok()?,
    );
    Some(response)
}

fn header_str(headers: &HeaderMap, name: HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The `Age` of an entry stored at `stored_ms`, in whole seconds (RFC 9111 §5.1).
fn age_since(stored_ms: u64) -> String {
    (now_ms().saturating_sub(stored_ms) / 1000).to_string()
}
