//! What write-behind promises, checked against a real Redis and a real database: counting,
//! never timing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use shared::server::MaxMemory;
use shared::{DbOptions, Persistence, ServerOptions, Stage};
use write_behind::flusher::{Entry, queue_depth};
use write_behind::write::{check_eviction_policy, create_queues};
use write_behind::{
    Apply, Flusher, HoldPoint, InProcessQueue, Layout, Scores, Settings, WriteBehind, WriteError,
    coalesce, table,
};

const PLAYERS: i64 = 40;

/// Short timings: a dead consumer's entries are claimed after 300 ms.
fn settings() -> Settings {
    Settings {
        claim_idle: Duration::from_millis(300),
        max_deliveries: 2,
        ttl: Duration::from_secs(120),
        ..Settings::default()
    }
}

/// A stage with the scores table and the queues.
struct Fixture {
    stage: Stage,
    layout: Layout,
}

impl Fixture {
    async fn on(stage: Result<Stage, shared::SetupError>) -> Self {
        Self::with_shards(stage, settings().shards).await
    }

    async fn with_shards(stage: Result<Stage, shared::SetupError>, shards: u16) -> Self {
        let stage = stage.expect("a Redis and a database for the tests");
        table::create(stage.db(), PLAYERS).await.unwrap();
        let layout = Layout::new(stage.namespace().clone(), shards);
        create_queues(&stage.conn(), &layout).await.unwrap();
        Fixture { stage, layout }
    }

    async fn shared() -> Self {
        Self::on(Stage::from_env("write-behind-test", DbOptions::default()).await).await
    }

    async fn private(server: ServerOptions) -> Self {
        Self::on(Stage::private("write-behind-test", DbOptions::default(), server).await).await
    }

    fn writer(&self) -> WriteBehind {
        WriteBehind::new(
            self.stage.conn(),
            self.stage.db().clone(),
            self.layout.clone(),
            settings(),
        )
    }

    fn flusher(&self, name: &str, apply: Apply) -> Arc<Flusher> {
        let (db, layout) = (self.stage.db().clone(), self.layout.clone());
        Arc::new(Flusher::new(db, layout, settings(), apply, name))
    }

    async fn points_in_db(&self, player: i64) -> i64 {
        self.stage.db().score(player).await.unwrap().unwrap().points
    }

    async fn depth(&self) -> u64 {
        queue_depth(&self.stage.conn(), &self.layout).await.unwrap()
    }

    /// Removes the run's keys and schema, while writers and flushers may still hold the
    /// database (the private SQLite file goes with the last of them).
    async fn close(self) {
        let left = self.stage.leftovers().remove().await;
        assert!(left.is_empty(), "the test's clean-up failed: {left:?}");
    }
}

/// Waits for `heard`, failing the test with `what` after 20 s.
async fn heard(heard: tokio::sync::oneshot::Receiver<()>, what: &str) {
    tokio::time::timeout(Duration::from_secs(20), heard)
        .await
        .unwrap_or_else(|_| panic!("{what} within 20 s"))
        .unwrap();
}

/// The (points, version) cached under `key`.
async fn cached_score(conn: &mut shared::RedisConn, key: &str) -> (i64, i64) {
    redis::cmd("HMGET")
        .arg(key)
        .arg("points")
        .arg("version")
        .query_async(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_write_and_its_queue_entry_land_together_or_not_at_all() {
    let fx = Fixture::shared().await;
    let writer = fx.writer();
    let mut conn = fx.stage.conn();
    let ack = writer.add_points(7, 30).await.unwrap();
    assert_eq!(
        (ack.points, ack.version),
        (30, 1),
        "player 7 started at 0 points, version 0: one write of +30 should make 30 at version 1"
    );
    let score_key = fx.layout.score(7);
    let cached = cached_score(&mut conn, &score_key).await;
    assert_eq!(cached, (30, 1), "the cached score after the write");
    let ttl: i64 = conn.pttl(&score_key).await.unwrap();
    assert_eq!(
        ttl, -1,
        "a dirty score (queued, not flushed) must have no TTL; PTTL was {ttl}"
    );
    let queue = fx.layout.queue(fx.layout.shard(7));
    let entries: redis::streams::StreamRangeReply = conn.xrange_all(&queue).await.unwrap();
    assert_eq!(entries.ids.len(), 1, "one queue entry for one write");
    let entry = &entries.ids[0];
    assert_eq!(
        entry.id, ack.entry,
        "the ack names the queue entry that carries the write"
    );
    assert_eq!(
        (entry.get::<i64>("points"), entry.get::<i64>("version")),
        (Some(30), Some(1)),
        "the entry carries the result (30 at version 1), not the operation"
    );

    // Break the queue: the script fails at XADD, and nothing else may change.
    let _: () = conn.del(&queue).await.unwrap();
    let _: () = conn.set(&queue, "not a stream").await.unwrap();
    let error = writer.add_points(7, 5).await.unwrap_err();
    assert!(
        matches!(error, WriteError::QueueUnavailable { .. }),
        "a write whose queue entry cannot be added must not be acknowledged; got {error}"
    );
    let cached = cached_score(&mut conn, &score_key).await;
    assert_eq!(
        cached,
        (30, 1),
        "a write that could not be queued changed the cached score: the cache and the queue \
         must change together"
    );
    let _: () = conn.del(&queue).await.unwrap();
    fx.close().await;
}

#[tokio::test]
async fn a_write_is_one_script_call() {
    let fx = Fixture::private(ServerOptions::default()).await;
    let writer = fx.writer();
    writer.add_points(3, 1).await.unwrap(); // loads the script and the base
    let mut watch = fx.stage.server().watch_commands().await.unwrap();
    writer.add_points(3, 1).await.unwrap();
    let sent = watch.since_last().await;
    assert_eq!(
        sent,
        ["EVALSHA"],
        "a write of a cached player should send one script call, so the cache and the queue \
         change atomically; it sent {sent:?}"
    );
    fx.close().await;
}

#[test]
fn a_batch_with_a_player_several_times_coalesces_to_its_latest_version() {
    let entry = |id: &str, player, points, version, delta| Entry {
        id: id.into(),
        player,
        points,
        version,
        delta,
        deliveries: 1,
    };
    let rows = coalesce(&[
        entry("1-0", 5, 10, 1, 10),
        entry("1-1", 6, 3, 1, 3),
        entry("1-3", 5, 15, 3, 2),
        entry("1-2", 5, 13, 2, 3),
    ]);
    assert_eq!(rows.len(), 2, "two players, two rows: {rows:?}");
    assert_eq!(
        (
            rows[0].player,
            rows[0].points,
            rows[0].version,
            rows[0].delta
        ),
        (5, 15, 3, 15),
        "player 5: the highest version wins (15 at version 3) and the deltas add up (15)"
    );
}

#[tokio::test]
async fn the_flusher_commits_a_batch_in_one_transaction_and_marks_players_clean() {
    let fx = Fixture::shared().await;
    let writer = fx.writer();
    for _ in 0..5 {
        for player in [1, 5, 9] {
            writer.add_points(player, 10).await.unwrap();
        }
    }
    let flusher = fx.flusher("only", Apply::Versioned);
    let running = flusher.clone().start(&fx.stage.redis_url()).await.unwrap();
    running.drain().await.unwrap();
    let stats = flusher.metrics.snapshot();
    for player in [1, 5, 9] {
        assert_eq!(
            fx.points_in_db(player).await,
            50,
            "player {player} after 5 x +10"
        );
    }
    assert_eq!(
        stats.acknowledged, 15,
        "every entry acknowledged: {stats:?}"
    );
    assert_eq!(
        stats.rows, 3,
        "15 entries for 3 players coalesce into 3 rows: {stats:?}"
    );
    assert_eq!(stats.coalesced, 12, "{stats:?}");
    assert!(
        stats.transactions <= 2,
        "players 1, 5 and 9 sit in two shards; expected at most 2 transactions: {stats:?}"
    );
    assert_eq!(fx.depth().await, 0, "the queues are empty after the drain");
    let mut conn = fx.stage.conn();
    let ttl: i64 = conn.pttl(fx.layout.score(5)).await.unwrap();
    assert!(
        (110_000..=120_000).contains(&ttl),
        "a flushed score gets the 120 s TTL; PTTL was {ttl} ms"
    );
    fx.close().await;
}

/// Writes `writes` increments of 1 to players 1..=PLAYERS, round robin; returns each player's
/// acknowledged total.
async fn write_round_robin(writer: &WriteBehind, writes: i64) -> BTreeMap<i64, i64> {
    let mut expected = BTreeMap::new();
    for i in 0..writes {
        let player = i % PLAYERS + 1;
        writer.add_points(player, 1).await.unwrap();
        *expected.entry(player).or_insert(0) += 1;
    }
    expected
}

/// The players whose row differs from `expected`, as (player, expected, found).
async fn differences(fx: &Fixture, expected: &BTreeMap<i64, i64>) -> Vec<(i64, i64, i64)> {
    let mut wrong = Vec::new();
    for (&player, &points) in expected {
        let found = fx.points_in_db(player).await;
        if found != points {
            wrong.push((player, points, found));
        }
    }
    wrong
}

/// A flusher stopped dead at `point` of its first commit (and dropped, which leaves Redis and
/// the database as a kill -9 would), then a second flusher that takes over its entries.
/// Returns the second flusher's stats and the players whose rows are wrong.
async fn crash_and_recover(
    point: HoldPoint,
    apply: Apply,
) -> (write_behind::FlushStats, Vec<(i64, i64, i64)>) {
    // One shard, so one flusher loop: the one held is the only one, and what was committed
    // before the crash is exactly what the hold point says (with several shards, the other
    // loops could commit before the crash).
    let stage = Stage::from_env("write-behind-test", DbOptions::default()).await;
    let fx = Fixture::with_shards(stage, 1).await;
    let writer = fx.writer();
    let expected = write_round_robin(&writer, 200).await;
    let doomed = fx.flusher("doomed", apply);
    let reached = doomed.hold_at(point, 1);
    let running = doomed.clone().start(&fx.stage.redis_url()).await.unwrap();
    heard(reached, "the first flusher reached its hold point").await;
    drop(running); // the crash
    let heir = fx.flusher("heir", apply);
    let running = heir.clone().start(&fx.stage.redis_url()).await.unwrap();
    running.drain().await.unwrap();
    let stats = heir.metrics.snapshot();
    let wrong = differences(&fx, &expected).await;
    assert_eq!(fx.depth().await, 0, "the heir drained every queue");
    fx.close().await;
    (stats, wrong)
}

#[tokio::test]
async fn a_flusher_killed_between_commit_and_ack_is_replayed_and_nothing_applies_twice() {
    let (stats, wrong) = crash_and_recover(HoldPoint::AfterCommit, Apply::Versioned).await;
    assert!(
        stats.claimed > 0,
        "the heir should have claimed the dead flusher's committed, unacknowledged entries \
         (XAUTOCLAIM after claim_idle): {stats:?}"
    );
    assert!(
        stats.replayed > 0,
        "the replayed rows should have been left alone by the versioned upsert: {stats:?}"
    );
    assert!(
        wrong.is_empty(),
        "(player, acknowledged points, points in the database) that differ after the replay: \
         {wrong:?}. The replay must change nothing it already applied"
    );
}

#[tokio::test]
async fn replaying_increments_instead_of_results_applies_them_twice() {
    let (stats, wrong) = crash_and_recover(HoldPoint::AfterCommit, Apply::Increments).await;
    assert!(stats.claimed > 0, "{stats:?}");
    assert!(
        !wrong.is_empty() && wrong.iter().all(|&(_, expected, found)| found > expected),
        "applying deltas, the replay of a committed batch should have added them twice to \
         every player in it; (player, acknowledged, database): {wrong:?}"
    );
}

#[tokio::test]
async fn a_flusher_killed_before_its_commit_leaves_its_entries_to_another() {
    let (stats, wrong) = crash_and_recover(HoldPoint::BeforeCommit, Apply::Versioned).await;
    assert!(stats.claimed > 0, "the heir claimed the entries: {stats:?}");
    assert_eq!(
        stats.replayed, 0,
        "nothing was committed before the crash, so nothing is a replay: {stats:?}"
    );
    assert!(wrong.is_empty(), "rows that differ: {wrong:?}");
}

#[tokio::test]
async fn a_refused_row_becomes_a_dead_letter_and_the_others_go_through() {
    let fx = Fixture::shared().await;
    let writer = fx.writer();
    writer.add_points(4, 10).await.unwrap();
    writer.add_points(8, 5).await.unwrap();
    // Player 4 would go below zero: the table's CHECK refuses it, Redis cannot know.
    writer.add_points(4, -50).await.unwrap();
    writer.add_points(12, 7).await.unwrap();
    let flusher = fx.flusher("only", Apply::Versioned);
    let running = flusher.clone().start(&fx.stage.redis_url()).await.unwrap();
    running.drain().await.unwrap();
    let stats = flusher.metrics.snapshot();
    assert_eq!(
        (fx.points_in_db(8).await, fx.points_in_db(12).await),
        (5, 7),
        "the rows behind the refused one must be applied"
    );
    assert_eq!(fx.points_in_db(4).await, 0, "player 4's refused row");
    assert_eq!(
        stats.dead_letters, 2,
        "player 4's two entries (coalesced into the refused row) become dead letters: {stats:?}"
    );
    let mut conn = fx.stage.conn();
    let dead: redis::streams::StreamRangeReply = conn
        .xrange_all(fx.layout.dead(fx.layout.shard(4)))
        .await
        .unwrap();
    assert_eq!(dead.ids.len(), 2, "two dead letters in player 4's shard");
    let letter = &dead.ids[1];
    assert_eq!(letter.get::<i64>("player"), Some(4));
    assert_eq!(
        letter.get::<i64>("deliveries"),
        Some(2),
        "buried after max_deliveries (2) deliveries"
    );
    let error: String = letter.get("error").unwrap();
    assert!(
        !error.is_empty(),
        "the dead letter carries the database's error"
    );
    assert_eq!(
        writer.score(4).await.unwrap(),
        Some(0),
        "after its writes were buried, player 4 reads what the database holds"
    );
    assert_eq!(fx.depth().await, 0);
    fx.close().await;
}

/// A private server with `mib` MiB of memory and the eviction `policy`.
fn limited(mib: u64, policy: &str) -> ServerOptions {
    let limit = MaxMemory {
        bytes: mib * 1024 * 1024,
        policy: policy.into(),
    };
    ServerOptions {
        max_memory: Some(limit),
        ..ServerOptions::default()
    }
}

#[tokio::test]
async fn reads_see_every_acknowledged_write_before_the_flush_and_after_evictions() {
    let fx = Fixture::private(limited(4, "volatile-lru")).await;
    check_eviction_policy(&fx.stage.conn()).await.unwrap();
    let writer = fx.writer();
    let mut acked = 0;
    for _ in 0..20 {
        acked = writer.add_points(21, 3).await.unwrap().points;
    }
    assert_eq!(writer.score(21).await.unwrap(), Some(acked));
    // Fill memory with clean, expiring keys until Redis evicts.
    let mut conn = fx.stage.conn();
    let filler = "x".repeat(10_000);
    for i in 0..1_500 {
        let _: () = conn
            .set_ex(fx.stage.key(&format!("filler:{i}")), &filler, 600)
            .await
            .unwrap();
    }
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut conn)
        .await
        .unwrap();
    let evicted: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("evicted_keys:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(evicted > 0, "the filler should have made Redis evict keys");
    assert_eq!(
        writer.score(21).await.unwrap(),
        Some(acked),
        "after {evicted} evictions, a read must still return the last acknowledged write \
         ({acked} points): a dirty score has no TTL, and volatile-lru evicts only keys with one"
    );
    assert_eq!(fx.points_in_db(21).await, 0, "nothing was flushed yet");
    fx.close().await;
}

#[tokio::test]
async fn an_allkeys_eviction_policy_is_refused() {
    let fx = Fixture::private(limited(64, "allkeys-lru")).await;
    let error = check_eviction_policy(&fx.stage.conn()).await.unwrap_err();
    assert!(error.contains("volatile"), "advice names the fix: {error}");
    fx.close().await;
}

#[tokio::test]
async fn with_redis_down_no_write_is_acknowledged_and_reads_use_the_database() {
    let server = ServerOptions {
        persistence: Persistence::AofAlways,
        ..ServerOptions::default()
    };
    let fx = Fixture::private(server).await;
    let writer = fx.writer();
    writer.add_points(2, 40).await.unwrap();
    fx.stage.server().stop();
    let error = writer.add_points(2, 1).await.unwrap_err();
    assert!(
        matches!(error, WriteError::QueueUnavailable { .. }),
        "with Redis down the write must fail, not be acknowledged: {error}"
    );
    assert_eq!(
        writer.score(2).await.unwrap(),
        Some(0),
        "with Redis down a read falls back to the database (which has not been flushed yet)"
    );
    fx.stage.server().restart().unwrap();
    let flusher = fx.flusher("only", Apply::Versioned);
    let running = flusher.clone().start(&fx.stage.redis_url()).await.unwrap();
    running.drain().await.unwrap();
    assert_eq!(
        fx.points_in_db(2).await,
        40,
        "the write acknowledged before the outage is kept (AOF) and flushed; the refused one \
         is not applied"
    );
    fx.close().await;
}

#[tokio::test]
async fn with_the_database_down_the_queue_grows_then_drains_in_order() {
    let fx = Fixture::shared().await;
    let writer = fx.writer();
    // One write per player first: their bases are read from the database while it is there.
    let mut expected = write_round_robin(&writer, PLAYERS).await;
    let db = fx.stage.db();
    let mut setup = db.setup().await.unwrap();
    sqlx::query("ALTER TABLE scores RENAME TO scores_away")
        .execute(&mut *setup)
        .await
        .unwrap();
    setup.commit().await.unwrap();
    let flusher = fx.flusher("only", Apply::Versioned);
    let running = flusher.clone().start(&fx.stage.redis_url()).await.unwrap();
    for (player, points) in write_round_robin(&writer, 120).await {
        *expected.entry(player).or_insert(0) += points;
    }
    // Wait for the first failed transactions, by their count.
    for _ in 0..400 {
        if flusher.metrics.snapshot().retries >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let retries = flusher.metrics.snapshot().retries;
    assert!(
        retries >= 2,
        "the flusher should retry a failing database: {retries} retries"
    );
    let depth = fx.depth().await;
    assert_eq!(
        depth, 160,
        "every write stays queued while the database is down"
    );
    let mut setup = db.setup().await.unwrap();
    sqlx::query("ALTER TABLE scores_away RENAME TO scores")
        .execute(&mut *setup)
        .await
        .unwrap();
    setup.commit().await.unwrap();
    running.drain().await.unwrap();
    let wrong = differences(&fx, &expected).await;
    assert!(
        wrong.is_empty(),
        "rows wrong after the database came back: {wrong:?}"
    );
    assert_eq!(fx.depth().await, 0);
    fx.close().await;
}

/// Writes from 8 tasks until `stop`, each player owned by one task; returns what was
/// acknowledged per player and how many writes had an unknown outcome (sent, no answer).
async fn write_until_crash(
    writer: Arc<WriteBehind>,
    crash_after: u64,
    server: &shared::RedisServer,
) -> (BTreeMap<i64, i64>, BTreeMap<i64, i64>) {
    let acked_count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|lane| {
            let (writer, acked_count) = (writer.clone(), acked_count.clone());
            tokio::spawn(async move {
                let (mut acked, mut unknown) = (BTreeMap::new(), BTreeMap::new());
                for i in 0.. {
                    let player = (i * 8 + lane) % PLAYERS + 1;
                    match writer.add_points(player, 1).await {
                        Ok(_) => {
                            *acked.entry(player).or_insert(0) += 1;
                            acked_count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        Err(_) => {
                            *unknown.entry(player).or_insert(0) += 1;
                            break;
                        }
                    }
                }
                (acked, unknown)
            })
        })
        .collect();
    while acked_count.load(std::sync::atomic::Ordering::SeqCst) < crash_after {
        tokio::task::yield_now().await;
    }
    server.crash();
    let (mut acked, mut unknown) = (BTreeMap::new(), BTreeMap::new());
    for task in tasks {
        let (a, u) = task.await.unwrap();
        for (p, n) in a {
            *acked.entry(p).or_insert(0) += n;
        }
        for (p, n) in u {
            *unknown.entry(p).or_insert(0) += n;
        }
    }
    (acked, unknown)
}

/// Crashes Redis (kill -9) under 8 writers, restarts it, drains; returns the acknowledged
/// writes the database lacks, summed over players.
async fn lost_on_redis_crash(persistence: Persistence) -> (u64, u64) {
    let server = ServerOptions {
        persistence,
        ..ServerOptions::default()
    };
    let fx = Fixture::private(server).await;
    let writer = Arc::new(fx.writer());
    let (acked, unknown) = write_until_crash(writer, 2_000, fx.stage.server()).await;
    fx.stage.server().restart().unwrap();
    let flusher = fx.flusher("after-crash", Apply::Versioned);
    let running = flusher.clone().start(&fx.stage.redis_url()).await.unwrap();
    running.drain().await.unwrap();
    let mut lost = 0;
    let total: i64 = acked.values().sum();
    for (&player, &points) in &acked {
        let found = fx.points_in_db(player).await;
        let maybe = unknown.get(&player).copied().unwrap_or(0);
        assert!(
            found <= points + maybe,
            "player {player}: {found} points in the database, more than the {points} \
             acknowledged plus {maybe} unanswered: a write was applied twice"
        );
        lost += (points - found).max(0) as u64;
    }
    fx.close().await;
    (lost, total as u64)
}

#[tokio::test]
async fn a_redis_crash_with_appendfsync_always_loses_no_acknowledged_write() {
    let (lost, acked) = lost_on_redis_crash(Persistence::AofAlways).await;
    assert_eq!(
        lost, 0,
        "with appendfsync always, {lost} of {acked} acknowledged writes were lost to a kill -9 \
         of Redis: every write is fsynced before its reply"
    );
}

#[tokio::test]
async fn a_redis_crash_with_appendfsync_everysec_is_reported() {
    let (lost, acked) = lost_on_redis_crash(Persistence::AofEverySec).await;
    // Reported, not asserted: up to a second of writes may be lost, or none.
    eprintln!("appendfsync everysec: {lost} of {acked} acknowledged writes lost to a kill -9");
}

#[tokio::test]
async fn the_in_process_queue_loses_acknowledged_writes() {
    let fx = Fixture::shared().await;
    let layout = Layout::new(fx.stage.namespace().child("source"), 1);
    let source = Arc::new(InProcessQueue::new(
        fx.stage.conn(),
        fx.stage.db().clone(),
        layout.clone(),
    ));
    let worker = source.clone().start(Duration::from_secs(3600));
    for i in 0..300 {
        source.add_points(i % PLAYERS + 1, 1).await.unwrap();
    }
    // A polite stop: one batch of 100 flushed, the rest dropped.
    InProcessQueue::stop(worker).await.unwrap();
    let in_db: i64 = fx
        .stage
        .db()
        .all_scores()
        .await
        .unwrap()
        .iter()
        .map(|s| s.points)
        .sum();
    assert_eq!(
        (in_db, source.abandoned.get()),
        (100, 200),
        "the source's stop flushes one batch of 100 (of 300 acknowledged) and drops the rest"
    );
    let mut conn = fx.stage.conn();
    let ttl: i64 = conn.pttl(layout.score(1)).await.unwrap();
    assert_eq!(ttl, -1, "and its cached scores never expire");
    fx.close().await;
}

#[tokio::test]
async fn a_redis_crash_without_persistence_loses_the_whole_queue() {
    let (lost, acked) = lost_on_redis_crash(Persistence::Off).await;
    eprintln!("no persistence: {lost} of {acked} acknowledged writes lost to a kill -9");
    assert_eq!(
        lost, acked,
        "without an append-only file a Redis crash takes every queued write with it: the reason \
         this lesson's Redis keeps one"
    );
}
