//! What the two-tier cache promises, checked with real instances against a real Redis and a real
//! database: a write reaches every L1 within the bound, a lost backplane flushes, an invalidation
//! beats a load in flight, concurrent misses make one trip, L1 keeps its size and lifetime, Redis
//! trouble degrades to the database, and the fail-safe serves old values only up to their age.
//! The source material's L1 is checked to fail the first promise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use shared::exercise::until;
use shared::{DbOptions, ServerOptions, Stage};
use sqlx::Executor;
use two_tier::l1::{Fetch, L1};
use two_tier::{AnyCache, Item, Kind, Layer, Settings, catalog};

/// Long enough that nothing expires during a test unless the test says so.
fn settings() -> Settings {
    Settings {
        l1_ttl: Duration::from_secs(60),
        ..Settings::default()
    }
}

/// How long a test waits for an event (a message heard, a flush) before failing.
const EVENT_WITHIN: Duration = Duration::from_secs(5);

const ITEM: i64 = 5;

struct Fixture {
    stage: Stage,
}

impl Fixture {
    async fn on(stage: Result<Stage, shared::SetupError>) -> Self {
        let stage = stage.expect("a Redis and a database for the tests");
        catalog::create(stage.db(), 300).await.unwrap();
        Fixture { stage }
    }

    async fn shared() -> Self {
        Self::on(Stage::from_env("two-tier-test", DbOptions::default()).await).await
    }

    async fn private() -> Self {
        let db = DbOptions::default();
        Self::on(Stage::private("two-tier-test", db, ServerOptions::default()).await).await
    }

    /// For a test that cuts every subscriber's connection: never on a Redis others share.
    async fn of_its_own() -> Self {
        Self::on(Stage::of_its_own("two-tier-test", DbOptions::default()).await).await
    }

    async fn instance(&self, kind: Kind, settings: Settings) -> AnyCache {
        let instance = self.stage.instance().await.unwrap();
        let (url, db) = (self.stage.redis_url(), self.stage.db().clone());
        AnyCache::build(kind, &instance, &url, db, self.stage.namespace(), settings)
            .await
            .unwrap()
    }

    async fn two_tier(&self, settings: Settings) -> AnyCache {
        self.instance(Kind::TwoTier, settings).await
    }

    /// Renames the table away (`true`) or back: every query fails meanwhile.
    async fn break_database(&self, broken: bool) {
        let (from, to) = if broken {
            ("items", "items_away")
        } else {
            ("items_away", "items")
        };
        let mut setup = self.stage.db().setup().await.unwrap();
        setup
            .execute(format!("ALTER TABLE {from} RENAME TO {to}").as_str())
            .await
            .unwrap();
        setup.commit().await.unwrap();
    }
}

/// Reads `id` through `cache`, expecting an answer.
async fn read(cache: &AnyCache, id: i64) -> (Item, Layer) {
    let read = cache.item(id).await.expect("the read is answered");
    (read.value.expect("the item exists"), read.layer)
}

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
