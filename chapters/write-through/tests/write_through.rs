//! What write-through promises, checked against a real Redis and a real database.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use shared::{DbOptions, ServerOptions, Stage, codec};
use write_through::table::{self, seed_article};
use write_through::{Article, Articles, Settings, Versioned, VersionedCache, WriteThrough};

/// The test stage, with 50 articles.
async fn stage_on(stage: Result<Stage, shared::SetupError>) -> Stage {
    let stage = stage.expect("a Redis and a database for the tests");
    table::create(stage.db(), 50).await.unwrap();
    stage
}

async fn fixture() -> Stage {
    stage_on(Stage::from_env("write-through-test", DbOptions::default()).await).await
}

async fn private_fixture() -> Stage {
    let db = DbOptions::default();
    stage_on(Stage::private("write-through-test", db, ServerOptions::default()).await).await
}

/// The lesson's objects on a stage, and what the tests look at in Redis.
trait LessonStage {
    /// One application instance: its own connection, the shared database and namespace.
    async fn store(&self) -> WriteThrough;
    /// The same, with 10 s for every Redis call: for a test about writes that succeed, so that a
    /// loaded machine's slow reply is not taken for a failed write (whose repair the failure
    /// tests cover).
    async fn patient_store(&self) -> WriteThrough;
    /// The record cached for article `id`, if any (on a fresh connection: Redis may have just
    /// restarted).
    async fn cached(&self, store: &WriteThrough, id: i64) -> Option<Versioned<Article>>;
}

impl LessonStage for Stage {
    async fn store(&self) -> WriteThrough {
        store_with(self, Settings::default().redis_timeout).await
    }

    async fn patient_store(&self) -> WriteThrough {
        store_with(self, Duration::from_secs(10)).await
    }

    async fn cached(&self, store: &WriteThrough, id: i64) -> Option<Versioned<Article>> {
        let mut conn = self.instance().await.unwrap().conn;
        let bytes: Option<Vec<u8>> = conn.get(store.key(id)).await.unwrap();
        bytes.map(|b| codec::decode(&b).unwrap())
    }
}

/// One application instance with `redis_timeout` for each Redis call.
async fn store_with(stage: &Stage, redis_timeout: Duration) -> WriteThrough {
    let instance = stage.instance().await.unwrap();
    // Two minutes rather than the default ten: a shared REDIS_URL keeps no test key for long.
    let settings = Settings {
        ttl: Duration::from_secs(120),
        redis_timeout,
    };
    WriteThrough::new(
        stage.db().clone(),
        instance.conn,
        instance.namespace,
        settings,
    )
}

#[tokio::test]
async fn article_writes_commit_and_number_their_versions() {
    let fx = fixture().await;
    let db = fx.db();
    assert_eq!(db.article(3).await.unwrap(), Some(seed_article(3)));
    let updated = db.update_article(3, "New", "Body").await.unwrap().unwrap();
    assert_eq!((updated.version, updated.title.as_str()), (2, "New"));
    let newer = db.update_article(3, "Newer", "B").await.unwrap().unwrap();
    assert_eq!(newer.version, 3);
    assert_eq!(db.article(3).await.unwrap().unwrap().version, 3);
    assert_eq!(db.update_article(100_000, "x", "y").await.unwrap(), None);

    // An empty title is refused by the table, and the row is left as it was.
    assert!(db.update_article(3, "", "Body").await.is_err());
    assert_eq!(db.article(3).await.unwrap().unwrap().title, "Newer");

    let created = db.create_article(500, "Fresh", "Text").await.unwrap();
    assert_eq!(created.version, 1);
    assert!(
        db.create_article(500, "Again", "Text").await.is_err(),
        "ids are unique"
    );
    assert_eq!(db.delete_article(500).await.unwrap(), Some(1));
    assert_eq!(db.delete_article(500).await.unwrap(), None);
    assert_eq!(db.article(500).await.unwrap(), None);
    assert_eq!(db.queries(), 12, "each read and write is one query");
}

#[tokio::test]
async fn after_a_write_the_next_read_is_the_new_row_without_a_query() {
    let fx = fixture().await;
    let store = fx.store().await;
    assert_eq!(store.get(4).await.unwrap(), Some(seed_article(4)));
    let updated = store
        .update(4, "Edited", "New text")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.version, 2);
    let before = fx.db().queries();
    assert_eq!(store.get(4).await.unwrap(), Some(updated.clone()));
    assert_eq!(fx.db().queries(), before, "read from the cache");
    assert_eq!(fx.cached(&store, 4).await.unwrap().version, 2);

    let created = store.create(900, "Brand new", "Text").await.unwrap();
    let before = fx.db().queries();
    assert_eq!(store.get(900).await.unwrap(), Some(created));
    assert_eq!(fx.db().queries(), before);
    assert_eq!(store.read_stats().hits, 2);
}

#[tokio::test]
async fn a_delete_removes_the_row_and_its_cached_copy() {
    let fx = fixture().await;
    let store = fx.store().await;
    store.get(5).await.unwrap();
    assert!(store.delete(5).await.unwrap());
    assert_eq!(fx.db().article(5).await.unwrap(), None);
    let tombstone = fx.cached(&store, 5).await.unwrap();
    assert_eq!(
        tombstone,
        Versioned {
            version: 2,
            value: None
        },
        "above the last version"
    );
    let before = fx.db().queries();
    assert_eq!(store.get(5).await.unwrap(), None);
    assert_eq!(fx.db().queries(), before, "the absence is cached too");
    assert!(!store.delete(5).await.unwrap());
}

// ANCHOR: failed_db_write
#[tokio::test]
async fn a_failed_database_write_leaves_the_cache_untouched() {
    let fx = fixture().await;
    let store = fx.store().await;
    store.get(6).await.unwrap();
    // The table refuses an empty title: the transaction fails and nothing changes.
    assert!(store.update(6, "", "Body").await.is_err());
    assert_eq!(
        fx.cached(&store, 6).await.unwrap().value,
        Some(seed_article(6))
    );
    assert_eq!(fx.db().article(6).await.unwrap(), Some(seed_article(6)));
    assert_eq!(store.write_stats().stored, 1, "only the read's store");
}
// ANCHOR_END: failed_db_write

// ANCHOR: race
/// The textbook write-through the course corrects: write the row, then SET the key.
async fn naive_update(fx: &Stage, key: &str, id: i64, title: &str) -> Article {
    let row = fx
        .db()
        .update_article(id, title, "Body")
        .await
        .unwrap()
        .unwrap();
    let record = Versioned {
        version: row.version,
        value: Some(row.clone()),
    };
    let _: () = fx
        .conn()
        .set_ex(key, codec::encode(&record).unwrap(), 120)
        .await
        .unwrap();
    row
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_racing_writers_leave_the_newer_version_in_the_cache() {
    let fx = fixture().await;
    let store = Arc::new(fx.patient_store().await);
    let other = fx.patient_store().await;

    // Writer A commits version 2 and is held between its commit and its cache write...
    let pause = store.faults.pause_after_commit();
    let slow = tokio::spawn({
        let store = store.clone();
        async move { store.update(7, "From A", "Body").await }
    });
    pause.reached().await;
    // ...while writer B commits version 3 and caches it.
    let newer = other.update(7, "From B", "Body").await.unwrap().unwrap();
    assert_eq!(newer.version, 3);
    pause.resume();
    slow.await.unwrap().unwrap();

    assert_eq!(
        fx.cached(&store, 7).await.unwrap().value,
        Some(newer.clone())
    );
    assert_eq!(store.get(7).await.unwrap(), Some(newer));
    assert_eq!(store.write_stats().refused_older, 1);
}

#[tokio::test]
async fn the_unversioned_write_through_ends_with_the_older_row() {
    let fx = fixture().await;
    let key = fx.namespace().key("article:8");
    // The same interleaving, by hand: A commits version 2, B commits and caches version 3,
    // then A caches version 2.
    let a = fx
        .db()
        .update_article(8, "From A", "Body")
        .await
        .unwrap()
        .unwrap();
    let b = naive_update(&fx, &key, 8, "From B").await;
    let record = Versioned {
        version: a.version,
        value: Some(a.clone()),
    };
    let _: () = fx
        .conn()
        .set_ex(&key, codec::encode(&record).unwrap(), 120)
        .await
        .unwrap();

    let cached: Versioned<Article> =
        codec::decode(&fx.conn().get::<_, Vec<u8>>(&key).await.unwrap()).unwrap();
    assert_eq!(
        fx.db().article(8).await.unwrap(),
        Some(b),
        "the database has B's row"
    );
    assert_eq!(
        cached.value,
        Some(a),
        "the cache has A's older row: stale until the TTL"
    );
}
// ANCHOR_END: race

// ANCHOR: cache_failure
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_failure_after_the_commit_leaves_no_stale_value_once_redis_is_back() {
    let fx = private_fixture().await;
    let store = Arc::new(fx.store().await);
    store.get(9).await.unwrap(); // version 1 is cached

    let pause = store.faults.pause_after_commit();
    let write = tokio::spawn({
        let store = store.clone();
        async move { store.update(9, "Edited", "Body").await }
    });
    pause.reached().await;
    // Redis goes away between the commit and the cache write, keeping its data (version 1).
    fx.server().stop_keeping_data().unwrap();
    pause.resume();
    let committed = write.await.unwrap().unwrap().unwrap();
    assert_eq!(committed.version, 2, "the write succeeded in the database");
    let stats = store.write_stats();
    assert_eq!((stats.failed, stats.pending), (1, 1), "{stats:?}");

    // While Redis is down, reads come from the database.
    assert_eq!(store.get(9).await.unwrap(), Some(committed.clone()));

    // Redis is back with version 1 in it; this instance deletes it before serving the key.
    fx.server().restart().unwrap();
    for _ in 0..100 {
        let served = store.get(9).await.unwrap();
        assert_eq!(served, Some(committed.clone()), "never the old row");
        if store.write_stats().repaired_later == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store.write_stats().repaired_later, 1);
    assert_eq!(store.get(9).await.unwrap(), Some(committed.clone()));
    assert_eq!(
        fx.cached(&store, 9).await.unwrap().version,
        2,
        "re-populated with the new row"
    );
}
// ANCHOR_END: cache_failure

#[tokio::test]
async fn a_failed_cache_write_that_can_still_delete_removes_the_key() {
    let fx = private_fixture().await;
    let store = Arc::new(fx.store().await);
    store.get(10).await.unwrap();
    // A corrupt record that the script cannot parse is simply overwritten; a script error
    // (here: the key holds a hash, so GET inside the script fails) makes the write fail, and the
    // repair deletes the key.
    let key = store.key(10);
    let _: () = fx.conn().del(&key).await.unwrap();
    let _: () = fx.conn().hset(&key, "f", "v").await.unwrap();
    let _: () = fx.conn().expire(&key, 120).await.unwrap();
    let row = store.update(10, "Edited", "Body").await.unwrap().unwrap();
    let stats = store.write_stats();
    assert_eq!((stats.failed, stats.deleted), (1, 1), "{stats:?}");
    assert!(!fx.conn().exists::<_, bool>(&key).await.unwrap());
    assert_eq!(store.get(10).await.unwrap(), Some(row));
}

#[tokio::test]
async fn redis_down_writes_succeed_and_reads_use_the_database() {
    let fx = private_fixture().await;
    let store = fx.store().await;
    fx.server().stop();
    let row = store
        .update(11, "Offline edit", "Body")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.get(11).await.unwrap(), Some(row));
    assert_eq!(store.get(12).await.unwrap(), Some(seed_article(12)));
    let reads = store.read_stats();
    assert!(reads.errors >= 2 && reads.hits == 0, "{reads:?}");
}

#[tokio::test]
async fn only_a_write_as_new_as_the_failed_one_settles_a_pending_repair() {
    let fx = private_fixture().await;
    let cache = VersionedCache::new(
        fx.conn(),
        Duration::from_secs(120),
        Duration::from_millis(100),
    );
    let key = fx.key("article:12");
    let read_before = Versioned {
        version: 1,
        value: Some(seed_article(12)),
    };
    let committed = Versioned {
        version: 2,
        value: Some(Article {
            title: "Edited".into(),
            ..seed_article(12)
        }),
    };
    // The write of version 2 fails, and so does its repair: the key is marked.
    fx.server().stop();
    cache.write(&key, &committed).await;
    let stats = cache.write_stats();
    assert_eq!(
        (stats.failed, stats.pending),
        (1, 1),
        "a write and its repair against a stopped Redis: {stats:?}"
    );
    // Redis comes back empty, and a reader that loaded version 1 before the write stores it.
    fx.server().restart().unwrap();
    for _ in 0..100 {
        cache.write(&key, &read_before).await;
        if cache.write_stats().stored == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        cache.write_stats().stored,
        1,
        "the reader's version 1 was never stored after Redis came back"
    );
    // The mark must survive that store: the key is deleted before it is read.
    let read = cache.read::<Article>(&key).await;
    assert!(
        matches!(read, shared::Lookup::Missing),
        "a read after a version-1 store over a pending repair of version 2: expected a miss (the \
         key deleted first), got {read:?}"
    );
    assert_eq!(cache.write_stats().repaired_later, 1);
}
