//! The suite shared by the exercise and the solution: `super::subject` is whichever crate runs it.
//!
//! Each test gets its own namespace and database (`DATABASE_URL`, else SQLite); Redis is
//! `REDIS_URL`, or a private cluster with `REDIS_CLUSTER=1`, else a private server. The
//! "instances" are separate `Storefront`s with connections of their own, as separate processes of
//! one application would have.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use shared::exercise::{joined, quiet_repeated_todos};
use shared::{DbOptions, Product, ServerOptions, Stage};

use super::subject::{Lock, PageRecord, Settings, Storefront, StorefrontError};

fn settings() -> Settings {
    Settings {
        ttl: Duration::from_secs(60),
        lock_ttl: Duration::from_secs(10),
        max_wait: Duration::from_secs(10),
        soft_ttl: Duration::from_secs(60),
        hard_ttl: Duration::from_secs(120),
    }
}

fn db() -> DbOptions {
    DbOptions {
        users: 1,
        products: 40,
        max_connections: 20,
        ..DbOptions::default()
    }
}

/// The stage: a Redis, a database with 40 products, a namespace.
async fn shop() -> Stage {
    quiet_repeated_todos();
    Stage::from_env("stampede-exercise", db())
        .await
        .expect("a Redis and a database for the tests")
}

/// A stage on a private single server, for the tests that count the commands Redis runs.
async fn shop_with_private_redis() -> Stage {
    quiet_repeated_todos();
    Stage::private("stampede-exercise", db(), ServerOptions::default())
        .await
        .expect("a private redis-server and a database for the tests")
}

/// Renames the products table away and back: while it is away every query for products fails,
/// as a database that is down would.
async fn products_table(shop: &Stage, there: bool) {
    let (from, to) = if there {
        ("products_away", "products")
    } else {
        ("products", "products_away")
    };
    let mut setup = shop.db().setup().await.unwrap();
    sqlx::query(&format!("ALTER TABLE {from} RENAME TO {to}"))
        .execute(&mut *setup)
        .await
        .unwrap();
    setup.commit().await.unwrap();
}

/// Rewrites the cached page of `category` as stale (fresh until the epoch), as time would.
async fn make_stale(shop: &Stage, front: &Storefront, category: &str) {
    let key = front.page_key(category);
    let bytes: Vec<u8> = shop.conn().get(&key).await.unwrap();
    let mut record: PageRecord = shared::codec::decode(&bytes).expect("a PageRecord is cached");
    record.fresh_until_ms = 0;
    let _: () = shop
        .conn()
        .set_ex(&key, shared::codec::encode(&record).unwrap(), 60)
        .await
        .unwrap();
}

/// Waits up to 5 s until the page of `category` is fresh again and its refresh lock is gone,
/// that is, until a background refresh has finished; panics with `why` if it never does.
async fn until_refreshed(shop: &Stage, front: &Storefront, category: &str, why: &str) {
    for _ in 0..500 {
        let bytes: Option<Vec<u8>> = shop.conn().get(front.page_key(category)).await.unwrap();
        let fresh = bytes
            .and_then(|b| shared::codec::decode::<PageRecord>(&b).ok())
            .is_some_and(|record| record.fresh_until_ms > super::subject::now_ms());
        if fresh && !shop.exists(&front.page_refresh_key(category)).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{why}");
}

/// Storefronts on the stage, and what the tests look at.
trait Shop {
    /// One more application instance, with its own connection.
    async fn instance(&self, settings: Settings) -> Storefront;
    async fn instances(&self, n: usize, settings: Settings) -> Vec<Arc<Storefront>>;
    async fn exists(&self, key: &str) -> bool;
    /// The right answer for `category`, straight from the database (and not counted).
    async fn expected(&self, category: &str) -> Vec<Product>;
}

impl Shop for Stage {
    async fn instance(&self, settings: Settings) -> Storefront {
        let instance = self.instance().await.unwrap();
        Storefront::new(
            self.db().clone(),
            instance.conn,
            instance.namespace,
            settings,
        )
    }

    async fn instances(&self, n: usize, settings: Settings) -> Vec<Arc<Storefront>> {
        let mut all = Vec::new();
        for _ in 0..n {
            all.push(Arc::new(Shop::instance(self, settings.clone()).await));
        }
        all
    }

    async fn exists(&self, key: &str) -> bool {
        self.conn().exists(key).await.unwrap()
    }

    async fn expected(&self, category: &str) -> Vec<Product> {
        let products = self
            .db()
            .products_in_category(category, None)
            .await
            .unwrap();
        self.db().reset_queries();
        products
    }
}

/// `n` concurrent calls of `call` spread over `instances`, all released at once.
async fn together<F, Fut, T>(instances: &[Arc<Storefront>], n: usize, call: F) -> Vec<T>
where
    F: Fn(Arc<Storefront>) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (instance, barrier, call) = (
                instances[i % instances.len()].clone(),
                barrier.clone(),
                call.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                call(instance).await
            })
        })
        .collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(joined(task).await);
    }
    out
}

// ---- task 1: the lock --------------------------------------------------------------------------

#[tokio::test]
async fn task1_a_lock_is_exclusive_until_released() {
    let shop = shop().await;
    let key = shop.namespace().key("report:lock");
    let ttl = Duration::from_secs(30);
    let first = Lock::acquire(&shop.conn(), &key, ttl)
        .await
        .unwrap()
        .expect("Lock::acquire of a free lock: expected Some(lock), got None");
    let second = Lock::acquire(&shop.conn(), &key, ttl).await.unwrap();
    assert!(
        second.is_none(),
        "Lock::acquire of a lock someone holds: expected None, got {second:?}. Is the SET made \
         with NX (only if the key does not exist)?"
    );
    let released = first.release(&shop.conn()).await.unwrap();
    assert!(
        released,
        "release() by the holder: expected true, got false"
    );
    assert!(
        !shop.exists(&key).await,
        "after release() by the holder, expected the lock key {key} gone; it is still there"
    );
    let again = Lock::acquire(&shop.conn(), &key, ttl).await.unwrap();
    assert!(
        again.is_some(),
        "Lock::acquire after the holder released: expected Some(lock), got None"
    );
}

#[tokio::test]
async fn task1_a_lock_expires_by_itself_and_has_a_random_token() {
    let shop = shop().await;
    let (a, b) = (
        shop.namespace().key("a:lock"),
        shop.namespace().key("b:lock"),
    );
    let lock_a = Lock::acquire(&shop.conn(), &a, Duration::from_millis(2_000))
        .await
        .unwrap()
        .unwrap();
    let lock_b = Lock::acquire(&shop.conn(), &b, Duration::from_millis(2_000))
        .await
        .unwrap()
        .unwrap();
    let pttl: i64 = shop.conn().clone().pttl(&a).await.unwrap();
    assert!(
        (1_001..=2_000).contains(&pttl),
        "PTTL of a lock taken for 2,000 ms: expected 1,001 to 2,000 ms, got {pttl} (-1: no TTL, \
         so a holder that dies keeps it forever)"
    );
    let stored: String = shop.conn().clone().get(&a).await.unwrap();
    assert_eq!(
        stored,
        lock_a.token(),
        "the value under the lock key: expected the lock's token, so release() can check it"
    );
    assert_ne!(
        lock_a.token(),
        lock_b.token(),
        "two locks got the same token: expected a random one each"
    );
    assert!(
        lock_a.token().len() >= 16,
        "a token of {} characters ({:?}): expected at least 16, hard to guess",
        lock_a.token().len(),
        lock_a.token()
    );
}

#[tokio::test]
async fn task1_release_leaves_a_newer_holders_lock_alone() {
    let shop = shop().await;
    let key = shop.namespace().key("report:lock");
    let ttl = Duration::from_secs(30);
    let old = Lock::acquire(&shop.conn(), &key, ttl)
        .await
        .unwrap()
        .unwrap();
    // The old holder's lock expires while it is still working (expired now, not by waiting).
    let _: () = shop.conn().clone().del(&key).await.unwrap();
    let new = Lock::acquire(&shop.conn(), &key, ttl)
        .await
        .unwrap()
        .expect("free after expiry");

    let released = old.release(&shop.conn()).await.unwrap();
    assert!(
        !released,
        "release() by a holder whose lock expired and was taken by another: expected false, got \
         true"
    );
    let stored: Option<String> = shop.conn().clone().get(&key).await.unwrap();
    assert_eq!(
        stored.as_deref(),
        Some(new.token()),
        "the lock key after the old holder's release(): expected the new holder's token, got \
         {stored:?}. release() must delete only a lock that still holds its own token"
    );
    assert!(
        new.release(&shop.conn()).await.unwrap(),
        "release() by the new holder: expected true"
    );
}

#[tokio::test]
async fn task1_acquire_and_release_are_one_command_each() {
    let shop = shop_with_private_redis().await;
    let ttl = Duration::from_secs(30);
    // One round first: a script is loaded into Redis the first time it runs.
    let warm = Lock::acquire(&shop.conn(), &shop.key("warm:lock"), ttl)
        .await
        .unwrap()
        .expect("a free lock");
    warm.release(&shop.conn()).await.unwrap();

    let mut sent = shop.server().watch_commands().await.unwrap();
    let lock = Lock::acquire(&shop.conn(), &shop.key("report:lock"), ttl)
        .await
        .unwrap()
        .expect("a free lock");
    let acquire = sent.since_last().await;
    assert_eq!(
        acquire.len(),
        1,
        "commands sent by one Lock::acquire: expected one (SET key token NX PX ms), got \
         {acquire:?}. A set-if-absent followed by a separate EXPIRE leaves a lock with no TTL, \
         held forever, if the process dies between the two"
    );
    lock.release(&shop.conn()).await.unwrap();
    let release = sent.since_last().await;
    assert!(
        release.len() == 1 && release[0].starts_with("EVAL"),
        "commands sent by one Lock::release: expected one script call (EVAL or EVALSHA), got \
         {release:?}. A GET in Rust followed by a DEL can delete a lock that expired and was \
         taken by someone else between the two"
    );
}

#[tokio::test]
async fn task1_the_lock_ttl_keeps_its_milliseconds() {
    let shop = shop().await;
    let key = shop.key("report:lock");
    let _lock = Lock::acquire(&shop.conn(), &key, Duration::from_millis(1_500))
        .await
        .unwrap()
        .expect("a free lock");
    let pttl: i64 = shop.conn().pttl(&key).await.unwrap();
    assert!(
        (1_001..=1_500).contains(&pttl),
        "PTTL of a lock taken for 1,500 ms: expected 1,001 to 1,500 ms, got {pttl}. Below that, \
         the TTL was probably rounded to whole seconds (EX with as_secs()); use PX with \
         as_millis()"
    );
}

// ---- task 2: one load per stampede -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task2_concurrent_misses_over_three_instances_load_once() {
    let shop = shop().await;
    let expected = shop.expected("tea").await;
    shop.db().set_latency(Duration::from_millis(50));
    let instances = shop.instances(3, settings()).await;
    let answers = together(&instances, 30, |s| async move { s.listing("tea").await }).await;
    for answer in &answers {
        assert_eq!(
            answer.as_ref().ok(),
            Some(&expected),
            "listing(\"tea\") in a burst of 30: expected the tea products, got {answer:?}"
        );
    }
    let queries = shop.db().queries();
    assert_eq!(
        queries, 1,
        "database queries after 30 concurrent misses over 3 instances: expected 1, got \
         {queries}. Do the requests that did not get the lock wait for the value instead of \
         loading?"
    );
    assert!(
        !shop.exists(&instances[0].listing_lock_key("tea")).await,
        "after the burst, the lock {} is still held: expected the holder to release it",
        instances[0].listing_lock_key("tea")
    );
    let ttl: i64 = shop
        .conn()
        .clone()
        .pttl(instances[0].listing_key("tea"))
        .await
        .unwrap();
    assert!(
        (55_000..=60_000).contains(&ttl),
        "PTTL of the cached tea listing: expected 55,000 to 60,000 ms (settings.ttl), got {ttl} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task2_every_trial_loads_once() {
    let shop = shop().await;
    let instances = shop.instances(3, settings()).await;
    let mut conn = shop.conn().clone();
    // A holder that does not look again after taking the lock loads twice now and then; one trial
    // would not show it, a few hundred do.
    for trial in 0..300 {
        let category = shared::db::CATEGORIES[trial % 5];
        let _: () = conn.del(instances[0].listing_key(category)).await.unwrap();
        let before = shop.db().queries();
        let answers = together(
            &instances,
            12,
            move |s| async move { s.listing(category).await },
        )
        .await;
        if let Some(failed) = answers.iter().find(|answer| answer.is_err()) {
            panic!("trial {trial}, 12 concurrent listing({category:?}): one answered {failed:?}");
        }
        let queries = shop.db().queries() - before;
        assert_eq!(
            queries, 1,
            "database queries in trial {trial} (12 concurrent misses for {category:?} over 3 \
             instances): expected 1, got {queries}. Now and then 2: did the lock holder look at \
             the cache again before loading? A request can miss just before the previous holder \
             stores the value and take the lock just after it releases"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task2_a_waiter_out_of_time_gives_up_instead_of_loading() {
    let shop = shop().await;
    let impatient = Settings {
        max_wait: Duration::from_millis(100),
        ..settings()
    };
    let instances = shop.instances(2, impatient).await;
    shop.db().set_latency(Duration::from_millis(1_500));
    let holder = tokio::spawn({
        let instance = instances[0].clone();
        async move { instance.listing("coffee").await }
    });
    // The holder's query has started (queries are counted when they start).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while shop.db().queries() == 0 {
        if holder.is_finished() {
            let answer = joined(holder).await;
            panic!(
                "the first listing(\"coffee\") returned {answer:?} without querying the \
                 database; expected it to take the lock and load (each query takes 1.5 s here)"
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first listing(\"coffee\") had not queried the database after 5 s; expected it \
             to take the lock and load at once"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let answers = together(&instances, 10, |s| async move { s.listing("coffee").await }).await;
    for answer in &answers {
        assert!(
            matches!(answer, Err(StorefrontError::Busy { .. })),
            "listing(\"coffee\") by a waiter with max_wait 100 ms, while the holder's load \
             takes 1.5 s: expected Err(Busy), got {answer:?}"
        );
    }
    let queries = shop.db().queries();
    assert_eq!(
        queries, 1,
        "database queries after 10 waiters gave up: expected 1 (the holder's), got {queries}. A \
         waiter at its deadline must return Busy, not load: that would bring the stampede back"
    );
    let held = joined(holder).await;
    assert!(
        held.is_ok(),
        "the holder's listing(\"coffee\"): expected the products, got {held:?}"
    );
}

#[tokio::test]
async fn task2_a_failed_load_releases_the_lock_and_returns_the_error() {
    let shop = shop().await;
    let front = Shop::instance(&shop, settings()).await;
    products_table(&shop, false).await;
    let answer = front.listing("tea").await;
    products_table(&shop, true).await;
    assert!(
        matches!(answer, Err(StorefrontError::Database(_))),
        "listing() while the database fails: expected Err(StorefrontError::Database), got \
         {answer:?}"
    );
    assert!(
        !shop.exists(&front.listing_lock_key("tea")).await,
        "after a failed load the lock {} is still held: expected it released. Did a `?` on \
         the load return before the release? Every other request now waits out the lock's TTL \
         (settings.lock_ttl)",
        front.listing_lock_key("tea")
    );
    let answer = front.listing("tea").await;
    assert_eq!(
        answer.as_ref().map(Vec::len).ok(),
        Some(shop.expected("tea").await.len()),
        "listing() once the database is back: expected the tea products, got {answer:?}"
    );
}

#[tokio::test]
async fn task2_hits_do_not_touch_the_database() {
    let shop = shop().await;
    let front = Shop::instance(&shop, settings()).await;
    let first = front.listing("books").await.unwrap();
    for _ in 0..10 {
        assert_eq!(front.listing("books").await.unwrap(), first);
    }
    let queries = shop.db().queries();
    assert_eq!(
        queries, 1,
        "database queries after 11 reads of the books listing: expected 1, got {queries}. Is the \
         cache looked at first, and the loaded listing stored under listing_key?"
    );
}

// ---- task 3: stale-while-revalidate ------------------------------------------------------------

fn soft(soft_ttl_ms: u64, hard_ttl_ms: u64) -> Settings {
    Settings {
        soft_ttl: Duration::from_millis(soft_ttl_ms),
        hard_ttl: Duration::from_millis(hard_ttl_ms),
        ..settings()
    }
}

/// Waits, checking every 10 ms for up to 5 s, until the cached page of `category` holds a
/// product priced `price_cents`.
async fn until_page_has_price(shop: &Stage, front: &Storefront, category: &str, price_cents: i64) {
    for _ in 0..500 {
        let bytes: Option<Vec<u8>> = shop
            .conn()
            .clone()
            .get(front.page_key(category))
            .await
            .unwrap();
        if let Some(bytes) = bytes
            && String::from_utf8_lossy(&bytes).contains(&format!("\"price_cents\":{price_cents},"))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the {category} page was not refreshed to show price {price_cents} within 5 s of a \
         stale read: expected a background refresh to store the new listing"
    );
}

#[tokio::test]
async fn task3_a_fresh_page_is_a_hit() {
    let shop = shop().await;
    let front = Shop::instance(&shop, soft(60_000, 120_000)).await;
    let first = front.page("tea").await.unwrap();
    for _ in 0..10 {
        assert_eq!(front.page("tea").await.unwrap(), first);
    }
    let queries = shop.db().queries();
    assert_eq!(
        queries, 1,
        "database queries after 11 reads of a fresh tea page: expected 1, got {queries}"
    );
    let ttl: i64 = shop
        .conn()
        .clone()
        .pttl(front.page_key("tea"))
        .await
        .unwrap();
    assert!(
        (115_000..=120_000).contains(&ttl),
        "PTTL of the tea page: expected 115,000 to 120,000 ms (settings.hard_ttl: Redis keeps the \
         record past its soft TTL so it can be served stale), got {ttl} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task3_a_stale_page_is_served_at_once_and_refreshed_once() {
    let shop = shop().await;
    let instances = shop.instances(2, soft(60_000, 120_000)).await;
    let old = instances[0].page("cocoa").await.unwrap();
    let product = old.first().expect("cocoa has products").id;
    shop.db().set_price(product, 1).await.unwrap();
    make_stale(&shop, &instances[0], "cocoa").await;
    shop.db().reset_queries();
    shop.db().set_latency(Duration::from_millis(1_000)); // a slow refresh

    let answers = together(&instances, 20, |s| async move { s.page("cocoa").await }).await;
    for answer in &answers {
        // Anyone who waited for a load would have the new price.
        assert_eq!(
            answer.as_ref().ok(),
            Some(&old),
            "page(\"cocoa\") in a burst of 20 stale reads: expected the stale page (with the old \
             price), got {answer:?}. The new price means the reader waited for a load"
        );
    }
    until_page_has_price(&shop, &instances[1], "cocoa", 1).await;
    let queries = shop.db().queries();
    assert_eq!(
        queries, 1,
        "database queries for 20 stale reads over 2 instances: expected 1 (one background \
         refresh), got {queries}. Does only the request that takes the refresh lock refresh?"
    );
    let fresh = instances[1].page("cocoa").await.unwrap();
    let price = fresh
        .iter()
        .find(|p| p.id == product)
        .map(|p| p.price_cents);
    assert_eq!(
        price,
        Some(1),
        "the price of product {product} on the refreshed page"
    );
    assert_eq!(
        shop.db().queries(),
        1,
        "database queries for a read of the refreshed page: expected none more (it is fresh)"
    );
}

#[tokio::test]
async fn task3_after_the_hard_ttl_the_page_is_gone_and_loaded_again() {
    let shop = shop().await;
    let front = Shop::instance(&shop, soft(100, 300)).await;
    front.page("kitchen").await.unwrap();
    // Redis expires the record by itself: watch for it, for up to 2 s.
    let mut gone = false;
    for _ in 0..200 {
        if !shop.exists(&front.page_key("kitchen")).await {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        gone,
        "the kitchen page was still in Redis 2 s after it was stored with a hard TTL of 300 ms: \
         expected Redis to expire it. Is it stored with PX settings.hard_ttl?"
    );
    front.page("kitchen").await.unwrap();
    let queries = shop.db().queries();
    assert_eq!(
        queries, 2,
        "database queries after a load, the hard TTL and one more read: expected 2, got \
         {queries}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task3_a_stale_read_does_not_wait_for_the_refresh() {
    let shop = shop().await;
    let front = Shop::instance(&shop, soft(60_000, 120_000)).await;
    let old = front.page("tea").await.unwrap();
    make_stale(&shop, &front, "tea").await;
    let load = Duration::from_secs(3);
    shop.db().set_latency(load);

    let started = tokio::time::Instant::now();
    let answer = tokio::time::timeout(load / 3, front.page("tea")).await;
    let waited = started.elapsed();
    let answer = answer.unwrap_or_else(|_| {
        panic!(
            "a stale page read was still running after {waited:?}, while the refresh's query \
             takes {load:?}: expected the stale page at once. Did the reader await the refresh \
             instead of spawning it?"
        )
    });
    assert_eq!(
        answer.unwrap(),
        old,
        "a stale read: expected the stale page, got something else"
    );
    shop.db().set_latency(Duration::ZERO);
    until_refreshed(
        &shop,
        &front,
        "tea",
        "the stale page was never refreshed in the background",
    )
    .await;
}

#[tokio::test]
async fn task3_every_stale_period_gets_its_refresh() {
    let shop = shop().await;
    let front = Shop::instance(&shop, soft(60_000, 120_000)).await;
    front.page("books").await.unwrap();
    for period in 1..=2 {
        make_stale(&shop, &front, "books").await;
        front.page("books").await.unwrap();
        until_refreshed(
            &shop,
            &front,
            "books",
            &format!(
                "stale period {period}: the page was not refreshed (fresh again, refresh lock \
                 {} gone) within 5 s. If period 1 passed, the refresh probably never released \
                 its lock, so no later stale read can refresh until it expires",
                front.page_refresh_key("books")
            ),
        )
        .await;
    }
    assert_eq!(
        shop.db().queries(),
        3,
        "database queries for a first load and two stale periods: expected 3 (one load, one \
         refresh each), got {}",
        shop.db().queries()
    );
}
