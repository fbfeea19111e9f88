//! The flusher: one transaction per batch, a crash at each point of a commit, dead letters.

use redis::streams::{StreamReadOptions, StreamReadReply};
use write_behind::layout::GROUP;

use super::*;

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

#[tokio::test]
async fn an_idle_entry_behind_many_busy_ones_is_claimed_by_following_the_cursor() {
    // One shard. A live consumer has just read 30 entries and holds them; one more entry, the
    // newest, has been idle for an hour (its consumer died). XAUTOCLAIM looks at ten times its
    // COUNT per call, here 2 x 10 = 20 entries: a flusher that starts every call at 0-0 looks at
    // the same 20 busy ones for ever, and one that follows the cursor reaches the idle one.
    let stage = Stage::from_env("write-behind-test", DbOptions::default()).await;
    let fx = Fixture::with_shards(stage, 1).await;
    write_round_robin(&fx.writer(), 31).await;
    let queue = fx.layout.queue(0);
    let mut conn = fx.stage.conn();
    let options = StreamReadOptions::default()
        .group(GROUP, "alive")
        .count(100);
    let read: StreamReadReply = conn
        .xread_options(&[&queue], &[">"], &options)
        .await
        .unwrap();
    let ids: Vec<String> = read
        .keys
        .into_iter()
        .flat_map(|k| k.ids)
        .map(|id| id.id)
        .collect();
    assert_eq!(ids.len(), 31, "the live consumer read every queued entry");
    let abandoned = ids.last().unwrap();
    redis::cmd("XCLAIM")
        .arg(&queue)
        .arg(GROUP)
        .arg("dead")
        .arg(0)
        .arg(abandoned)
        .arg("IDLE")
        .arg(3_600_000)
        .arg("JUSTID")
        .query_async::<redis::Value>(&mut conn)
        .await
        .unwrap();
    let settings = Settings {
        batch_size: 2,
        claim_idle: Duration::from_secs(60),
        ..settings()
    };
    let (db, layout) = (fx.stage.db().clone(), fx.layout.clone());
    let heir = Arc::new(Flusher::new(db, layout, settings, Apply::Versioned, "heir"));
    let reached = heir.hold_at(HoldPoint::BeforeCommit, 1);
    let running = heir.clone().start(&fx.stage.redis_url()).await.unwrap();
    heard(
        reached,
        "the heir should have claimed the entry idle for an hour, behind 30 busy ones, by \
         following XAUTOCLAIM's cursor (a walk restarted at 0-0 never gets past the first 20); \
         it committed nothing",
    )
    .await;
    drop(running);
    let claimed = heir.metrics.snapshot().claimed;
    assert_eq!(
        claimed, 1,
        "claimed entries: expected only the abandoned one (the 30 others are busy, idle under \
         claim_idle), found {claimed}"
    );
    fx.close().await;
}
