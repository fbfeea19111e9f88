//! Cache-aside against a real Redis and a real SQLite database.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cache_aside::{Cached, ReadThrough, Settings, UserSearch, users::UserLoader};
use common::{LessonStage, fixture};
use redis::AsyncCommands;
use shared::db::seed_user;
use shared::{User, codec};
use tokio::sync::Notify;

#[tokio::test]
async fn second_read_is_a_hit_without_a_query() {
    let fx = fixture().await;
    let users = fx.users();
    assert_eq!(users.get(42).await.unwrap(), Some(seed_user(42)));
    assert_eq!(users.get(42).await.unwrap(), Some(seed_user(42)));
    assert_eq!(fx.db().queries(), 1);
    let stats = users.cache().stats();
    assert_eq!((stats.hits, stats.misses, stats.loads), (1, 1, 1));
    assert!(fx.exists("user:42").await);
}

// ANCHOR: typed
/// Flaw 12: typed values come back as the same types, timestamps included.
#[tokio::test]
async fn timestamps_round_trip_as_timestamps() {
    let fx = fixture().await;
    let users = fx.users();
    let loaded = users.get(9).await.unwrap().unwrap();
    let cached = users.get(9).await.unwrap().unwrap();
    assert_eq!(cached, loaded);
    assert_eq!(cached.created_at, seed_user(9).created_at);
    let raw = fx.raw("user:9").await.unwrap();
    assert!(raw.contains(r#""created_at":"2023-11-15T"#), "{raw}");
    let entry: Cached<User> = codec::decode(raw.as_bytes()).unwrap();
    assert_eq!(entry, Cached::Present(seed_user(9)));
}
// ANCHOR_END: typed

// ANCHOR: zero_and_empty
/// Flaw 1: zero and empty are values. A cache that reads them as misses asks the database again.
#[tokio::test]
async fn zero_and_empty_values_are_hits() {
    let fx = fixture().await;
    let cache = fx.cache(Settings::default());
    let db = &fx.db();

    // User 70 has karma 0 and an empty bio.
    let users = fx.users();
    for _ in 0..3 {
        let user = users.get(70).await.unwrap().unwrap();
        assert_eq!((user.karma, user.bio.as_str()), (0, ""));
    }
    // An empty list and a zero count.
    for _ in 0..3 {
        let none: Option<Vec<shared::Product>> = cache
            .get_or_load("products:socks", || async {
                db.products_in_category("socks", None).await.map(Some)
            })
            .await
            .unwrap();
        assert_eq!(none, Some(vec![]));
        let zero: Option<i64> = cache
            .get_or_load("out-of-stock:socks", || async {
                db.out_of_stock_count("socks").await.map(Some)
            })
            .await
            .unwrap();
        assert_eq!(zero, Some(0));
    }
    assert_eq!(db.queries(), 3, "one load per key, then hits");
    assert_eq!(cache.stats().hits, 4);
    assert_eq!(
        fx.raw("products:socks").await.as_deref(),
        Some(r#"{"present":[]}"#)
    );
}
// ANCHOR_END: zero_and_empty

// ANCHOR: absent
/// Flaw 1, second half: an absent row is cached as "absent", briefly, so asking for ids that do
/// not exist does not reach the database every time (cache penetration).
#[tokio::test]
async fn an_absent_row_costs_one_query_within_the_negative_ttl() {
    let fx = fixture().await;
    let settings = Settings {
        negative_ttl: Duration::from_secs(20),
        ..Settings::default()
    };
    let users = fx.users_with(settings.clone());
    for _ in 0..25 {
        assert_eq!(users.get(1_000_000).await.unwrap(), None);
    }
    assert_eq!(fx.db().queries(), 1);
    let stats = users.cache().stats();
    assert_eq!((stats.hits, stats.negative_hits, stats.loads), (24, 24, 1));
    assert_eq!(fx.raw("user:1000000").await.as_deref(), Some(r#""absent""#));
    let ttl = fx.pttl("user:1000000").await;
    let lowest = settings.negative_ttl.saturating_sub(Duration::from_secs(5));
    assert!(
        ttl <= settings.negative_ttl && ttl > lowest,
        "TTL of the cached \"absent\": expected {lowest:?} to {:?} (the negative TTL), got {ttl:?}",
        settings.negative_ttl
    );
}
// ANCHOR_END: absent

#[tokio::test]
async fn an_absent_entry_expires_and_the_row_is_asked_for_again() {
    let fx = fixture().await;
    let users = fx.users_with(Settings {
        negative_ttl: Duration::from_millis(150),
        ..Settings::default()
    });
    assert_eq!(users.get(500_000).await.unwrap(), None);
    // Wait for the expiry itself, not for a guessed duration.
    for _ in 0..500 {
        if !fx.exists("user:500000").await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!fx.exists("user:500000").await, "the absent entry expired");
    assert_eq!(users.get(500_000).await.unwrap(), None);
    assert_eq!(fx.db().queries(), 2);
}

/// Cache avalanche: values cached together get TTLs spread over the jitter window.
#[tokio::test]
async fn value_ttls_are_jittered() {
    let fx = fixture().await;
    let settings = Settings {
        ttl: Duration::from_secs(60),
        jitter: Duration::from_secs(10),
        ..Settings::default()
    };
    let users = fx.users_with(settings.clone());
    let mut ttls = Vec::new();
    for id in 1..=40 {
        users.get(id).await.unwrap();
        ttls.push(fx.pttl(&format!("user:{id}")).await);
    }
    let (min, max) = (ttls.iter().min().unwrap(), ttls.iter().max().unwrap());
    assert!(*max <= settings.ttl + settings.jitter, "{max:?}");
    assert!(*min >= settings.ttl - Duration::from_secs(5), "{min:?}");
    assert!(
        *max - *min >= Duration::from_secs(3),
        "TTLs spread out: {min:?}..{max:?}"
    );
}

#[tokio::test]
async fn an_update_invalidates_and_the_next_read_returns_the_new_row() {
    let fx = fixture().await;
    let users = fx.users();
    let mut user = users.get(5).await.unwrap().unwrap();
    user.name = "Barbara Renamed".into();
    user.karma = 0;
    assert!(users.update(&user).await.unwrap());
    assert!(!fx.exists("user:5").await, "the write deleted the key");
    assert_eq!(users.get(5).await.unwrap(), Some(user.clone()));
    assert_eq!(users.get(5).await.unwrap(), Some(user));
    assert_eq!(fx.db().queries(), 3, "load, update, reload; then a hit");
}

// ANCHOR: race
/// A load of user 7 that, once it has read the row, waits for the writer to finish.
type SlowLoad = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = Option<User>> + Send>> + Send>;

/// Flaw 10, the read/write race. A reader loads the old row; a writer commits and invalidates; the
/// reader then stores what it read. The two notifications make that interleaving certain.
async fn race_a_reader_against_a_writer<R, Fut>(fx: &shared::Stage, reader: R) -> User
where
    R: FnOnce(SlowLoad) -> Fut,
    Fut: Future<Output = ()>,
{
    let loaded = Arc::new(Notify::new());
    let proceed = Arc::new(Notify::new());
    let (db, l, p) = (fx.db().clone(), loaded.clone(), proceed.clone());
    let slow_load: SlowLoad = Box::new(move || {
        Box::pin(async move {
            let old = db.user(7).await.unwrap();
            l.notify_one();
            p.notified().await;
            old
        })
    });
    let mut new_row = seed_user(7);
    new_row.name = "Written Meanwhile".into();
    let writer = async {
        loaded.notified().await;
        fx.users().update(&new_row).await.unwrap();
        proceed.notify_one();
    };
    tokio::join!(reader(slow_load), writer);
    new_row
}

#[tokio::test]
async fn a_reader_that_loaded_before_a_write_cannot_store_the_old_row() {
    let fx = fixture().await;
    let cache = fx.cache(Settings::default());
    let new_row = race_a_reader_against_a_writer(&fx, |load| async {
        let read: Option<User> = cache
            .get_or_load("user:7", || async { Ok::<_, sqlx::Error>(load().await) })
            .await
            .unwrap();
        assert_eq!(
            read,
            Some(seed_user(7)),
            "the reader itself returns what it read"
        );
    })
    .await;
    assert!(
        !fx.exists("user:7").await,
        "the lease refused the stale store"
    );
    assert_eq!(fx.users().get(7).await.unwrap(), Some(new_row));
}

/// The counter-example: the same race against the textbook GET / load / SET leaves the old row
/// cached until its TTL runs out.
#[tokio::test]
async fn the_textbook_version_keeps_the_old_row_after_the_race() {
    let fx = fixture().await;
    let key = fx.namespace().key("user:7");
    let mut conn = fx.conn();
    race_a_reader_against_a_writer(&fx, |load| async move {
        let cached: Option<Vec<u8>> = conn.get(&key).await.unwrap();
        assert!(cached.is_none());
        let row = load().await;
        let bytes = codec::encode(&Cached::from(row)).unwrap();
        let _: () = conn.set_ex(&key, bytes, 300).await.unwrap();
    })
    .await;
    let stale = fx.users().get(7).await.unwrap().unwrap();
    assert_eq!(
        stale.name,
        seed_user(7).name,
        "stale: the write is invisible"
    );
}
// ANCHOR_END: race

#[tokio::test]
async fn a_corrupt_entry_is_a_counted_miss_and_is_overwritten() {
    let fx = fixture().await;
    let users = fx.users();
    let mut conn = fx.conn();
    for garbage in ["{not json", r#"{"present":{"id":"seven"}}"#] {
        let _: () = conn
            .set_ex(fx.namespace().key("user:3"), garbage, 60)
            .await
            .unwrap();
        assert_eq!(users.get(3).await.unwrap(), Some(seed_user(3)));
        let raw = fx.raw("user:3").await.unwrap();
        assert_eq!(
            codec::decode::<Cached<User>>(raw.as_bytes()).unwrap(),
            Cached::Present(seed_user(3))
        );
    }
    assert_eq!(users.get(3).await.unwrap(), Some(seed_user(3)));
    let stats = users.cache().stats();
    assert_eq!((stats.corrupt, stats.misses, stats.hits), (2, 2, 1));
    assert_eq!(fx.db().queries(), 2);
}

#[tokio::test]
async fn searches_are_cached_under_hashed_keys() {
    let fx = fixture().await;
    let users = fx.users();
    let ada = UserSearch {
        name_prefix: "Ada".into(),
        min_karma: 0,
        limit: 5,
    };
    let ada_high = UserSearch {
        min_karma: 500,
        ..ada.clone()
    };
    let first = users.search(&ada).await.unwrap();
    assert_eq!(first.len(), 5);
    assert!(first.iter().all(|u| u.name.starts_with("Ada")));
    assert_eq!(users.search(&ada).await.unwrap(), first);
    let high = users.search(&ada_high).await.unwrap();
    assert!(high.iter().all(|u| u.karma >= 500) && high != first);
    assert_eq!(fx.db().queries(), 2, "one per distinct search");
    assert!(fx.exists(&shared::keys::hashed("users:search", &ada)).await);
}

#[tokio::test]
async fn read_through_hides_the_loader() {
    let fx = fixture().await;
    let users = ReadThrough::new(fx.cache(Settings::default()), UserLoader(fx.db().clone()));
    assert_eq!(users.get(&11).await.unwrap(), Some(seed_user(11)));
    assert_eq!(users.get(&11).await.unwrap(), Some(seed_user(11)));
    assert_eq!(users.get(&77_777).await.unwrap(), None);
    assert_eq!(users.get(&77_777).await.unwrap(), None);
    assert_eq!(fx.db().queries(), 2);
    users.invalidate(&11).await;
    assert!(!fx.exists("user:11").await);
    assert_eq!(users.get(&11).await.unwrap(), Some(seed_user(11)));
    assert_eq!(fx.db().queries(), 3);
}
