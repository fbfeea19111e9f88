//! The suite shared by the exercise and the solution: `super::subject` is whichever crate runs it.
//!
//! Each test gets its own namespace; Redis is `REDIS_URL`, or a private cluster with
//! `REDIS_CLUSTER=1`, else a private server, and the test that watches which commands reach Redis
//! always starts a private one. Every call takes the time as `now_ms`, so the tests move a
//! session's clock by minutes without waiting: they start at [`T0`] and step forward. Only the
//! TTLs in Redis run on the real clock; a test bounds each by the real time that passed between
//! the call that set it and the moment the test read it, so a slow machine fails nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use redis::AsyncCommands;
use shared::exercise::{Site, joined};

use super::subject::{COOKIE_NAME, LoginError, Session, SessionStore, Timeouts, Users, id_digest};

const PACKAGE: &str = "sessions-exercise";

/// The tests' first instant (ms since 1970): 14 November 2023, 22:13:20 UTC.
const T0: u64 = 1_700_000_000_000;

/// A minute idle, 100 s absolute, a refresh at most every 5 s: the timeouts most tests use
/// (small and distinct, so that a TTL tells which deadline it was computed from).
const IDLE: u64 = 60_000;
const ABSOLUTE: u64 = 100_000;
const REFRESH: u64 = 5_000;

fn timeouts(idle_ms: u64, absolute_ms: u64, refresh_after_ms: u64) -> Timeouts {
    Timeouts {
        idle_ms,
        absolute_ms,
        refresh_after_ms,
    }
}

fn usual() -> Timeouts {
    timeouts(IDLE, ABSOLUTE, REFRESH)
}

const ALICE_PASSWORD: &str = "correct horse battery staple";
const BOB_PASSWORD: &str = "hunter2 is not a password";

async fn site() -> Site {
    Site::from_env(PACKAGE).await
}

/// One service instance on the site: a connection of its own, the test's namespace.
async fn store(site: &Site, timeouts: Timeouts) -> SessionStore {
    let instance = site.instance().await.unwrap();
    SessionStore {
        redis: instance.conn,
        namespace: instance.namespace,
        timeouts,
    }
}

/// What a test reads in Redis, on the site's own connection.
trait Look {
    async fn pttl(&self, key: &str) -> i64;
    async fn exists(&self, key: &str) -> bool;
    async fn record(&self, key: &str) -> BTreeMap<String, String>;
    async fn index(&self, key: &str) -> BTreeSet<String>;
    /// Every key of the test's namespace.
    async fn all_keys(&self) -> BTreeSet<String>;
}

impl Look for Site {
    async fn pttl(&self, key: &str) -> i64 {
        self.conn().pttl(key).await.unwrap()
    }

    async fn exists(&self, key: &str) -> bool {
        self.conn().exists(key).await.unwrap()
    }

    async fn record(&self, key: &str) -> BTreeMap<String, String> {
        self.conn().hgetall(key).await.unwrap_or_else(|error| {
            panic!("HGETALL {key}, the session's record: expected a hash, Redis said {error}")
        })
    }

    async fn index(&self, key: &str) -> BTreeSet<String> {
        self.conn().smembers(key).await.unwrap_or_else(|error| {
            panic!("SMEMBERS {key}, a user's index: expected a set, Redis said {error}")
        })
    }

    async fn all_keys(&self) -> BTreeSet<String> {
        let keys = self.namespace().keys(&mut self.conn()).await.unwrap();
        keys.into_iter().collect()
    }
}

/// Fails unless a TTL is what a call should have set, `expected_ms`: at most that, and at least
/// that less the real time that passed since `sent`, the instant before the call was made (and
/// 2 ms of rounding).
fn assert_ttl(what: &str, found: i64, expected_ms: u64, sent: Instant, cause: &str) {
    let high = expected_ms as i64;
    let low = high - sent.elapsed().as_millis() as i64 - 2;
    assert!(
        (low..=high).contains(&found),
        "{what}: expected a PTTL of {low} to {high} ms (set to {expected_ms} ms by the call, less \
         the time since), found {found} ms (-1: no TTL, -2: no key). {cause}"
    );
}

async fn load(store: &SessionStore, id: &str, now_ms: u64) -> Option<Session> {
    store
        .load(id, now_ms)
        .await
        .expect("load: Redis answered with an error")
}

async fn create(store: &SessionStore, user: &str, now_ms: u64) -> Session {
    store
        .create(user, now_ms)
        .await
        .expect("create: Redis answered with an error")
}

/// `T0 + offset`, as the tests write the time.
fn at(offset_ms: u64) -> u64 {
    T0 + offset_ms
}

fn after(now_ms: u64) -> String {
    format!("T0 + {} ms", now_ms - T0)
}

/// Fails unless the session `id` is over for good: `load` refuses it, its record is gone and its
/// user's index no longer lists it.
async fn assert_ended(
    site: &Site,
    store: &SessionStore,
    id: &str,
    user: &str,
    now_ms: u64,
    why: &str,
) {
    let found = load(store, id, now_ms).await;
    assert!(
        found.is_none(),
        "load at {} of a session that {why}: expected None, found {found:?}",
        after(now_ms)
    );
    let key = store.session_key(id);
    assert!(
        !site.exists(&key).await,
        "the record of a session that {why}, at session_key: expected it deleted, found it still \
         in Redis ({:?}). An ended session is deleted at once, not left to its TTL",
        site.record(&key).await
    );
    let index = site.index(&store.user_index_key(user)).await;
    assert!(
        !index.contains(&id_digest(id)),
        "{user}'s index after a session that {why}: expected its digest gone, found it still \
         listed among {} entries. Remove the entry (SREM) whenever a session ends",
        index.len()
    );
}

// ---- task 1a: a session nobody can guess -------------------------------------------------------

#[tokio::test]
async fn task1_ids_are_at_least_128_random_bits_and_new_every_time() {
    let site = site().await;
    let store = store(&site, usual()).await;
    let mut ids = Vec::new();
    for _ in 0..64 {
        ids.push(create(&store, "alice", T0).await.secret_id().to_string());
    }
    for id in &ids {
        assert!(
            id.len() >= 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "a session ID: expected 32 or more lowercase hex digits (16 random bytes or more), \
             found {:?} ({} characters). A u64 gives 16 digits, 64 bits: too few to resist \
             guessing at scale",
            id,
            id.len()
        );
    }
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        distinct.len(),
        ids.len(),
        "64 sessions created for alice at the same now_ms: expected 64 different IDs, found {}. \
         An ID made from the user, the time or a generator seeded with them repeats",
        distinct.len()
    );
    for bit in 0..128 {
        let ones = ids
            .iter()
            .filter(|id| {
                let digit = u8::from_str_radix(&id[bit / 4..bit / 4 + 1], 16).unwrap();
                digit & (8 >> (bit % 4)) != 0
            })
            .count();
        assert!(
            ones > 0 && ones < ids.len(),
            "bit {bit} (in hex digit {}) of 64 fresh session IDs: expected it to be 1 in some and \
             0 in others, as a random bit is (all equal: 1 chance in 2^63), found it {} in all 64. \
             The first 128 bits must all be random: a number padded with zeros, a time or a \
             counter leaves bits that never change (first IDs: {:?})",
            bit / 4,
            if ones == 0 { 0 } else { 1 },
            &ids[..3]
        );
    }
}

#[tokio::test]
async fn task1_a_session_is_a_hash_under_its_digest_with_a_ttl_to_its_first_deadline() {
    let site = site().await;
    let store = store(&site, usual()).await;
    let created = Instant::now();
    let session = create(&store, "alice", T0).await;
    let id = session.secret_id().to_string();
    let key = store.session_key(&id);
    assert_ttl(
        "the PTTL of a new session's key (idle 60 s, absolute 100 s)",
        site.pttl(&key).await,
        IDLE,
        created,
        "The record expires at the session's first deadline, min(idle_ms, absolute_ms), and gets \
         its TTL as it is written: a record without one never leaves Redis",
    );
    let record = site.record(&key).await;
    let expected: BTreeMap<String, String> = [
        ("user", "alice".to_string()),
        ("created_ms", T0.to_string()),
        ("refreshed_ms", T0.to_string()),
        ("elevated", "0".to_string()),
    ]
    .into_iter()
    .map(|(field, value)| (field.to_string(), value))
    .collect();
    assert_eq!(
        record, expected,
        "the record at session_key(id) of alice's session created at T0: expected the fields \
         user, created_ms, refreshed_ms (decimal ms) and elevated (0), and no other, found \
         {record:?}"
    );
    assert_eq!(
        (
            session.user.as_str(),
            session.created_ms,
            session.refreshed_ms,
            session.elevated
        ),
        ("alice", T0, T0, false),
        "the session create returned at T0 (user, created_ms, refreshed_ms, elevated): \
         expected alice, T0, T0, false, found {session:?}"
    );
    let index_key = store.user_index_key("alice");
    let index = site.index(&index_key).await;
    assert!(
        index.contains(&id_digest(&id)),
        "alice's index (user_index_key) after create: expected the session's id_digest in it, \
         found {index:?}. Without it, \"log out everywhere\" cannot find the session"
    );
    assert_ttl(
        "the PTTL of alice's index right after a session was added",
        site.pttl(&index_key).await,
        ABSOLUTE,
        created,
        "The index's TTL is set to absolute_ms every time a session is added: never shorter \
         than a session it lists, and never without one (an index without a TTL outlives every \
         session in it)",
    );

    let mut found_id = Vec::new();
    for key in site.all_keys().await {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut site.conn())
            .await
            .unwrap();
        let values: Vec<String> = match kind.as_str() {
            "hash" => site
                .record(&key)
                .await
                .into_iter()
                .flat_map(|(f, v)| [f, v])
                .collect(),
            "set" => site.index(&key).await.into_iter().collect(),
            "string" => vec![site.conn().get(&key).await.unwrap()],
            _ => Vec::new(),
        };
        if key.contains(&id) || values.iter().any(|value| value.contains(&id)) {
            found_id.push(key);
        }
    }
    assert!(
        found_id.is_empty(),
        "the keys and values in Redis after create: expected the raw session ID in none (only its \
         digest), found it in or under {found_id:?}. Whoever reads Redis (a replica, a backup, \
         a MONITOR) could log in with it"
    );

    let shorter = self::store(&site, timeouts(IDLE, 30_000, REFRESH)).await;
    let created = Instant::now();
    let bob = create(&shorter, "bob", T0).await;
    assert_ttl(
        "the PTTL of a new session's key with idle 60 s and absolute 30 s",
        site.pttl(&shorter.session_key(bob.secret_id())).await,
        30_000,
        created,
        "The key expires at the sooner of the two deadlines, min(idle_ms, absolute_ms)",
    );
}

// ---- task 1b: a session that ends on time ------------------------------------------------------

#[tokio::test]
async fn task1_load_finds_a_session_and_nothing_for_an_unknown_id() {
    let site = site().await;
    let store = store(&site, usual()).await;
    let session = create(&store, "alice", T0).await;
    let found = load(&store, session.secret_id(), at(1_000)).await;
    let Some(found) = found else {
        panic!(
            "load at T0 + 1 s of alice's session created at T0 (idle 60 s): expected the session, \
             found None"
        );
    };
    assert_eq!(
        (
            found.secret_id(),
            found.user.as_str(),
            found.created_ms,
            found.refreshed_ms,
            found.elevated
        ),
        (session.secret_id(), "alice", T0, T0, false),
        "the session load found at T0 + 1 s (id, user, created_ms, refreshed_ms, elevated): \
         expected what create returned, found {found:?}"
    );
    for unknown in ["00112233445566778899aabbccddeeff", ""] {
        let found = load(&store, unknown, at(1_000)).await;
        assert!(
            found.is_none(),
            "load of the ID {unknown:?}, which no session has: expected None, found {found:?}"
        );
    }
}

#[tokio::test]
async fn task1_every_load_asks_redis() {
    let site = site().await;
    let store = store(&site, usual()).await;
    let session = create(&store, "alice", T0).await;
    let id = session.secret_id();
    assert!(
        load(&store, id, at(1_000)).await.is_some(),
        "load at T0 + 1 s of a session created at T0: expected the session, found None"
    );
    let _: i64 = site.conn().del(store.session_key(id)).await.unwrap();
    let found = load(&store, id, at(2_000)).await;
    assert!(
        found.is_none(),
        "load of a session whose record the test deleted from Redis (as another instance's \
         logout does) after this store had loaded it: expected None, found {found:?}. A copy \
         kept in the process (a map, an L1 cache) keeps a logged-out session alive on this \
         instance"
    );
}

#[tokio::test]
async fn task1_a_session_ends_at_its_idle_deadline() {
    let site = site().await;
    let store = store(&site, timeouts(IDLE, 1_000_000, REFRESH)).await;
    let a = create(&store, "alice", T0).await;
    let b = create(&store, "alice", T0).await;
    let found = load(&store, a.secret_id(), at(IDLE - 1)).await;
    assert!(
        found.is_some(),
        "load at T0 + 59.999 s of a session created at T0 (idle 60 s, absolute 1000 s): \
         expected the session, found None. Valid while now_ms < refreshed_ms + idle_ms"
    );
    assert_ended(
        &site,
        &store,
        b.secret_id(),
        "alice",
        at(IDLE),
        "was idle for 60 s (idle 60 s), loaded at its idle deadline",
    )
    .await;
}

#[tokio::test]
async fn task1_the_idle_deadline_runs_from_the_last_refresh() {
    let site = site().await;
    let store = store(&site, timeouts(IDLE, 1_000_000, REFRESH)).await;
    let id = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let key = store.session_key(id);
    let _: () = site
        .conn()
        .hset_multiple(
            &key,
            &[
                ("user", "alice".to_string()),
                ("created_ms", T0.to_string()),
                ("refreshed_ms", at(50_000).to_string()),
                ("elevated", "0".to_string()),
            ],
        )
        .await
        .unwrap();
    let _: bool = site.conn().pexpire(&key, 60_000).await.unwrap();
    let found = load(&store, id, at(70_000)).await;
    assert!(
        found.is_some(),
        "load at T0 + 70 s of a record created at T0 and refreshed at T0 + 50 s (idle 60 s): \
         expected the session (idle until T0 + 110 s), found None. The idle deadline is \
         refreshed_ms + idle_ms, not created_ms + idle_ms"
    );
}

#[tokio::test]
async fn task1_a_session_ends_at_its_absolute_deadline_however_busy() {
    let site = site().await;
    let store = store(&site, timeouts(IDLE, 30_000, REFRESH)).await;
    let a = create(&store, "alice", T0).await;
    let b = create(&store, "alice", T0).await;
    let found = load(&store, a.secret_id(), at(29_999)).await;
    assert!(
        found.is_some(),
        "load at T0 + 29.999 s of a session created at T0 (idle 60 s, absolute 30 s): \
         expected the session, found None. Valid while now_ms < created_ms + absolute_ms"
    );
    assert_ended(
        &site,
        &store,
        b.secret_id(),
        "alice",
        at(30_000),
        "was created 30 s ago (absolute 30 s), loaded at its absolute deadline",
    )
    .await;

    // A busy session: refreshed a moment ago, still past its absolute deadline.
    let store = self::store(&site, usual()).await;
    let id = "fedcba98765432100123456789abcdef";
    let key = store.session_key(id);
    let _: () = site
        .conn()
        .hset_multiple(
            &key,
            &[
                ("user", "alice".to_string()),
                ("created_ms", T0.to_string()),
                ("refreshed_ms", at(ABSOLUTE - 1_000).to_string()),
                ("elevated", "0".to_string()),
            ],
        )
        .await
        .unwrap();
    let _: bool = site.conn().pexpire(&key, 60_000).await.unwrap();
    let found = load(&store, id, at(ABSOLUTE)).await;
    assert!(
        found.is_none(),
        "load at T0 + 100 s of a record created at T0 and refreshed at T0 + 99 s (idle 60 s, \
         absolute 100 s): expected None, found {found:?}. The absolute deadline, created_ms + \
         absolute_ms, ends a session however recently it was used: a stolen cookie in steady \
         use must die too"
    );
}

#[tokio::test]
async fn task1_a_corrupt_record_is_no_session() {
    let site = site().await;
    let store = Arc::new(store(&site, usual()).await);
    let good = |refreshed: &str| {
        vec![
            ("user", "alice".to_string()),
            ("created_ms", T0.to_string()),
            ("refreshed_ms", refreshed.to_string()),
            ("elevated", "0".to_string()),
        ]
    };
    let mut missing = good(&T0.to_string());
    missing.retain(|(field, _)| *field != "created_ms");
    // What the record is, its ID, and its fields (None: a string instead of a hash).
    type Case = (
        &'static str,
        &'static str,
        Option<Vec<(&'static str, String)>>,
    );
    let cases: Vec<Case> = vec![
        (
            "refreshed_ms is \"yesterday\"",
            "11111111111111111111111111111111",
            Some(good("yesterday")),
        ),
        (
            "created_ms is missing",
            "22222222222222222222222222222222",
            Some(missing),
        ),
        (
            "a string, not a hash",
            "33333333333333333333333333333333",
            None,
        ),
    ];
    for (what, id, fields) in cases {
        let key = store.session_key(id);
        match fields {
            Some(fields) => {
                let _: () = site.conn().hset_multiple(&key, &fields).await.unwrap();
            }
            None => {
                let _: () = site.conn().set(&key, "alice").await.unwrap();
            }
        }
        let _: bool = site.conn().pexpire(&key, 60_000).await.unwrap();
        let call = {
            let store = store.clone();
            tokio::spawn(async move { store.load(id, at(1_000)).await })
        };
        let found = match call.await {
            Ok(found) => found,
            Err(error) if error.is_panic() => panic!(
                "load of a corrupt record ({what}): expected Ok(None), found a panic. A record \
                 that does not parse is no session; unwrap() on it lets one bad key crash every \
                 request that carries its cookie"
            ),
            Err(error) => panic!("load of a corrupt record ({what}) was cancelled: {error}"),
        };
        assert!(
            matches!(found, Ok(None)),
            "load of a corrupt record ({what}): expected Ok(None), found {found:?}. A record \
             create did not write is no session, not an error (a WRONGTYPE answer included)"
        );
    }
}

// ---- task 1c and 1d: the ID printed nowhere, and the cookie ------------------------------------

#[tokio::test]
async fn task1_debug_shows_the_session_but_never_its_id() {
    let site = site().await;
    let store = store(&site, usual()).await;
    let session = create(&store, "alice", T0).await;
    let id = session.secret_id();
    for printed in [format!("{session:?}"), format!("{session:#?}")] {
        // Any 6 consecutive digits of the ID (24 bits): a prefix "to correlate log lines" is
        // part of the secret. (Nothing else in the output has 6 hex digits in a row but the
        // decimal times, which a random ID matches with odds of about one in a million.)
        let leaked = (0..=id.len() - 6).find(|&at| printed.contains(&id[at..at + 6]));
        assert!(
            leaked.is_none(),
            "a session printed with Debug: expected no part of its ID ({id}), found its digits \
             from {leaked:?} on in {printed:?}. #[derive(Debug)] prints every field, and a \
             prefix narrows a guess: whoever reads the logs must learn nothing of the ID"
        );
        assert!(
            printed.contains("alice") && printed.contains(&T0.to_string()),
            "a session printed with Debug: expected its user (alice) and times ({T0}) in it, \
             found {printed:?}"
        );
    }
}

/// A `Set-Cookie` value's name, value and attributes (names lower-cased).
fn parse_cookie(header: &str) -> (String, String, BTreeMap<String, String>) {
    let mut parts = header.split(';').map(str::trim);
    let (name, value) = parts
        .next()
        .and_then(|pair| pair.split_once('='))
        .unwrap_or_else(|| {
            panic!("a Set-Cookie value: expected `name=value; ...`, found {header:?}")
        });
    let attributes = parts
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('=') {
            Some((name, value)) => (name.trim().to_ascii_lowercase(), value.trim().to_string()),
            None => (part.to_ascii_lowercase(), String::new()),
        })
        .collect();
    (name.to_string(), value.to_string(), attributes)
}

#[tokio::test]
async fn task1_the_cookie_is_httponly_samesite_and_secure_when_asked() {
    let site = site().await;
    let store = store(&site, usual()).await;
    let session = create(&store, "alice", T0).await;
    // 10.5 s in: 89.5 s to the absolute deadline, and the idle timeout (60 s) is shorter.
    let header = store.set_cookie(&session, at(10_500), true);
    let (name, value, attributes) = parse_cookie(&header);
    assert_eq!(
        (name.as_str(), value.as_str()),
        (COOKIE_NAME, session.secret_id()),
        "the cookie's name and value in {header:?}: expected {COOKIE_NAME} and the session's ID"
    );
    for (attribute, expected, why) in [
        ("httponly", "", "scripts in the page must not read it"),
        (
            "samesite",
            "lax",
            "other sites' forms must not post with it",
        ),
        ("path", "/", "the whole site uses the session"),
        ("secure", "", "asked for with secure: true (HTTPS only)"),
        (
            "max-age",
            "89",
            "the whole seconds left until the absolute deadline, not the idle timeout (60 s, the \
             server's to enforce): created at T0, absolute 100 s, now T0 + 10.5 s",
        ),
    ] {
        let found = attributes.get(attribute).map(|v| v.to_ascii_lowercase());
        assert_eq!(
            found.as_deref(),
            Some(expected),
            "attribute {attribute} of the cookie {header:?}: expected {expected:?} ({why}), found \
             {found:?}"
        );
    }
    assert!(
        !attributes.contains_key("domain"),
        "the cookie {header:?}: expected no Domain attribute (it would send the cookie to every \
         subdomain too)"
    );
    let header = store.set_cookie(&session, at(10_500), false);
    let (_, _, attributes) = parse_cookie(&header);
    assert!(
        !attributes.contains_key("secure")
            && attributes.contains_key("httponly")
            && attributes
                .get("samesite")
                .is_some_and(|v| v.eq_ignore_ascii_case("lax")),
        "the cookie with secure: false: expected HttpOnly and SameSite=Lax but no Secure (a \
         browser drops a Secure cookie set over plain HTTP), found {header:?}"
    );
    let header = store.set_cookie(&session, at(ABSOLUTE + 5_000), true);
    let (_, _, attributes) = parse_cookie(&header);
    assert_eq!(
        attributes.get("max-age").map(String::as_str),
        Some("0"),
        "Max-Age of the cookie 5 s past the session's absolute deadline: expected 0, found \
         {header:?}"
    );
}

// ---- task 2: a sliding expiry without a write per request --------------------------------------

/// Commands that change nothing. Anything else a load sends (or its script runs) is a write.
const READS: &[&str] = &[
    "HMGET",
    "HGETALL",
    "HGET",
    "HEXISTS",
    "HLEN",
    "HKEYS",
    "HVALS",
    "GET",
    "MGET",
    "EXISTS",
    "TYPE",
    "PTTL",
    "TTL",
    "PEXPIRETIME",
    "EXPIRETIME",
    "SMEMBERS",
    "SISMEMBER",
    "SMISMEMBER",
    "SCARD",
    "EVAL",
    "EVALSHA",
    "EVAL_RO",
    "EVALSHA_RO",
    "SCRIPT",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "PING",
    "ECHO",
    "CLIENT",
    "HELLO",
    "SELECT",
    "TIME",
    "COMMAND",
    "INFO",
];

#[tokio::test]
async fn task2_loads_write_only_once_the_threshold_has_passed() {
    let site = Site::private(PACKAGE).await;
    let store = store(&site, timeouts(IDLE, 1_000_000, REFRESH)).await;
    // A first refresh on another session, so that any script is loaded before the watch starts.
    let warm_up = create(&store, "bob", T0).await;
    load(&store, warm_up.secret_id(), at(REFRESH + 1_000)).await;
    let session = create(&store, "alice", T0).await;
    let id = session.secret_id();
    let key = store.session_key(id);
    let mut watch = site.server().watch_commands().await.unwrap();
    watch.since_last_in_full().await;

    let mut wrote_at = Vec::new();
    let mut refreshed_ms = T0;
    for second in 1..=12 {
        let now = at(second * 1_000);
        let loaded = Instant::now();
        let found = load(&store, id, now).await;
        let writes: Vec<String> = watch
            .since_last_in_full()
            .await
            .into_iter()
            .filter(|sent| !READS.contains(&sent.name.as_str()))
            .map(|sent| format!("{} {}", sent.name, sent.args.join(" ")))
            .collect();
        let Some(found) = found else {
            panic!(
                "load at {} of a session created at T0 (idle 60 s, refresh after 5 s), loaded \
                 every second: expected the session, found None",
                after(now)
            );
        };
        let refresh = now - refreshed_ms > REFRESH;
        if !writes.is_empty() {
            wrote_at.push(second);
        }
        if refresh {
            refreshed_ms = now;
            assert_ttl(
                &format!("the session's PTTL after the refresh at {}", after(now)),
                site.pttl(&key).await,
                IDLE,
                loaded,
                "A refresh sets the TTL to the idle timeout again (capped at the absolute \
                 deadline, 1000 s away here)",
            );
            let stored = site.record(&key).await;
            assert_eq!(
                stored.get("refreshed_ms").map(String::as_str),
                Some(now.to_string().as_str()),
                "the record's refreshed_ms after the refresh at {}: expected {now}, found \
                 {stored:?}. The idle deadline is computed from the stored refreshed_ms",
                after(now)
            );
        }
        assert_eq!(
            found.refreshed_ms,
            refreshed_ms,
            "refreshed_ms of the session load returned at {}: expected {} (refreshed when more \
             than 5 s have passed since the last refresh), found {found:?}",
            after(now),
            after(refreshed_ms)
        );
        watch.since_last_in_full().await; // the test's own reads
        if !refresh && !writes.is_empty() {
            panic!(
                "the commands a load at {} sent, {} s after the last refresh (refresh after \
                 5 s): expected no write, found {writes:?}. A load within the threshold \
                 must not change Redis: a TTL pushed on every request is a write per request",
                after(now),
                (now - refreshed_ms) / 1_000
            );
        }
    }
    assert_eq!(
        wrote_at,
        vec![6, 12],
        "the seconds after T0 at which loads (one a second, from 1 s to 12 s) wrote to Redis, \
         refresh after 5 s: expected 6 and 12 (more than 5 s since the last refresh: T0, then \
         T0 + 6 s), found {wrote_at:?}. Measured from refreshed_ms, strictly more than \
         refresh_after_ms?"
    );
}

#[tokio::test]
async fn task2_a_refresh_moves_the_idle_deadline_and_nothing_else_does() {
    let site = site().await;
    let store = store(&site, timeouts(IDLE, 1_000_000, REFRESH)).await;
    let a = create(&store, "alice", T0).await;
    let found = load(&store, a.secret_id(), at(40_000)).await;
    assert!(
        found.as_ref().is_some_and(|s| s.refreshed_ms == at(40_000)),
        "load at T0 + 40 s of a session created at T0 (idle 60 s, refresh after 5 s): expected \
         the session, refreshed at T0 + 40 s (refreshed_ms {}), found {found:?}",
        at(40_000)
    );
    let found = load(&store, a.secret_id(), at(99_000)).await;
    assert!(
        found.is_some(),
        "load at T0 + 99 s of a session refreshed at T0 + 40 s (idle 60 s): expected the \
         session (idle until T0 + 100 s), found None. Was the refresh written to the record's \
         refreshed_ms, and is the idle deadline computed from it?"
    );
    let found = load(&store, a.secret_id(), at(99_000 + IDLE)).await;
    assert!(
        found.is_none(),
        "load at T0 + 159 s of a session last refreshed at T0 + 99 s (idle 60 s): expected None \
         (idle deadline reached), found {found:?}"
    );

    let b = create(&store, "alice", T0).await;
    load(&store, b.secret_id(), at(4_000)).await;
    let found = load(&store, b.secret_id(), at(IDLE)).await;
    assert!(
        found.is_none(),
        "load at T0 + 60 s of a session created at T0 and loaded only at T0 + 4 s (idle 60 s, \
         refresh after 5 s): expected None, found {found:?}. A load within the threshold \
         writes nothing, so it does not move the idle deadline either"
    );
}

#[tokio::test]
async fn task2_a_refresh_never_passes_the_absolute_deadline() {
    let site = site().await;
    let store = store(&site, usual()).await;
    let session = create(&store, "alice", T0).await;
    let id = session.secret_id();
    let key = store.session_key(id);
    // A second session in the same steady use, for the load just before the deadline: that load
    // refreshes its TTL to the 1 ms left, so it is not the one whose end is checked below (its
    // record may be gone by expiry before the next call, and then nobody can remove its entry).
    let twin = create(&store, "alice", T0).await;
    for second in [20, 40, 60, 80] {
        let now = at(second * 1_000);
        assert!(load(&store, twin.secret_id(), now).await.is_some());
        let loaded = Instant::now();
        let found = load(&store, id, now).await;
        assert!(
            found.is_some(),
            "load at {} of a session created at T0 and loaded every 20 s (idle 60 s, absolute \
             100 s): expected the session, found None",
            after(now)
        );
        let expected = IDLE.min(T0 + ABSOLUTE - now);
        assert_ttl(
            &format!("the session's PTTL after the refresh at {}", after(now)),
            site.pttl(&key).await,
            expected,
            loaded,
            "A refresh sets the TTL to min(now + idle, created + absolute) - now: never past the \
             absolute deadline",
        );
    }
    assert!(
        load(&store, twin.secret_id(), at(ABSOLUTE - 1))
            .await
            .is_some(),
        "load at T0 + 99.999 s of a session in steady use (absolute 100 s): expected the session"
    );
    assert_ended(
        &site,
        &store,
        id,
        "alice",
        at(ABSOLUTE),
        "was in steady use for 100 s (absolute 100 s), loaded at its absolute deadline",
    )
    .await;
}

// ---- task 3: login, rotation and logout --------------------------------------------------------

async fn login(
    store: &SessionStore,
    name: &str,
    password: &str,
    previous: Option<&str>,
    now_ms: u64,
) -> Result<Session, LoginError> {
    store
        .login(&Users::demo(), name, password, previous, now_ms)
        .await
}

#[tokio::test]
async fn task3_login_checks_the_password_and_writes_nothing_when_it_fails() {
    let site = site().await;
    let store = store(&site, usual()).await;
    let session = login(&store, "alice", ALICE_PASSWORD, None, T0)
        .await
        .unwrap_or_else(|error| {
            panic!("alice's login with her password: expected a session, found {error:?}")
        });
    assert!(
        session.user == "alice" && session.created_ms == T0 && !session.elevated,
        "alice's session from a login at T0: expected user alice, created_ms T0, not elevated, \
         found {session:?}"
    );
    assert!(
        load(&store, session.secret_id(), at(1_000)).await.is_some(),
        "load at T0 + 1 s of the session alice's login returned: expected the session, found None"
    );
    let before = site.all_keys().await;
    for (name, password, what) in [
        (
            "alice",
            "correct horse battery stapler",
            "alice with a wrong password",
        ),
        ("alice", "", "alice with an empty password"),
        ("bob", ALICE_PASSWORD, "bob with alice's password"),
        ("mallory", ALICE_PASSWORD, "mallory, who has no account"),
    ] {
        // The browser sends its session cookie with the form, as `previous`.
        let found = login(&store, name, password, Some(session.secret_id()), at(2_000)).await;
        assert!(
            matches!(found, Err(LoginError::BadCredentials)),
            "the login of {what}: expected Err(BadCredentials), found {found:?}. Verify the \
             password against the user's Argon2 hash (PasswordHash::new, verify_password)"
        );
    }
    let after_failures = site.all_keys().await;
    assert_eq!(
        after_failures, before,
        "the keys in Redis after four failed logins, each sent with alice's session as \
         `previous`: expected the same keys as before, found others. A failed login writes \
         nothing: check the password before ending the previous session"
    );
    assert!(
        load(&store, session.secret_id(), at(2_500)).await.is_some(),
        "alice's session after four failed logins sent with it as `previous`: expected it still \
         valid, found None. A failed login ends nothing"
    );
    let bob = login(&store, "bob", BOB_PASSWORD, None, at(3_000)).await;
    assert!(
        bob.as_ref().is_ok_and(|s| s.user == "bob"),
        "bob's login with his password: expected his session, found {bob:?}"
    );
}

#[tokio::test]
async fn task3_login_gives_a_new_id_and_ends_the_previous_session() {
    let site = site().await;
    let store = store(&site, usual()).await;
    let planted = "0123456789abcdef0123456789abcdef";
    let alices = create(&store, "alice", T0).await;
    let bobs = create(&store, "bob", T0).await;
    for (previous, owner, what) in [
        (
            alices.secret_id(),
            Some("alice"),
            "a valid session of alice's own",
        ),
        (bobs.secret_id(), Some("bob"), "a valid session of bob's"),
        (
            planted,
            None,
            "an ID an attacker chose, which is no session",
        ),
    ] {
        let session = login(&store, "alice", ALICE_PASSWORD, Some(previous), at(1_000))
            .await
            .unwrap_or_else(|error| {
                panic!("alice's login with her password: expected a session, found {error:?}")
            });
        assert_ne!(
            session.secret_id(),
            previous,
            "the ID of alice's new session after a login whose browser sent {what}: expected a \
             new ID, found the previous one. Whoever knew the previous ID (planted it in the \
             browser: session fixation) is now logged in as alice"
        );
        assert!(
            load(&store, session.secret_id(), at(2_000)).await.is_some(),
            "load of the session alice's login returned: expected the session, found None"
        );
        let index = site.index(&store.user_index_key("alice")).await;
        assert!(
            index.contains(&id_digest(session.secret_id())),
            "alice's index after her login: expected the new session's digest in it, found \
             {index:?}"
        );
        if let Some(owner) = owner {
            assert_ended(
                &site,
                &store,
                previous,
                owner,
                at(2_000),
                &format!("the browser sent with alice's login ({what})"),
            )
            .await;
        } else {
            assert!(
                load(&store, planted, at(2_000)).await.is_none(),
                "load of the ID an attacker planted, after alice's login: expected None"
            );
        }
    }
}

#[tokio::test]
async fn task3_elevate_rotates_the_id_and_keeps_the_absolute_deadline() {
    let site = site().await;
    let store = store(&site, usual()).await;
    let old = create(&store, "alice", T0).await;
    let now = at(50_000);
    let rotated = Instant::now();
    let elevated = store
        .elevate(old.secret_id(), now)
        .await
        .expect("elevate: Redis answered with an error");
    let Some(elevated) = elevated else {
        panic!(
            "elevate at T0 + 50 s of a session created at T0 (idle 60 s, absolute 100 s, loaded \
             never): expected the elevated session, found None"
        );
    };
    assert_ne!(
        elevated.secret_id(),
        old.secret_id(),
        "the ID of the elevated session: expected a new one, found the old one. A privilege \
         change rotates the ID, or whoever stole the old one gains the new privilege"
    );
    assert_eq!(
        (
            elevated.user.as_str(),
            elevated.created_ms,
            elevated.refreshed_ms,
            elevated.elevated
        ),
        ("alice", T0, now, true),
        "the elevated session (user, created_ms, refreshed_ms, elevated): expected alice, T0 \
         (the absolute deadline does not move), T0 + 50 s, true; found {elevated:?}"
    );
    let key = store.session_key(elevated.secret_id());
    assert_ttl(
        "the PTTL of the elevated session's key, elevated at T0 + 50 s (created at T0, idle \
         60 s, absolute 100 s)",
        site.pttl(&key).await,
        ABSOLUTE - 50_000,
        rotated,
        "The new key's TTL is min(now + idle, created + absolute) - now: a rotation keeps the \
         absolute deadline",
    );
    let record = site.record(&key).await;
    assert_eq!(
        (
            record.get("created_ms").map(String::as_str),
            record.get("elevated").map(String::as_str)
        ),
        (Some(T0.to_string().as_str()), Some("1")),
        "the elevated session's record: expected created_ms {T0} and elevated 1, found {record:?}"
    );
    let index_key = store.user_index_key("alice");
    assert!(
        site.index(&index_key)
            .await
            .contains(&id_digest(elevated.secret_id())),
        "alice's index after elevate: expected the elevated session's digest in it (or \"log out \
         everywhere\" misses it)"
    );
    assert_ttl(
        "the PTTL of alice's index after elevate",
        site.pttl(&index_key).await,
        ABSOLUTE,
        rotated,
        "The index's TTL is set to absolute_ms whenever a session is added",
    );
    assert_ended(
        &site,
        &store,
        old.secret_id(),
        "alice",
        at(50_001),
        "was elevated (rotated) at T0 + 50 s",
    )
    .await;
    let found = load(&store, elevated.secret_id(), at(50_001)).await;
    assert!(
        found.as_ref().is_some_and(|s| s.elevated),
        "load of the elevated session at T0 + 50.001 s: expected it, elevated, found {found:?}"
    );
    load(&store, elevated.secret_id(), at(90_000)).await;
    let found = load(&store, elevated.secret_id(), at(ABSOLUTE)).await;
    assert!(
        found.is_none(),
        "load at T0 + 100 s of a session created at T0 and elevated at T0 + 50 s (absolute \
         100 s): expected None, found {found:?}. A rotation keeps created_ms: restarting the \
         absolute clock lets a session live for ever, one rotation at a time"
    );

    let before = site.all_keys().await;
    let found = store
        .elevate("89abcdef0123456789abcdef01234567", at(1_000))
        .await
        .expect("elevate: Redis answered with an error");
    assert!(
        found.is_none() && site.all_keys().await == before,
        "elevate of an ID that is no session: expected None and nothing written, found {found:?}"
    );
}

#[tokio::test]
async fn task3_logout_ends_the_session_and_its_index_entry() {
    let site = site().await;
    let store = store(&site, usual()).await;
    let a = create(&store, "alice", T0).await;
    let b = create(&store, "alice", T0).await;
    let ended = store
        .logout(a.secret_id())
        .await
        .expect("logout: Redis error");
    assert!(
        ended,
        "logout of a valid session: expected true (there was one), found false"
    );
    assert_ended(
        &site,
        &store,
        a.secret_id(),
        "alice",
        at(1_000),
        "was logged out",
    )
    .await;
    assert!(
        load(&store, b.secret_id(), at(1_000)).await.is_some()
            && site
                .index(&store.user_index_key("alice"))
                .await
                .contains(&id_digest(b.secret_id())),
        "alice's other session after one was logged out: expected it valid and still listed"
    );
    for (id, what) in [
        (a.secret_id(), "logged out already"),
        ("deadbeef", "never a session"),
    ] {
        let ended = store.logout(id).await.expect("logout: Redis error");
        assert!(
            !ended,
            "logout of an ID that was {what}: expected false, found true"
        );
    }
}

#[tokio::test]
async fn task3_logout_everywhere_ends_every_session_of_the_user_and_no_other() {
    let site = site().await;
    let store = store(&site, usual()).await;
    let first = create(&store, "alice", T0).await;
    let second = login(&store, "alice", ALICE_PASSWORD, None, T0)
        .await
        .expect("alice's login with her password");
    let to_elevate = create(&store, "alice", T0).await;
    let third = store
        .elevate(to_elevate.secret_id(), at(1_000))
        .await
        .expect("elevate: Redis error")
        .expect("elevate of a valid session: expected the elevated session, found None");
    let bobs = create(&store, "bob", T0).await;
    let ended = store
        .logout_everywhere("alice")
        .await
        .expect("logout_everywhere: Redis error");
    assert_eq!(
        ended, 3,
        "logout_everywhere(\"alice\") with three sessions of hers (created, logged in, \
         elevated): expected 3 ended, found {ended}"
    );
    for (session, how) in [
        (&first, "created"),
        (&second, "logged in"),
        (&third, "elevated"),
    ] {
        assert_ended(
            &site,
            &store,
            session.secret_id(),
            "alice",
            at(2_000),
            &format!("was {how}, then logout_everywhere(\"alice\")"),
        )
        .await;
    }
    assert!(
        load(&store, bobs.secret_id(), at(2_000)).await.is_some(),
        "bob's session after logout_everywhere(\"alice\"): expected it valid, found None"
    );
    let again = store
        .logout_everywhere("alice")
        .await
        .expect("logout_everywhere: Redis error");
    assert_eq!(
        again, 0,
        "a second logout_everywhere(\"alice\"): expected 0 sessions ended, found {again}"
    );
}

#[tokio::test]
async fn task3_every_instance_sees_a_logout_at_once() {
    let site = site().await;
    let a = Arc::new(store(&site, usual()).await);
    let b = Arc::new(store(&site, usual()).await);
    let session = login(&a, "alice", ALICE_PASSWORD, None, T0)
        .await
        .expect("alice's login with her password");
    let id = session.secret_id().to_string();
    for (instance, name) in [(&a, "A"), (&b, "B"), (&a, "A"), (&b, "B")] {
        assert!(
            load(instance, &id, at(1_000)).await.is_some(),
            "load on instance {name} of the session alice logged in with on A: expected it"
        );
    }
    let ended = b.logout(&id).await.expect("logout: Redis error");
    assert!(ended, "logout on B of alice's session: expected true");
    let found = joined(tokio::spawn({
        let a = a.clone();
        let id = id.clone();
        async move { a.load(&id, at(2_000)).await }
    }))
    .await;
    assert!(
        matches!(found, Ok(None)),
        "load on instance A of a session logged out on instance B a moment before: expected \
         None, found {found:?}. A session kept in A's memory outlives the logout"
    );
    let again = login(&b, "alice", ALICE_PASSWORD, None, at(3_000))
        .await
        .expect("alice's login with her password");
    load(&b, again.secret_id(), at(3_000)).await;
    load(&a, again.secret_id(), at(3_000)).await;
    a.logout_everywhere("alice")
        .await
        .expect("logout_everywhere: Redis error");
    let found = load(&b, again.secret_id(), at(4_000)).await;
    assert!(
        found.is_none(),
        "load on instance B of a session ended by logout_everywhere on instance A: expected \
         None, found {found:?}"
    );
}

// ---- added against wrong answers that passed: order, errors, what an ended session may do ------

/// Commands that only group others (a transaction's brackets) or run a script: the writes they
/// carry are counted where they run.
const WRAPPERS: &[&str] = &[
    "MULTI",
    "EXEC",
    "DISCARD",
    "EVAL",
    "EVALSHA",
    "EVAL_RO",
    "EVALSHA_RO",
    "SCRIPT",
    "FCALL",
];

#[tokio::test]
async fn task1_create_lists_the_session_before_it_writes_it_and_never_leaves_a_key_without_ttl() {
    let site = Site::private(PACKAGE).await;
    let store = store(&site, usual()).await;
    // A first session, so that any script is loaded before the watch starts.
    create(&store, "bob", T0).await;
    let mut watch = site.server().watch_commands().await.unwrap();
    watch.since_last_in_full().await;
    let session = create(&store, "alice", T0).await;
    let sent = watch.since_last_in_full().await;
    let record = store.session_key(session.secret_id());
    let index = store.user_index_key("alice");
    let shown: Vec<String> = sent
        .iter()
        .map(|c| {
            format!(
                "{}{} {}",
                if c.by_script { "(script) " } else { "" },
                c.name,
                c.args.join(" ")
            )
        })
        .collect();
    let first_write_to = |key: &str| {
        sent.iter().position(|c| {
            !READS.contains(&c.name.as_str())
                && !WRAPPERS.contains(&c.name.as_str())
                && c.args.first().is_some_and(|first| first == key)
        })
    };
    let (Some(listed), Some(written)) = (first_write_to(&index), first_write_to(&record)) else {
        panic!(
            "the commands create() sent: expected a write to the user's index ({index}) and one \
             to the session's record ({record}), found {shown:#?}"
        );
    };
    assert!(
        listed < written,
        "the commands create() sent: expected the index entry written before the record (a \
         failure between the two then leaves a listed session that does not exist, which is \
         harmless, not an unlisted one that survives log out everywhere), found the record \
         first: {shown:#?}"
    );
    // Each key's writes and its TTL in one call: a script, or a MULTI ... EXEC.
    for key in [&record, &index] {
        let mut in_multi = false;
        for (at, command) in sent.iter().enumerate() {
            match command.name.as_str() {
                "MULTI" => in_multi = true,
                "EXEC" | "DISCARD" => in_multi = false,
                _ => {}
            }
            let writes_key = !READS.contains(&command.name.as_str())
                && !WRAPPERS.contains(&command.name.as_str())
                && command.args.first() == Some(key);
            assert!(
                !writes_key || command.by_script || in_multi,
                "command {at} create() sent, `{}`: expected every write to {key} in one call with \
                 its TTL (a script, or MULTI ... EXEC), found it sent on its own, which leaves \
                 the key without a TTL if the next call fails. All it sent: {shown:#?}",
                shown[at]
            );
        }
    }
}

#[tokio::test]
async fn task1_a_redis_error_is_an_error_not_a_missing_session() {
    let site = Site::private(PACKAGE).await;
    let store = store(&site, usual()).await;
    let session = create(&store, "alice", T0).await;
    site.server().stop();
    let bound = std::time::Duration::from_secs(10);
    let outcome = tokio::time::timeout(bound, store.load(session.secret_id(), at(1_000))).await;
    let Ok(answer) = outcome else {
        panic!(
            "load() with Redis stopped: expected an error, found no answer within {bound:?} (a \
             generous bound: this is a stall, not a speed test). Return the error at once"
        );
    };
    assert!(
        answer.is_err(),
        "load() with Redis stopped: expected the Redis error, found {answer:?}. Only a missing or \
         corrupt record is no session; an unreachable Redis is an error, which the service \
         answers with a 503 instead of logging the user out"
    );
}

#[tokio::test]
async fn task3_elevate_of_an_ended_session_is_none_and_creates_nothing() {
    let site = site().await;
    let store = store(&site, usual()).await;
    for (ended_at, how) in [(at(IDLE), "idle for 60 s"), (at(ABSOLUTE), "100 s old")] {
        let mut old = create(&store, "alice", T0).await;
        if ended_at == at(ABSOLUTE) {
            // Kept busy, so that only the absolute deadline ends it.
            for step in 1..=3 {
                old = load(&store, old.secret_id(), at(step * 30_000))
                    .await
                    .expect("a session used every 30 s, before its deadlines");
            }
        }
        let before = site.all_keys().await;
        let index_before = site.index(&store.user_index_key("alice")).await;
        let elevated = store
            .elevate(old.secret_id(), ended_at)
            .await
            .expect("elevate: Redis answered with an error");
        assert!(
            elevated.is_none(),
            "elevate at {} of a session {how} (idle 60 s, absolute 100 s): expected None, found \
             {elevated:?}. A privilege change of an ended session would bring it back",
            after(ended_at)
        );
        let new_keys: Vec<_> = site.all_keys().await.difference(&before).cloned().collect();
        let index_after = site.index(&store.user_index_key("alice")).await;
        let new_entries: Vec<_> = index_after.difference(&index_before).collect();
        assert!(
            new_keys.is_empty() && new_entries.is_empty(),
            "Redis after elevate of a session {how}: expected no new session, found new keys \
             {new_keys:?} and index entries {new_entries:?}. Check the session as load does \
             before writing anything"
        );
    }
}

#[tokio::test]
async fn task3_logout_everywhere_counts_the_records_it_deleted() {
    let site = site().await;
    let store = store(&site, usual()).await;
    let kept = create(&store, "alice", T0).await;
    let gone = create(&store, "alice", T0).await;
    // Its record expires (here: deleted as its TTL would), its index entry stays.
    let _: () = site
        .conn()
        .del(store.session_key(gone.secret_id()))
        .await
        .unwrap();
    let ended = store
        .logout_everywhere("alice")
        .await
        .expect("logout_everywhere: Redis error");
    assert_eq!(
        ended, 1,
        "logout_everywhere(\"alice\") with two index entries, one of whose records had already \
         expired: expected 1 (the records it deleted), found {ended}. Count what DEL removed, \
         not the entries"
    );
    assert_ended(
        &site,
        &store,
        kept.secret_id(),
        "alice",
        at(1_000),
        "was ended by logout_everywhere",
    )
    .await;
}
