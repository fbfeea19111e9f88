//! # Solution: a response cache in front of a news API
//!
//! The worked answer to `exercises/http-caching`. Read the exercise first: the task descriptions
//! are the same here, the given parts are the exercise's own `given.rs`, included as it is, and
//! only the task bodies are filled in.
//!
//! The classic mistakes live beside this answer, not in it: each file in `mistakes/` is a patch
//! that plants one, with a note on what it breaks. CI applies each and checks that the exercise's
//! suite fails. To watch one fail: `git apply solutions/http-caching/mistakes/<name>.patch`, run
//! `cargo test -p http-caching-solution`, then `git apply -R` the same file.

#![warn(missing_docs)]

#[path = "../../../exercises/http-caching/src/given.rs"]
mod given;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;
use std::time::Duration;

use http::header::{
    ACCEPT_ENCODING, AGE, AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, ETAG, HeaderName,
    IF_NONE_MATCH, SET_COOKIE, VARY,
};
use http::{HeaderMap, HeaderValue, StatusCode};
use redis::Script;
use shared::Namespace;

pub use given::{
    Answer, Cache, NOT_FOUND_TTL_CAP, Request, Response, Stored, field, query_pairs, unix_millis,
};

/// ## Task 1: the key
///
/// Returns the key the response to `request` is cached under, in `namespace`. Two requests must
/// share a key exactly when the API's answer to them is the same:
///
/// - The key depends on the method (a `HEAD`'s answer has no body), the path, and the query's
///   parameters as the API reads them: in any order, percent-encoded or not (`world%20news` and
///   `world+news` are one topic), a parameter the route does not take left out, the last of a
///   parameter given twice (`tags` too: `tags=eu&tags=trade` is `tags=trade`, not both), and the
///   defaults filled in (`/articles?page=1` and `/articles` share a key; so does
///   `/articles?per_page=20`). No `topic`, an empty `topic=` and `topic=all` are three different
///   queries: an empty value is a topic's name like `all`, not "every topic". The tags are a set:
///   `tags=trade,eu`, `tags=eu,trade` and `tags=eu,,trade,eu` share a key (an empty item is no
///   tag), and `tags=` (no tag at all) shares the key of no `tags`.
/// - It depends on whether the client accepts gzip, and on nothing else in `Accept-Encoding`:
///   the client accepts gzip when the header (every line of it) lists `gzip` or `*`, in any case,
///   with a quality that is not zero (`gzip;q=0` refuses it, and `*` does not bring it back).
///   The quality's name is case-insensitive too, and spaces around `;` and `=` do not count:
///   `gzip; q=0` and `gzip;Q=0` refuse gzip as well.
///   So `gzip`, `gzip, br` and `br;q=1.0, GZIP;q=0.5` share a key, and no header, `identity`,
///   `br` and `gzip;q=0` share another.
/// - It depends on the user on a personal route (under `/me/`), and only there: one user's feed
///   must never be served to another, or to a visitor who is not signed in; a public page is
///   the same for everyone, and a key per user would cache it once per user.
/// - Two different requests never share a key, whatever their values hold (`:`, `,`, `&`, `=`):
///   joining values with a separator lets `topic=a:1&page=2` and `topic=a&page=1:2` meet.
///   Hash a structured value instead.
/// - The key starts with `namespace`'s prefix ([`Namespace::key`] wraps a local key in it), and
///   shows the path, so that a person scanning Redis sees which route an entry belongs to:
///   `course:http-caching:1f2e3d4c:{response:GET /articles:3f9a...}`.
pub fn cache_key(namespace: &Namespace, request: &Request) -> String {
    let personal = request.path == "/me" || request.path.starts_with("/me/");
    // Everything the API's answer depends on, hashed as one structured value: no value can spill
    // into its neighbour the way joined strings do.
    let what = (
        request.method.as_str(),
        &request.path,
        parameters(&request.path, &request.query),
        accepts_gzip(&request.headers),
        if personal { request.user } else { None },
    );
    let route = format!("response:{} {}", request.method, request.path);
    namespace.key(&shared::keys::hashed(&route, &what))
}

/// The parameters `path`'s route takes, with their defaults: a route takes no other.
fn route_parameters(path: &str) -> &'static [(&'static str, Option<&'static str>)] {
    const PAGING: [(&str, Option<&str>); 2] = [("page", Some("1")), ("per_page", Some("20"))];
    const ARTICLES: [(&str, Option<&str>); 4] = [
        ("topic", None),
        ("page", Some("1")),
        ("per_page", Some("20")),
        ("tags", None),
    ];
    match path {
        "/articles" => &ARTICLES,
        "/me/feed" => &PAGING,
        _ => &[],
    }
}

/// The query as the API reads it: the route's parameters only, the last of each, defaults
/// filled in, each a list of values: one, or the tags as a sorted set (no tags: left out).
fn parameters(path: &str, query: &str) -> BTreeMap<&'static str, Vec<String>> {
    let pairs = query_pairs(query);
    let mut found = BTreeMap::new();
    for &(name, default) in route_parameters(path) {
        let given = pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        let Some(value) = given.or(default) else {
            continue;
        };
        if name == "tags" {
            let tags: BTreeSet<String> = value
                .split(',')
                .filter(|tag| !tag.is_empty())
                .map(str::to_string)
                .collect();
            if !tags.is_empty() {
                found.insert(name, tags.into_iter().collect());
            }
        } else {
            found.insert(name, vec![value.to_string()]);
        }
    }
    found
}

/// Whether `Accept-Encoding` (every line) accepts gzip: `gzip` or `*` with a quality above
/// zero, unless `gzip` itself is refused with `q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = false;
    for (coding, quality) in list_items(headers, &ACCEPT_ENCODING).map(|item| coding_of(&item)) {
        if coding == "gzip" {
            gzip = Some(quality);
        } else if coding == "*" {
            any = quality;
        }
    }
    gzip.unwrap_or(any)
}

/// A coding of `Accept-Encoding`, lower-cased, and whether its quality is above zero.
fn coding_of(item: &str) -> (String, bool) {
    let mut parts = item.split(';');
    let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let mut accepted = true;
    for parameter in parts {
        if let Some((name, value)) = parameter.split_once('=')
            && name.trim().eq_ignore_ascii_case("q")
        {
            accepted = value.trim().parse::<f32>().is_ok_and(|q| q > 0.0);
        }
    }
    (coding, accepted)
}

/// The comma-separated items of every line of `name`, trimmed, the empty ones left out.
fn list_items<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = String> + 'a {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(','))
        .map(|item| item.trim().to_string())
        .filter(|item| !item.is_empty())
        .collect::<Vec<_>>()
        .into_iter()
}

/// Task 2. KEYS[1]: the entry. ARGV[1]: the TTL in ms; the rest: field, value, field, value...
/// The old entry goes first, so no field of it survives and a value of another type is replaced.
static STORE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
",
    )
});

/// The directives of `Cache-Control` (every line): names lower-cased, values unquoted.
fn directives(headers: &HeaderMap) -> Vec<(String, Option<String>)> {
    list_items(headers, &CACHE_CONTROL)
        .map(|item| match item.split_once('=') {
            Some((name, value)) => (
                name.trim().to_ascii_lowercase(),
                Some(value.trim().trim_matches('"').to_string()),
            ),
            None => (item.to_ascii_lowercase(), None),
        })
        .collect()
}

/// How long a shared cache may keep a response: `s-maxage`, else `max-age`; `None` without
/// either, or with a value that is not a whole number of seconds.
fn freshness(directives: &[(String, Option<String>)]) -> Option<Duration> {
    let value = |wanted: &str| {
        directives
            .iter()
            .find(|(name, _)| name == wanted)
            .map(|(_, value)| value.as_deref().and_then(|v| v.parse::<u64>().ok()))
    };
    let seconds = value("s-maxage").or_else(|| value("max-age"))??;
    (seconds > 0).then(|| Duration::from_secs(seconds))
}

/// The TTL `response` may be stored for, or `None` if a shared cache may not keep it.
fn storable_for(request_headers: &HeaderMap, response: &Response) -> Option<Duration> {
    let cap = match response.status {
        StatusCode::OK => None,
        StatusCode::NOT_FOUND => Some(NOT_FOUND_TTL_CAP),
        _ => return None,
    };
    let headers = &response.headers;
    let directives = directives(headers);
    let says = |wanted: &str| directives.iter().any(|(name, _)| name == wanted);
    if says("private") || says("no-store") || says("no-cache") {
        return None;
    }
    if headers.contains_key(SET_COOKIE) {
        return None;
    }
    // The key keeps apart the encoding only: a response that varies on anything else may not
    // be served to every request that shares its key.
    if list_items(headers, &VARY).any(|name| !name.eq_ignore_ascii_case("accept-encoding")) {
        return None;
    }
    // Answered for one user: shared only if the API says so (RFC 9111 §3.5).
    if request_headers.contains_key(AUTHORIZATION) && !(says("public") || says("s-maxage")) {
        return None;
    }
    let ttl = freshness(&directives)?;
    Some(cap.map_or(ttl, |cap| ttl.min(cap)))
}

/// A header's lines joined with `", "`, or empty.
fn joined(headers: &HeaderMap, name: &HeaderName) -> String {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Cache {
    /// ## Task 2: what may be stored
    ///
    /// Stores `response`, the API's answer to a request with the headers `request_headers`, under
    /// `key` (a key from task 1), if a shared cache may keep it (RFC 9111), and returns what it
    /// did: [`Stored::For`] with the TTL, or [`Stored::Not`] when nothing was written.
    ///
    /// - Whether a response may be stored is decided before anything is sent: for one that may
    ///   not, no command reaches Redis (a write undone a moment later is still read, in between,
    ///   by the other instances).
    /// - Only a `200 OK` or a `404 Not Found` is stored. Never an error (`400`, `500`, `503`: the
    ///   next request must reach the API again), a redirect, a `304`, or any other status.
    /// - The TTL is the response's `s-maxage` if it has one (the directive for shared caches),
    ///   else its `max-age`, in seconds; with neither, or a TTL of zero (`s-maxage=0` included),
    ///   or a value that is not a number, nothing is stored: there is no default TTL, and no entry
    ///   without one. (`Expires` is not read.) An `s-maxage` that is zero or not a number
    ///   (`s-maxage=soon`) stores nothing, whatever `max-age` says: `max-age` is read only when
    ///   there is no `s-maxage` at all. A `404` is stored for [`NOT_FOUND_TTL_CAP`] at most,
    ///   whichever of the two gave its TTL.
    /// - Never stored: a response whose `Cache-Control` says `private`, `no-store` or `no-cache`
    ///   (this cache never asks the API whether an entry is still good, so it may not keep what
    ///   must be checked every time); one with a `Set-Cookie` (another visitor would get the
    ///   cookie); one whose `Vary` names `*` or any header but `Accept-Encoding` (the key keeps
    ///   nothing else apart). Directive and header names are case-insensitive, and every line of
    ///   `Cache-Control` and `Vary` counts. A directive counts with a value as without one: RFC
    ///   9111's qualified forms, `private="x-user"` and `no-cache="set-cookie"`, are `private` and
    ///   `no-cache` here (this cache does not strip the fields they name).
    /// - A request that carried `Authorization` was answered for its user: its response, a `404`
    ///   as much as a `200`, is stored only if it says `public` or has an `s-maxage` (RFC 9111
    ///   §3.5).
    /// - The entry is a hash at `key` with the fields of [`field`]: the status, the `ETag`, the
    ///   `Cache-Control` (its lines joined with `", "`), the `Vary` and the `Content-Encoding`
    ///   (each empty when the response had none), the time it was stored ([`unix_millis`]) and
    ///   the body. It replaces whatever was at `key` before, whole (no field of an older entry
    ///   survives, and a value of another type is overwritten).
    /// - The entry and its TTL are written in one atomic call, the old entry's removal included:
    ///   one script (`EVAL`/`EVALSHA`) or one `MULTI`/`EXEC` transaction, and no other command. An
    ///   `HSET` and then an `EXPIRE` in a second call leave, if the instance dies between them, an
    ///   entry that never expires. The tests watch the server.
    /// - A Redis error is returned as the `Err`.
    pub async fn store(
        &self,
        key: &str,
        request_headers: &HeaderMap,
        response: &Response,
    ) -> redis::RedisResult<Stored> {
        let Some(ttl) = storable_for(request_headers, response) else {
            return Ok(Stored::Not);
        };
        let mut invocation = STORE.key(key);
        invocation.arg(ttl.as_millis() as u64);
        invocation.arg(field::STATUS).arg(response.status.as_u16());
        invocation
            .arg(field::ETAG)
            .arg(joined(&response.headers, &ETAG));
        invocation
            .arg(field::CACHE_CONTROL)
            .arg(joined(&response.headers, &CACHE_CONTROL));
        invocation
            .arg(field::VARY)
            .arg(joined(&response.headers, &VARY));
        invocation
            .arg(field::CONTENT_ENCODING)
            .arg(joined(&response.headers, &CONTENT_ENCODING));
        invocation.arg(field::STORED_AT).arg(unix_millis());
        invocation.arg(field::BODY).arg(&response.body[..]);
        let _: i64 = invocation.invoke_async(&mut self.redis.clone()).await?;
        Ok(Stored::For(ttl))
    }

    /// ## Task 3: conditional GETs
    ///
    /// Answers a `GET` with the headers `request_headers` from the entry at `key` (written as
    /// task 2 writes it):
    ///
    /// - No entry: [`Answer::Miss`].
    /// - A stored `200` whose `ETag` matches the request's `If-None-Match`:
    ///   [`Answer::NotModified`], status `304`, no body, and the headers `ETag`, `Cache-Control`
    ///   and `Vary` the full answer would carry (RFC 9110 §15.4.5; `ETag` and `Vary` only when the
    ///   entry has one), with `Age`, and no other header (no `Content-Encoding`: there is no body).
    ///   `If-None-Match` is a comma-separated list of entity tags (every line of it counts, spaces
    ///   around the commas do not, and an empty item is no tag), compared weakly (RFC 9110
    ///   §8.8.3.2), and otherwise byte for byte: `W/"x"` and `"x"` match each other, `"x"` and
    ///   `"y"` do not, nor do `"x"` and `"X"`. `*`, alone or anywhere in the list (`"a", *`),
    ///   matches any stored `200`, with or without an `ETag`; an entry without an `ETag` matches
    ///   no tag (an empty `If-None-Match`, or one with an empty item, is no match).
    /// - A `304` is answered without reading the body from Redis: an article page is tens of
    ///   kilobytes, a `304` a few bytes. Read the small fields only (`HMGET`): the tests watch the
    ///   commands and their arguments, and refuse an `HGETALL` or any command that names the body.
    /// - Otherwise (no `If-None-Match`, no tag matches, or a stored `404`, whose answer a
    ///   precondition never changes: RFC 9110 §13.2.1): [`Answer::Hit`], the stored status and
    ///   body (its bytes as they are, any bytes: a gzip body is not text), with `ETag`,
    ///   `Cache-Control`, `Vary` and `Content-Encoding` (each only when the entry has one) and
    ///   `Age`.
    /// - A full answer takes its status, headers and body from one read of the entry (`HGETALL`,
    ///   or one `HMGET` of every field): read in two calls, the entry may be replaced by another
    ///   instance between them, and one entry's `ETag` goes out with another entry's body. The
    ///   tests watch the commands.
    /// - `Age` is the whole seconds since the entry was stored, counted from the milliseconds of
    ///   `stored_at` and of now, then rounded down (100,900 ms is `100`), never negative.
    /// - An entry that is corrupt or partial is a miss, never an error or a panic: a field
    ///   missing (the body, for a full answer), a status or a time that is not a number, a text
    ///   field (any field but the body) that is not UTF-8, a value of another type than a hash at
    ///   `key`.
    /// - A Redis error (a refused connection) is returned as the `Err`, not taken for a miss: a
    ///   cache that is down is not a cache that is empty, and the caller decides what to do.
    pub async fn answer(
        &self,
        key: &str,
        request_headers: &HeaderMap,
    ) -> redis::RedisResult<Answer> {
        let mut conn = self.redis.clone();
        // A conditional GET: the small fields first, and a 304 from them alone if a tag matches.
        if request_headers.contains_key(IF_NONE_MATCH) {
            let Some(entry) = read(&mut conn, key, &SMALL_FIELDS)
                .await?
                .and_then(Entry::parse)
            else {
                return Ok(Answer::Miss);
            };
            if entry.status == StatusCode::OK && entry.matches(request_headers) {
                return Ok(Answer::NotModified(Response {
                    status: StatusCode::NOT_MODIFIED,
                    headers: entry.headers(),
                    body: Vec::new(),
                }));
            }
        }
        // A full answer: the status, the headers and the body from one read, so that they are
        // one entry's even if another instance replaced it since the read above.
        let Some(mut fields) = read(&mut conn, key, &EVERY_FIELD).await? else {
            return Ok(Answer::Miss);
        };
        let body = fields.pop().flatten();
        let (Some(entry), Some(body)) = (Entry::parse(fields), body) else {
            return Ok(Answer::Miss);
        };
        let mut headers = entry.headers();
        put(&mut headers, CONTENT_ENCODING, &entry.content_encoding);
        Ok(Answer::Hit(Response {
            status: entry.status,
            headers,
            body,
        }))
    }
}

/// `HMGET` of the fields `names` at `key`; `None` when a value of another type is there (a
/// corrupt entry). Every other error goes back to the caller.
async fn read(
    conn: &mut shared::RedisConn,
    key: &str,
    names: &[&str],
) -> redis::RedisResult<Option<Vec<Option<Vec<u8>>>>> {
    match redis::cmd("HMGET")
        .arg(key)
        .arg(names)
        .query_async(conn)
        .await
    {
        Ok(values) => Ok(Some(values)),
        Err(error) if error.code() == Some("WRONGTYPE") => Ok(None),
        Err(error) => Err(error),
    }
}

/// Adds the header `name` with `value`, unless `value` is empty (the entry had none).
fn put(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value)
        && !value.is_empty()
    {
        headers.insert(name, value);
    }
}

/// The fields a `304` needs: everything but the body.
const SMALL_FIELDS: [&str; 6] = [
    field::STATUS,
    field::ETAG,
    field::CACHE_CONTROL,
    field::VARY,
    field::CONTENT_ENCODING,
    field::STORED_AT,
];

/// Every field of an entry: the small ones, in the same order, then the body.
const EVERY_FIELD: [&str; 7] = [
    field::STATUS,
    field::ETAG,
    field::CACHE_CONTROL,
    field::VARY,
    field::CONTENT_ENCODING,
    field::STORED_AT,
    field::BODY,
];

/// A stored entry's small fields, parsed.
struct Entry {
    status: StatusCode,
    etag: String,
    cache_control: String,
    vary: String,
    content_encoding: String,
    stored_at: u64,
}

impl Entry {
    /// The entry from `HMGET`'s answer, in [`SMALL_FIELDS`]' order; `None` if a field is
    /// missing or does not parse (no entry at all, or a corrupt one).
    fn parse(fields: Vec<Option<Vec<u8>>>) -> Option<Entry> {
        let mut text = fields
            .into_iter()
            .map(|field| field.and_then(|bytes| String::from_utf8(bytes).ok()));
        let mut next = || text.next().flatten();
        let status = next()?.parse::<u16>().ok()?;
        let entry = Entry {
            status: StatusCode::from_u16(status).ok()?,
            etag: next()?,
            cache_control: next()?,
            vary: next()?,
            content_encoding: next()?,
            stored_at: next()?.parse().ok()?,
        };
        Some(entry)
    }

    /// The headers every answer carries: `ETag`, `Cache-Control` and `Vary` (each only when the
    /// entry has one) and `Age`, the whole seconds since it was stored, never negative.
    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        put(&mut headers, ETAG, &self.etag);
        put(&mut headers, CACHE_CONTROL, &self.cache_control);
        put(&mut headers, VARY, &self.vary);
        let age = unix_millis().saturating_sub(self.stored_at) / 1000;
        put(&mut headers, AGE, &age.to_string());
        headers
    }

    /// Whether `If-None-Match` (every line) names this entry: `*`, or a tag that matches the
    /// entry's `ETag` weakly (`W/` set aside on both sides).
    fn matches(&self, request_headers: &HeaderMap) -> bool {
        let weak = |tag: &str| tag.strip_prefix("W/").unwrap_or(tag).to_string();
        let ours = weak(&self.etag);
        list_items(request_headers, &IF_NONE_MATCH)
            .any(|tag| tag == "*" || (!ours.is_empty() && weak(&tag) == ours))
    }
}
