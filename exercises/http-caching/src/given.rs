//! The given parts of the news-API exercise: the request and the response as the cache sees them,
//! what the cache's calls return, the fields of a stored entry, and the query-string parser.
//! Written for you; the tasks are in `lib.rs`. (The worked answer in `solutions/http-caching`
//! includes this very file, so the two can never drift apart.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, Method, StatusCode};
use shared::RedisConn;

/// A request to the news API, as the cache in front of it sees it.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET` or `HEAD` (the cache is asked about nothing else).
    pub method: Method,
    /// The path, without the query: `/articles`, `/articles/42` or `/me/feed`.
    pub path: String,
    /// The query string as the client sent it, without the `?` (empty when there is none):
    /// `topic=world&tags=eu,trade`. [`query_pairs`] decodes it.
    pub query: String,
    /// The request's headers (`Accept-Encoding`, `Authorization`, `If-None-Match`, ...).
    pub headers: HeaderMap,
    /// The user the request authenticated as, if any (the API's session layer found it).
    pub user: Option<u32>,
}

/// A response: what the API answered (task 2 stores it) or what the cache answers (task 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The headers (`Cache-Control`, `ETag`, `Vary`, `Content-Encoding`, `Set-Cookie`, `Age`, ...).
    pub headers: HeaderMap,
    /// The body: JSON, gzip-compressed when `Content-Encoding: gzip` says so. Empty in a `304`.
    pub body: Vec<u8>,
}

/// What [`Cache::store`](crate::Cache::store) did with a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// Stored, with this TTL.
    For(Duration),
    /// Not stored: nothing was written.
    Not,
}

/// How [`Cache::answer`](crate::Cache::answer) answers a request from the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// No usable entry: the request goes to the API.
    Miss,
    /// `304 Not Modified`: the client's copy is current. No body.
    NotModified(Response),
    /// The stored response in full.
    Hit(Response),
}

/// The response cache of one API instance. Instances share the Redis, and so the cache.
pub struct Cache {
    /// The Redis connection (clone it to get a `&mut` one: clones share the connection).
    pub redis: RedisConn,
}

/// The longest a `404 Not Found` may be stored: an article that does not exist yet may be
/// published any second.
pub const NOT_FOUND_TTL_CAP: Duration = Duration::from_secs(5);

/// The fields of a stored entry, a Redis hash at the request's key. Every field is text except
/// `body`, which holds the body's bytes as they are.
pub mod field {
    /// The status code, `"200"` or `"404"`.
    pub const STATUS: &str = "status";
    /// The response's `ETag`, or empty when it had none.
    pub const ETAG: &str = "etag";
    /// The response's `Cache-Control`, its lines joined with `", "`.
    pub const CACHE_CONTROL: &str = "cache_control";
    /// The response's `Vary`, or empty when it had none.
    pub const VARY: &str = "vary";
    /// The response's `Content-Encoding`, or empty when it had none.
    pub const CONTENT_ENCODING: &str = "content_encoding";
    /// When the entry was stored: milliseconds since 1970 ([`unix_millis`](super::unix_millis)).
    pub const STORED_AT: &str = "stored_at";
    /// The body's bytes.
    pub const BODY: &str = "body";
}

/// Now, in milliseconds since 1970, on this instance's clock (the instances' clocks are kept in
/// step by NTP; an `Age` a second off does no harm).
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// The parameters of a query string, in the order they came, each name and value
/// percent-decoded (`+` is a space): `"topic=world%20news&page=2"` gives
/// `[("topic", "world news"), ("page", "2")]`. A parameter without `=` has an empty value; empty
/// pieces (`a=1&&b=2`) are skipped.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (percent_decoded(name), percent_decoded(value))
        })
        .collect()
}

/// `%XX` decoded, `+` a space; a `%` not followed by two hex digits is kept as it is.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match hex_pair(bytes[i + 1], bytes[i + 2]) {
                Some(byte) => {
                    out.push(byte);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_pair(high: u8, low: u8) -> Option<u8> {
    let digit = |b: u8| (b as char).to_digit(16);
    Some((digit(high)? * 16 + digit(low)?) as u8)
}
