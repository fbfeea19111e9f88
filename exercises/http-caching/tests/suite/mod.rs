//! The suite shared by the exercise and the solution: `super::subject` is whichever crate runs it.
//!
//! Task 1's tests are plain functions: they build requests and compare the keys `cache_key`
//! gives, two at a time, saying which pair met or parted that should not have. Tasks 2 and 3 run
//! on Redis: each test gets its own namespace; Redis is `REDIS_URL`, or a private cluster with
//! `REDIS_CLUSTER=1`, else a private server, and the tests that watch which commands reach Redis,
//! or stop it, always start a private one. Task 2's tests read back the entry `store` wrote and
//! its TTL; task 3's write entries of their own (in the layout of `field`), some corrupt, so each
//! task is graded on its own.

use std::collections::HashMap;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use redis::AsyncCommands;
use shared::Namespace;
use shared::exercise::{Site, quiet_repeated_todos};

use super::subject::{
    Answer, Cache, NOT_FOUND_TTL_CAP, Request, Response, Stored, cache_key, field, unix_millis,
};

const PACKAGE: &str = "http-caching-exercise";

/// Headers from `(name, value)` pairs; a name given twice makes two lines.
fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// How a header map reads in a message: `Name: value; Name: value`.
fn shown(map: &HeaderMap) -> String {
    let lines: Vec<String> = map
        .iter()
        .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap_or("(not text)")))
        .collect();
    if lines.is_empty() {
        "no headers".to_string()
    } else {
        lines.join("; ")
    }
}

// ---- task 1: the key ---------------------------------------------------------------------------

/// A request: `"GET /articles?topic=world"`, with headers and a user.
fn req(line: &str, header_pairs: &[(&str, &str)], user: Option<u32>) -> Request {
    let (method, target) = line.split_once(' ').unwrap();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Request {
        method: Method::from_bytes(method.as_bytes()).unwrap(),
        path: path.to_string(),
        query: query.to_string(),
        headers: headers(header_pairs),
        user,
    }
}

/// A `GET` by a visitor who is not signed in and accepts gzip, as most browsers do.
fn get(target: &str) -> Request {
    req(
        &format!("GET {target}"),
        &[("accept-encoding", "gzip, br")],
        None,
    )
}

/// How a request reads in a message.
fn described(request: &Request) -> String {
    let query = if request.query.is_empty() {
        String::new()
    } else {
        format!("?{}", request.query)
    };
    let user = match request.user {
        Some(user) => format!("user {user}"),
        None => "no user".to_string(),
    };
    format!(
        "{} {}{query} ({}, {user})",
        request.method,
        request.path,
        shown(&request.headers)
    )
}

fn namespace() -> Namespace {
    quiet_repeated_todos();
    Namespace::new("http-caching")
}

/// Fails unless `a` and `b` get the same key: the API answers them alike.
fn assert_same_key(a: &Request, b: &Request, cause: &str) {
    let ns = namespace();
    let (key_a, key_b) = (cache_key(&ns, a), cache_key(&ns, b));
    assert_eq!(
        key_a,
        key_b,
        "cache_key of two requests the API answers alike:\n  {}\n  {}\nexpected one key, found \
         two:\n  {key_a}\n  {key_b}\n{cause}",
        described(a),
        described(b)
    );
}

/// Fails unless `a` and `b` get different keys: the API may answer them differently.
fn assert_apart(a: &Request, b: &Request, cause: &str) {
    let ns = namespace();
    let (key_a, key_b) = (cache_key(&ns, a), cache_key(&ns, b));
    assert_ne!(
        key_a,
        key_b,
        "cache_key of two requests the API may answer differently:\n  {}\n  {}\nexpected two \
         keys, found both at {key_a}: one would be served the other's response. {cause}",
        described(a),
        described(b)
    );
}

#[test]
fn task1_the_key_is_in_the_namespace_and_shows_the_path() {
    let ns = namespace();
    for target in ["/articles?topic=world", "/articles/42", "/me/feed"] {
        let request = req(&format!("GET {target}"), &[], Some(7));
        let key = cache_key(&ns, &request);
        assert!(
            key.starts_with(ns.prefix()),
            "cache_key of {}: expected a key starting with the namespace's prefix {:?}, found \
             {key:?}. Build it with namespace.key(...): the tests, and the clean-up after a run, \
             find a run's keys by that prefix",
            described(&request),
            ns.prefix()
        );
        assert!(
            key.contains(&request.path),
            "cache_key of {}: expected a key that shows the path {:?} (a readable prefix such \
             as `response:GET {}:` before the hash), found {key:?}",
            described(&request),
            request.path,
            request.path
        );
    }
}

#[test]
fn task1_the_path_and_every_parameter_change_the_key() {
    let cause = "Is the query left out of the key (the source's `request:{path}`), or one of \
                 the route's parameters?";
    assert_apart(
        &get("/articles/1"),
        &get("/articles/2"),
        "Is the path in the key?",
    );
    assert_apart(
        &get("/articles"),
        &get("/articles/1"),
        "Is the path in the key?",
    );
    assert_apart(&get("/articles"), &get("/articles?topic=world"), cause);
    assert_apart(
        &get("/articles?topic=world"),
        &get("/articles?topic=sport"),
        cause,
    );
    assert_apart(&get("/articles"), &get("/articles?page=2"), cause);
    assert_apart(&get("/articles"), &get("/articles?per_page=50"), cause);
    assert_apart(&get("/articles"), &get("/articles?tags=eu"), cause);
    assert_apart(
        &get("/articles?tags=eu"),
        &get("/articles?tags=trade"),
        cause,
    );
    assert_apart(
        &get("/articles?tags=eu"),
        &get("/articles?tags=eu,trade"),
        cause,
    );
    let feed = |query: &str| req(&format!("GET /me/feed{query}"), &[], Some(7));
    assert_apart(&feed(""), &feed("?page=2"), cause);
    assert_apart(&feed(""), &feed("?per_page=5"), cause);
}

#[test]
fn task1_no_topic_and_topic_all_are_different_queries() {
    assert_apart(
        &get("/articles"),
        &get("/articles?topic=all"),
        "No topic means every topic; `topic=all` filters on the topic named \"all\". A default \
         of \"all\" for a missing topic (`topic or 'all'`) makes them one key",
    );
    assert_apart(
        &get("/articles"),
        &get("/articles?topic="),
        "No topic means every topic; `topic=` filters on the topic whose name is empty. An empty \
         value taken for a missing one (`.filter(|v| !v.is_empty())`) makes them one key",
    );
}

#[test]
fn task1_the_defaults_share_a_key_with_their_absence() {
    let cause = "The API reads a missing page as 1 and a missing per_page as 20: fill the \
                 defaults in before building the key, or every default is cached twice";
    assert_same_key(&get("/articles"), &get("/articles?page=1"), cause);
    assert_same_key(&get("/articles"), &get("/articles?per_page=20"), cause);
    assert_same_key(
        &get("/articles?topic=world"),
        &get("/articles?topic=world&page=1&per_page=20"),
        cause,
    );
    let feed = |query: &str| req(&format!("GET /me/feed{query}"), &[], Some(7));
    assert_same_key(&feed(""), &feed("?page=1&per_page=20"), cause);
}

#[test]
fn task1_parameter_order_and_encoding_do_not_change_the_key() {
    let cause = "The raw query string is not the query: parse it (query_pairs decodes it) and \
                 build the key from the parameters, not from the text";
    assert_same_key(
        &get("/articles?topic=world&page=2"),
        &get("/articles?page=2&topic=world"),
        cause,
    );
    assert_same_key(
        &get("/articles?topic=world%20news"),
        &get("/articles?topic=world+news"),
        cause,
    );
    assert_same_key(
        &get("/articles?per_page=50&tags=eu&topic=world"),
        &get("/articles?tags=eu&topic=world&per_page=50"),
        cause,
    );
}

#[test]
fn task1_the_tags_are_a_set() {
    let cause = "The tags are a set: sort them (and drop repeats and empty items) before they \
                 go into the key; an order-dependent key caches one list many times";
    assert_same_key(
        &get("/articles?tags=trade,eu"),
        &get("/articles?tags=eu,trade"),
        cause,
    );
    assert_same_key(
        &get("/articles?tags=eu,trade"),
        &get("/articles?tags=eu,,trade,eu"),
        cause,
    );
    assert_same_key(
        &get("/articles?tags="),
        &get("/articles"),
        "`tags=` is no tag at all, the same as no `tags`",
    );
}

#[test]
fn task1_parameters_a_route_does_not_take_do_not_change_the_key() {
    let cause = "The API ignores a parameter its route does not take; keeping it in the key \
                 lets every cache-buster (`_=1700000000`) or tracking tag make a new entry";
    assert_same_key(
        &get("/articles?topic=world&utm_source=mail"),
        &get("/articles?topic=world"),
        cause,
    );
    assert_same_key(&get("/articles?_=1700000000"), &get("/articles"), cause);
    assert_same_key(&get("/articles/42?page=3"), &get("/articles/42"), cause);
    let feed = |query: &str| req(&format!("GET /me/feed{query}"), &[], Some(7));
    assert_same_key(
        &feed("?topic=world"),
        &feed(""),
        "/me/feed takes page and per_page only. The API ignores a parameter its route does not \
         take",
    );
}

#[test]
fn task1_the_last_of_a_repeated_parameter_counts() {
    let cause = "The API reads the last of a parameter given twice: `page=2&page=3` is page 3";
    assert_same_key(
        &get("/articles?page=2&page=3"),
        &get("/articles?page=3"),
        cause,
    );
    assert_apart(
        &get("/articles?page=2&page=3"),
        &get("/articles?page=2"),
        cause,
    );
    let tags = "The last `tags` counts, like the last of any parameter: `tags=eu&tags=trade` is \
                `tags=trade`, not the two lists run together";
    assert_same_key(
        &get("/articles?tags=eu&tags=trade"),
        &get("/articles?tags=trade"),
        tags,
    );
    assert_apart(
        &get("/articles?tags=eu&tags=trade"),
        &get("/articles?tags=eu,trade"),
        tags,
    );
}

#[test]
fn task1_the_method_changes_the_key() {
    assert_apart(
        &req("GET /articles", &[], None),
        &req("HEAD /articles", &[], None),
        "A HEAD's answer has no body: served to a GET, it is an empty page. Is the method in \
         the key?",
    );
}

#[test]
fn task1_only_whether_gzip_is_accepted_changes_the_key() {
    let with = |value: &str| req("GET /articles", &[("accept-encoding", value)], None);
    let without = req("GET /articles", &[], None);
    let gzip = with("gzip");
    let ignored = "A client that does not accept gzip must never get a compressed body, nor one \
                   that does an uncompressed one it did not need. Is Accept-Encoding in the key?";
    assert_apart(&gzip, &without, ignored);
    let normalise = "Only whether gzip is accepted changes the answer: reduce Accept-Encoding to \
                     gzip or identity, not the header's text";
    for same in ["gzip, br", "br;q=1.0, GZIP;q=0.5", "*", "br, *;q=0.1"] {
        assert_same_key(&gzip, &with(same), normalise);
    }
    let two_lines = req(
        "GET /articles",
        &[("accept-encoding", "br"), ("accept-encoding", "gzip")],
        None,
    );
    assert_same_key(&gzip, &two_lines, "Every line of Accept-Encoding counts");
    for refused in [
        "identity",
        "br",
        "gzip;q=0",
        "gzip;q=0.0, br",
        "gzip;q=0, *",
    ] {
        assert_same_key(
            &without,
            &with(refused),
            "A quality of zero refuses a coding (`gzip;q=0`), and `*` does not bring back a \
             coding refused by name; a header that lists neither gzip nor `*` accepts no gzip",
        );
    }
    for refused in ["gzip; q=0", "gzip;Q=0", "br, gzip ; Q = 0"] {
        assert_same_key(
            &without,
            &with(refused),
            "The quality's name is case-insensitive and spaces around `;` and `=` do not count: \
             `gzip; q=0` and `gzip;Q=0` refuse gzip like `gzip;q=0`. Is each parameter's name \
             trimmed, then compared ignoring case?",
        );
    }
}

#[test]
fn task1_a_personal_route_is_keyed_by_its_user() {
    let feed = |user: Option<u32>| req("GET /me/feed", &[], user);
    let cause = "/me/feed is personal: one key for every user serves one user's feed to the \
                 next. Is the user in the key on routes under /me/?";
    assert_apart(&feed(Some(7)), &feed(Some(8)), cause);
    assert_apart(&feed(Some(7)), &feed(None), cause);
    assert_apart(
        &req("GET /me/settings", &[], Some(7)),
        &req("GET /me/settings", &[], Some(8)),
        "Every path under /me/ is personal, not /me/feed alone",
    );
}

#[test]
fn task1_a_public_route_is_shared_by_every_user() {
    let cause = "A public page is the same for everyone: a user in its key caches it once per \
                 user, and the hit ratio collapses. Add the user on routes under /me/ only";
    for target in ["GET /articles?topic=world", "GET /articles/42"] {
        assert_same_key(
            &req(target, &[], Some(7)),
            &req(target, &[], Some(8)),
            cause,
        );
        assert_same_key(&req(target, &[], Some(7)), &req(target, &[], None), cause);
    }
}

#[test]
fn task1_values_with_separators_cannot_collide() {
    let cause = "Values joined with a separator collide when a value holds the separator: \
                 hash one structured value (a tuple, a map) with shared::keys::hashed instead";
    let pairs = [
        ("/articles?topic=a:1&page=2", "/articles?topic=a&page=1:2"),
        (
            "/articles?topic=a:2&per_page=30",
            "/articles?topic=a&page=2:30",
        ),
        (
            "/articles?page=2:20&per_page=1",
            "/articles?page=2&per_page=20:1",
        ),
        ("/articles?tags=a:b", "/articles?tags=a,b"),
        ("/articles?tags=a%7Cb", "/articles?tags=a,b"),
        (
            "/articles?tags=eu%26topic%3Dworld",
            "/articles?tags=eu&topic=world",
        ),
    ];
    for (a, b) in pairs {
        assert_apart(&get(a), &get(b), cause);
    }
    let feed = |query: &str, user| req(&format!("GET /me/feed{query}"), &[], user);
    assert_apart(&feed("?per_page=20:7", None), &feed("", Some(7)), cause);
    assert_apart(
        &feed("?per_page=20:gzip", None),
        &req("GET /me/feed", &[("accept-encoding", "gzip")], None),
        cause,
    );
}

// ---- tasks 2 and 3: the site --------------------------------------------------------------------

async fn site() -> Site {
    Site::from_env(PACKAGE).await
}

/// A private redis-server, for the tests that watch its commands or stop it.
async fn private_site() -> Site {
    Site::private(PACKAGE).await
}

/// One API instance's cache, with a connection of its own.
async fn cache_on(site: &Site) -> Cache {
    Cache {
        redis: site.instance().await.unwrap().conn,
    }
}

/// A key of the test's namespace.
fn key_of(site: &Site, name: &str) -> String {
    site.key(&format!("response:{name}"))
}

/// Every field of the entry at `key`, read by the test (`HGETALL`).
async fn fields_at(site: &Site, key: &str) -> HashMap<String, Vec<u8>> {
    site.conn()
        .hgetall(key)
        .await
        .expect("HGETALL of the entry, by the test: Redis answered with an error")
}

async fn pttl(site: &Site, key: &str) -> i64 {
    site.conn().pttl(key).await.unwrap()
}

async fn exists(site: &Site, key: &str) -> bool {
    site.conn().exists(key).await.unwrap()
}

// ---- task 2: what may be stored ----------------------------------------------------------------

const BODY: &[u8] = br#"{"articles":[{"id":42,"title":"Trade talks resume"}]}"#;

/// A response with `status` and `header_pairs`, and [`BODY`].
fn response(status: u16, header_pairs: &[(&str, &str)]) -> Response {
    Response {
        status: StatusCode::from_u16(status).unwrap(),
        headers: headers(header_pairs),
        body: BODY.to_vec(),
    }
}

/// A `200` with `Cache-Control: cache_control`, an ETag, `Vary: Accept-Encoding` and a gzip
/// body, as the API sends it.
fn ok(cache_control: &str) -> Response {
    response(
        200,
        &[
            ("cache-control", cache_control),
            ("etag", "\"v1\""),
            ("vary", "Accept-Encoding"),
            ("content-encoding", "gzip"),
        ],
    )
}

/// How a response reads in a message.
fn described_response(response: &Response) -> String {
    format!("{} ({})", response.status, shown(&response.headers))
}

/// Stores `response` (answered to a request with `request_headers`) at a fresh key and fails
/// unless nothing was stored.
async fn assert_not_stored(
    site: &Site,
    name: &str,
    request_headers: &[(&str, &str)],
    response: Response,
    cause: &str,
) {
    let key = key_of(site, name);
    let request_headers = headers(request_headers);
    let did = cache_on(site)
        .await
        .store(&key, &request_headers, &response)
        .await
        .expect("store(): Redis answered with an error");
    let written = exists(site, &key).await;
    assert!(
        did == Stored::Not && !written,
        "store() of {} to a request with {}: expected Stored::Not and no key, found {did:?}, \
         and the key {}. {cause}",
        described_response(&response),
        shown(&request_headers),
        if written { "exists" } else { "does not exist" }
    );
}

/// Stores `response` at `key` and fails unless it was stored for `ttl`, with a PTTL to match
/// (at most `ttl`, and at least `ttl` less 3 s for a slow machine).
async fn assert_stored_for(
    site: &Site,
    key: &str,
    request_headers: &[(&str, &str)],
    response: Response,
    ttl: Duration,
    cause: &str,
) {
    let request_headers = headers(request_headers);
    let did = cache_on(site)
        .await
        .store(key, &request_headers, &response)
        .await
        .expect("store(): Redis answered with an error");
    assert_eq!(
        did,
        Stored::For(ttl),
        "store() of {} to a request with {}: expected Stored::For({ttl:?}), found {did:?}. \
         {cause}",
        described_response(&response),
        shown(&request_headers)
    );
    let found = pttl(site, key).await;
    let high = ttl.as_millis() as i64;
    let low = high - 3_000;
    assert!(
        (low..=high).contains(&found),
        "PTTL of the entry store() wrote for {}: expected {low} to {high} ms (the TTL it \
         reported, {ttl:?}), found {found} ms{}",
        described_response(&response),
        match found {
            -1 => ": the entry has no TTL and never expires",
            -2 => ": there is no entry at the key",
            _ => ". Is the TTL in ms passed as seconds, or the other way round?",
        }
    );
}

fn text(fields: &HashMap<String, Vec<u8>>, name: &str) -> Option<String> {
    fields
        .get(name)
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
}

#[tokio::test]
async fn task2_a_200_is_stored_whole_for_its_max_age() {
    let site = site().await;
    let key = key_of(&site, "articles-world");
    let before = unix_millis();
    assert_stored_for(
        &site,
        &key,
        &[],
        ok("public, max-age=60"),
        Duration::from_secs(60),
        "A 200 with max-age=60 is stored for 60 s",
    )
    .await;
    let after = unix_millis();
    let fields = fields_at(&site, &key).await;
    for (name, expected) in [
        (field::STATUS, "200"),
        (field::ETAG, "\"v1\""),
        (field::CACHE_CONTROL, "public, max-age=60"),
        (field::VARY, "Accept-Encoding"),
        (field::CONTENT_ENCODING, "gzip"),
    ] {
        assert_eq!(
            text(&fields, name).as_deref(),
            Some(expected),
            "field {name:?} of the entry store() wrote: expected {expected:?}, found {:?} (the \
             entry's fields: {:?}). The fields are in `field`; task 3 and the tests read them",
            text(&fields, name),
            fields.keys().collect::<Vec<_>>()
        );
    }
    assert_eq!(
        fields.get(field::BODY).map(Vec::as_slice),
        Some(BODY),
        "field {:?} of the entry: expected the body's bytes as they are",
        field::BODY
    );
    let stored_at = text(&fields, field::STORED_AT).and_then(|t| t.parse::<u64>().ok());
    assert!(
        stored_at.is_some_and(|at| (before..=after).contains(&at)),
        "field {:?} of the entry: expected the time store() ran, in ms since 1970 (between \
         {before} and {after}), found {:?}. Use unix_millis()",
        field::STORED_AT,
        text(&fields, field::STORED_AT)
    );

    // Cache-Control on two lines, no ETag, no Vary, no Content-Encoding.
    let key = key_of(&site, "articles-sport");
    let plain = response(
        200,
        &[("cache-control", "public"), ("cache-control", "max-age=30")],
    );
    assert_stored_for(
        &site,
        &key,
        &[],
        plain,
        Duration::from_secs(30),
        "Every line of Cache-Control counts: `public` on one, `max-age=30` on the next",
    )
    .await;
    let fields = fields_at(&site, &key).await;
    for (name, expected) in [
        (field::CACHE_CONTROL, "public, max-age=30"),
        (field::ETAG, ""),
        (field::VARY, ""),
        (field::CONTENT_ENCODING, ""),
    ] {
        assert_eq!(
            text(&fields, name).as_deref(),
            Some(expected),
            "field {name:?} of the entry for a 200 with Cache-Control on two lines and no ETag, \
             Vary or Content-Encoding: expected {expected:?}, found {:?}. Lines are joined with \
             \", \"; a header the response did not have is an empty field",
            text(&fields, name)
        );
    }
}

#[tokio::test]
async fn task2_s_maxage_wins_over_max_age() {
    let site = site().await;
    assert_stored_for(
        &site,
        &key_of(&site, "shared"),
        &[],
        ok("public, max-age=600, s-maxage=30"),
        Duration::from_secs(30),
        "s-maxage is the freshness a shared cache must use; max-age is the browser's",
    )
    .await;
    assert_not_stored(
        &site,
        "shared-zero",
        &[],
        ok("public, max-age=60, s-maxage=0"),
        "s-maxage=0: a shared cache may not keep it at all, whatever max-age says",
    )
    .await;
    assert_not_stored(
        &site,
        "shared-soon",
        &[],
        ok("public, s-maxage=soon, max-age=60"),
        "s-maxage=soon is not a number: the response has an s-maxage, so max-age is not read, \
         and nothing is stored (RFC 9111 §4.2.1: invalid freshness information is stale). Is an \
         s-maxage that does not parse taken for a missing one?",
    )
    .await;
}

#[tokio::test]
async fn task2_without_a_ttl_nothing_is_stored() {
    let site = site().await;
    let cause = "With no s-maxage or max-age (or zero, or not a number) there is no TTL to \
                 give, and an entry without a TTL is never stored: no default TTL either";
    let no_cache_control = response(200, &[("etag", "\"v1\"")]);
    assert_not_stored(&site, "none", &[], no_cache_control, cause).await;
    assert_not_stored(&site, "public", &[], ok("public"), cause).await;
    assert_not_stored(&site, "zero", &[], ok("public, max-age=0"), cause).await;
    assert_not_stored(&site, "soon", &[], ok("public, max-age=soon"), cause).await;
    let expires = response(
        200,
        &[
            ("cache-control", "public"),
            ("expires", "Thu, 01 Dec 2050 16:00:00 GMT"),
        ],
    );
    assert_not_stored(&site, "expires", &[], expires, "Expires is not read").await;
}

#[tokio::test]
async fn task2_only_a_200_or_a_404_is_stored() {
    let site = site().await;
    for status in [
        201, 204, 206, 301, 302, 304, 400, 401, 403, 410, 429, 500, 502, 503,
    ] {
        let cause = if status >= 500 {
            "A stored error is served until it expires, long after the API recovered"
        } else if status == 400 {
            "A 400 says the request was bad; the next one may be fine"
        } else {
            "Only a 200 or a 404 is stored"
        };
        let mut answer = ok("public, max-age=60");
        answer.status = StatusCode::from_u16(status).unwrap();
        assert_not_stored(&site, &format!("status-{status}"), &[], answer, cause).await;
    }
}

#[tokio::test]
async fn task2_a_404_is_stored_for_five_seconds_at_most() {
    let site = site().await;
    let not_found = |cache_control: &str| response(404, &[("cache-control", cache_control)]);
    assert_stored_for(
        &site,
        &key_of(&site, "article-999"),
        &[],
        not_found("public, max-age=60"),
        NOT_FOUND_TTL_CAP,
        "A 404 is stored for NOT_FOUND_TTL_CAP at most, whatever its max-age: the article may \
         be published any second",
    )
    .await;
    assert_stored_for(
        &site,
        &key_of(&site, "article-998"),
        &[],
        not_found("public, max-age=2"),
        Duration::from_secs(2),
        "A 404 with a max-age under the cap keeps its own",
    )
    .await;
    assert_stored_for(
        &site,
        &key_of(&site, "article-997"),
        &[],
        not_found("public, s-maxage=60"),
        NOT_FOUND_TTL_CAP,
        "The cap holds whichever directive gave the TTL: a 404 with s-maxage=60 is stored for \
         NOT_FOUND_TTL_CAP too. Is the cap applied to max-age only?",
    )
    .await;
}

#[tokio::test]
async fn task2_private_no_store_no_cache_and_cookies_are_not_stored() {
    let site = site().await;
    let cases = [
        (
            "private, max-age=60",
            "private: the response is for one user",
        ),
        (
            "Private, max-age=60",
            "Directive names are case-insensitive",
        ),
        (
            "public, max-age=60, no-store",
            "no-store: no cache may keep it",
        ),
        (
            "no-cache, max-age=60",
            "no-cache: it must be checked with the API every time, which this cache never does",
        ),
        (
            "private=\"x-user\", max-age=60",
            "A directive counts with a value as without: `private=\"x-user\"` (RFC 9111's \
             qualified form) is `private`. Is a directive looked for only without a value?",
        ),
        (
            "no-cache=\"set-cookie\", max-age=60",
            "A directive counts with a value as without: `no-cache=\"set-cookie\"` (RFC 9111's \
             qualified form) is `no-cache`. Is a directive looked for only without a value?",
        ),
    ];
    for (i, (cache_control, cause)) in cases.into_iter().enumerate() {
        assert_not_stored(&site, &format!("case-{i}"), &[], ok(cache_control), cause).await;
    }
    let two_lines = response(
        200,
        &[
            ("cache-control", "max-age=60"),
            ("cache-control", "private"),
        ],
    );
    assert_not_stored(
        &site,
        "two-lines",
        &[],
        two_lines,
        "Every line of Cache-Control counts: `private` came on the second",
    )
    .await;
    let mut cookie = ok("public, max-age=60");
    cookie.headers.insert(
        "set-cookie",
        HeaderValue::from_static("session=abc; HttpOnly"),
    );
    assert_not_stored(
        &site,
        "cookie",
        &[],
        cookie,
        "A response that sets a cookie would hand that cookie to every visitor it is served to",
    )
    .await;
}

#[tokio::test]
async fn task2_a_response_that_varies_on_more_than_the_encoding_is_not_stored() {
    let site = site().await;
    let varying = |lines: &[&str]| {
        let mut answer = ok("public, max-age=60");
        answer.headers.remove("vary");
        for line in lines {
            answer
                .headers
                .append("vary", HeaderValue::from_str(line).unwrap());
        }
        answer
    };
    let cause = "The key keeps apart gzip or not, and nothing else: a response that varies on \
                 another header (or on `*`, anything) would be served to requests it does not fit";
    assert_not_stored(&site, "star", &[], varying(&["*"]), cause).await;
    assert_not_stored(
        &site,
        "language",
        &[],
        varying(&["Accept-Encoding, Accept-Language"]),
        cause,
    )
    .await;
    assert_not_stored(
        &site,
        "two-lines",
        &[],
        varying(&["Accept-Encoding", "Cookie"]),
        "Every line of Vary counts",
    )
    .await;
    assert_stored_for(
        &site,
        &key_of(&site, "encoding"),
        &[],
        varying(&["accept-encoding"]),
        Duration::from_secs(60),
        "Vary: accept-encoding (header names are case-insensitive) is what the key keeps apart",
    )
    .await;
}

#[tokio::test]
async fn task2_an_authorized_request_is_stored_only_when_the_response_allows_it() {
    let site = site().await;
    let authorized = [("authorization", "Bearer 7f3a9c")];
    assert_not_stored(
        &site,
        "authorized",
        &authorized,
        ok("max-age=60"),
        "A request with Authorization was answered for its user; without `public` or s-maxage \
         a shared cache may not keep the answer (RFC 9111 §3.5)",
    )
    .await;
    let mut not_found = ok("max-age=60");
    not_found.status = StatusCode::NOT_FOUND;
    assert_not_stored(
        &site,
        "authorized-404",
        &authorized,
        not_found,
        "A 404 to a request with Authorization was answered for its user as much as a 200; \
         without `public` or s-maxage a shared cache may not keep it (RFC 9111 §3.5)",
    )
    .await;
    assert_stored_for(
        &site,
        &key_of(&site, "authorized-public"),
        &authorized,
        ok("public, max-age=60"),
        Duration::from_secs(60),
        "`public` allows a shared cache to keep the answer to an authorized request",
    )
    .await;
    assert_stored_for(
        &site,
        &key_of(&site, "authorized-shared"),
        &authorized,
        ok("s-maxage=30"),
        Duration::from_secs(30),
        "s-maxage allows a shared cache to keep the answer to an authorized request",
    )
    .await;
    assert_stored_for(
        &site,
        &key_of(&site, "anonymous"),
        &[],
        ok("max-age=60"),
        Duration::from_secs(60),
        "Without Authorization, max-age alone is enough",
    )
    .await;
}

#[tokio::test]
async fn task2_the_entry_and_its_ttl_are_written_in_one_atomic_call() {
    let site = private_site().await;
    let cache = cache_on(&site).await;
    // A script is loaded the first time it runs; the load is not what the test looks at.
    cache
        .store(
            &key_of(&site, "warm-up"),
            &HeaderMap::new(),
            &ok("max-age=60"),
        )
        .await
        .expect("store(): Redis answered with an error");
    let mut watch = site.server().watch_commands().await.unwrap();
    let key = key_of(&site, "watched");
    let did = cache
        .store(&key, &HeaderMap::new(), &ok("max-age=60"))
        .await
        .expect("store(): Redis answered with an error");
    let sent = watch.since_last().await;
    assert_eq!(did, Stored::For(Duration::from_secs(60)));
    let one_script = !sent.is_empty() && sent.iter().all(|c| c.starts_with("EVAL"));
    let transaction = sent.first().map(String::as_str) == Some("MULTI")
        && sent.last().map(String::as_str) == Some("EXEC")
        && sent.iter().filter(|c| *c == "MULTI").count() == 1;
    assert!(
        one_script || transaction,
        "commands one store() sent: expected one script (EVAL/EVALSHA) or one MULTI ... EXEC, \
         and no other command, found {sent:?}. An HSET and then an EXPIRE in two calls leave, if \
         the instance dies between them, an entry that never expires; a DEL sent on its own \
         before the write is a second call too, and every request between the two misses: put \
         the DEL in the script or the transaction"
    );
}

#[tokio::test]
async fn task2_a_response_that_may_not_be_stored_sends_redis_nothing() {
    let site = private_site().await;
    let cache = cache_on(&site).await;
    let mut error = ok("public, max-age=60");
    error.status = StatusCode::INTERNAL_SERVER_ERROR;
    let mut cookie = ok("public, max-age=60");
    cookie
        .headers
        .insert("set-cookie", HeaderValue::from_static("session=abc"));
    for (name, response) in [
        ("error", error),
        ("private", ok("private, max-age=60")),
        ("cookie", cookie),
    ] {
        let mut watch = site.server().watch_commands().await.unwrap();
        let did = cache
            .store(&key_of(&site, name), &HeaderMap::new(), &response)
            .await
            .expect("store(): Redis answered with an error");
        let sent = watch.since_last().await;
        assert!(
            did == Stored::Not && sent.is_empty(),
            "store() of {}: expected Stored::Not and no command sent to Redis, found {did:?} \
             after {sent:?}. Decide before you write: a response written and deleted again is \
             served, in between, to the other instances' requests",
            described_response(&response)
        );
    }
}

#[tokio::test]
async fn task2_a_new_entry_replaces_the_old_one_whole() {
    let site = site().await;
    let key = key_of(&site, "article-42");
    let mut conn = site.conn();
    let _: () = conn
        .hset_multiple(&key, &[(field::ETAG, "\"old\""), ("legacy_field", "x")])
        .await
        .unwrap();
    let _: () = conn.pexpire(&key, 60_000).await.unwrap();
    let fresh = response(200, &[("cache-control", "public, max-age=60")]);
    assert_stored_for(&site, &key, &[], fresh, Duration::from_secs(60), "").await;
    let fields = fields_at(&site, &key).await;
    assert!(
        text(&fields, field::ETAG).as_deref() == Some("") && !fields.contains_key("legacy_field"),
        "the entry after store() of a 200 without an ETag over an older entry (etag \"old\", \
         and a field legacy_field): expected an empty etag and no legacy_field, found the \
         fields {:?} and etag {:?}. HSET over an old hash keeps its other fields: the old ETag \
         would then answer 304s for a body it does not belong to. Remove the old entry in the \
         same atomic call",
        fields.keys().collect::<Vec<_>>(),
        text(&fields, field::ETAG)
    );

    let key = key_of(&site, "article-43");
    let _: () = conn
        .set_ex(&key, "cached by an older version", 60)
        .await
        .unwrap();
    let did = cache_on(&site)
        .await
        .store(&key, &HeaderMap::new(), &ok("public, max-age=60"))
        .await;
    let kind: String = redis::cmd("TYPE")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        matches!(did, Ok(Stored::For(_))) && kind == "hash",
        "store() over a string an older version left at the key: expected Stored::For(60 s) \
         and a hash at the key, found {did:?} and a {kind}. An HSET on a string fails \
         (WRONGTYPE): remove what was there in the same atomic call"
    );
}

#[tokio::test]
async fn task2_a_redis_error_is_returned() {
    let site = private_site().await;
    let cache = cache_on(&site).await;
    site.server().stop();
    let bound = Duration::from_secs(10);
    let outcome = tokio::time::timeout(
        bound,
        cache.store(&key_of(&site, "down"), &HeaderMap::new(), &ok("max-age=60")),
    )
    .await;
    let Ok(answer) = outcome else {
        panic!(
            "store() with Redis stopped: expected an error, found no answer within {bound:?} \
             (a generous bound: this is a stall, not a speed test). Return the error at once"
        );
    };
    assert!(
        answer.is_err(),
        "store() with Redis stopped: expected the Redis error, found {answer:?}. A write that \
         failed is not a response that was not storable: return the error"
    );
}

// ---- task 3: conditional GETs ------------------------------------------------------------------

/// An entry as task 2 writes it (the fields of `field`), stored `ago_ms` before now.
struct Entry {
    status: &'static str,
    etag: &'static str,
    vary: &'static str,
    ago_ms: i64,
}

const CACHE_CONTROL: &str = "public, max-age=600";

impl Entry {
    /// A 200 with an ETag, stored 100.5 s ago.
    fn ok(etag: &'static str) -> Entry {
        Entry {
            status: "200",
            etag,
            vary: "Accept-Encoding",
            ago_ms: 100_500,
        }
    }

    fn fields(&self) -> Fields {
        self.fields_stored_at(unix_millis() as i64 - self.ago_ms)
    }

    /// The fields, stored at `stored_at` (ms since 1970) rather than `ago_ms` before now.
    fn fields_stored_at(&self, stored_at: i64) -> Fields {
        vec![
            (field::STATUS, self.status.into()),
            (field::ETAG, self.etag.into()),
            (field::CACHE_CONTROL, CACHE_CONTROL.into()),
            (field::VARY, self.vary.into()),
            (field::CONTENT_ENCODING, "gzip".into()),
            (field::STORED_AT, stored_at.to_string().into()),
            (field::BODY, BODY.to_vec()),
        ]
    }
}

/// A request's headers, as `headers` takes them.
type Pairs = &'static [(&'static str, &'static str)];

/// An entry's fields and their values, as `HSET` takes them.
type Fields = Vec<(&'static str, Vec<u8>)>;

/// Writes an entry of `fields` at `key`, with a TTL of 60 s, replacing what was there.
async fn put(site: &Site, key: &str, fields: &[(&str, Vec<u8>)]) {
    let mut conn = site.conn();
    let _: () = conn.del(key).await.unwrap();
    let _: () = conn.hset_multiple(key, fields).await.unwrap();
    let _: () = conn.pexpire(key, 60_000).await.unwrap();
}

/// `answer()` for the entry `entry` and a request with `request_headers`.
async fn answered(site: &Site, name: &str, entry: &Entry, request: &[(&str, &str)]) -> Answer {
    let key = key_of(site, name);
    put(site, &key, &entry.fields()).await;
    cache_on(site)
        .await
        .answer(&key, &headers(request))
        .await
        .expect("answer(): Redis answered with an error")
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The answer's `Age` header, as a number of seconds.
fn age(response: &Response) -> Option<i64> {
    header(response, "age").and_then(|age| age.parse().ok())
}

/// Fails unless `answer` is a 304 with the entry's headers (its ETag `etag`) and an Age of 100 s or
/// a little more.
fn assert_not_modified(answer: &Answer, situation: &str, etag: Option<&str>, cause: &str) {
    let Answer::NotModified(response) = answer else {
        panic!("answer() to {situation}: expected Answer::NotModified, found {answer:?}. {cause}");
    };
    assert!(
        response.status == StatusCode::NOT_MODIFIED && response.body.is_empty(),
        "answer() to {situation}: expected a 304 without a body, found {} with {} bytes",
        response.status,
        response.body.len()
    );
    for (name, expected) in [
        ("etag", etag),
        ("cache-control", Some(CACHE_CONTROL)),
        ("vary", Some("Accept-Encoding")),
    ] {
        assert_eq!(
            header(response, name),
            expected,
            "header {name} of the 304 answering {situation}: expected {expected:?}, found {:?}. \
             A 304 repeats the ETag, Cache-Control and Vary the full answer would carry, so the \
             client's copy keeps its freshness and its variants (RFC 9110 §15.4.5)",
            header(response, name)
        );
    }
    let found = age(response);
    assert!(
        found.is_some_and(|age| (100..=105).contains(&age)),
        "header Age of the 304 answering {situation}, the entry stored 100.5 s ago: expected \
         100 to 105 (whole seconds since stored_at), found {:?}",
        header(response, "age")
    );
    let mut expected = vec!["age", "cache-control", "vary"];
    expected.extend(etag.map(|_| "etag"));
    assert_only_headers(response, &expected, situation);
}

/// Fails unless the 304 `response` carries one line of each header of `expected` and no other.
fn assert_only_headers(response: &Response, expected: &[&str], situation: &str) {
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    let mut found: Vec<&str> = response
        .headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    found.sort_unstable();
    assert_eq!(
        found,
        expected,
        "the headers of the 304 answering {situation}: expected exactly {expected:?}, found \
         {found:?} ({}). A 304 carries the ETag, Cache-Control and Vary the full answer would, \
         and Age, and nothing else: no Content-Encoding, there is no body to decode. Are the \
         full answer's headers built before the 304 is returned?",
        shown(&response.headers)
    );
}

#[tokio::test]
async fn task3_a_matching_etag_is_answered_304_with_its_headers_and_age() {
    let site = site().await;
    let answer = answered(
        &site,
        "a",
        &Entry::ok("\"v1\""),
        &[("if-none-match", "\"v1\"")],
    )
    .await;
    assert_not_modified(
        &answer,
        "If-None-Match: \"v1\" for an entry with ETag \"v1\"",
        Some("\"v1\""),
        "The client holds the current copy",
    );
    let Answer::NotModified(response) = &answer else {
        unreachable!()
    };
    assert_eq!(
        header(response, "etag"),
        Some("\"v1\""),
        "header ETag of the 304: expected the entry's \"v1\""
    );
    let mut no_vary = Entry::ok("\"v1\"");
    no_vary.vary = "";
    let answer = answered(&site, "b", &no_vary, &[("if-none-match", "\"v1\"")]).await;
    let Answer::NotModified(response) = &answer else {
        panic!(
            "answer() to If-None-Match: \"v1\" for an entry with ETag \"v1\" and no Vary: \
                expected Answer::NotModified, found {answer:?}"
        );
    };
    assert!(
        !response.headers.contains_key("vary"),
        "headers of a 304 for an entry with an empty vary: expected no Vary, found {:?}. A \
         header the entry does not have is left out, not sent empty",
        response.headers.get("vary")
    );
    assert_only_headers(
        response,
        &["age", "cache-control", "etag"],
        "If-None-Match: \"v1\" for an entry with ETag \"v1\" and no Vary",
    );
}

#[tokio::test]
async fn task3_a_304_does_not_read_the_body() {
    let site = private_site().await;
    let key = key_of(&site, "big");
    let mut fields = Entry::ok("\"v1\"").fields();
    fields.retain(|(name, _)| *name != field::BODY);
    fields.push((field::BODY, vec![b'x'; 50_000]));
    put(&site, &key, &fields).await;
    let cache = cache_on(&site).await;
    // Which commands reached the server, with their arguments, those scripts ran included.
    let mut watch = site.server().watch_commands().await.unwrap();
    let answer = cache
        .answer(&key, &headers(&[("if-none-match", "\"v1\"")]))
        .await
        .expect("answer(): Redis answered with an error");
    let sent = watch.since_last_in_full().await;
    assert!(
        matches!(answer, Answer::NotModified(_)),
        "answer() to If-None-Match: \"v1\" for an entry with ETag \"v1\": expected \
         Answer::NotModified, found {answer:?}"
    );
    let body = field::BODY;
    let reads_the_body = |command: &&shared::command_watch::Sent| {
        ["HGETALL", "HVALS", "HSCAN", "HRANDFIELD", "DUMP", "SORT"].contains(&command.name.as_str())
            || command.args.iter().any(|argument| argument == body)
    };
    let culprits: Vec<_> = sent.iter().filter(reads_the_body).collect();
    assert!(
        culprits.is_empty(),
        "commands answering a matching If-None-Match (a 304) sent: expected none that reads \
         the body (no HGETALL, no argument {body}), found {culprits:?} among {sent:?}. A 304 \
         needs the small fields only: HMGET them, and read the body only for a full answer"
    );
}

#[tokio::test]
async fn task3_etags_are_compared_weakly() {
    let site = site().await;
    let weak = "If-None-Match uses the weak comparison (RFC 9110 §8.8.3.2): W/\"v1\" and \
                \"v1\" match, whichever side carries the W/";
    for (name, stored, sent) in [
        ("a", "W/\"v1\"", "\"v1\""),
        ("b", "\"v1\"", "W/\"v1\""),
        ("c", "W/\"v1\"", "W/\"v1\""),
    ] {
        let answer = answered(&site, name, &Entry::ok(stored), &[("if-none-match", sent)]).await;
        let situation = format!("If-None-Match: {sent}, stored ETag {stored}");
        assert_not_modified(&answer, &situation, Some(stored), weak);
    }
    let answer = answered(
        &site,
        "d",
        &Entry::ok("\"v1\""),
        &[("if-none-match", "\"v2\"")],
    )
    .await;
    assert!(
        matches!(answer, Answer::Hit(_)),
        "answer() to If-None-Match: \"v2\", stored ETag \"v1\": expected Answer::Hit (the \
         client's copy is old), found {answer:?}"
    );
    let answer = answered(
        &site,
        "e",
        &Entry::ok("\"ABC\""),
        &[("if-none-match", "\"abc\"")],
    )
    .await;
    assert!(
        matches!(answer, Answer::Hit(_)),
        "answer() to If-None-Match: \"abc\", stored ETag \"ABC\": expected Answer::Hit, found \
         {answer:?}. Past the W/, tags are compared byte for byte: \"abc\" and \"ABC\" are two \
         versions. Is the comparison case-insensitive?"
    );
}

#[tokio::test]
async fn task3_every_tag_of_if_none_match_counts() {
    let site = site().await;
    let cause = "If-None-Match is a list: the client may hold several copies, and any match \
                 answers 304";
    let answer = answered(
        &site,
        "a",
        &Entry::ok("\"v3\""),
        &[("if-none-match", "\"v1\", \"v2\",W/\"v3\"")],
    )
    .await;
    assert_not_modified(
        &answer,
        "If-None-Match: \"v1\", \"v2\",W/\"v3\", stored \"v3\"",
        Some("\"v3\""),
        cause,
    );
    let answer = answered(
        &site,
        "b",
        &Entry::ok("\"v2\""),
        &[("if-none-match", "\"v1\""), ("if-none-match", "\"v2\"")],
    )
    .await;
    assert_not_modified(
        &answer,
        "If-None-Match on two lines, \"v1\" then \"v2\", stored \"v2\"",
        Some("\"v2\""),
        "Every line of If-None-Match counts",
    );
    let answer = answered(
        &site,
        "c",
        &Entry::ok("\"v2\""),
        &[("if-none-match", "\"v1\",  \"v2\" ")],
    )
    .await;
    assert_not_modified(
        &answer,
        "If-None-Match: \"v1\",  \"v2\"  (spaces around the second tag), stored \"v2\"",
        Some("\"v2\""),
        "Spaces around the commas are not part of a tag: trim each item before comparing it",
    );
}

#[tokio::test]
async fn task3_a_star_matches_any_stored_200() {
    let site = site().await;
    let cause = "If-None-Match: * matches any current representation";
    let answer = answered(&site, "a", &Entry::ok("\"v1\""), &[("if-none-match", "*")]).await;
    assert_not_modified(
        &answer,
        "If-None-Match: * for an entry with ETag \"v1\"",
        Some("\"v1\""),
        cause,
    );
    let answer = answered(&site, "b", &Entry::ok(""), &[("if-none-match", "*")]).await;
    assert_not_modified(
        &answer,
        "If-None-Match: * for an entry without an ETag",
        None,
        cause,
    );
    for (name, entry, etag) in [
        ("c", Entry::ok("\"v1\""), Some("\"v1\"")),
        ("d", Entry::ok(""), None),
    ] {
        let answer = answered(&site, name, &entry, &[("if-none-match", "\"v0\", *")]).await;
        assert_not_modified(
            &answer,
            &format!("If-None-Match: \"v0\", * for an entry with ETag {etag:?}"),
            etag,
            "`*` matches wherever it stands in the list, not only alone on its line",
        );
    }
}

/// Fails unless `answer` is the entry's response in full, with its headers and an Age of `age`.
fn assert_full(answer: &Answer, situation: &str, status: u16, etag: Option<&str>, cause: &str) {
    let Answer::Hit(response) = answer else {
        panic!("answer() to {situation}: expected Answer::Hit, found {answer:?}. {cause}");
    };
    assert!(
        response.status.as_u16() == status && response.body == BODY,
        "answer() to {situation}: expected the stored {status} and its body ({} bytes), found \
         {} with {} bytes",
        BODY.len(),
        response.status,
        response.body.len()
    );
    for (name, expected) in [
        ("etag", etag),
        ("cache-control", Some(CACHE_CONTROL)),
        ("vary", Some("Accept-Encoding")),
        ("content-encoding", Some("gzip")),
    ] {
        assert_eq!(
            header(response, name),
            expected,
            "header {name} of the full answer to {situation}: expected {expected:?}, found {:?} \
             (a header the entry has is repeated; one it has empty is left out)",
            header(response, name)
        );
    }
    assert!(
        age(response).is_some_and(|age| (100..=105).contains(&age)),
        "header Age of the full answer to {situation}, the entry stored 100.5 s ago: expected \
         100 to 105, found {:?}",
        header(response, "age")
    );
}

#[tokio::test]
async fn task3_otherwise_the_stored_response_is_answered_in_full() {
    let site = site().await;
    let answer = answered(&site, "a", &Entry::ok("\"v1\""), &[]).await;
    assert_full(
        &answer,
        "a request without If-None-Match",
        200,
        Some("\"v1\""),
        "",
    );
    let answer = answered(
        &site,
        "b",
        &Entry::ok("\"v1\""),
        &[("if-none-match", "\"v0\"")],
    )
    .await;
    assert_full(
        &answer,
        "If-None-Match: \"v0\", stored \"v1\"",
        200,
        Some("\"v1\""),
        "No tag matches: the client's copy is old",
    );
    let answer = answered(&site, "c", &Entry::ok(""), &[("if-none-match", "\"\"")]).await;
    assert_full(
        &answer,
        "If-None-Match: \"\" for an entry without an ETag",
        200,
        None,
        "An entry without an ETag matches no tag (only `*`)",
    );
    for (name, tags) in [("e", "\"a\","), ("f", ""), ("g", " , ")] {
        let answer = answered(&site, name, &Entry::ok(""), &[("if-none-match", tags)]).await;
        assert_full(
            &answer,
            &format!("If-None-Match: {tags:?} for an entry without an ETag"),
            200,
            None,
            "An empty item of If-None-Match is no tag, and the entry's empty ETag is no tag \
             either: they do not match. Are empty items skipped, and an empty ETag never \
             compared?",
        );
    }

    let mut future = Entry::ok("\"v1\"");
    future.ago_ms = -30_000;
    let answer = answered(&site, "d", &future, &[]).await;
    let Answer::Hit(response) = &answer else {
        panic!(
            "answer() for an entry whose stored_at is 30 s ahead (another instance's clock \
             runs fast): expected Answer::Hit, found {answer:?}"
        );
    };
    assert_eq!(
        header(response, "age"),
        Some("0"),
        "header Age for an entry stored_at 30 s ahead of this clock: expected \"0\" (never \
         negative), found {:?}",
        header(response, "age")
    );
}

#[tokio::test]
async fn task3_a_stored_404_is_answered_in_full_whatever_if_none_match_says() {
    let site = site().await;
    let not_found = || Entry {
        status: "404",
        etag: "\"gone\"",
        vary: "Accept-Encoding",
        ago_ms: 100_500,
    };
    let cause = "A precondition never changes a response that is not a 2xx (RFC 9110 §13.2.1): a \
                 304 would tell the client its copy of an article is current when there is no \
                 article";
    for tags in ["*", "\"gone\""] {
        let answer = answered(&site, "a", &not_found(), &[("if-none-match", tags)]).await;
        assert_full(
            &answer,
            &format!("If-None-Match: {tags} for a stored 404 with ETag \"gone\""),
            404,
            Some("\"gone\""),
            cause,
        );
    }
}

#[tokio::test]
async fn task3_age_is_counted_in_milliseconds_and_rounded_down() {
    let site = site().await;
    let cache = cache_on(&site).await;
    // Three rounds, so that one answered across a second's edge cannot hide a mistake.
    for round in 0..3 {
        let now = unix_millis() as i64;
        let late_in_the_second = now - 100_600;
        let before_the_edge = now - 100_300;
        let cases = [
            (
                "stored 100.6 s before",
                late_in_the_second,
                "100.6 s is an Age of 100: whole seconds, rounded down, not to the nearest",
            ),
            (
                "stored some 100.3 s before, at a stored_at that ends in 999 ms",
                before_the_edge - before_the_edge.rem_euclid(1000) - 1,
                "Subtract the milliseconds, then divide: now/1000 - stored_at/1000 counts a \
                 second that has not passed whenever now's milliseconds are below stored_at's",
            ),
        ];
        for (i, (when, stored_at, cause)) in cases.into_iter().enumerate() {
            let key = key_of(&site, &format!("age-{round}-{i}"));
            put(
                &site,
                &key,
                &Entry::ok("\"v1\"").fields_stored_at(stored_at),
            )
            .await;
            let before = unix_millis() as i64;
            let answer = cache
                .answer(&key, &HeaderMap::new())
                .await
                .expect("answer(): Redis answered with an error");
            let after = unix_millis() as i64;
            let Answer::Hit(response) = &answer else {
                panic!(
                    "answer() without If-None-Match for an entry {when}: expected \
                     Answer::Hit, found {answer:?}"
                );
            };
            // answer() read the clock between `before` and `after`.
            let (low, high) = ((before - stored_at) / 1000, (after - stored_at) / 1000);
            let expected = if low == high {
                low.to_string()
            } else {
                format!("{low} or {high}")
            };
            assert!(
                age(response).is_some_and(|age| (low..=high).contains(&age)),
                "header Age of the full answer for an entry {when} (stored_at {stored_at}, \
                 answered between {before} and {after} ms since 1970): expected {expected}, \
                 found {:?}. {cause}",
                header(response, "age")
            );
        }
    }
}

#[tokio::test]
async fn task3_a_body_is_answered_byte_for_byte() {
    let site = site().await;
    // The start of a gzip stream: not UTF-8.
    let gzip: &[u8] = &[0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe];
    let mut fields = Entry::ok("\"v1\"").fields();
    fields.retain(|(name, _)| *name != field::BODY);
    fields.push((field::BODY, gzip.to_vec()));
    for (i, request) in [&[][..], &[("if-none-match", "\"v0\"")][..]]
        .into_iter()
        .enumerate()
    {
        let key = key_of(&site, &format!("gzip-{i}"));
        put(&site, &key, &fields).await;
        let answer = cache_on(&site).await.answer(&key, &headers(request)).await;
        let found = match &answer {
            Ok(Answer::Hit(response)) if response.body == gzip => continue,
            Ok(Answer::Hit(response)) => format!("a Hit with the body {:?}", response.body),
            other => format!("{other:?}"),
        };
        panic!(
            "answer() to a request with {} for an entry whose body is the gzip bytes {gzip:?} \
             (not UTF-8): expected Ok(Answer::Hit) with those bytes, found {found}. The body is \
             bytes, any bytes: read it as a Vec<u8>, never as a String",
            shown(&headers(request))
        );
    }
}

#[tokio::test]
async fn task3_a_full_answer_reads_its_entry_in_one_command() {
    let site = private_site().await;
    let key = key_of(&site, "article-42");
    put(&site, &key, &Entry::ok("\"v1\"").fields()).await;
    let cache = cache_on(&site).await;
    let every_field = [
        field::STATUS,
        field::ETAG,
        field::CACHE_CONTROL,
        field::VARY,
        field::CONTENT_ENCODING,
        field::STORED_AT,
        field::BODY,
    ];
    // Which commands reached the server, with their arguments, those scripts ran included.
    let mut watch = site.server().watch_commands().await.unwrap();
    for request in [&[][..], &[("if-none-match", "\"v0\"")][..]] {
        let answer = cache
            .answer(&key, &headers(request))
            .await
            .expect("answer(): Redis answered with an error");
        let sent = watch.since_last_in_full().await;
        let situation = format!(
            "a request with {} for an entry with ETag \"v1\"",
            shown(&headers(request))
        );
        assert!(
            matches!(answer, Answer::Hit(_)),
            "answer() to {situation}: expected Answer::Hit, found {answer:?}"
        );
        // A script's own commands are in `sent`: the script that carries the names is not a read.
        let scripts = [
            "EVAL",
            "EVALSHA",
            "EVAL_RO",
            "EVALSHA_RO",
            "FCALL",
            "FCALL_RO",
        ];
        let reads_the_body = |command: &&shared::command_watch::Sent| {
            !scripts.contains(&command.name.as_str())
                && (command.name == "HGETALL" || command.args.iter().any(|a| a == field::BODY))
        };
        let whole = |command: &&shared::command_watch::Sent| {
            command.name == "HGETALL"
                || (command.name == "HMGET"
                    && every_field
                        .iter()
                        .all(|name| command.args.iter().any(|a| a == name)))
        };
        let body_reads: Vec<_> = sent.iter().filter(reads_the_body).collect();
        assert!(
            !body_reads.is_empty() && body_reads.iter().all(whole),
            "commands answering {situation} in full: expected the body read by one command with \
             the status and headers (HGETALL, or one HMGET of every field: {every_field:?}), \
             found {body_reads:?} reading it, among {sent:?}. Read in two calls (an HMGET of the \
             small fields, then an HGET of the body), the entry may be replaced by another \
             instance between them, and the answer pairs one entry's ETag with another's body"
        );
    }
}

#[tokio::test]
async fn task3_no_entry_is_a_miss() {
    let site = site().await;
    for request in [&[][..], &[("if-none-match", "*")][..]] {
        let answer = cache_on(&site)
            .await
            .answer(&key_of(&site, "nothing"), &headers(request))
            .await
            .expect("answer(): Redis answered with an error");
        assert_eq!(
            answer,
            Answer::Miss,
            "answer() with no entry at the key, to a request with {}: expected Answer::Miss",
            shown(&headers(request))
        );
    }
}

#[tokio::test]
async fn task3_a_corrupt_or_partial_entry_is_a_miss() {
    let site = site().await;
    let good = Entry::ok("\"v1\"").fields();
    let without =
        |name: &str| -> Fields { good.iter().filter(|(n, _)| *n != name).cloned().collect() };
    let with = |name: &str, value: &[u8]| -> Fields {
        good.iter()
            .map(|(n, v)| {
                (
                    *n,
                    if *n == name {
                        value.to_vec()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect()
    };
    let cases: Vec<(&str, Fields, Pairs)> = vec![
        ("no status", without(field::STATUS), &[]),
        ("no stored_at", without(field::STORED_AT), &[]),
        ("no cache_control", without(field::CACHE_CONTROL), &[]),
        ("no body (a full answer)", without(field::BODY), &[]),
        ("status \"OK\"", with(field::STATUS, b"OK"), &[]),
        (
            "stored_at \"yesterday\"",
            with(field::STORED_AT, b"yesterday"),
            &[],
        ),
        (
            "stored_at not UTF-8",
            with(field::STORED_AT, b"\xff\xfe"),
            &[],
        ),
        ("etag not UTF-8", with(field::ETAG, b"\"\xff\""), &[]),
        (
            "stored_at \"yesterday\", If-None-Match: *",
            with(field::STORED_AT, b"yesterday"),
            &[("if-none-match", "*")],
        ),
    ];
    for (i, (what, fields, request)) in cases.into_iter().enumerate() {
        let key = key_of(&site, &format!("corrupt-{i}"));
        put(&site, &key, &fields).await;
        assert_miss(&site, &key, request, &format!("an entry with {what}")).await;
    }
    let key = key_of(&site, "a-string");
    let _: () = site
        .conn()
        .set_ex(&key, "cached by an older version", 60)
        .await
        .unwrap();
    assert_miss(&site, &key, &[], "a string at the key (not a hash)").await;
}

/// Fails unless `answer()` of `key` is a miss, neither an error nor a panic.
async fn assert_miss(site: &Site, key: &str, request: &[(&str, &str)], what: &str) {
    let cache = cache_on(site).await;
    let (key, request_headers) = (key.to_string(), headers(request));
    let outcome = tokio::spawn(async move { cache.answer(&key, &request_headers).await }).await;
    match outcome {
        Ok(Ok(Answer::Miss)) => {}
        Ok(found) => panic!(
            "answer() for {what}, request with {}: expected Ok(Answer::Miss), found {found:?}. \
             A corrupt or partial entry is a miss, never an error: the API answers, and the \
             next store() overwrites it",
            shown(&headers(request))
        ),
        Err(panic) => panic!(
            "answer() for {what}, request with {}: expected Ok(Answer::Miss), found a panic \
             ({panic}). Parse every field; one that is missing or does not parse makes a miss",
            shown(&headers(request))
        ),
    }
}

#[tokio::test]
async fn task3_a_redis_error_is_returned() {
    let site = private_site().await;
    let cache = cache_on(&site).await;
    site.server().stop();
    let bound = Duration::from_secs(10);
    let outcome = tokio::time::timeout(
        bound,
        cache.answer(
            &key_of(&site, "down"),
            &headers(&[("if-none-match", "\"v1\"")]),
        ),
    )
    .await;
    let Ok(answer) = outcome else {
        panic!(
            "answer() with Redis stopped: expected an error, found no answer within {bound:?} \
             (a generous bound: this is a stall, not a speed test). Return the error at once"
        );
    };
    assert!(
        answer.is_err(),
        "answer() with Redis stopped: expected the Redis error, found {answer:?}. A cache that \
         is down is not an empty cache: return the error, and let the caller decide"
    );
}
