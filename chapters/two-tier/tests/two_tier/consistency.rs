//! How every instance's L1 stays in step: the backplane, a lost connection, an invalidation during
//! a load, one trip below L1 for concurrent misses, size and lifetime, and the source's stale L1.

use super::*;

#[tokio::test]
async fn a_write_reaches_every_l1_through_the_backplane() {
    let f = Fixture::shared().await;
    let (writer, reader) = (f.two_tier(settings()).await, f.two_tier(settings()).await);
    read(&reader, ITEM).await;
    let (before, layer) = read(&reader, ITEM).await;
    assert_eq!(
        layer,
        Layer::L1,
        "a second read of a key should be an L1 hit"
    );

    let written = writer.set_price(ITEM, 4_242).await.unwrap().unwrap();
    until(
        "the reader to hear the write's invalidation",
        EVENT_WITHIN,
        || reader.stats().invalidations >= 1,
    )
    .await;
    let (after, layer) = read(&reader, ITEM).await;
    assert_eq!(
        (after.version, after.price_cents),
        (written.version, 4_242),
        "after hearing the invalidation, the reader should show the written row (it showed {after:?}, \
         {before:?} before the write); likely cause: the L1 copy was not dropped"
    );
    assert_ne!(
        layer,
        Layer::L1,
        "the read after an invalidation must go below L1"
    );
}

#[tokio::test]
async fn the_source_l1_keeps_a_stale_value_for_ever() {
    let f = Fixture::shared().await;
    let short = Settings {
        l1_ttl: Duration::from_millis(100),
        ..settings()
    };
    let writer = f.instance(Kind::Source, short.clone()).await;
    let reader = f.instance(Kind::Source, short.clone()).await;
    let (old, _) = read(&reader, ITEM).await;
    let written = writer.set_price(ITEM, 4_343).await.unwrap().unwrap();
    // Ten times the lifetime the two-tier L1 would have served it for.
    tokio::time::sleep(short.l1_ttl * 10).await;
    let (seen, layer) = read(&reader, ITEM).await;
    assert_eq!(
        (seen.version, layer),
        (old.version, Layer::L1),
        "the source's L1 has no lifetime and hears no invalidation, so it should still serve \
         version {} from L1 a second after version {} was written; it served {seen:?} from {layer:?}",
        old.version,
        written.version
    );
}

#[tokio::test]
async fn a_lost_backplane_connection_flushes_l1() {
    let f = Fixture::of_its_own().await;
    let reader = f.two_tier(settings()).await;
    read(&reader, ITEM).await;
    read(&reader, ITEM + 1).await;
    let AnyCache::TwoTier(two_tier) = &reader else {
        unreachable!()
    };
    assert_eq!(
        two_tier.l1().len().await,
        2,
        "L1 should hold the two items read"
    );

    // Cut every subscriber's connection on the node the subscriptions use.
    let instance = f.stage.instance().await.unwrap();
    let killed = instance.kill_subscribers().await.unwrap();
    assert!(
        killed >= 1,
        "CLIENT KILL TYPE pubsub found no subscriber to cut"
    );
    until(
        "the reader to resubscribe and flush its L1",
        EVENT_WITHIN,
        || reader.stats().flushes >= 1,
    )
    .await;
    assert!(
        two_tier.l1().is_empty().await,
        "after a lost subscription the L1 should be empty (it may have missed invalidations); it \
         holds {} entries",
        two_tier.l1().len().await
    );
    let (_, layer) = read(&reader, ITEM).await;
    assert_eq!(
        layer,
        Layer::L2,
        "after the flush, the read should go to Redis"
    );
}

#[tokio::test]
async fn an_invalidation_during_a_load_does_not_stay_in_l1() {
    let l1 = Arc::new(L1::<i64>::new(&settings()));
    let (started_tx, started) = tokio::sync::oneshot::channel();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let load = {
        let l1 = l1.clone();
        tokio::spawn(async move {
            l1.get_or_fetch(ITEM, async move {
                started_tx.send(()).unwrap();
                released.await.unwrap();
                // What the load read before the write: the old value.
                Ok((1, Layer::L2))
            })
            .await
        })
    };
    started.await.unwrap();
    l1.invalidate(ITEM).await; // the write's invalidation arrives while the load runs
    release.send(()).unwrap();
    let (entry, fetch) = load.await.unwrap().unwrap();
    assert_eq!(entry.value, 1, "the caller still gets what it loaded");
    assert_eq!(
        fetch,
        Fetch::Undone,
        "the load was overtaken by an invalidation"
    );
    assert!(
        l1.get(ITEM).await.is_none(),
        "an invalidation that arrived while the load ran must leave no copy of the old value in L1"
    );

    // Without an invalidation, the load's value stays.
    let (_, fetch) = l1
        .get_or_fetch(ITEM, async { Ok((2, Layer::L2)) })
        .await
        .unwrap();
    assert_eq!(fetch, Fetch::Kept);
    assert_eq!(l1.get(ITEM).await.map(|e| e.value), Some(2));
}

#[tokio::test]
async fn concurrent_misses_make_one_trip_below_l1() {
    let f = Fixture::shared().await;
    f.stage.db().set_latency(Duration::from_millis(50));
    let reader = Arc::new(f.two_tier(settings()).await);
    let queries = f.stage.db().queries();
    let reads: Vec<_> = (0..20)
        .map(|_| {
            let reader = reader.clone();
            tokio::spawn(async move { read(&reader, ITEM).await })
        })
        .collect();
    for r in reads {
        assert_eq!(r.await.unwrap().0.id, ITEM);
    }
    let stats = reader.stats();
    assert_eq!(
        f.stage.db().queries() - queries,
        1,
        "20 concurrent misses of one key in one instance should make one database query"
    );
    assert_eq!(
        (stats.l2_hits + stats.loads, stats.coalesced + stats.l1_hits),
        (1, 19),
        "one read should go below L1 and the other 19 wait for it or hit L1; counted {stats:?}"
    );
}

#[tokio::test]
async fn l1_keeps_its_size_and_its_lifetime() {
    let f = Fixture::shared().await;
    let small = Settings {
        l1_capacity: 50,
        l1_ttl: Duration::from_millis(300),
        ..settings()
    };
    let reader = f.two_tier(small.clone()).await;
    let AnyCache::TwoTier(two_tier) = &reader else {
        unreachable!()
    };
    for id in 1..=200 {
        read(&reader, id).await;
    }
    let held = two_tier.l1().len().await;
    assert!(
        (1..=50).contains(&held),
        "an L1 of capacity 50 should hold at most 50 entries after 200 distinct reads; it holds {held}"
    );

    read(&reader, 250).await;
    let stored = Instant::now();
    let (_, layer) = read(&reader, 250).await;
    if stored.elapsed() < small.l1_ttl {
        assert_eq!(
            layer,
            Layer::L1,
            "within its lifetime, the copy should be served"
        );
    }
    tokio::time::sleep(small.l1_ttl + Duration::from_millis(100)).await;
    let (_, layer) = read(&reader, 250).await;
    assert_eq!(
        layer,
        Layer::L2,
        "after its {:?} lifetime the L1 copy should be gone and Redis asked",
        small.l1_ttl
    );
}
