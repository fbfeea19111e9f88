//! The suite shared by the exercise and the solution: `super::subject` is whichever crate runs it.
//!
//! Each test gets its own namespace and database; Redis is `REDIS_URL` or a private server. The
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
        .expect("free");
    assert!(
        Lock::acquire(&shop.conn(), &key, ttl)
            .await
            .unwrap()
            .is_none()
    );
    assert!(first.release(&shop.conn()).await.unwrap());
    assert!(!shop.exists(&key).await);
    let again = Lock::acquire(&shop.conn(), &key, ttl).await.unwrap();
    assert!(again.is_some(), "free again after release");
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
        (1..=2_000).contains(&pttl),
        "the lock needs a TTL, has {pttl}"
    );
    let stored: String = shop.conn().clone().get(&a).await.unwrap();
    assert_eq!(stored, lock_a.token(), "the lock's value is its token");
    assert_ne!(lock_a.token(), lock_b.token(), "tokens are random");
    assert!(
        lock_a.token().len() >= 16,
        "hard to guess: {}",
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

    assert!(
        !old.release(&shop.conn()).await.unwrap(),
        "it was no longer the old holder's"
    );
    let stored: Option<String> = shop.conn().clone().get(&key).await.unwrap();
    assert_eq!(
        stored.as_deref(),
        Some(new.token()),
        "the new holder's lock must survive"
    );
    assert!(new.release(&shop.conn()).await.unwrap());
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
        assert_eq!(answer.as_ref().unwrap(), &expected);
    }
    assert_eq!(shop.db().queries(), 1, "30 concurrent misses, one query");
    assert!(
        !shop.exists(&instances[0].listing_lock_key("tea")).await,
        "lock released"
    );
    let ttl: i64 = shop
        .conn()
        .clone()
        .pttl(instances[0].listing_key("tea"))
        .await
        .unwrap();
    assert!(
        (1..=60_000).contains(&ttl),
        "listing cached with the ttl: {ttl}"
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
        assert!(answers.iter().all(Result::is_ok));
        assert_eq!(shop.db().queries() - before, 1, "trial {trial}");
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
            "{answer:?}"
        );
    }
    assert_eq!(
        shop.db().queries(),
        1,
        "no waiter went to the database at its deadline"
    );
    assert!(holder.await.unwrap().is_ok());
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
    assert_eq!(shop.db().queries(), 1);
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
    panic!("the page of {category} was never refreshed to price {price_cents}");
}

#[tokio::test]
async fn task3_a_fresh_page_is_a_hit() {
    let shop = shop().await;
    let front = Shop::instance(&shop, soft(60_000, 120_000)).await;
    let first = front.page("tea").await.unwrap();
    for _ in 0..10 {
        assert_eq!(front.page("tea").await.unwrap(), first);
    }
    assert_eq!(shop.db().queries(), 1);
    let ttl: i64 = shop
        .conn()
        .clone()
        .pttl(front.page_key("tea"))
        .await
        .unwrap();
    assert!(
        (60_001..=120_000).contains(&ttl),
        "kept for the hard TTL: {ttl}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task3_a_stale_page_is_served_at_once_and_refreshed_once() {
    let shop = shop().await;
    let instances = shop.instances(2, soft(200, 60_000)).await;
    let old = instances[0].page("cocoa").await.unwrap();
    let product = old.first().expect("cocoa has products").id;
    shop.db().set_price(product, 1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await; // past the soft TTL
    shop.db().reset_queries();
    shop.db().set_latency(Duration::from_millis(1_000)); // a slow refresh

    let answers = together(&instances, 20, |s| async move { s.page("cocoa").await }).await;
    for answer in &answers {
        // Anyone who waited for a load would have the new price.
        assert_eq!(
            answer.as_ref().unwrap(),
            &old,
            "the stale page, served at once"
        );
    }
    until_page_has_price(&shop, &instances[1], "cocoa", 1).await;
    assert_eq!(
        shop.db().queries(),
        1,
        "exactly one refresh for 20 stale reads"
    );
    let fresh = instances[1].page("cocoa").await.unwrap();
    assert_eq!(
        fresh.iter().find(|p| p.id == product).unwrap().price_cents,
        1
    );
    assert_eq!(shop.db().queries(), 1, "the refreshed page is fresh: a hit");
}

#[tokio::test]
async fn task3_after_the_hard_ttl_the_page_is_gone_and_loaded_again() {
    let shop = shop().await;
    let front = Shop::instance(&shop, soft(100, 300)).await;
    front.page("kitchen").await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !shop.exists(&front.page_key("kitchen")).await,
        "gone after the hard TTL"
    );
    front.page("kitchen").await.unwrap();
    assert_eq!(shop.db().queries(), 2);
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
