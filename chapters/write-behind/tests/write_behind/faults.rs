//! Faults under the writes: evictions, Redis down, the database down, Redis crashes with and
//! without persistence, and the source material's in-process queue.

use super::*;

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
    let outage = flusher.metrics.db_outage();
    assert!(
        outage.as_ref().is_some_and(|o| o.error.contains("scores")),
        "after {retries} failed commits the flusher should report an outage going on, with the \
         database's error (naming the missing table scores): found {outage:?}"
    );
    let mut setup = db.setup().await.unwrap();
    sqlx::query("ALTER TABLE scores_away RENAME TO scores")
        .execute(&mut *setup)
        .await
        .unwrap();
    setup.commit().await.unwrap();
    running.drain().await.unwrap();
    let outage = flusher.metrics.db_outage();
    assert!(
        outage.is_none(),
        "once commits went through again the outage should be over: found {outage:?}"
    );
    let wrong = differences(&fx, &expected).await;
    assert!(
        wrong.is_empty(),
        "rows wrong after the database came back: {wrong:?}"
    );
    assert_eq!(fx.depth().await, 0);
    fx.close().await;
}

/// Writes from 8 tasks until Redis is crashed once `crash_after` writes were acknowledged, each
/// player owned by one task; returns what was acknowledged per player and how many writes had an
/// unknown outcome (sent, no answer). Each task stops at its first failed write, so if every one
/// fails before `crash_after` the wait ends there, and the test fails saying so.
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
    loop {
        let acked = acked_count.load(std::sync::atomic::Ordering::SeqCst);
        if acked >= crash_after {
            break;
        }
        assert!(
            !tasks.iter().all(|task| task.is_finished()),
            "every writer stopped at a failed write after {acked} of the {crash_after} \
             acknowledged writes wanted before the crash: Redis failed (or timed out) before it \
             was crashed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
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

/// How many writes everysec loses is reported, not asserted (up to a second of them, or none);
/// what is asserted (in `lost_on_redis_crash`) holds whatever it loses: no write is applied
/// twice, and at least the 2,000 writes before the crash were acknowledged.
#[tokio::test]
async fn a_redis_crash_with_appendfsync_everysec_applies_no_write_twice() {
    let (lost, acked) = lost_on_redis_crash(Persistence::AofEverySec).await;
    assert!(
        acked >= 2_000 && lost <= acked,
        "appendfsync everysec: {acked} writes acknowledged before the kill -9 (expected at least \
         2,000) and {lost} of them lost (at most all of them)"
    );
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
