//! The suite shared by the exercise and the solution: `super::subject` is whichever crate runs it.
//!
//! Each test gets its own namespace and database (`DATABASE_URL`, else SQLite); Redis is
//! `REDIS_URL`, or a private cluster with `REDIS_CLUSTER=1`, else a private server. The task 3
//! tests that stop or pause Redis always start a private server of their own.

use std::time::Duration;

use redis::AsyncCommands;
use shared::db::seed_product;
use shared::{DbOptions, RedisServer, ServerOptions, SetupError, Stage};

use super::subject::{Catalogue, Settings};

/// The stage (Redis, database, namespace) and the learner's catalogue on it.
struct Shop {
    stage: Stage,
    catalogue: Catalogue,
}

fn settings() -> Settings {
    Settings {
        ttl: Duration::from_secs(60),
        negative_ttl: Duration::from_secs(10),
        redis_timeout: Duration::from_millis(100),
    }
}

fn db() -> DbOptions {
    DbOptions {
        users: 1,
        products: 40,
        ..DbOptions::default()
    }
}

async fn shop() -> Shop {
    shop_on(Stage::from_env("cache-aside-exercise", db()).await)
}

async fn shop_with_private_redis() -> Shop {
    let stage = Stage::private("cache-aside-exercise", db(), ServerOptions::default()).await;
    shop_on(stage)
}

fn shop_on(stage: Result<Stage, SetupError>) -> Shop {
    shared::exercise::quiet_repeated_todos();
    let stage = stage.expect("a Redis and a database for the tests");
    let catalogue = Catalogue::new(
        stage.db().clone(),
        stage.conn(),
        stage.namespace().clone(),
        settings(),
    );
    Shop { stage, catalogue }
}

impl Shop {
    async fn exists(&self, key: &str) -> bool {
        self.stage.conn().exists(key).await.unwrap()
    }

    /// Runs one statement of setup on the database (not counted).
    async fn sql(&self, statement: &str) {
        let mut setup = self.stage.db().setup().await.unwrap();
        sqlx::query(statement).execute(&mut *setup).await.unwrap();
        setup.commit().await.unwrap();
    }

    /// Asserts that `key` (the cached `what`) expires within `ttl` and not much sooner: the
    /// test has run for at most a few seconds since it was stored.
    async fn assert_ttl(&self, key: &str, what: &str, ttl: Duration, setting: &str) {
        let ms: i64 = self.stage.conn().pttl(key).await.unwrap();
        let lowest = ttl.saturating_sub(Duration::from_secs(5)).as_millis() as i64;
        assert!(
            (lowest..=ttl.as_millis() as i64).contains(&ms),
            "PTTL of the cached {what}: expected {lowest} to {} ms ({setting}), got {ms} ms \
             (-1: no TTL at all; -2: no such key). Is it stored with the right setting, in \
             milliseconds?",
            ttl.as_millis()
        );
    }

    /// Asserts the number of database queries so far, saying what they followed and what to
    /// suspect when they are off.
    fn assert_queries(&self, expected: u64, after: &str, suspect: &str) {
        let got = self.stage.db().queries();
        assert_eq!(
            got, expected,
            "database queries after {after}: expected {expected}, got {got}. {suspect}"
        );
    }

    fn server(&self) -> &RedisServer {
        self.stage.server()
    }
}

// ---- Task 1 --------------------------------------------------------------------------------

#[tokio::test]
async fn task1_second_read_is_a_hit() {
    let shop = shop().await;
    for read in 1..=3 {
        let got = shop.catalogue.product(7).await.unwrap();
        assert_eq!(
            got,
            Some(seed_product(7)),
            "product(7), read {read}: expected the seeded row, got {got:?}"
        );
    }
    shop.assert_queries(
        1,
        "3 reads of product 7",
        "The first read should load and store it, the others be hits: is it stored under \
         product_key(7)?",
    );
    let key = shop.catalogue.product_key(7);
    shop.assert_ttl(&key, "product 7", settings().ttl, "settings.ttl")
        .await;
}

#[tokio::test]
async fn task1_an_unknown_product_costs_one_query() {
    let shop = shop().await;
    for read in 1..=10 {
        let got = shop.catalogue.product(999_999).await;
        assert!(
            matches!(got, Ok(None)),
            "product(999999), read {read}, of a product that does not exist: expected Ok(None), \
             got {got:?}"
        );
    }
    shop.assert_queries(
        1,
        "10 reads of the unknown product 999999",
        "An absent product must be cached too (as \"absent\", for settings.negative_ttl), or \
         every request for it reaches the database",
    );
    let key = shop.catalogue.product_key(999_999);
    shop.assert_ttl(
        &key,
        "absent product 999999",
        settings().negative_ttl,
        "settings.negative_ttl",
    )
    .await;
}

#[tokio::test]
async fn task1_a_failed_query_is_an_error_and_caches_nothing() {
    let shop = shop().await;
    let key = shop.catalogue.product_key(7);
    shop.sql("ALTER TABLE products RENAME TO products_away")
        .await;
    let failed = shop.catalogue.product(7).await;
    let cached = shop.exists(&key).await;
    shop.sql("ALTER TABLE products_away RENAME TO products")
        .await;
    assert!(
        failed.is_err() && !cached,
        "product(7) while its query fails (the table is missing): expected Err and nothing \
         cached under {key}, got {failed:?} and cached: {cached}. A failed query is not \
         \"absent\": cached as absent, product 7 would vanish from the shop for negative_ttl"
    );
    let found = shop.catalogue.product(7).await.unwrap();
    assert_eq!(
        found.map(|p| p.id),
        Some(7),
        "product(7) once the table is back: expected product 7"
    );
}

#[tokio::test]
async fn task1_an_out_of_stock_product_is_still_a_hit() {
    let shop = shop().await;
    let sold_out = seed_product(6);
    assert_eq!(sold_out.stock, 0);
    for read in 1..=3 {
        let got = shop.catalogue.product(6).await.unwrap();
        assert_eq!(
            got,
            Some(sold_out.clone()),
            "product(6), read {read}: expected the seeded row (stock 0), got {got:?}"
        );
    }
    shop.assert_queries(
        1,
        "3 reads of product 6, which has stock 0",
        "A product with no stock is a value like any other: is something treating 0 as \
         \"nothing cached\"?",
    );
}

// ---- Task 2 --------------------------------------------------------------------------------

#[tokio::test]
async fn task2_a_listing_is_cached() {
    let shop = shop().await;
    let expected = shop
        .stage
        .db()
        .products_in_category("tea", None)
        .await
        .unwrap();
    shop.stage.db().reset_queries();
    for read in 1..=3 {
        let got = shop.catalogue.listing("tea").await.unwrap();
        assert_eq!(
            got, expected,
            "listing(\"tea\"), read {read}: expected the tea products cheapest first"
        );
    }
    shop.assert_queries(
        1,
        "3 reads of the tea listing",
        "The first read should load and store it under listing_key(\"tea\"), the others be hits",
    );
    let key = shop.catalogue.listing_key("tea");
    shop.assert_ttl(&key, "tea listing", settings().ttl, "settings.ttl")
        .await;
}

#[tokio::test]
async fn task2_an_empty_listing_is_a_hit() {
    let shop = shop().await;
    for read in 1..=5 {
        let got = shop.catalogue.listing("socks").await.unwrap();
        assert_eq!(
            got,
            vec![],
            "listing(\"socks\"), read {read}, of a category with no products: expected []"
        );
    }
    shop.assert_queries(
        1,
        "5 reads of the empty socks listing",
        "An empty list is an answer: reading a cached [] as a miss (is_empty(), Python's `if \
         data:`) asks the database every time",
    );
    assert!(
        shop.exists(&shop.catalogue.listing_key("socks")).await,
        "after reading the empty socks listing, expected its key {} to hold [], found no key",
        shop.catalogue.listing_key("socks")
    );
}

#[tokio::test]
async fn task2_a_price_change_reaches_the_page_and_the_listing() {
    let shop = shop().await;
    let product = seed_product(12);
    shop.catalogue.product(12).await.unwrap();
    shop.catalogue.listing(&product.category).await.unwrap();

    assert!(shop.catalogue.set_price(12, 1).await.unwrap());
    let errors = shop.catalogue.redis_errors.get();
    let left = |what: &str| {
        format!(
            "after set_price(12, 1), the cached {what} still exists in Redis; expected it deleted. \
             Redis calls that failed during set_price: {errors}. If that is not 0 on a cluster run \
             (REDIS_CLUSTER=1), the deletes were probably sent in one pipeline, transaction or \
             script: the page and the listing are in different hash slots, so send one DEL each"
        )
    };
    assert!(
        !shop.exists(&shop.catalogue.product_key(12)).await,
        "{}",
        left("page of product 12")
    );
    assert!(
        !shop
            .exists(&shop.catalogue.listing_key(&product.category))
            .await,
        "{}",
        left(&format!("listing of category {:?}", product.category))
    );

    let page = shop.catalogue.product(12).await.unwrap().unwrap();
    assert_eq!(page.price_cents, 1);
    let listing = shop.catalogue.listing(&product.category).await.unwrap();
    assert_eq!(
        (listing[0].id, listing[0].price_cents),
        (12, 1),
        "now the cheapest"
    );
}

/// The price of product `id` in the database, read outside the catalogue: not counted, not
/// slowed.
async fn price_in_db(shop: &Shop, id: i64) -> i64 {
    use sqlx::Row;
    let mut setup = shop.stage.db().setup().await.unwrap();
    let row = sqlx::query("SELECT price_cents FROM products WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *setup)
        .await
        .unwrap();
    row.try_get("price_cents").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task2_a_price_change_deletes_after_the_database_write() {
    let shop = shop().await;
    let old = seed_product(14).price_cents;
    shop.catalogue.product(14).await.unwrap();
    let page = shop.catalogue.product_key(14);
    // Each query now takes 200 ms, so the gap between a delete and the write, if the delete
    // comes first, is wide enough to see.
    shop.stage.db().set_latency(Duration::from_millis(200));
    let done = std::sync::atomic::AtomicBool::new(false);
    let change = async {
        let changed = shop.catalogue.set_price(14, old + 1).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        changed
    };
    let watch = async {
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            if !shop.exists(&page).await {
                let price = price_in_db(&shop, 14).await;
                assert_eq!(
                    price,
                    old + 1,
                    "the cached page of product 14 was gone while the database still had the \
                     old price ({old} cents; the new one is {}): expected the delete after the \
                     write. A read between the two would load the old row and cache it again",
                    old + 1
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    let (changed, ()) = tokio::join!(change, watch);
    assert!(changed.unwrap(), "product 14 exists");
}

#[tokio::test]
async fn task2_a_price_change_leaves_other_categories_cached() {
    let shop = shop().await;
    let other = if seed_product(12).category == "books" {
        "coffee"
    } else {
        "books"
    };
    shop.catalogue.listing(other).await.unwrap();
    shop.catalogue.set_price(12, 1).await.unwrap();
    assert!(
        shop.exists(&shop.catalogue.listing_key(other)).await,
        "after a price change of product 12 ({}), the {other} listing was deleted too: expected \
         only the changed product's page and its own category's listing to go",
        seed_product(12).category
    );
}

#[tokio::test]
async fn task2_pricing_an_unknown_product_changes_nothing() {
    let shop = shop().await;
    let changed = shop.catalogue.set_price(999_999, 100).await;
    assert!(
        matches!(changed, Ok(false)),
        "set_price(999999, 100) of a product that does not exist: expected Ok(false), got \
         {changed:?}"
    );
    let got = shop.catalogue.product(999_999).await;
    assert!(
        matches!(got, Ok(None)),
        "product(999999) after pricing it: expected Ok(None), got {got:?}"
    );
}

// ---- Task 3 --------------------------------------------------------------------------------

#[tokio::test]
async fn task3_redis_down_answers_from_the_database_then_recovers() {
    let shop = shop_with_private_redis().await;
    let catalogue = &shop.catalogue;
    catalogue.product(1).await.unwrap();

    shop.server().stop();
    let before = catalogue.redis_errors.get();
    for id in [1, 2] {
        let got = catalogue.product(id).await;
        assert_eq!(
            got.as_ref().ok(),
            Some(&Some(seed_product(id))),
            "product({id}) with Redis stopped: expected the row from the database, got {got:?}. \
             A Redis error must never reach the caller"
        );
    }
    let tea = catalogue.listing("tea").await;
    assert!(
        tea.as_ref().is_ok_and(|tea| !tea.is_empty()),
        "listing(\"tea\") with Redis stopped: expected the tea products, got {tea:?}"
    );
    let changed = catalogue.set_price(3, 42).await;
    assert!(
        matches!(changed, Ok(true)),
        "set_price(3, 42) with Redis stopped: expected Ok(true), the database changed, got \
         {changed:?}"
    );
    let price = catalogue.product(3).await.unwrap().map(|p| p.price_cents);
    assert_eq!(
        price,
        Some(42),
        "the price of product 3 read after the change, Redis still stopped"
    );
    let errors = catalogue.redis_errors.get() - before;
    assert!(
        errors >= 5,
        "redis_errors after 4 reads and a price change with Redis stopped: expected at least 5 \
         (a GET per read, whether or not you then skip the SET, and two DELs), got {errors}. Is \
         every failed call counted?"
    );

    shop.server().restart().unwrap();
    // Recovery without a new Catalogue: once a read has stored the page again, reads are hits.
    let mut stored = false;
    for _ in 0..200 {
        catalogue.product(1).await.unwrap();
        if shop.exists(&catalogue.product_key(1)).await {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        stored,
        "product 1 was never stored again in the 2 s after Redis restarted: expected the same \
         Catalogue to use Redis again once it is back (the connection reconnects by itself)"
    );
    let before = shop.stage.db().queries();
    assert_eq!(catalogue.product(1).await.unwrap(), Some(seed_product(1)));
    let after = shop.stage.db().queries();
    assert_eq!(
        after - before,
        0,
        "database queries for a read of product 1 once it was stored again: expected 0 (a \
         hit), got {}",
        after - before
    );
}

#[tokio::test]
async fn task3_a_stalled_redis_costs_at_most_the_time_budget() {
    let shop = shop_with_private_redis().await;
    shop.server().pause(Duration::from_secs(3)).unwrap();
    let answer = tokio::time::timeout(Duration::from_millis(1_500), shop.catalogue.product(2))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "product(2) against a Redis paused for 3 s was still running after 1.5 s: \
                 expected it to give up on Redis after settings.redis_timeout (100 ms) and read \
                 the database"
            )
        });
    assert_eq!(answer.unwrap(), Some(seed_product(2)));
    let errors = shop.catalogue.redis_errors.get();
    assert!(
        (1..=2).contains(&errors),
        "redis_errors after one product() against a paused Redis: expected 1 (the GET out of \
         time) or 2 (and the SET after the load), got {errors}. 0: the timeout was not counted"
    );
}

#[tokio::test]
async fn task3_a_stalled_redis_costs_a_price_change_its_budget_and_two_counted_errors() {
    let shop = shop_with_private_redis().await;
    let product = seed_product(3);
    shop.catalogue.product(3).await.unwrap();
    shop.catalogue.listing(&product.category).await.unwrap();
    let before = shop.catalogue.redis_errors.get();
    shop.server().pause(Duration::from_secs(3)).unwrap();
    let changed = tokio::time::timeout(
        Duration::from_millis(1_500),
        shop.catalogue.set_price(3, 1),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "set_price() against a Redis paused for 3 s was still running after 1.5 s: expected \
             it to give up on each delete after settings.redis_timeout (100 ms). Are the deletes \
             inside the time budget?"
        )
    });
    assert!(changed.unwrap(), "product 3 exists");
    let errors = shop.catalogue.redis_errors.get() - before;
    assert_eq!(
        errors, 2,
        "redis_errors after one set_price() against a paused Redis: expected exactly 2 (the \
         page's DEL and the listing's DEL, each out of time), got {errors}. 0 or 1: a delete's \
         failure was not counted, or was skipped"
    );
}

#[tokio::test]
async fn task3_a_stopped_redis_costs_a_price_change_two_counted_errors() {
    let shop = shop_with_private_redis().await;
    shop.catalogue.product(5).await.unwrap();
    shop.server().stop();
    let before = shop.catalogue.redis_errors.get();
    let changed = shop.catalogue.set_price(5, 2).await;
    assert!(
        matches!(changed, Ok(true)),
        "set_price() with Redis stopped: expected Ok(true) (the database changed; Redis errors \
         never reach the caller), got {changed:?}"
    );
    let errors = shop.catalogue.redis_errors.get() - before;
    assert_eq!(
        errors, 2,
        "redis_errors after one set_price() with Redis stopped: expected exactly 2 (one per \
         DEL), got {errors}"
    );
}

#[tokio::test]
async fn task3_an_unreadable_entry_is_a_miss_and_is_replaced() {
    let shop = shop().await;
    let key = shop.catalogue.product_key(4);
    let _: () = shop
        .stage
        .conn()
        .set_ex(&key, "<html>not json</html>", 60)
        .await
        .unwrap();
    let got = shop.catalogue.product(4).await;
    assert_eq!(
        got.as_ref().ok(),
        Some(&Some(seed_product(4))),
        "product(4) over cached bytes that are not JSON: expected the row from the database (a \
         miss), got {got:?}. Bytes that do not decode are a miss, never an error or a panic"
    );
    let raw: String = shop.stage.conn().get(&key).await.unwrap();
    assert_ne!(
        raw, "<html>not json</html>",
        "after that miss, expected the loaded product stored over the bad bytes; they are still \
         there"
    );
    assert_eq!(
        shop.catalogue.product(4).await.unwrap(),
        Some(seed_product(4))
    );
    shop.assert_queries(
        1,
        "a miss over bad bytes and one more read",
        "The second read should hit",
    );
}
