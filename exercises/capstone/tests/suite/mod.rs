//! The suite shared by the exercise and the solution: `super::subject` is whichever crate runs it.
//!
//! Each test gets its own namespace and database (`DATABASE_URL`, else SQLite); Redis is
//! `REDIS_URL`, or a private cluster with `REDIS_CLUSTER=1`, else a private server, and the tests
//! that stop Redis or watch its commands always start a private one. Two [`Instance`]s share the
//! keys, as two instances of one service do. Every query is counted by the given [`Shop`], which
//! is how the tests tell a cached answer from a computed one.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use shared::exercise::{joined, quiet_repeated_todos, until};
use shared::{DbOptions, ServerOptions, SetupError, Stage};

use super::subject::{
    DashboardCache, FRESH_MS, GENERATION_TTL, Hold, Instance, LOCK_TTL_MS, MAX_STALE_MS,
    SUMMARY_TTL, Shop, Stamped, Summaries, Summary, category_of,
};

/// Items in the shop: 40 of each of its four categories.
const ITEMS: i64 = 160;
/// How long a test waits for something it can only observe (stale reads returning while a
/// refresh is held) before failing.
const WITHIN: Duration = Duration::from_secs(10);

/// A test's world: the stage, the shop, and two instances sharing their keys.
struct World {
    stage: Stage,
    shop: Arc<Shop>,
    a: Instance,
    b: Instance,
}

async fn world_on(opened: Result<Stage, SetupError>, needs: &str) -> World {
    quiet_repeated_todos();
    let stage = opened.expect(needs);
    let shop = Shop::create(stage.db().clone(), ITEMS).await.unwrap();
    let instance = |conn| Instance {
        conn,
        namespace: stage.namespace().clone(),
    };
    let (a, b) = (
        instance(stage.instance().await.unwrap().conn),
        instance(stage.instance().await.unwrap().conn),
    );
    World { stage, shop, a, b }
}

async fn world() -> World {
    let opened = Stage::from_env("capstone-exercise", DbOptions::default()).await;
    world_on(opened, "a Redis and a database for the tests").await
}

/// For the tests that stop Redis or watch its commands: a private server.
async fn private_world() -> World {
    let opened = Stage::private(
        "capstone-exercise",
        DbOptions::default(),
        ServerOptions::default(),
    );
    world_on(opened.await, "redis-server on PATH").await
}

impl World {
    fn queries(&self) -> u64 {
        self.shop.db().queries()
    }
}

/// Waits until the call `task` runs reaches the query `hold` stops; fails if the call ends first
/// (it never ran that query, or it panicked).
async fn reached_before_the_end<T>(hold: &Hold, task: &tokio::task::JoinHandle<T>, what: &str) {
    let ended = async {
        while !task.is_finished() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::select! {
        _ = hold.reached() => {}
        _ = ended => panic!(
            "{what} ended without running the query the test holds (see its panic above, if any)"
        ),
    }
}

/// Waits until the refresh a stale read started has reached its query.
async fn refresh_started(hold: &Hold) {
    let started = tokio::time::timeout(WITHIN, hold.reached()).await;
    assert!(
        started.is_ok(),
        "a stale read started no refresh within {WITHIN:?}: a stale read must start one (in the \
         background) when none is running"
    );
}

/// An item of `category`.
fn item_of(category: &str) -> i64 {
    (1..=ITEMS).find(|&id| category_of(id) == category).unwrap()
}

/// A time in the tests' clock: now, in ms since 1970.
fn now() -> u64 {
    shared::clock::now_ms()
}

// ---- task 1: the category summary -----------------------------------------------------------

#[tokio::test]
async fn task1_a_second_read_on_either_instance_costs_no_query() {
    let w = world().await;
    let (a, b) = (
        Summaries::new(w.a.clone(), w.shop.clone()),
        Summaries::new(w.b.clone(), w.shop.clone()),
    );
    let before = w.queries();
    let first = a.summary("tea").await.unwrap();
    assert_eq!(
        first,
        w.shop.summary_from_db("tea").await.unwrap(),
        "the tea summary"
    );
    let computed = w.queries();
    assert_eq!(
        computed - before,
        2,
        "the first read: one query (and the test's own one)"
    );
    assert_eq!(a.summary("tea").await.unwrap(), first);
    assert_eq!(b.summary("tea").await.unwrap(), first);
    assert_eq!(
        w.queries() - computed,
        0,
        "two more reads of the tea summary, on instance a and on instance b, asked the database \
         {} times; expected 0 (the first read stores it in Redis, where both instances look)",
        w.queries() - computed
    );
}

#[tokio::test]
async fn task1_the_summary_is_stored_under_the_generation_with_its_ttl() {
    let w = world().await;
    let a = Summaries::new(w.a.clone(), w.shop.clone());
    let summary = a.summary("books").await.unwrap();
    let mut conn = w.stage.conn();
    let key = w.a.summary_key("books", 0);
    let stored: Option<Vec<u8>> = conn.get(&key).await.unwrap();
    let stored = stored.unwrap_or_else(|| {
        panic!("no value at summary_key(\"books\", 0) = {key} after a read: with no generation key, the generation is 0")
    });
    let decoded: Summary = shared::codec::decode(&stored).expect("the stored summary is its JSON");
    assert_eq!(decoded, summary, "the value stored");
    let pttl: i64 = conn.pttl(&key).await.unwrap();
    let ttl = SUMMARY_TTL.as_millis() as i64;
    assert!(
        (ttl - 10_000..=ttl).contains(&pttl),
        "the summary's PTTL is {pttl} ms; expected within 10 s under SUMMARY_TTL ({ttl} ms) \
         (-1: no TTL at all)"
    );
}

#[tokio::test]
async fn task1_a_price_change_shows_in_the_next_read_on_either_instance() {
    let w = world().await;
    let (a, b) = (
        Summaries::new(w.a.clone(), w.shop.clone()),
        Summaries::new(w.b.clone(), w.shop.clone()),
    );
    let before = b.summary("coffee").await.unwrap();
    a.summary("coffee").await.unwrap();
    let id = item_of("coffee");
    let version = a.set_price(id, 1).await.unwrap();
    assert!(
        version.is_some(),
        "set_price of item {id}, which exists, returned None"
    );
    let after = b.summary("coffee").await.unwrap();
    assert_eq!(
        (after.min_price_cents, after.versions),
        (1, before.versions + 1),
        "instance b's coffee summary after a price change on instance a was acknowledged: \
         expected the new lowest price (1 cent) and one more version, found {after:?} (the cached \
         summary survived the write: was the generation raised, and read before the summary?)"
    );
    assert_eq!(w.shop.summary_from_db("coffee").await.unwrap(), after);
}

#[tokio::test]
async fn task1_a_price_change_raises_only_its_categorys_generation_with_a_ttl() {
    let w = world().await;
    let a = Summaries::new(w.a.clone(), w.shop.clone());
    a.summary("kitchen").await.unwrap();
    a.set_price(item_of("tea"), 250).await.unwrap();
    let mut conn = w.stage.conn();
    let tea: Option<u64> = conn.get(w.a.generation_key("tea")).await.unwrap();
    assert_eq!(
        tea,
        Some(1),
        "tea's generation after one price change in tea"
    );
    let pttl: i64 = conn.pttl(w.a.generation_key("tea")).await.unwrap();
    let ttl = GENERATION_TTL.as_millis() as i64;
    assert!(
        (ttl - 10_000..=ttl).contains(&pttl),
        "tea's generation key has PTTL {pttl} ms; expected within 10 s under GENERATION_TTL ({ttl} \
         ms) (-1: a generation that never expires)"
    );
    for other in ["coffee", "books", "kitchen"] {
        let exists: bool = conn.exists(w.a.generation_key(other)).await.unwrap();
        assert!(
            !exists,
            "a price change in tea gave {other} a generation: only its category's changes"
        );
    }
    let queries = w.queries();
    a.summary("kitchen").await.unwrap();
    assert_eq!(
        w.queries() - queries,
        0,
        "the kitchen summary was computed again after a price change in tea: a write must drop \
         its own category's summary only"
    );
}

#[tokio::test]
async fn task1_a_missing_item_changes_nothing() {
    let w = world().await;
    let a = Summaries::new(w.a.clone(), w.shop.clone());
    assert_eq!(
        a.set_price(ITEMS + 1_000, 5).await.unwrap(),
        None,
        "no such item"
    );
    let mut conn = w.stage.conn();
    let left = w.stage.namespace().keys(&mut conn).await.unwrap();
    assert_eq!(
        left,
        Vec::<String>::new(),
        "keys written for an item that does not exist"
    );
}

#[tokio::test]
async fn task1_a_summary_computed_across_a_price_change_is_never_served_after_it() {
    let w = world().await;
    let (a, b) = (
        Summaries::new(w.a.clone(), w.shop.clone()),
        Summaries::new(w.b.clone(), w.shop.clone()),
    );
    // Instance a's read has queried the database and is about to store: then a price changes.
    let hold = w.shop.hold_next_summary();
    let reader = tokio::spawn(async move { a.summary("tea").await.unwrap() });
    reached_before_the_end(&hold, &reader, "the read of the tea summary").await;
    let version = b.set_price(item_of("tea"), 3).await.unwrap().unwrap();
    hold.release();
    joined(reader).await;
    let after = b.summary("tea").await.unwrap();
    assert_eq!(
        after.min_price_cents, 3,
        "a read that queried before a price change (version {version}) and stored after it is \
         what instance b served after the change was acknowledged: {after:?}. Read the generation \
         before the query, so a late store goes under the old generation"
    );
}

#[tokio::test]
async fn task1_the_generation_changes_only_after_the_commit() {
    let w = world().await;
    let (a, b) = (
        Summaries::new(w.a.clone(), w.shop.clone()),
        Summaries::new(w.b.clone(), w.shop.clone()),
    );
    // Instance a's price change is about to commit; instance b reads in that moment.
    let hold = w.shop.hold_next_commit();
    let writer = tokio::spawn(async move { a.set_price(item_of("books"), 7).await.unwrap() });
    reached_before_the_end(&hold, &writer, "the price change").await;
    let during = b.summary("books").await.unwrap();
    hold.release();
    assert!(joined(writer).await.is_some());
    let after = b.summary("books").await.unwrap();
    assert_eq!(
        after.min_price_cents, 7,
        "instance b read the books summary while a's price change was committing ({during:?}), \
         then again after it was acknowledged, and got {after:?}: the generation was raised \
         before the commit, so the old prices were stored under the new generation"
    );
}

#[tokio::test]
async fn task1_the_generation_is_raised_in_one_transaction() {
    let w = private_world().await;
    let a = Summaries::new(w.a.clone(), w.shop.clone());
    let mut watch = w.stage.server().watch_commands().await.unwrap();
    watch.since_last().await;
    a.set_price(item_of("coffee"), 42).await.unwrap();
    let sent = watch.since_last().await;
    let raise: Vec<&str> = sent
        .iter()
        .map(String::as_str)
        .filter(|c| ["MULTI", "INCR", "INCRBY", "EXPIRE", "PEXPIRE", "EXEC"].contains(c))
        .collect();
    assert!(
        raise == ["MULTI", "INCR", "EXPIRE", "EXEC"]
            || raise == ["MULTI", "INCR", "PEXPIRE", "EXEC"]
            || raise == ["MULTI", "INCRBY", "EXPIRE", "EXEC"]
            || raise == ["MULTI", "INCRBY", "PEXPIRE", "EXEC"],
        "a price change sent {sent:?}; expected the INCR and the EXPIRE of the generation inside \
         one MULTI ... EXEC (apart, a crash between them leaves a generation without a TTL)"
    );
}

#[tokio::test]
async fn task1_a_corrupt_summary_is_recomputed_and_overwritten() {
    let w = world().await;
    let a = Summaries::new(w.a.clone(), w.shop.clone());
    let mut conn = w.stage.conn();
    let key = w.a.summary_key("tea", 0);
    let _: () = conn.set_ex(&key, "\u{80}not json", 300).await.unwrap();
    let queries = w.queries();
    let summary = a
        .summary("tea")
        .await
        .expect("a corrupt entry is a miss, not an error");
    assert_eq!(
        w.queries() - queries,
        1,
        "the corrupt entry was recomputed: one query"
    );
    let stored: Vec<u8> = conn.get(&key).await.unwrap();
    let decoded: Summary = shared::codec::decode(&stored)
        .expect("the corrupt entry was not overwritten with the recomputed summary");
    assert_eq!(decoded, summary);
}

#[tokio::test]
async fn task1_with_redis_stopped_summaries_and_price_changes_go_on() {
    let w = private_world().await;
    let a = Summaries::new(w.a.clone(), w.shop.clone());
    w.stage.server().stop();
    let summary = a
        .summary("kitchen")
        .await
        .expect("with Redis stopped, the summary comes from the database");
    assert_eq!(summary, w.shop.summary_from_db("kitchen").await.unwrap());
    let version = a
        .set_price(item_of("kitchen"), 99)
        .await
        .expect("with Redis stopped, a price change still commits");
    assert!(version.is_some());
    assert_eq!(
        w.shop
            .summary_from_db("kitchen")
            .await
            .unwrap()
            .min_price_cents,
        99
    );
}

#[tokio::test]
async fn task1_a_generation_that_is_not_a_number_sends_the_read_to_the_database() {
    let w = world().await;
    let a = Summaries::new(w.a.clone(), w.shop.clone());
    let mut conn = w.stage.conn();
    let _: () = conn
        .set_ex(w.a.generation_key("tea"), "oops", 600)
        .await
        .unwrap();
    let mut planted = w.shop.summary_from_db("tea").await.unwrap();
    planted.items = 9_999;
    let bytes = shared::codec::encode(&planted).unwrap();
    let _: () = conn
        .set_ex(w.a.summary_key("tea", 0), bytes.clone(), 600)
        .await
        .unwrap();
    let served = a.summary("tea").await.unwrap();
    assert_eq!(
        served,
        w.shop.summary_from_db("tea").await.unwrap(),
        "the generation could not be read (not a number): the summary under generation 0 may \
         be from before any number of price changes, so the database must answer"
    );
    let kept: Vec<u8> = conn.get(w.a.summary_key("tea", 0)).await.unwrap();
    assert_eq!(
        kept, bytes,
        "nothing is stored when the generation could not be read"
    );
}

#[tokio::test]
async fn task1_each_price_change_sets_the_generation_ttl_again() {
    let w = world().await;
    let a = Summaries::new(w.a.clone(), w.shop.clone());
    a.set_price(item_of("books"), 300).await.unwrap();
    let mut conn = w.stage.conn();
    let key = w.a.generation_key("books");
    let _: () = conn.pexpire(&key, 5_000).await.unwrap();
    a.set_price(item_of("books"), 301).await.unwrap();
    let pttl: i64 = conn.pttl(&key).await.unwrap();
    let ttl = GENERATION_TTL.as_millis() as i64;
    assert!(
        (ttl - 10_000..=ttl).contains(&pttl),
        "after a second price change, the generation's PTTL is {pttl} ms; expected GENERATION_TTL \
         ({ttl} ms) from this change (EXPIRE ... NX keeps the first change's TTL)"
    );
}

// ---- task 2: the dashboard --------------------------------------------------------------------

/// A dashboard computed at `t0` on instance a, then a price change committed behind the cache's
/// back: from then on the stored dashboard is one write behind the database.
async fn dashboard_one_write_behind(w: &World, t0: u64) -> (DashboardCache, DashboardCache, i64) {
    let (a, b) = (
        DashboardCache::new(w.a.clone(), w.shop.clone()),
        DashboardCache::new(w.b.clone(), w.shop.clone()),
    );
    let first = a.get(t0).await.unwrap();
    assert_eq!(
        first,
        w.shop.dashboard_from_db().await.unwrap(),
        "the dashboard"
    );
    w.shop
        .commit_price(item_of("tea"), 11)
        .await
        .unwrap()
        .unwrap();
    (a, b, first.versions())
}

async fn stamped(w: &World) -> Option<Stamped> {
    let mut conn = w.stage.conn();
    let stored: Option<Vec<u8>> = conn.get(w.a.dashboard_key()).await.unwrap();
    stored.map(|bytes| {
        shared::codec::decode(&bytes).expect("the stored dashboard is a Stamped's JSON")
    })
}

#[tokio::test]
async fn task2_a_fresh_dashboard_costs_no_query_and_is_stored_with_its_stamp_and_ttl() {
    let w = world().await;
    let (a, b) = (
        DashboardCache::new(w.a.clone(), w.shop.clone()),
        DashboardCache::new(w.b.clone(), w.shop.clone()),
    );
    let t0 = now();
    let queries = w.queries();
    let first = a.get(t0).await.unwrap();
    assert_eq!(
        w.queries() - queries,
        1,
        "the first read computes the dashboard: one query"
    );
    let stored = stamped(&w)
        .await
        .expect("no dashboard stored after the first read");
    assert_eq!(
        stored.computed_ms, t0,
        "computed_ms: the now_ms of the read that computed it"
    );
    assert_eq!(stored.dashboard, first);
    let mut conn = w.stage.conn();
    let pttl: i64 = conn.pttl(w.a.dashboard_key()).await.unwrap();
    let max = MAX_STALE_MS as i64;
    assert!(
        (max - 2_000..=max).contains(&pttl),
        "the dashboard's PTTL is {pttl} ms; expected within 2 s under MAX_STALE_MS ({max}): it \
         must live until it is too old to serve, and no longer (-1: no TTL)"
    );
    let queries = w.queries();
    assert_eq!(b.get(t0 + FRESH_MS - 1).await.unwrap(), first);
    b.refreshes.settle().await;
    a.refreshes.settle().await;
    assert_eq!(
        w.queries() - queries,
        0,
        "a read on instance b {} ms after the dashboard was computed (fresh for {FRESH_MS} ms) \
         asked the database",
        FRESH_MS - 1
    );
}

#[tokio::test]
async fn task2_a_stale_read_returns_the_stale_dashboard_and_one_refresh_follows() {
    let w = world().await;
    let t0 = now();
    let (a, _b, old) = dashboard_one_write_behind(&w, t0).await;
    let queries = w.queries();
    let stale_at = t0 + FRESH_MS;
    let served = a.get(stale_at).await.unwrap();
    assert_eq!(
        served.versions(),
        old,
        "a read at the end of the freshness returned a dashboard with {} versions, the database's \
         latest; expected the stale one ({old}) at once, with a refresh in the background (the \
         read waited for the refresh)",
        served.versions()
    );
    a.refreshes.settle().await;
    assert_eq!(
        w.queries() - queries,
        1,
        "a read at exactly computed_ms + FRESH_MS (stale from then on) and the refreshes spawned \
         on `refreshes` since: expected one query, the refresh's (a refresh spawned elsewhere \
         than on `self.refreshes` is not waited for here)"
    );
    let stored = stamped(&w).await.expect("the refresh stored the dashboard");
    assert_eq!(
        (stored.computed_ms, stored.dashboard.versions()),
        (stale_at, old + 1),
        "the refreshed dashboard: stamped with the now_ms of the read that started it, with the \
         price change"
    );
    let mut conn = w.stage.conn();
    let pttl: i64 = conn.pttl(w.a.dashboard_key()).await.unwrap();
    let max = MAX_STALE_MS as i64;
    assert!(
        (max - 2_000..=max).contains(&pttl),
        "the refreshed dashboard's PTTL is {pttl} ms; expected within 2 s under MAX_STALE_MS \
         ({max}): its TTL runs from its own stamp, not the stale one's"
    );
    let queries = w.queries();
    let fresh = a.get(stale_at + 1).await.unwrap();
    assert_eq!(
        fresh.versions(),
        old + 1,
        "the next read serves the refreshed dashboard"
    );
    assert_eq!(w.queries() - queries, 0, "from Redis");
}

#[tokio::test]
async fn task2_stale_reads_on_two_instances_start_one_refresh_and_wait_for_none() {
    let w = world().await;
    let t0 = now();
    let (a, b, old) = dashboard_one_write_behind(&w, t0).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let queries = w.queries();
    let hold = w.shop.hold_next_dashboard();
    let mut reads = Vec::new();
    for i in 0..20u64 {
        let cache = if i % 2 == 0 { a.clone() } else { b.clone() };
        reads.push(tokio::spawn(async move {
            cache.get(t0 + FRESH_MS + 100 + i).await.unwrap()
        }));
    }
    // The refresh is held: every stale read must return all the same.
    until(
        "the 20 stale reads to return while the refresh was held",
        WITHIN,
        || reads.iter().all(|read| read.is_finished()),
    )
    .await;
    hold.release();
    for read in reads {
        assert_eq!(
            joined(read).await.versions(),
            old,
            "a stale read served the stale dashboard"
        );
    }
    a.refreshes.settle().await;
    b.refreshes.settle().await;
    assert_eq!(
        w.queries() - queries,
        1,
        "20 stale reads on two instances asked the database {} times; expected once (one \
         refresh, decided by the lock in Redis)",
        w.queries() - queries
    );
}

#[tokio::test]
async fn task2_the_refresh_lock_has_a_ttl_and_is_released_after_the_refresh() {
    let w = world().await;
    let t0 = now();
    let (a, _b, _) = dashboard_one_write_behind(&w, t0).await;
    let hold = w.shop.hold_next_dashboard();
    let a = Arc::new(a);
    let reader = a.clone();
    let read = tokio::spawn(async move { reader.get(t0 + FRESH_MS).await.unwrap() });
    refresh_started(&hold).await;
    let mut conn = w.stage.conn();
    let lock = w.a.refresh_lock_key();
    let pttl: i64 = conn.pttl(&lock).await.unwrap();
    assert!(
        (1..=LOCK_TTL_MS as i64).contains(&pttl),
        "during the refresh, the lock at refresh_lock_key has PTTL {pttl} ms; expected 1 to \
         {LOCK_TTL_MS} (-2: no lock taken; -1: a lock that never expires if its holder dies)"
    );
    hold.release();
    joined(read).await;
    a.refreshes.settle().await;
    let exists: bool = conn.exists(&lock).await.unwrap();
    assert!(
        !exists,
        "the lock is still there after the refresh finished: release it"
    );
}

#[tokio::test]
async fn task2_a_refresher_whose_lock_expired_does_not_release_the_next_holders() {
    let w = world().await;
    let t0 = now();
    let (a, _b, _) = dashboard_one_write_behind(&w, t0).await;
    let hold = w.shop.hold_next_dashboard();
    let a = Arc::new(a);
    let reader = a.clone();
    let read = tokio::spawn(async move { reader.get(t0 + FRESH_MS).await.unwrap() });
    refresh_started(&hold).await;
    // The lock expires during a slow refresh, and another refresher takes it.
    let mut conn = w.stage.conn();
    let lock = w.a.refresh_lock_key();
    let _: () = conn.del(&lock).await.unwrap();
    let _: () = conn
        .pset_ex(&lock, "another-refresher", 10_000)
        .await
        .unwrap();
    hold.release();
    joined(read).await;
    a.refreshes.settle().await;
    let holder: Option<String> = conn.get(&lock).await.unwrap();
    assert_eq!(
        holder.as_deref(),
        Some("another-refresher"),
        "the first refresher deleted a lock that another had taken after its own expired: \
         release only with your own token, compared and deleted in one script"
    );
}

#[tokio::test]
async fn task2_a_dashboard_too_old_to_serve_is_computed_before_the_answer() {
    let w = world().await;
    let t0 = now();
    let (a, b, old) = dashboard_one_write_behind(&w, t0).await;
    let queries = w.queries();
    let too_old = t0 + MAX_STALE_MS;
    let served = b.get(too_old).await.unwrap();
    assert_eq!(
        served.versions(),
        old + 1,
        "a read {MAX_STALE_MS} ms after the dashboard's query started (the bound) served it \
         anyway; expected one computed now"
    );
    a.refreshes.settle().await;
    b.refreshes.settle().await;
    assert_eq!(
        w.queries() - queries,
        1,
        "computed once, and no refresh besides"
    );
    let stored = stamped(&w).await.expect("stored");
    assert_eq!(
        stored.computed_ms, too_old,
        "stamped with the read's now_ms"
    );
}

#[tokio::test]
async fn task2_a_corrupt_dashboard_is_computed_and_overwritten() {
    let w = world().await;
    let a = DashboardCache::new(w.a.clone(), w.shop.clone());
    let mut conn = w.stage.conn();
    let _: () = conn
        .pset_ex(w.a.dashboard_key(), "{\"dashboard\":", 60_000)
        .await
        .unwrap();
    let t0 = now();
    let queries = w.queries();
    let served = a
        .get(t0)
        .await
        .expect("a corrupt entry is a miss, not an error");
    assert_eq!(served, w.shop.dashboard_from_db().await.unwrap());
    assert_eq!(w.queries() - queries, 2, "one query (and the test's own)");
    let stored = stamped(&w).await.expect("overwritten");
    assert_eq!(stored.computed_ms, t0);
    a.refreshes.settle().await;
}

#[tokio::test]
async fn task2_with_redis_stopped_the_database_answers_every_read() {
    let w = private_world().await;
    let a = DashboardCache::new(w.a.clone(), w.shop.clone());
    w.stage.server().stop();
    let t0 = now();
    let queries = w.queries();
    for i in 0..3 {
        let served = a
            .get(t0 + i)
            .await
            .expect("with Redis stopped, the dashboard comes from the database");
        assert_eq!(served.categories.len(), 4);
    }
    a.refreshes.settle().await;
    assert_eq!(w.queries() - queries, 3, "one query per read, nothing else");
}

#[tokio::test]
async fn task2_two_refreshers_in_turn_each_release_only_their_own_lock() {
    let w = world().await;
    let t0 = now();
    let (a, b, _) = dashboard_one_write_behind(&w, t0).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let first = w.shop.hold_next_dashboard();
    let reader = a.clone();
    let read_a = tokio::spawn(async move { reader.get(t0 + FRESH_MS).await.unwrap() });
    refresh_started(&first).await;
    // Instance a's lock expires during its slow refresh; instance b's stale read takes a new one.
    let mut conn = w.stage.conn();
    let lock = w.a.refresh_lock_key();
    let _: () = conn.del(&lock).await.unwrap();
    let second = w.shop.hold_next_dashboard();
    let reader = b.clone();
    let read_b = tokio::spawn(async move { reader.get(t0 + FRESH_MS + 1).await.unwrap() });
    refresh_started(&second).await;
    let taken: Option<String> = conn.get(&lock).await.unwrap();
    first.release();
    joined(read_a).await;
    a.refreshes.settle().await;
    let holder: Option<String> = conn.get(&lock).await.unwrap();
    assert_eq!(
        holder, taken,
        "instance a's refresh, whose lock had expired, deleted instance b's lock: each refresh \
         needs a token of its own (a random one), or a release cannot tell the locks apart"
    );
    second.release();
    joined(read_b).await;
    b.refreshes.settle().await;
}

#[tokio::test]
async fn task2_a_refresh_stores_then_releases_its_lock_with_one_script() {
    let w = private_world().await;
    let t0 = now();
    let (a, _b, _) = dashboard_one_write_behind(&w, t0).await;
    let mut watch = w.stage.server().watch_commands().await.unwrap();
    watch.since_last().await;
    a.get(t0 + FRESH_MS).await.unwrap();
    a.refreshes.settle().await;
    let sent: Vec<_> = watch
        .since_last_in_full()
        .await
        .into_iter()
        .filter(|sent| !sent.by_script)
        .collect();
    let names: Vec<&str> = sent.iter().map(|sent| sent.name.as_str()).collect();
    let dashboard = w.a.dashboard_key();
    let stored = sent
        .iter()
        .rposition(|s| s.args.first() == Some(&dashboard) && s.name != "GET");
    let released = sent
        .iter()
        .rposition(|s| s.name == "EVALSHA" || s.name == "EVAL");
    assert!(
        matches!((stored, released), (Some(s), Some(r)) if s < r),
        "the refresh sent {names:?}: expected the dashboard stored first, then the lock released \
         by a script (compare and delete in one call), in that order"
    );
    assert!(
        !sent.iter().any(|s| s.name == "DEL" || s.name == "UNLINK"),
        "the refresh sent {names:?}: a DEL from the client cannot check the token in the same \
         call; release with one script"
    );
}

#[tokio::test]
async fn task2_a_failed_refresh_frees_the_lock_and_keeps_the_stale_dashboard() {
    let w = world().await;
    let t0 = now();
    let (a, _b, old) = dashboard_one_write_behind(&w, t0).await;
    let a = Arc::new(a);
    let hold = w.shop.hold_next_dashboard();
    let reader = a.clone();
    let read = tokio::spawn(async move { reader.get(t0 + FRESH_MS).await.unwrap() });
    refresh_started(&hold).await;
    hold.fail();
    joined(read).await;
    a.refreshes.settle().await;
    let mut conn = w.stage.conn();
    let exists: bool = conn.exists(w.a.refresh_lock_key()).await.unwrap();
    assert!(
        !exists,
        "the refresh's query failed and the lock is still there: release it whether the query \
         succeeded or not, or no refresh can start until it expires"
    );
    let served = a.get(t0 + FRESH_MS + 1).await.unwrap();
    assert_eq!(
        served.versions(),
        old,
        "after a failed refresh, the stale dashboard is served"
    );
    a.refreshes.settle().await;
}

#[tokio::test]
async fn task2_a_stamp_later_than_the_readers_clock_is_fresh() {
    let w = world().await;
    let (a, b) = (
        DashboardCache::new(w.a.clone(), w.shop.clone()),
        DashboardCache::new(w.b.clone(), w.shop.clone()),
    );
    let t0 = now();
    let first = a.get(t0).await.unwrap();
    let queries = w.queries();
    // Instance b's clock is a second behind instance a's.
    let served = b.get(t0 - 1_000).await.unwrap();
    assert_eq!(served, first, "a stamp later than now_ms is fresh");
    b.refreshes.settle().await;
    assert_eq!(w.queries() - queries, 0, "no query for a fresh dashboard");
}
