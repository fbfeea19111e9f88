//! Trouble below L1: Redis down, the fail-safe's maximum age, a corrupt entry, and client tracking.

use super::*;

#[tokio::test]
async fn redis_down_degrades_to_the_database_and_l1_is_flushed_when_it_returns() {
    let f = Fixture::private().await;
    let reader = f.two_tier(settings()).await;
    read(&reader, ITEM).await;
    f.stage.server().stop();

    let (_, layer) = read(&reader, ITEM).await;
    assert_eq!(layer, Layer::L1, "with Redis down, L1 hits should go on");
    let (item, layer) = read(&reader, ITEM + 1).await;
    assert_eq!(
        (item.id, layer),
        (ITEM + 1, Layer::Database),
        "with Redis down, a miss should be answered by the database"
    );
    assert!(
        reader.stats().redis_errors >= 1,
        "the failed Redis call should be counted"
    );

    f.stage.server().restart().unwrap();
    until(
        "the reader to resubscribe and flush its L1",
        EVENT_WITHIN,
        || reader.stats().flushes >= 1,
    )
    .await;
    let (_, layer) = read(&reader, ITEM).await;
    assert_ne!(
        layer,
        Layer::L1,
        "after Redis returned, the L1 should have been flushed"
    );
    let (_, layer) = read(&reader, ITEM).await;
    assert_eq!(
        layer,
        Layer::L1,
        "and traffic resumes: the next read is an L1 hit again"
    );
}

#[tokio::test]
async fn the_fail_safe_serves_the_last_value_up_to_its_maximum_age() {
    let f = Fixture::private().await;
    let fail_safe = Settings {
        l1_ttl: Duration::from_millis(50),
        fail_safe_max_age: Duration::from_millis(1_500),
        fail_safe_throttle: Duration::from_millis(500),
        ..settings()
    };
    let reader = f.two_tier(fail_safe.clone()).await;
    let (known, _) = read(&reader, ITEM).await;
    let loaded = Instant::now();
    f.stage.server().stop();
    f.break_database(true).await;
    tokio::time::sleep(fail_safe.l1_ttl * 2).await;

    let queries = f.stage.db().queries();
    let (served, layer) = read(&reader, ITEM).await;
    assert_eq!(
        (served, layer),
        (known.clone(), Layer::FailSafe),
        "with Redis and the database down, the last known value should be served, marked fail-safe"
    );
    let (_, layer) = read(&reader, ITEM).await;
    assert_eq!(
        layer,
        Layer::FailSafe,
        "the fail-safe answer is still an old value"
    );
    assert_eq!(
        f.stage.db().queries() - queries,
        1,
        "within the throttle, a second read should not ask the failing database again"
    );
    assert_eq!(reader.stats().fail_safe, 2);

    let never = reader.item(ITEM + 1).await;
    assert!(
        never.is_err(),
        "a key never loaded has no last value: the read fails"
    );

    tokio::time::sleep(
        (fail_safe.fail_safe_max_age + Duration::from_millis(200)).saturating_sub(loaded.elapsed()),
    )
    .await;
    let too_old = reader.item(ITEM).await;
    assert!(
        too_old.is_err(),
        "after the maximum age of {:?}, the fail-safe should serve nothing; it served {too_old:?}",
        fail_safe.fail_safe_max_age
    );

    f.break_database(false).await;
    f.stage.server().restart().unwrap();
    let (item, _) = read(&reader, ITEM).await;
    assert_eq!(
        item, known,
        "once the database is back, reads are answered again"
    );
}

#[tokio::test]
async fn a_corrupt_redis_entry_is_a_miss() {
    let f = Fixture::shared().await;
    let reader = f.two_tier(settings()).await;
    let key = f.stage.namespace().key(&shared::keys::entity("item", ITEM));
    let mut conn = f.stage.conn();
    let _: () = conn.set_ex(&key, "not json", 60).await.unwrap();
    let (item, layer) = read(&reader, ITEM).await;
    assert_eq!((item.id, layer), (ITEM, Layer::Database));
    assert_eq!(
        reader.stats().corrupt,
        1,
        "the unreadable entry should be counted"
    );
}

#[tokio::test]
async fn client_tracking_drops_a_local_copy_when_another_instance_writes() {
    let f = Fixture::shared().await;
    let writer = f.instance(Kind::Tracking, settings()).await;
    let reader = f.instance(Kind::Tracking, settings()).await;
    read(&reader, ITEM).await;
    read(&reader, ITEM).await;
    let (old, _) = read(&reader, ITEM).await;
    assert!(
        reader.stats().l1_hits >= 1,
        "with tracking, repeated reads should be served from the connection's memory: {:?}",
        reader.stats()
    );
    let written = writer.set_price(ITEM, 4_444).await.unwrap().unwrap();
    let mut seen = old.clone();
    let started = Instant::now();
    while seen.version < written.version && started.elapsed() < EVENT_WITHIN {
        tokio::time::sleep(Duration::from_millis(5)).await;
        seen = read(&reader, ITEM).await.0;
    }
    assert_eq!(
        seen.version, written.version,
        "the server's invalidation push should drop the reader's copy of version {}",
        old.version
    );
}
