//! The suite shared by the exercise and the solution: `super::subject` is whichever crate runs it.
//!
//! Each test gets its own namespace and database (`DATABASE_URL`, else SQLite); Redis is
//! `REDIS_URL`, or a private cluster with `REDIS_CLUSTER=1`, else a private server, and
//! the tests that stop Redis or watch its commands always start a private one.

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::streams::{StreamPendingCountReply, StreamRangeReply};
use shared::exercise::Site;
use sqlx::Row;

use super::subject::{Entry, FlushError, GROUP, Settings, ViewCount, Views, WriteError};

/// The TTL a clean count gets; the tests read it back.
const TTL: Duration = Duration::from_secs(60);

fn settings() -> Settings {
    Settings {
        batch_size: 100,
        block: Duration::from_millis(50),
        claim_idle: Duration::from_millis(300),
        ttl: TTL,
        redis_timeout: Duration::from_millis(250),
    }
}

/// A test's stage ([`Site`]): the queue and the register have no TTL (they must not expire), so
/// on a Redis the tests share, the run's keys are removed when the test ends, however it ends.
async fn site() -> Site {
    Site::from_env("write-behind-exercise").await
}

async fn site_with_private_redis() -> Site {
    Site::private("write-behind-exercise").await
}

/// Counters on the stage, and what the tests look at. Nothing here is counted as a query.
trait Inspect {
    /// One application instance with its own connection, 20 pages seeded.
    async fn views(&self) -> Views;
    /// The cached `(views, version)` of `page`, read on a fresh connection.
    async fn cached(&self, views: &Views, page: &str) -> Option<(i64, i64)>;
    /// The TTL of `page`'s cached count in ms (-1: none, -2: no key).
    async fn pttl(&self, views: &Views, page: &str) -> i64;
    /// Every entry in the queue, oldest first.
    async fn queued(&self, views: &Views) -> Vec<Entry>;
    /// Every pending entry: its id, its consumer, and how long ago it was delivered (ms).
    async fn pending(&self, views: &Views) -> Vec<(String, String, usize)>;
    /// `page`'s row in the database.
    async fn row(&self, page: &str) -> Option<(i64, i64)>;
    /// Runs one statement of setup on the database.
    async fn sql(&self, statement: &str);
}

impl Inspect for Site {
    async fn views(&self) -> Views {
        let instance = self.instance().await.unwrap();
        let (conn, namespace) = (instance.conn, instance.namespace);
        let views = Views::open(self.db().clone(), conn, namespace, settings(), 20)
            .await
            .unwrap();
        self.db().reset_queries();
        views
    }

    async fn cached(&self, views: &Views, page: &str) -> Option<(i64, i64)> {
        let mut conn = self.instance().await.unwrap().conn;
        let (count, version): (Option<i64>, Option<i64>) = redis::cmd("HMGET")
            .arg(views.key(page))
            .arg("views")
            .arg("version")
            .query_async(&mut conn)
            .await
            .unwrap();
        count.zip(version)
    }

    async fn pttl(&self, views: &Views, page: &str) -> i64 {
        self.conn().pttl(views.key(page)).await.unwrap()
    }

    async fn queued(&self, views: &Views) -> Vec<Entry> {
        let range: StreamRangeReply = self.conn().xrange_all(views.queue()).await.unwrap();
        range.ids.iter().filter_map(Entry::from_stream).collect()
    }

    async fn pending(&self, views: &Views) -> Vec<(String, String, usize)> {
        let reply: StreamPendingCountReply = self
            .conn()
            .xpending_count(views.queue(), GROUP, "-", "+", 10_000)
            .await
            .unwrap();
        reply
            .ids
            .into_iter()
            .map(|p| (p.id, p.consumer, p.last_delivered_ms))
            .collect()
    }

    async fn row(&self, page: &str) -> Option<(i64, i64)> {
        let mut setup = self.db().setup().await.unwrap();
        let row = sqlx::query("SELECT views, version FROM page_views WHERE page = $1")
            .bind(page)
            .fetch_optional(&mut *setup)
            .await
            .unwrap();
        // Ended here: a transaction left open would hold a lock on the table until the pool
        // gets round to rolling it back, and the test's cleanup would wait for it.
        setup.commit().await.unwrap();
        row.map(|row| (row.get("views"), row.get("version")))
    }

    async fn sql(&self, statement: &str) {
        let mut setup = self.db().setup().await.unwrap();
        sqlx::query(statement).execute(&mut *setup).await.unwrap();
        setup.commit().await.unwrap();
    }
}

/// Records `n` views of `page`, a page the database has, with Redis up, and expects it
/// acknowledged.
async fn record(views: &Views, page: &str, n: i64) -> ViewCount {
    let error = match views.record_views(page, n).await {
        Ok(count) => return count,
        Err(error) => error,
    };
    let cause = match &error {
        WriteError::Behind(_) => {
            "the script never found the count fill() cached: does it read the fields views and \
             version of KEYS[1], Views::key(page)?"
        }
        WriteError::QueueUnavailable(_) => {
            "Redis answered the script with an error: is it valid Lua, and does it name every \
             key it touches in KEYS?"
        }
        WriteError::NoSuchPage(_) => "the page is in the database: is fill() given this page?",
        WriteError::Database(_) => "fill() could not read the page's row",
    };
    panic!(
        "record_views({page:?}, {n}) of a page the database has, with Redis up: expected \
         Ok(the count after the write), got Err({error:?}): {cause}"
    )
}

fn count(page: &str, views: i64, version: i64) -> ViewCount {
    ViewCount {
        page: page.to_string(),
        views,
        version,
    }
}

fn entry(page: &str, views: i64, version: i64) -> Entry {
    Entry {
        id: format!("0-{version}"),
        page: page.to_string(),
        views,
        version,
    }
}

/// Asserts that `page`'s count is clean: a TTL no longer than `settings.ttl`, and not much
/// shorter.
async fn assert_clean(site: &Site, views: &Views, page: &str, after: &str) {
    let ttl = site.pttl(views, page).await;
    let found = match ttl {
        -2 => {
            "-2 is no key: the count is gone from the cache. acknowledge() gives a flushed \
             count its TTL back; it does not delete it"
        }
        -1 => {
            "-1 is no TTL: the count is still dirty. Does acknowledge() PEXPIRE every flushed \
             page whose cached version is the flushed one (the version apply() returned for \
             it, compared as a string or with tonumber in the script)?"
        }
        60_001.. => "more than settings.ttl: PEXPIRE it with settings.ttl, no longer",
        _ => "less than settings.ttl: PEXPIRE takes milliseconds (settings.ttl.as_millis())",
    };
    assert!(
        (55_000..=60_000).contains(&ttl),
        "PTTL of {page}'s cached count {after}: expected 55,000 to 60,000 ms (settings.ttl, 60 \
         s, given back once the count is in the database, less the moment since), got {ttl} \
         ms: {found}"
    );
}

/// Waits until every pending entry has been idle for `claim_idle`, as the server counts it.
async fn until_claimable(site: &Site, views: &Views) {
    let claim_idle = settings().claim_idle.as_millis() as usize;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pending = site.pending(views).await;
        if pending.iter().all(|(_, _, idle)| *idle >= claim_idle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the test waits until every pending entry has been idle for claim_idle (300 ms), as \
             XPENDING reports it; 10 s later some still were not (id, consumer, idle ms): \
             {pending:?}. An entry claimed or read again restarts its idle time: does something \
             claim entries without waiting for claim_idle?"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Records `writes` views over pages 1 to 20, then a flusher called `dead` reads them all (a batch
/// at a time) and dies: every entry is left pending with it.
async fn left_pending_by_a_dead_flusher(views: &Views, writes: usize) {
    for i in 0..writes {
        record(views, &format!("page-{}", i % 20 + 1), 1).await;
    }
    let mut read = 0;
    while read < writes {
        let batch = views
            .read_new("dead")
            .await
            .expect("read_new(), called by the test with Redis up: Redis answered with an error");
        assert!(
            !batch.is_empty(),
            "the entries read by a flusher (read_new(), XREADGROUP) after {writes} acknowledged \
             writes: expected {writes}, one per write, found {read} before the queue ran dry. \
             Does every record_views() XADD one entry, with the fields page, views and \
             version, to Views::queue()?"
        );
        read += batch.len();
    }
}

// ---- task 1: the acknowledged write ------------------------------------------------------------

#[tokio::test]
async fn task1_a_write_is_cached_and_queued_together() {
    let site = site().await;
    let views = site.views().await;
    let first = record(&views, "page-1", 3).await;
    assert_eq!(
        first,
        count("page-1", 3, 1),
        "record_views(\"page-1\", 3) on a page with 0 views at version 0: expected 3 views at \
         version 1, got {first:?}. Return the count and version the script wrote"
    );
    let second = record(&views, "page-1", 2).await;
    assert_eq!(
        second,
        count("page-1", 5, 2),
        "a second record_views(\"page-1\", 2), on 3 views at version 1: expected 5 views at \
         version 2, got {second:?}. The script adds n to the cached views and 1 to the cached \
         version"
    );
    let cached = site.cached(&views, "page-1").await;
    assert_eq!(
        cached,
        Some((5, 2)),
        "the cached {{views, version}} of page-1 after two writes: expected (5, 2), got \
         {cached:?}"
    );
    let queued = site.queued(&views).await;
    let carried: Vec<(String, i64, i64)> = queued
        .iter()
        .map(|e| (e.page.clone(), e.views, e.version))
        .collect();
    assert_eq!(
        carried,
        [("page-1".to_string(), 3, 1), ("page-1".to_string(), 5, 2)],
        "the queue's entries (page, views, version) after two writes: expected one per write, \
         each carrying the count after it (not the views added), got {carried:?}. Does the \
         script XADD to queue() with the fields page, views and version?"
    );
    let ttl = site.pttl(&views, "page-1").await;
    assert_eq!(
        ttl, -1,
        "PTTL of page-1's cached count after a write: expected -1 (no TTL while the write is \
         queued; fill() had given it one), got {ttl}. A dirty count with a TTL can expire \
         before it is flushed; does the script PERSIST the key?"
    );
    let mut conn = site.conn();
    let registered: Option<i64> = conn.hget(views.versions(), "page-1").await.unwrap();
    assert_eq!(
        registered,
        Some(2),
        "the register's (versions()) field page-1 after writing version 2: expected 2, got \
         {registered:?}. fill() reads it to refuse a row that is behind the queue"
    );
    let queries = site.db().queries();
    assert_eq!(
        queries, 1,
        "database queries for two writes of a cold page: expected 1 (fill()'s read of the row \
         for the first), got {queries}. A write-behind write does not touch the database"
    );
    let row = site.row("page-1").await;
    assert_eq!(
        row,
        Some((0, 0)),
        "page-1's database row (views, version) after two writes and no flush: expected \
         untouched, (0, 0), got {row:?}. A write goes to Redis only; the flusher writes the \
         database"
    );
}

#[tokio::test]
async fn task1_a_write_is_one_command() {
    let site = site_with_private_redis().await;
    let views = site.views().await;
    // The first write fills the page and loads the script into Redis.
    record(&views, "page-2", 1).await;
    let mut sent = site.server().watch_commands().await.unwrap();
    record(&views, "page-2", 1).await;
    let commands = sent.since_last().await;
    assert!(
        commands.len() == 1 && commands[0].starts_with("EVAL"),
        "commands sent by one record_views() of a cached page: expected one script call (EVAL \
         or EVALSHA), got {commands:?}. Between two separate commands a crash, or another \
         writer, leaves the cache and the queue disagreeing: a count with no entry is never \
         flushed, and is lost"
    );
}

#[tokio::test]
async fn task1_a_cold_page_counts_on_from_its_database_row() {
    let site = site().await;
    let views = site.views().await;
    site.sql("UPDATE page_views SET views = 40, version = 7 WHERE page = 'page-3'")
        .await;
    let written = record(&views, "page-3", 2).await;
    assert_eq!(
        written,
        count("page-3", 42, 8),
        "record_views(\"page-3\", 2) on a page not cached, with 40 views at version 7 in the \
         database: expected 42 views at version 8. Starting from 0 (HINCRBY on a missing key) \
         loses the 40 views the database holds: let the script report the miss, fill(), retry"
    );
    let carried = site.queued(&views).await;
    assert!(
        carried.len() == 1 && carried[0].views == 42 && carried[0].version == 8,
        "the queue after that write: expected one entry with 42 views at version 8, got \
         {carried:?}. The script that found no count queues nothing; the one that runs after \
         fill() queues the count it wrote"
    );
}

#[tokio::test]
async fn task1_an_unknown_page_is_refused_and_leaves_nothing() {
    let site = site().await;
    let views = site.views().await;
    let refused = views.record_views("page-404", 1).await;
    assert!(
        matches!(&refused, Err(WriteError::NoSuchPage(page)) if page == "page-404"),
        "record_views(\"page-404\", 1) of a page the database does not have: expected \
         Err(NoSuchPage(\"page-404\")), got {refused:?}"
    );
    let cached = site.cached(&views, "page-404").await;
    let queued = site.queued(&views).await;
    assert!(
        cached.is_none() && queued.is_empty(),
        "after that refusal: expected no cached count and no queued entry, got {cached:?} and \
         {queued:?}. Does the script create the count when the key is missing?"
    );
}

#[tokio::test]
async fn task1_with_redis_down_a_write_is_refused_and_the_database_untouched() {
    let site = site_with_private_redis().await;
    let views = site.views().await;
    record(&views, "page-5", 1).await;
    site.db().reset_queries();
    site.server().stop();
    let refused = views.record_views("page-5", 1).await;
    assert!(
        matches!(refused, Err(WriteError::QueueUnavailable(_))),
        "record_views(\"page-5\", 1) with Redis stopped: expected Err(QueueUnavailable(..)), \
         got {refused:?}. A write Redis did not take was not acknowledged, and must say so"
    );
    let queries = site.db().queries();
    assert_eq!(
        queries, 0,
        "database queries by that refused write: expected 0, got {queries}. Writing the \
         database directly while Redis is down lets a queued older count overwrite it later"
    );
    let row = site.row("page-5").await;
    assert_eq!(
        row,
        Some((0, 0)),
        "page-5's database row (views, version) after a write refused with Redis stopped: \
         expected untouched, (0, 0), got {row:?}. A write Redis did not take must not reach \
         the database by another way"
    );
    let errors = views.redis_errors.get();
    assert!(
        errors >= 1,
        "redis_errors after a write with Redis stopped: expected at least 1, got {errors}. Send \
         the script through redis_call(), which counts a failure"
    );
}

#[tokio::test]
async fn task1_a_page_behind_its_queue_gives_up_after_three_tries() {
    let site = site().await;
    let views = site.views().await;
    record(&views, "page-14", 1).await; // version 1 is queued; the row is still at version 0
    // The dirty count is lost (a FLUSHDB, an allkeys eviction): the register is ahead of the
    // row, so fill() caches nothing until the queued write is flushed.
    let _: () = site.conn().del(views.key("page-14")).await.unwrap();
    site.db().reset_queries();
    let write = views.record_views("page-14", 1);
    tokio::pin!(write);
    // Every try loads the row once (fill); a write still trying after 10 loads never stops.
    let outcome = loop {
        tokio::select! {
            outcome = &mut write => break Some(outcome),
            _ = tokio::time::sleep(Duration::from_millis(1)) => {
                if site.db().queries() > 10 {
                    break None;
                }
            }
        }
    };
    let loads = site.db().queries();
    assert!(
        matches!(&outcome, Some(Err(WriteError::Behind(page))) if page == "page-14") && loads <= 3,
        "record_views(\"page-14\", 1) whose cached count is gone while version 1 is queued \
         (fill() caches nothing then): expected Err(Behind(\"page-14\")) after at most three \
         tries (at most 3 loads of its row), got {outcome:?} after {loads} loads (None: still \
         trying after 10). Bound the retries: three runs of the script in all"
    );
    let (queued, cached) = (
        site.queued(&views).await.len(),
        site.cached(&views, "page-14").await,
    );
    assert!(
        queued == 1 && cached.is_none(),
        "after that refused write: expected the one queued entry (version 1's) and no cached \
         count, got {queued} entries and cached {cached:?}. A script that finds no count must \
         change nothing: neither create the key nor queue an entry"
    );
}

#[tokio::test]
async fn task1_the_queue_keeps_every_write_until_it_is_flushed() {
    let site = site().await;
    let views = site.views().await;
    // The flusher is down for a while: 10,500 writes pile up, past any cap a script might set.
    const WRITES: usize = 10_500;
    for i in 0..WRITES {
        record(&views, &format!("page-{}", i % 20 + 1), 1).await;
    }
    let length: usize = site.conn().xlen(views.queue()).await.unwrap();
    assert_eq!(
        length, WRITES,
        "XLEN of the queue after {WRITES} writes with no flush: expected {WRITES}, got \
         {length}. Each entry is the only copy of a write not yet in the database: a MAXLEN \
         (or MINID) on XADD throws the oldest away before they are flushed"
    );
}

// ---- task 2: the flusher -----------------------------------------------------------------------

#[tokio::test]
async fn task2_a_flush_coalesces_into_one_statement() {
    let site = site().await;
    let views = site.views().await;
    site.sql("INSERT INTO page_views (page, views, version) VALUES ('o''clock', 0, 0)")
        .await;
    for _ in 0..4 {
        record(&views, "page-1", 1).await;
    }
    for _ in 0..2 {
        record(&views, "page-2", 5).await;
    }
    record(&views, "o'clock", 7).await;
    site.db().reset_queries();

    let flushed = views.flush_once("flusher-1").await;
    assert!(
        matches!(flushed, Ok(7)),
        "flush_once() over 7 queued writes of 3 pages: expected Ok(7), the entries it flushed, \
         got {flushed:?}. Ok(3) counts the rows apply() returned, not the entries read"
    );
    let queries = site.db().queries();
    assert_eq!(
        queries, 1,
        "database statements for one flush of 3 pages: expected 1 (one multi-row upsert in one \
         transaction), got {queries}. One statement per entry or per page is the slow \
         row-by-row flush write-behind exists to avoid"
    );
    for (page, expected) in [("page-1", (4, 4)), ("page-2", (10, 2)), ("o'clock", (7, 1))] {
        let row = site.row(page).await;
        assert_eq!(
            row,
            Some(expected),
            "{page}'s database row (views, version) after the flush: expected {expected:?}, \
             the page's last queued count, got {row:?}. An older count: coalesce to the \
             highest version per page. o'clock: values formatted into the SQL break on its \
             quote; bind them"
        );
        assert_clean(&site, &views, page, "after its flush").await;
    }
    let queued = site.queued(&views).await;
    let pending = site.pending(&views).await;
    assert!(
        queued.is_empty() && pending.is_empty(),
        "the queue after a flush of everything: expected empty (XACK and XDEL every entry), got \
         {} entries, {} pending. Acknowledged entries left in the stream grow it without bound",
        queued.len(),
        pending.len()
    );
    let idle = views.flush_once("flusher-1").await;
    assert!(
        matches!(idle, Ok(0)),
        "flush_once() on an empty queue: expected Ok(0), got {idle:?}. With no entries read, \
         there is nothing to apply or acknowledge"
    );
}

#[tokio::test]
async fn task2_apply_keeps_the_newest_version() {
    let site = site().await;
    let views = site.views().await;
    let batch = [
        entry("page-6", 20, 2),
        entry("page-6", 40, 4),
        entry("page-6", 30, 3),
    ];
    let applied = views.apply(&batch).await;
    assert!(
        matches!(&applied, Ok(rows) if rows == &[count("page-6", 40, 4)]),
        "apply() of page-6 at versions 2, 4, 3 (in that order): expected Ok([page-6 with 40 \
         views at version 4]): one ViewCount per page, its highest version, got {applied:?}. \
         Coalesce by version, not by position"
    );
    let row = site.row("page-6").await;
    assert_eq!(
        row,
        Some((40, 4)),
        "page-6's row after that batch: expected (40, 4), got {row:?}. The latest entry is the \
         highest version, not the last in the slice"
    );
    // A flusher that died before acknowledging version 3 left it to be applied again.
    let again = views.apply(&[entry("page-6", 30, 3)]).await;
    assert!(
        matches!(&again, Ok(rows) if rows == &[count("page-6", 30, 3)]),
        "apply() of page-6 at version 3 while its row is at version 4: expected \
         Ok([page-6 with 30 views at version 3]), the entry kept for the page whether or not \
         the row took it, got {again:?}. acknowledge() gives the pages apply() returned their \
         TTL back: one left out (say, because the version guard kept its row) stays without \
         a TTL after a replay"
    );
    let row = site.row("page-6").await;
    assert_eq!(
        row,
        Some((40, 4)),
        "page-6's row after version 3 was applied again over version 4: expected (40, 4) \
         unchanged, got {row:?}. The upsert must replace a row only with a newer version \
         (WHERE page_views.version < excluded.version)"
    );
    site.db().reset_queries();
    let nothing = views.apply(&[]).await;
    let queries = site.db().queries();
    assert!(
        matches!(&nothing, Ok(rows) if rows.is_empty()) && queries == 0,
        "apply() of no entries: expected Ok([]) and no query, got {nothing:?} and {queries} \
         queries"
    );
}

#[tokio::test]
async fn task2_a_page_written_during_a_flush_stays_dirty() {
    let site = site().await;
    let views = site.views().await;
    record(&views, "page-7", 1).await;
    record(&views, "page-7", 1).await;
    let batch = views.read_new("flusher-1").await.unwrap();
    // While the batch (version 2) is being committed, a third write makes page-7 dirty again.
    record(&views, "page-7", 1).await;
    let flushed = views.apply(&batch).await.unwrap();
    views.acknowledge(&batch, &flushed).await.unwrap();
    let ttl = site.pttl(&views, "page-7").await;
    assert_eq!(
        ttl, -1,
        "PTTL of page-7 after acknowledging version 2 while version 3 is cached and queued: \
         expected -1 (still dirty), got {ttl} ms. An expiring dirty count loses the write; \
         PEXPIRE only a page whose cached version is the flushed one, checked in the script"
    );
    let queued = site.queued(&views).await;
    assert!(
        queued.len() == 1 && queued[0].version == 3,
        "the queue after acknowledging the batch of versions 1 and 2: expected only version \
         3's entry, got {queued:?}. XACK and XDEL every entry of the batch, and only those"
    );
    let flushed = views.flush_once("flusher-1").await;
    let row = site.row("page-7").await;
    assert!(
        matches!(flushed, Ok(1)) && row == Some((3, 3)),
        "flush_once() of page-7's version 3, the one entry left: expected Ok(1) and the row \
         at (3, 3), got {flushed:?} and {row:?}"
    );
    assert_clean(&site, &views, "page-7", "once version 3 is flushed").await;
}

#[tokio::test]
async fn task2_an_acknowledgement_is_one_command() {
    let site = site_with_private_redis().await;
    let views = site.views().await;
    record(&views, "page-8", 1).await;
    record(&views, "page-9", 1).await;
    let batch = views.read_new("flusher-1").await.unwrap();
    let flushed = views.apply(&batch).await.unwrap();
    // Once with the script loaded, then watched.
    views.acknowledge(&batch[..1], &flushed[..1]).await.unwrap();
    let mut sent = site.server().watch_commands().await.unwrap();
    views.acknowledge(&batch[1..], &flushed[1..]).await.unwrap();
    let commands = sent.since_last().await;
    assert!(
        commands.len() == 1 && commands[0].starts_with("EVAL"),
        "commands sent by one acknowledge(): expected one script call (EVAL or EVALSHA), got \
         {commands:?}. A version read in Rust and a PEXPIRE after it let a write slip in \
         between and put a TTL on a dirty count"
    );
    let queued = site.queued(&views).await;
    assert!(
        queued.is_empty(),
        "the queue after both entries (page-8's, then page-9's) were acknowledged: expected \
         empty, got {queued:?}. The script must XACK and XDEL every entry id it is given"
    );
}

#[tokio::test]
async fn task2_a_failed_commit_acknowledges_nothing() {
    let site = site().await;
    let views = site.views().await;
    for _ in 0..3 {
        record(&views, "page-10", 1).await;
    }
    // The table goes away: the transaction fails.
    site.sql("ALTER TABLE page_views RENAME TO page_views_away")
        .await;
    let failed = views.flush_once("flusher-1").await;
    site.sql("ALTER TABLE page_views_away RENAME TO page_views")
        .await;
    assert!(
        matches!(failed, Err(FlushError::Database(_))),
        "flush_once() while the table is missing: expected Err(FlushError::Database(..)), got \
         {failed:?}. apply()'s error is the flush's: pass it on with ?, before acknowledging"
    );
    let queued = site.queued(&views).await.len();
    let pending = site.pending(&views).await;
    let mine = pending.iter().filter(|p| p.1 == "flusher-1").count();
    assert!(
        queued == 3 && mine == 3,
        "the queue after a flush whose commit failed: expected all 3 entries still queued and \
         pending with flusher-1, got {queued} queued and {mine} pending. An entry acknowledged \
         before its commit is lost when the commit fails"
    );
    let ttl = site.pttl(&views, "page-10").await;
    assert_eq!(
        ttl, -1,
        "PTTL of page-10 after a flush whose commit failed: expected -1 (no TTL: still dirty, \
         its count in no database), got {ttl}. A count given its TTL before the commit can \
         expire before any flush writes it"
    );
    let row = site.row("page-10").await;
    assert_eq!(
        row,
        Some((0, 0)),
        "page-10's database row (views, version) after a flush whose commit failed: expected \
         untouched, (0, 0), got {row:?}. A failed transaction leaves the table as it was"
    );
}

// ---- task 3: recovery --------------------------------------------------------------------------

#[tokio::test]
async fn task3_a_dead_flushers_entries_are_claimed_after_claim_idle() {
    let site = site().await;
    let views = site.views().await;
    for _ in 0..3 {
        record(&views, "page-11", 1).await;
    }
    for _ in 0..2 {
        record(&views, "page-12", 4).await;
    }
    // A flusher reads the five entries and dies without applying or acknowledging them.
    let read = views.read_new("dead").await.map(|batch| batch.len());
    assert!(
        matches!(read, Ok(5)),
        "entries a flusher read (read_new()) after 5 writes: expected Ok(5), got {read:?}. \
         Does every record_views() queue one entry?"
    );

    let early = views.recover("alive").await;
    assert!(
        matches!(early, Ok(0)),
        "recover() a moment after another flusher read the entries: expected Ok(0) (nothing has \
         been pending for claim_idle yet), got {early:?}. Taking a live flusher's batch makes \
         two flushers apply it; claim only after settings.claim_idle"
    );
    let held = site.pending(&views).await;
    assert!(
        held.len() == 5 && held.iter().all(|p| p.1 == "dead"),
        "pending entries (id, consumer, idle ms) after that early recover(): expected 5, all \
         still with 'dead', got {held:?}. An entry claimed by 'alive' was taken before \
         claim_idle: XAUTOCLAIM's min-idle-time is settings.claim_idle"
    );

    until_claimable(&site, &views).await;
    let recovered = views.recover("alive").await;
    assert!(
        matches!(recovered, Ok(5)),
        "recover() once the dead flusher's 5 entries had been pending for claim_idle: expected \
         Ok(5), the entries it claimed and applied, got {recovered:?}. Ok(0): nothing was \
         claimed (XAUTOCLAIM on Views::queue(), group GROUP, min-idle-time claim_idle, from \
         0-0); Ok(2): the pages were counted, not the entries"
    );
    for (page, expected) in [("page-11", (3, 3)), ("page-12", (8, 2))] {
        let row = site.row(page).await;
        assert_eq!(
            row,
            Some(expected),
            "{page}'s database row (views, version) after recover(): expected {expected:?}, \
             its last queued count, got {row:?}. Apply what you claimed before you \
             acknowledge it"
        );
        assert_clean(&site, &views, page, "after recover()").await;
    }
    let pending = site.pending(&views).await;
    let queued = site.queued(&views).await;
    assert!(
        pending.is_empty() && queued.is_empty(),
        "the queue after recover(): expected empty, got {} queued and {} pending: are the \
         claimed entries acknowledged?",
        queued.len(),
        pending.len()
    );
}

#[tokio::test]
async fn task3_a_replay_after_a_crash_changes_nothing() {
    let site = site().await;
    let views = site.views().await;
    record(&views, "page-13", 5).await;
    // A flusher commits version 1 and dies before acknowledging it.
    let batch = views.read_new("dead").await.unwrap();
    views
        .apply(&batch)
        .await
        .expect("apply() of page-13's version 1, with the database up: expected Ok, got Err");
    // Version 2 is written and flushed by a live flusher.
    record(&views, "page-13", 2).await;
    let flushed = views.flush_once("alive").await;
    let row = site.row("page-13").await;
    assert!(
        matches!(flushed, Ok(1)) && row == Some((7, 2)),
        "flush_once() of page-13's version 2 (7 views), the one new entry: expected Ok(1) and \
         the row at (7, 2), got {flushed:?} and {row:?}. A flush reads only entries no \
         consumer has received (read_new())"
    );

    until_claimable(&site, &views).await;
    let replayed = views.recover("alive").await;
    assert!(
        matches!(replayed, Ok(1)),
        "recover() of the dead flusher's one entry, already applied before it died: expected \
         Ok(1), got {replayed:?}. An entry already applied is claimed, applied again (which \
         changes nothing) and acknowledged like any other"
    );
    let row = site.row("page-13").await;
    assert_eq!(
        row,
        Some((7, 2)),
        "page-13's row after version 1 (5 views) was replayed over version 2 (7 views): \
         expected (7, 2), got {row:?}. (5, 1): an older entry replaced a newer row; (12, ..): \
         the replay was added. Delivery is at least once; apply must make it exactly once"
    );
}

#[tokio::test]
async fn task3_recover_follows_the_cursor_past_one_batch() {
    let site = site().await;
    let views = site.views().await;
    left_pending_by_a_dead_flusher(&views, 250).await;
    until_claimable(&site, &views).await;
    site.db().reset_queries();
    let recovered = views.recover("alive").await;
    let statements = site.db().queries();
    assert_eq!(
        statements, 3,
        "database statements by recover() of 250 entries with batch_size 100: expected 3, one \
         upsert per batch claimed, got {statements}. Claim at most batch_size entries at a time \
         (XAUTOCLAIM ... COUNT), and apply and acknowledge each batch before the next"
    );
    assert!(
        matches!(recovered, Ok(250)),
        "recover() of 250 pending entries with batch_size 100: expected Ok(250), got \
         {recovered:?}. One XAUTOCLAIM claims one batch: follow the cursor it returns until \
         it is 0-0"
    );
    let pending = site.pending(&views).await.len();
    assert_eq!(
        pending, 0,
        "entries still pending after recover() of 250: expected 0, got {pending}. Every \
         claimed batch must be acknowledged (XACK), and claiming go on until the cursor is 0-0"
    );
    for page in 1..=20 {
        let page = format!("page-{page}");
        let (expected, row) = (site.cached(&views, &page).await, site.row(&page).await);
        assert_eq!(
            row, expected,
            "{page}'s database row (views, version) after recover(): expected the cached \
             count, {expected:?}, got {row:?}. Each batch claimed must be applied, keeping each \
             page's highest version"
        );
    }
}

#[tokio::test]
async fn task3_recover_goes_on_past_an_empty_batch() {
    let site = site().await;
    let views = site.views().await;
    left_pending_by_a_dead_flusher(&views, 250).await;
    // The oldest 100 entries are deleted from the stream by hand while still pending: XAUTOCLAIM
    // drops them from the pending list, and its first batch comes back empty, with a cursor
    // that says there is more.
    let oldest: Vec<String> = site.queued(&views).await[..100]
        .iter()
        .map(|entry| entry.id.clone())
        .collect();
    let _: usize = site.conn().xdel(views.queue(), &oldest).await.unwrap();
    until_claimable(&site, &views).await;
    let recovered = views.recover("alive").await;
    let pending = site.pending(&views).await.len();
    assert!(
        matches!(recovered, Ok(150)) && pending == 0,
        "recover() of 250 pending entries whose oldest 100 were deleted from the stream: \
         expected Ok(150) and nothing left pending, got {recovered:?} with {pending} pending. \
         The first XAUTOCLAIM batch is empty with a cursor that is not 0-0: only the cursor \
         says when you are done, not an empty batch"
    );
}
