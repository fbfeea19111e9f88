//! The write path: a write and its queue entry in one script, and coalescing a batch.

use super::*;

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
