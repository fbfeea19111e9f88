//! # Exercise: a response cache in front of a news API
//!
//! A news site serves its articles through a JSON API, and most of its traffic is the same few
//! pages asked for again and again. You will put an application response cache in Redis in front
//! of it, shared by every instance of the API: the key a response is kept under, what may be
//! kept at all, and how a client that already holds a copy is answered `304 Not Modified`. Run
//! the graded tests with
//!
//! ```text
//! cargo test -p http-caching-exercise
//! ```
//!
//! and replace each `todo!()` until they pass. The tests of one task run alone with
//! `cargo test -p http-caching-exercise task1` (or `task2`, `task3`). They use a real Redis, read
//! the entries you write and their TTLs, write entries of their own (corrupt ones too), watch
//! which commands (and arguments) reach the server, and stop it to see that a Redis error comes
//! back to the caller. Stuck? Each task has a hint in `exercises/http-caching/HINTS.md` (also in
//! the book), and a worked answer in `solutions/http-caching`.
//!
//! The API's routes, all `GET` (and `HEAD`, the same without the body):
//!
//! - `/articles`: a page of articles. Parameters: `topic` (absent: every topic; any value,
//!   `all` and the empty one (`topic=`) included, filters on the topic of that name: they are
//!   topics like any other), `page` (default `1`), `per_page` (default `20`) and `tags`, a
//!   comma-separated list of tags an article must carry (`tags=eu,trade`), whose order does not
//!   matter.
//! - `/articles/{id}`: one article. No parameters.
//! - `/me/feed`: the signed-in user's personal feed. Parameters: `page` (default `1`) and
//!   `per_page` (default `20`). Every path under `/me/` is personal: its answer depends on the
//!   user.
//!
//! The API ignores any parameter a route does not take (`utm_source`, a cache-buster `_=17`),
//! and when a parameter comes twice, the last one counts. Every response says
//! `Vary: Accept-Encoding`: a client that accepts gzip gets a compressed body.
//!
//! What you have to work with (all given, in `src/given.rs`):
//! - [`Request`], a request as the cache sees it, with the user it authenticated as;
//!   [`query_pairs`] decodes its query string;
//! - [`Response`], [`Stored`] and [`Answer`], what tasks 2 and 3 take and return;
//! - [`Cache`], one API instance's connection; [`field`], the names of a stored entry's fields
//!   (the tests read them, and write entries of their own with them); [`NOT_FOUND_TTL_CAP`];
//!   [`unix_millis`];
//! - the crates `http` (`HeaderMap::get_all` reads every line of a header), `redis`
//!   (`redis::Script`, `redis::pipe`), and `shared` (`shared::keys::hashed`, a collision-free
//!   key for any serializable value, tuples and `Vec`s included).

#![warn(missing_docs)]

mod given;

use http::HeaderMap;
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
    let _ = (namespace, request);
    todo!("task 1: method, path, the query as the API reads it, gzip or not, the user on /me/")
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
        let _ = (key, request_headers, response);
        todo!(
            "task 2: 200 or 404, a TTL from s-maxage or max-age, nothing private; one atomic write"
        )
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
        let _ = (key, request_headers);
        todo!("task 3: HMGET the small fields, compare ETags weakly, read the body only if needed")
    }
}
