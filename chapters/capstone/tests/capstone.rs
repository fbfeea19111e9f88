//! The capstone service over real HTTP on loopback, two instances, against a real Redis and
//! database (as the environment names them). Each of the source's bugs that the service must not
//! have is a test here, and each says how the source's version fails it.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use capstone::admin::Cleared;
use capstone::analytics::Dashboard;
use capstone::api::ANSWERED_BY;
use capstone::deployment::{self, Running};
use capstone::disk::DiskCache;
use capstone::health::Health;
use capstone::listing::ListingPage;
use capstone::news::{Headline, Trend, Views};
use capstone::pages::PageKey;
use capstone::products::ProductView;
use capstone::tasks::{Task, TaskStats};
use capstone::upstream::{Rates, Weather};
use capstone::{Caching, Deployment, Settings};
use http_caching::upstream::{Answer, Served as ServedFrom};
use redis::AsyncCommands;
use reqwest::{Client, Method, StatusCode};
use sessions::accounts::{demo_name, demo_password};
use sessions::api::{Confirm, Login};
use sessions::client::send;
use shared::{DbOptions, ServerOptions, Stage};
use write_behind::table::Scores;
use write_through::Article;

/// Items seeded; users with accounts (user 1 the administrator).
const ITEMS: i64 = 400;
const USERS: i64 = 3;

fn db_options() -> DbOptions {
    DbOptions {
        products: 1,
        users: 1,
        ..DbOptions::default()
    }
}

/// Two instances of one configuration, a client, and the stage under them.
struct Fixture {
    stage: Stage,
    deployment: Deployment,
    running: Running,
    client: Client,
}

async fn fixture(settings: Settings) -> Fixture {
    let stage = Stage::from_env("capstone-test", db_options())
        .await
        .unwrap();
    fixture_on(stage, settings).await
}

async fn fixture_on(stage: Stage, settings: Settings) -> Fixture {
    let accounts = deployment::create_tables(&stage, ITEMS, USERS)
        .await
        .unwrap();
    let shared = deployment::shared_parts(&stage, accounts, settings.caching.slug(), 2);
    let deployment = Deployment { settings, shared };
    let running = deployment.start(&stage).await.unwrap();
    Fixture {
        stage,
        deployment,
        running,
        client: Client::new(),
    }
}

/// Two instances on a private Redis of their own, which the test may stop or pause.
async fn private_fixture(settings: Settings) -> Fixture {
    let stage = Stage::private("capstone-test", db_options(), ServerOptions::default())
        .await
        .unwrap();
    fixture_on(stage, settings).await
}

/// A response's JSON body.
async fn read<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> T {
    let bytes = response.bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "not the JSON expected ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    })
}

impl Fixture {
    async fn get(&self, instance: usize, path: &str) -> reqwest::Response {
        self.client
            .get(self.running.url(instance, path))
            .send()
            .await
            .unwrap()
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, instance: usize, path: &str) -> T {
        let response = self.get(instance, path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        read(response).await
    }

    /// Sends `json` to `path` on `instance` with `method`.
    async fn send_json(
        &self,
        method: Method,
        instance: usize,
        path: &str,
        json: serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .request(method, self.running.url(instance, path))
            .header("content-type", "application/json")
            .body(json.to_string())
            .send()
            .await
            .unwrap()
    }

    /// Asks instance 1's `/health` until it says `ok`, after `what` (500 times at most, 10 ms
    /// apart).
    async fn until_healthy(&self, what: &str) {
        for _ in 0..500 {
            let health: Health = self.json(0, "/health").await;
            if health.status == "ok" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let health: Health = self.json(0, "/health").await;
        panic!("{what}, and 500 polls later /health still says {health:?}");
    }

    /// Signs user `user` in on `instance`; the session ID.
    async fn login(&self, instance: usize, user: i64) -> String {
        let form = Login {
            name: demo_name(user),
            password: demo_password(user),
        };
        let url = self.running.url(instance, "/login");
        let answer = send(&self.client, Method::POST, &url, None, Some(&form))
            .await
            .unwrap();
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "login of user {user}: {}",
            answer.body
        );
        answer.new_id().expect("a login sets a cookie").to_string()
    }

    /// Confirms the password of `user` on session `id`; the new session ID.
    async fn elevate(&self, user: i64, id: &str) -> String {
        let url = self.running.url(0, "/admin");
        let form = Confirm {
            password: demo_password(user),
        };
        let answer = send(&self.client, Method::POST, &url, Some(id), Some(&form))
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK, "elevation: {}", answer.body);
        answer
            .new_id()
            .expect("elevation rotates the ID")
            .to_string()
    }

    async fn stop(self) {
        self.running.stop().await.unwrap();
        // The deployment holds the database too (the accounts, the shared parts).
        drop(self.deployment);
        self.stage.close().await.unwrap();
    }
}

// ---- the disk layer (the source's bug 7) --------------------------------------------------

/// The source named a file after its key: `../../x` wrote outside the folder.
#[tokio::test]
async fn a_disk_file_is_named_by_a_hash_inside_its_folder() {
    let parent = tempfile::tempdir().unwrap();
    let folder = parent.path().join("l3");
    std::fs::create_dir(&folder).unwrap();
    let disk = DiskCache::open(&folder, 1 << 20).unwrap();
    let key = "../escaped";
    let packed = capstone::packed::pack(b"<p>page</p>", u64::MAX, 1_024);
    disk.put(key, packed).await.unwrap();
    assert!(
        !parent.path().join("escaped").exists(),
        "the key `{key}` wrote a file outside the cache's folder: the key was used as a path"
    );
    let names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec![DiskCache::file_name(key)],
        "files in the folder"
    );
    assert_eq!(DiskCache::file_name(key).len(), 64, "a hex SHA-256");
    let (page, _) = disk.get(key, 0).await.expect("the page");
    assert_eq!(page, b"<p>page</p>");
}

/// The source unpickled whatever its file held; a damaged file must be a miss, and go.
#[tokio::test]
async fn a_damaged_or_foreign_disk_file_is_a_miss_and_is_removed() {
    let folder = tempfile::tempdir().unwrap();
    let disk = DiskCache::open(folder.path(), 1 << 20).unwrap();
    let page = "<li>tea</li>".repeat(400).into_bytes();
    disk.put("page", capstone::packed::pack(&page, u64::MAX, 1_024))
        .await
        .unwrap();
    let path = disk.path_of("page");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        disk.get("page", 0).await,
        None,
        "a flipped byte must be a miss"
    );
    assert_eq!(disk.stats.corrupt.get(), 1, "corrupt files counted");
    assert!(!path.exists(), "the damaged file is removed");
    std::fs::write(disk.path_of("pickled"), b"\x80\x04\x95cos\nsystem\n").unwrap();
    assert_eq!(disk.get("pickled", 0).await, None, "a pickle is not ours");
    assert_eq!(disk.stats.corrupt.get(), 2);
}

/// The source called its disk layer unlimited; a disk fills up.
#[tokio::test]
async fn the_disk_layer_keeps_to_its_budget_least_recently_used_first() {
    let folder = tempfile::tempdir().unwrap();
    let budget = 10_000;
    let disk = DiskCache::open(folder.path(), budget).unwrap();
    let value = |i: u32| vec![b'a' + (i % 26) as u8; 2_000];
    for i in 0..4 {
        disk.put(
            &format!("k{i}"),
            capstone::packed::pack(&value(i), u64::MAX, usize::MAX),
        )
        .await
        .unwrap();
    }
    // k0 read last: k1 is now the least recently used.
    assert!(disk.get("k0", 0).await.is_some());
    for i in 4..8 {
        disk.put(
            &format!("k{i}"),
            capstone::packed::pack(&value(i), u64::MAX, usize::MAX),
        )
        .await
        .unwrap();
    }
    let on_disk: u64 = std::fs::read_dir(folder.path())
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum();
    assert!(
        on_disk <= budget,
        "{on_disk} bytes of files in the folder, budget {budget}: eviction does not delete files"
    );
    assert_eq!(disk.bytes(), on_disk, "the index counts what is on disk");
    assert!(
        !disk.path_of("k1").exists(),
        "k1, least recently used, evicted"
    );
    assert!(disk.path_of("k7").exists(), "k7, the newest, kept");
    assert!(disk.stats.evicted.get() >= 3, "evictions counted");
}

/// A write that never finished leaves a temporary file, which the next start removes.
#[tokio::test]
async fn a_temporary_file_left_by_a_crash_is_removed_at_start() {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("abc.tmp"), b"half a page").unwrap();
    let disk = DiskCache::open(folder.path(), 1 << 20).unwrap();
    assert!(!folder.path().join("abc.tmp").exists());
    assert_eq!(disk.files(), 0);
}

// ---- pages: warming (the source's bug 6), layers, compression ---------------------------------

/// The source warmed every key with the same TTL: all of them expired in the same second.
#[tokio::test]
async fn warmed_pages_expire_apart_within_their_bounds() {
    let f = fixture(Settings::new(Caching::Layered)).await;
    let service = &f.running.services[0];
    let keys: Vec<PageKey> = (1..=40)
        .map(|page| PageKey {
            category: "tea".to_string(),
            page,
        })
        .collect();
    service.pages.warm(&keys).await.unwrap();
    let ttl = service.settings.pages.ttl.as_millis() as i64;
    let jitter = service.settings.pages.jitter;
    let mut conn = f.stage.conn();
    let mut ttls = Vec::new();
    for key in &keys {
        let name = f
            .deployment
            .shared
            .cache_namespace
            .child("pages")
            .key(&key.key());
        let pttl: i64 = conn.pttl(&name).await.unwrap();
        ttls.push(pttl);
    }
    let low = ((1.0 - jitter) * ttl as f64) as i64 - 1_000;
    let high = ((1.0 + jitter) * ttl as f64) as i64;
    for pttl in &ttls {
        assert!(
            (low..=high).contains(pttl),
            "a warmed page's PTTL is {pttl} ms; expected within {low}..={high} (TTL {ttl} ms ± {jitter})"
        );
    }
    let spread = ttls.iter().max().unwrap() - ttls.iter().min().unwrap();
    assert!(
        spread >= ttl / 10,
        "40 warmed pages' TTLs span {spread} ms; expected at least a tenth of the TTL ({} ms): the \
         warmed keys would expire together",
        ttl / 10
    );
    assert_eq!(
        service.pages.stats.renders.get(),
        0,
        "warming is no request"
    );
    f.stop().await;
}

/// A page read twice on one instance comes from memory the second time, on the other from Redis;
/// stored compressed; and from disk once Redis has lost it.
#[tokio::test]
async fn a_page_comes_from_each_layer_in_turn() {
    let mut settings = Settings::new(Caching::Layered);
    settings.pages.prefetch = false;
    let f = fixture(settings).await;
    let layer = |response: &reqwest::Response| {
        response.headers()[ANSWERED_BY]
            .to_str()
            .unwrap()
            .to_string()
    };
    let first = f.get(0, "/pages/coffee/2").await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(layer(&first), "database");
    let html = first.text().await.unwrap();
    for past in ["/pages/coffee/101", "/pages/coffee/0", "/pages/teapots/1"] {
        assert_eq!(
            f.get(0, past).await.status(),
            StatusCode::NOT_FOUND,
            "{past}"
        );
    }
    assert!(html.contains("<h1>coffee</h1>"), "the page of its category");
    assert_eq!(layer(&f.get(0, "/pages/coffee/2").await), "l1");
    assert_eq!(layer(&f.get(1, "/pages/coffee/2").await), "l2");
    let pages = &f.running.services[0].pages.stats;
    assert!(
        pages.stored_bytes.get() * 3 < pages.rendered_bytes.get(),
        "a page of {} bytes stored as {} bytes: expected at least 3x smaller with LZ4",
        pages.rendered_bytes.get(),
        pages.stored_bytes.get()
    );
    // Redis loses everything; instance 0's L1 is dropped too: its disk still has the page.
    let mut conn = f.stage.conn();
    let namespace = f.deployment.shared.cache_namespace.clone();
    namespace.remove_all(&mut conn).await.unwrap();
    let pages = &f.running.services[0].pages;
    pages.forget_memory();
    // The file says the page has 10 s left: the copy put back into Redis must not live longer.
    let key = PageKey {
        category: "coffee".to_string(),
        page: 2,
    };
    let disk = pages
        .disk()
        .expect("the layered configuration has a disk layer");
    let expires = shared::clock::now_ms() + 10_000;
    let file = capstone::packed::pack(html.as_bytes(), expires, 1_024);
    std::fs::write(disk.path_of(&key.key()), file).unwrap();
    let from_disk = f.get(0, "/pages/coffee/2").await;
    assert_eq!(
        layer(&from_disk),
        "l3",
        "Redis and L1 empty: the disk answers"
    );
    assert_eq!(from_disk.text().await.unwrap(), html, "the same page");
    let in_redis = f
        .deployment
        .shared
        .cache_namespace
        .child("pages")
        .key(&key.key());
    let pttl: i64 = conn.pttl(&in_redis).await.unwrap();
    assert!(
        (5_000..=10_000).contains(&pttl),
        "the page read from disk was put back into Redis with PTTL {pttl} ms; expected what the \
         file had left (at most 10,000 ms): a new TTL would let it outlive its bound"
    );
    f.stop().await;
}

/// A reader of page n asks for page n + 1 next: the prefetch makes that a hit, and is counted.
#[tokio::test]
async fn a_prefetched_page_is_a_memory_hit_and_is_counted() {
    let f = fixture(Settings::new(Caching::Layered)).await;
    assert_eq!(f.get(0, "/pages/books/1").await.status(), StatusCode::OK);
    let pages = f.running.services[0].pages.clone();
    // The prefetch of page 2 runs in the background: wait for its render to be counted.
    while pages.stats.prefetches.get() == 0 {
        tokio::task::yield_now().await;
    }
    let next = f.get(0, "/pages/books/2").await;
    assert_eq!(next.headers()[ANSWERED_BY], "l1");
    assert_eq!(
        pages.stats.prefetch_hits.get(),
        1,
        "the prefetch earned a hit"
    );
    drop(pages);
    f.stop().await;
}

// ---- products ---------------------------------------------------------------------------------

/// A missing product is cached as absent: asking again costs no query.
#[tokio::test]
async fn a_missing_product_is_cached_as_absent() {
    let f = fixture(Settings::new(Caching::Layered)).await;
    assert_eq!(
        f.get(0, "/products/999999").await.status(),
        StatusCode::NOT_FOUND
    );
    let before = f.stage.db().queries();
    assert_eq!(
        f.get(1, "/products/999999").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        f.stage.db().queries() - before,
        0,
        "a second read of a missing product reached the database: absence is not cached"
    );
    f.stop().await;
}

/// With conditional requests, a client that kept the product gets a `304`, and after a price
/// change a `200` with the new price.
#[tokio::test]
async fn a_kept_product_is_not_sent_again_until_it_changes() {
    let f = fixture(Settings::new(Caching::Conditional)).await;
    let first = f.get(0, "/products/7").await;
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let view: ProductView = read(first).await;
    let again = f
        .client
        .get(f.running.url(1, "/products/7"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let changed = f
        .send_json(
            Method::PUT,
            0,
            "/products/7/price",
            serde_json::json!({"price_cents": view.price_cents + 100}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let after = f
        .client
        .get(f.running.url(0, "/products/7"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        after.status(),
        StatusCode::OK,
        "a changed product is sent again"
    );
    let view_after: ProductView = read(after).await;
    assert_eq!(view_after.price_cents, view.price_cents + 100);
    assert_eq!(view_after.version, view.version + 1);
    f.stop().await;
}

// ---- products created and deleted: IDs from the database, dependents through the outbox ------

impl Fixture {
    /// Waits until the instances' relays have paid everything the outbox owes (they poll it every
    /// 100 ms), at most 10 s.
    async fn until_relayed(&self) {
        let db = self.stage.db();
        for _ in 0..200 {
            let mut conn = db.connection().await.unwrap();
            let waiting: i64 =
                sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE relayed = 0")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
            if waiting == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the outbox still owed invalidations after 10 s: the relays do not run");
    }

    async fn listing(&self, instance: usize, query: &str) -> Vec<i64> {
        let page: ListingPage = self.json(instance, &format!("/products?{query}")).await;
        page.items.iter().map(|item| item.id).collect()
    }
}

/// The source gave a new record `max(ids) + 1`, read before an `await` and written after it, so
/// creates at once took the same ID and overwrote each other (its version ends with fewer than 8
/// products here). Here the database hands out the IDs; and what a creation makes wrong (the
/// absence of its ID, cached by a read before it existed, and the listing page it lands on) is
/// owed in the outbox in the create's transaction, and dropped by the relay.
#[tokio::test]
async fn created_products_get_ids_of_their_own_and_replace_what_was_cached_before() {
    let f = fixture(Settings::new(Caching::Layered)).await;
    let next = ITEMS + 1;
    for instance in [0, 1] {
        let before = f.get(instance, &format!("/products/{next}")).await;
        assert_eq!(before.status(), StatusCode::NOT_FOUND);
    }
    // 100 tea items on pages 1 to 5: a new one lands on page 6, empty until then.
    assert!(f.listing(0, "category=tea&page=6").await.is_empty());
    let fixture = &f;
    let creates = (0..8).map(|i| async move {
        let form = serde_json::json!({"category": "tea", "price_cents": 100 + i});
        let response = fixture
            .send_json(Method::POST, i as usize % 2, "/products", form)
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        read::<ProductView>(response).await.id
    });
    let mut ids = futures_util::future::join_all(creates).await;
    ids.sort();
    let expected: Vec<i64> = (next..next + 8).collect();
    assert_eq!(
        ids, expected,
        "the IDs of 8 products created at once over two instances: expected 8 distinct IDs after \
         the seeded {ITEMS} (the same ID twice: an ID worked out by the service, not the database)"
    );
    f.until_relayed().await;
    for instance in [0, 1] {
        let product: ProductView = f.json(instance, &format!("/products/{next}")).await;
        assert_eq!(
            (product.category.as_str(), product.version),
            ("tea", 1),
            "product {next} on instance {instance} after the relay: the absence cached before \
             it was created must be gone from both instances' L1 and from Redis"
        );
    }
    assert_eq!(
        f.listing(1, "category=tea&page=6").await,
        expected,
        "tea's page 6 after the relay: the listing page the new products landed on must have been \
         dropped from the response cache"
    );
    f.stop().await;
}

/// A deleted product leaves both instances' L1 and Redis, and every listing page from its own on
/// (each item after it moves up one place), through the outbox. The source's delete removed the
/// row and left every cached copy to its TTL.
#[tokio::test]
async fn a_deleted_product_leaves_every_cache_through_the_outbox() {
    let f = fixture(Settings::new(Caching::Layered)).await;
    for instance in [0, 1] {
        let _: ProductView = f.json(instance, "/products/5").await;
    }
    assert_eq!(f.listing(0, "page=1").await, (1..=20).collect::<Vec<_>>());
    assert_eq!(f.listing(0, "page=2").await, (21..=40).collect::<Vec<_>>());
    let deleted = f
        .client
        .delete(f.running.url(1, "/products/5"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let again = f
        .client
        .delete(f.running.url(0, "/products/5"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_FOUND, "a second delete");
    f.until_relayed().await;
    for instance in [0, 1] {
        let gone = f.get(instance, "/products/5").await;
        assert_eq!(
            gone.status(),
            StatusCode::NOT_FOUND,
            "product 5 on instance {instance} after its delete was relayed: expected 404 (its copy \
             in L1 or Redis outlived the delete)"
        );
    }
    let first: Vec<i64> = (1..=4).chain(6..=21).collect();
    assert_eq!(
        f.listing(0, "page=1").await,
        first,
        "page 1 after deleting item 5: 1 to 4 and 6 to 21"
    );
    assert_eq!(
        f.listing(1, "page=2").await,
        (22..=41).collect::<Vec<_>>(),
        "page 2 after deleting item 5: every item moved up one place, so page 2 must have been \
         dropped too, though item 5 was never on it"
    );
    f.stop().await;
}

// ---- the listing behind the response cache (the source's bug 1) ----------------------------

/// The source keyed a cached response by its path: `/products?category=tea` answered for
/// `/products` too. Each query has its own entry, and an equivalent query shares it.
#[tokio::test]
async fn listings_of_different_queries_never_share_an_entry() {
    let f = fixture(Settings::new(Caching::Layered)).await;
    let tea: ListingPage = f.json(0, "/products?category=tea").await;
    assert!(
        tea.items.iter().all(|item| item.category == "tea"),
        "{tea:?}"
    );
    let every: ListingPage = f.json(0, "/products").await;
    let categories: HashSet<&str> = every.items.iter().map(|i| i.category.as_str()).collect();
    assert!(
        categories.len() > 1,
        "GET /products answered with the categories {categories:?}: the tea listing's entry \
         answered for every category (a key without the query)"
    );
    let queries = f.stage.db().queries();
    let same: ListingPage = f.json(1, "/products?page=1&category=tea").await;
    assert_eq!(same, tea, "the same listing, the query written another way");
    assert_eq!(
        f.stage.db().queries(),
        queries,
        "?page=1&category=tea reached the database after ?category=tea was cached: the key is \
         the raw query, not the parsed one"
    );
    let unknown = f.get(0, "/products?category=tea&utm=x").await;
    assert_eq!(
        unknown.status(),
        StatusCode::BAD_REQUEST,
        "an unknown parameter is refused"
    );
    f.stop().await;
}

/// A price change drops the two listing pages that show the item before it is acknowledged, and
/// only those.
#[tokio::test]
async fn a_price_change_drops_the_listing_pages_that_show_it_and_only_those() {
    let f = fixture(Settings::new(Caching::Layered)).await;
    let before: ListingPage = f.json(1, "/products?category=coffee&page=2").await;
    let item = before.items[3].clone();
    // Its page of every category: items by id, twenty to a page.
    let every = format!("/products?page={}", (item.id - 1) / 20 + 1);
    let unrelated = "/products?category=tea&page=2";
    for path in [every.as_str(), unrelated] {
        let _: ListingPage = f.json(1, path).await;
    }
    let response = f
        .client
        .put(f.running.url(0, &format!("/products/{}/price", item.id)))
        .header("content-type", "application/json")
        .body(serde_json::json!({"price_cents": item.price_cents + 1}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for path in ["/products?category=coffee&page=2", every.as_str()] {
        let after: ListingPage = f.json(1, path).await;
        let shown = after.items.iter().find(|i| i.id == item.id);
        assert_eq!(
            shown.map(|i| i.version),
            Some(item.version + 1),
            "{path} after item {}'s price change was acknowledged: the cached page was not dropped",
            item.id
        );
    }
    let queries = f.stage.db().queries();
    let _: ListingPage = f.json(1, unrelated).await;
    assert_eq!(
        f.stage.db().queries(),
        queries,
        "{unrelated}, which does not show item {}, was dropped by its price change",
        item.id
    );
    f.stop().await;
}

// ---- tasks (the source's bugs 5 and 8) --------------------------------------------------------

/// The source made an ID as `max(ids) + 1` across an `await`: concurrent creates overwrote each
/// other. Fifty creates at once on two instances must make fifty tasks.
#[tokio::test]
async fn concurrent_creates_make_as_many_tasks() {
    let f = Arc::new(fixture(Settings::new(Caching::Layered)).await);
    let mut creates = Vec::new();
    for i in 0..50 {
        let f = f.clone();
        creates.push(tokio::spawn(async move {
            let response = f
                .send_json(
                    Method::POST,
                    i,
                    "/tasks",
                    serde_json::json!({"title": format!("task {i}")}),
                )
                .await;
            assert_eq!(response.status(), StatusCode::CREATED);
            read::<Task>(response).await
        }));
    }
    let mut ids = HashSet::new();
    for create in creates {
        ids.insert(create.await.unwrap().id);
    }
    assert_eq!(
        ids.len(),
        50,
        "50 creates at once gave {} distinct IDs",
        ids.len()
    );
    let stats: TaskStats = f.json(0, "/tasks/stats").await;
    assert_eq!(
        stats.open, 50,
        "rows in the table: every create kept its own"
    );
    Arc::into_inner(f).unwrap().stop().await;
}

/// The source cached its statistics and never invalidated them. Each write must show in the next
/// read, on either instance, while reads between writes come from the cache.
#[tokio::test]
async fn task_stats_follow_every_write_and_are_cached_between_writes() {
    let f = fixture(Settings::new(Caching::Layered)).await;
    let stats = |open, done| TaskStats { open, done };
    assert_eq!(f.json::<TaskStats>(0, "/tasks/stats").await, stats(0, 0));
    let response = f
        .send_json(
            Method::POST,
            0,
            "/tasks",
            serde_json::json!({"title": "write the chapter"}),
        )
        .await;
    let created: Task = read(response).await;
    assert_eq!(
        f.json::<TaskStats>(1, "/tasks/stats").await,
        stats(1, 0),
        "after a create, the other instance's stats"
    );
    let tasks = &f.running.services[1].tasks;
    let hits = tasks.cache().unwrap().counts.hits.get();
    assert_eq!(f.json::<TaskStats>(1, "/tasks/stats").await, stats(1, 0));
    assert_eq!(
        tasks.cache().unwrap().counts.hits.get(),
        hits + 1,
        "a read between writes is a hit"
    );
    let path = format!("/tasks/{}", created.id);
    let done = f
        .send_json(Method::PUT, 1, &path, serde_json::json!({"status": "done"}))
        .await;
    assert_eq!(done.status(), StatusCode::OK);
    assert_eq!(
        f.json::<TaskStats>(0, "/tasks/stats").await,
        stats(0, 1),
        "after an update"
    );
    let deleted = f
        .client
        .delete(f.running.url(0, &path))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        f.json::<TaskStats>(1, "/tasks/stats").await,
        stats(0, 0),
        "after a delete"
    );
    f.stop().await;
}

/// The source cached its analytics under a TTL that no write shortened, and when the entry
/// expired every reader waited for the slow report (its version fails both halves: the figures
/// after the price change are the old ones until the TTL ends). Here a price change refreshes the
/// dashboard in the background, once for both instances, and readers never wait for it.
#[tokio::test]
async fn the_dashboard_is_refreshed_by_a_price_change_and_nobody_waits_for_it() {
    let mut settings = Settings::new(Caching::Layered);
    settings.report_cost = Duration::from_millis(500);
    let f = fixture(settings).await;
    let value_of =
        |dashboard: &Dashboard| -> i64 { dashboard.categories.iter().map(|c| c.value_cents).sum() };
    let first: Dashboard = f.json(0, "/analytics/dashboard").await;
    let item: ProductView = f.json(0, "/products/1").await;
    let changed = f
        .send_json(
            Method::PUT,
            1,
            "/products/1/price",
            serde_json::json!({"price_cents": item.price_cents + 1_000}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    // The refresh takes the report's half second: meanwhile both instances answer at once.
    for instance in [0, 1, 0, 1] {
        let during: Dashboard = f.json(instance, "/analytics/dashboard").await;
        assert!(
            during == first || value_of(&during) == value_of(&first) + 1_000,
            "a dashboard read during the refresh: expected the old or the new figures, got \
             {during:?}"
        );
    }
    for service in &f.running.services {
        service.analytics.settle().await;
    }
    let after: Dashboard = f.json(0, "/analytics/dashboard").await;
    assert_eq!(
        value_of(&after),
        value_of(&first) + 1_000,
        "the shop's value on the dashboard after the refresh a price change started: expected \
         the old value plus the 1,000 cents added (the change did not start a refresh, and the \
         old figures stay until the TTL)"
    );
    let stats = f.running.services.iter().fold((0, 0), |(m, r), s| {
        let stats = s.analytics.stats();
        (m + stats.misses, r + stats.refreshes)
    });
    assert_eq!(
        stats,
        (1, 1),
        "(reads that found nothing and ran the report, refreshes) over both instances: expected \
         the first read's miss and one refresh (more misses: a reader waited for the report; more \
         refreshes: both instances refreshed)"
    );
    f.stop().await;
}

// ---- weather and exchange rates from a third party -------------------------------------------

/// The source cached the third party's answers with a plain TTL: every request in the moment an
/// entry expired called the service (its version makes 12 calls here, one per request). Through
/// the HTTP lesson's upstream cache, a cold city costs one call per instance at most, and what was
/// fetched is served with its age, to either instance, without another call.
#[tokio::test]
async fn weather_and_rates_call_the_third_party_once_per_name_and_say_their_age() {
    let f = fixture(Settings::new(Caching::Layered)).await;
    let calls = || f.running.third_party.calls.get();
    let fixture = &f;
    let asks = (0..12).map(|i| async move {
        let spelling = ["Paris", "paris", "%20PARIS"][i % 3];
        fixture.get(i % 2, &format!("/weather/{spelling}")).await
    });
    for response in futures_util::future::join_all(asks).await {
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers().contains_key("age"),
            "an answer says its Age"
        );
        let answer: Answer<Weather> = read(response).await;
        assert_eq!(answer.value.city, "paris");
    }
    assert!(
        (1..=2).contains(&calls()),
        "calls to the service for 12 concurrent requests of one cold city over two instances: \
         expected 1 or 2 (one fetch per name at a time in each instance), found {} (no single \
         flight: every request that missed called the service)",
        calls()
    );
    let before = calls();
    for instance in [0, 1] {
        let again: Answer<Weather> = f.json(instance, "/weather/paris").await;
        assert_eq!(again.served, ServedFrom::Fresh);
    }
    let rates: Answer<Rates> = f.json(1, "/rates/EUR").await;
    assert_eq!(rates.value.base, "eur");
    let unknown = f.get(0, "/weather/atlantis").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        calls(),
        before + 1,
        "calls after two reads of a kept city, EUR's rates and a city the service does not know: \
         expected one more (the rates); a kept answer or a made-up name must not reach the service"
    );
    f.stop().await;
}

// ---- news: articles written through, views written behind, trending -------------------------

/// The source's article list was cached with a TTL that no edit shortened. Here an acknowledged
/// edit shows in the next list read on either instance (the list's generation is replaced after the
/// commit); between edits the list is a hit; `?cache=bypass` is always a query.
#[tokio::test]
async fn the_article_list_follows_every_edit_and_bypass_skips_the_cache() {
    let f = fixture(Settings::new(Caching::Layered)).await;
    let before: Vec<Headline> = f.json(0, "/news?page=1").await;
    assert_eq!(before.len(), 20);
    let counts = f.running.services[1].news.list_counts(1).unwrap();
    let (hits, db) = (counts.hits.get(), f.stage.db().queries());
    let again: Vec<Headline> = f.json(1, "/news?page=1").await;
    assert_eq!(again, before);
    assert_eq!(
        (counts.hits.get() - hits, f.stage.db().queries() - db),
        (1, 0),
        "(hits, queries) of a list read between edits"
    );
    let edit = serde_json::json!({"title": "Edited by the test", "body": "New."});
    let edited = f.send_json(Method::PUT, 1, "/news/3", edit).await;
    assert_eq!(edited.status(), StatusCode::OK);
    let after: Vec<Headline> = f.json(0, "/news?page=1").await;
    let third = after.iter().find(|h| h.id == 3).unwrap();
    assert_eq!(
        (third.title.as_str(), third.version),
        ("Edited by the test", before[2].version + 1),
        "article 3 in the list read after its edit was acknowledged, on the other instance: \
         expected the new title at the next version (the list kept its old generation)"
    );
    // Article 3 is on page 1: page 2 kept its copy.
    let page_two = f.running.services[0].news.list_counts(2).unwrap();
    let _: Vec<Headline> = f.json(0, "/news?page=2").await;
    let hits = page_two.hits.get();
    let _: Vec<Headline> = f.json(0, "/news?page=2").await;
    let _ = f
        .send_json(
            Method::PUT,
            1,
            "/news/3",
            serde_json::json!({"title": "Again", "body": "."}),
        )
        .await;
    let _: Vec<Headline> = f.json(0, "/news?page=2").await;
    assert_eq!(
        page_two.hits.get() - hits,
        2,
        "hits of page 2 read twice around an edit of article 3, which is on page 1: expected 2 \
         (one generation for the whole list: every edit costs every page its copy)"
    );
    let db = f.stage.db().queries();
    let bypassed: Vec<Headline> = f.json(0, "/news?page=1&cache=bypass").await;
    assert_eq!(bypassed[2].title, "Again");
    assert_eq!(f.stage.db().queries() - db, 1, "?cache=bypass: one query");
    for bad in ["/news?page=11", "/news?page=0", "/news?sort=title"] {
        assert_eq!(
            f.get(0, bad).await.status(),
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    f.stop().await;
}

/// An edit is acknowledged after the committed row is in Redis: the other instance reads it at
/// once, at its new version.
#[tokio::test]
async fn an_edited_article_is_read_at_its_new_version_on_either_instance() {
    let f = fixture(Settings::new(Caching::Layered)).await;
    let before: Article = f.json(1, "/news/3").await;
    let response = f
        .send_json(
            Method::PUT,
            0,
            "/news/3",
            serde_json::json!({"title": "Rewritten", "body": "New text."}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let queries = f.stage.db().queries();
    let after: Article = f.json(1, "/news/3").await;
    assert_eq!(
        (after.title.as_str(), after.version),
        ("Rewritten", before.version + 1),
        "the other instance, right after the edit was acknowledged"
    );
    assert_eq!(
        f.stage.db().queries(),
        queries,
        "the read after an edit came from the database: the edit did not write the cache"
    );
    f.stop().await;
}

/// A view is acknowledged from Redis; the flusher writes it to the database, and a clean stop
/// leaves none unwritten.
#[tokio::test]
async fn acknowledged_views_all_reach_the_database() {
    let f = fixture(Settings::new(Caching::Layered)).await;
    let mut last = 0;
    for i in 0..20 {
        let response = f
            .client
            .post(f.running.url(i, "/news/4/views"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let views: Views = read(response).await;
        assert_eq!(views.views, last + 1, "each view's count, in order");
        last = views.views;
    }
    let Fixture {
        stage,
        deployment,
        running,
        ..
    } = f;
    running.stop().await.unwrap();
    drop(deployment);
    let row = stage.db().score(4).await.unwrap().unwrap();
    assert_eq!(
        row.points, 20,
        "views in the database after the flushers drained"
    );
    stage.close().await.unwrap();
}

/// Trending is derived from the flushed views and kept a second: it catches up with the views
/// acknowledged, and counts none twice.
#[tokio::test]
async fn trending_catches_up_with_the_acknowledged_views() {
    let f = fixture(Settings::new(Caching::Layered)).await;
    for _ in 0..7 {
        let response = f
            .client
            .post(f.running.url(0, "/news/9/views"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let mut polls = 0;
    let trending = loop {
        let trending: Vec<Trend> = f.json(1, "/news/trending").await;
        if trending.iter().any(|t| t.id == 9 && t.views >= 7) {
            break trending;
        }
        polls += 1;
        assert!(
            polls < 1_000,
            "trending never showed article 9's 7 views: {trending:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        trending[0],
        Trend { id: 9, views: 7 },
        "no view counted twice"
    );
    f.stop().await;
}

// ---- the rate limit (the source's bug 2) ------------------------------------------------------

/// The source named a client by `X-Forwarded-For` from anyone, and set its counter's TTL in a
/// second call. A client that changes the header every request is still one client, refused
/// past its burst with `Retry-After`, and its key in Redis has a TTL.
#[tokio::test]
async fn the_rate_limit_ignores_a_forged_forwarded_for_and_its_key_expires() {
    let mut settings = Settings::new(Caching::Layered);
    settings.rate_limit = 5;
    let f = fixture(settings).await;
    let forged = f
        .client
        .get(f.running.url(0, "/products/1"))
        .header("authorization", "Bearer made-up-key-7")
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.status(),
        StatusCode::UNAUTHORIZED,
        "a key the service never issued: a client sending a new one each request would be a \
         new client each request (it counts against the address that sent it)"
    );
    let mut statuses = Vec::new();
    let mut refused = None;
    for i in 0..8 {
        let response = f
            .client
            .get(f.running.url(0, "/products/1"))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        assert!(response.headers().contains_key("ratelimit-policy"));
        if response.status() == StatusCode::TOO_MANY_REQUESTS && refused.is_none() {
            refused = Some(response);
        }
    }
    let refused = refused.unwrap_or_else(|| {
        panic!(
            "8 requests from one address, each with another X-Forwarded-For, limit 5 a second: \
             statuses {statuses:?}; expected a 429 (the header was trusted)"
        )
    });
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "Retry-After in whole seconds, at least 1");
    let mut conn = f.stage.conn();
    let keys = f
        .deployment
        .shared
        .limit_namespace
        .keys(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "one client, one key: {keys:?}");
    let pttl: i64 = conn.pttl(&keys[0]).await.unwrap();
    assert!(
        (1..=2_000).contains(&pttl),
        "the limiter's key has PTTL {pttl} ms; expected 1..=2000 (a key without a TTL is -1)"
    );
    f.stop().await;
}

// ---- sessions (the source's bug 3) and administration (bug 4) ---------------------------------

/// The source let any password in and kept the session ID across the login.
#[tokio::test]
async fn a_login_checks_the_password_and_rotates_the_id() {
    let f = fixture(Settings::new(Caching::Layered)).await;
    let url = f.running.url(0, "/login");
    let wrong = Login {
        name: demo_name(2),
        password: "guess".to_string(),
    };
    let answer = send(&f.client, Method::POST, &url, None, Some(&wrong))
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "a wrong password");
    // A browser that already has a session (say, one an attacker planted) logs in: the session
    // it brought must not be the one signed in.
    let brought = f.login(0, 3).await;
    let form = Login {
        name: demo_name(2),
        password: demo_password(2),
    };
    let answer = send(&f.client, Method::POST, &url, Some(&brought), Some(&form))
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    let id = answer.new_id().expect("a login sets a cookie").to_string();
    assert_ne!(
        id, brought,
        "the login kept the session ID the browser brought"
    );
    let old = send(
        &f.client,
        Method::GET,
        &f.running.url(1, "/me"),
        Some(&brought),
        None::<&()>,
    )
    .await
    .unwrap();
    assert_eq!(
        old.status,
        StatusCode::UNAUTHORIZED,
        "the ID brought is dead after the login"
    );
    let me = send(
        &f.client,
        Method::GET,
        &f.running.url(1, "/me"),
        Some(&id),
        None::<&()>,
    )
    .await
    .unwrap();
    assert_eq!(
        me.status,
        StatusCode::OK,
        "the session works on the other instance"
    );
    assert!(!me.body.contains(&id), "the session ID is never in a body");
    f.stop().await;
}

/// The source's cache clearing took no credentials and flushed the whole database. Only an
/// elevated administrator may clear, and only the service's cache keys go.
#[tokio::test]
async fn only_an_elevated_administrator_clears_and_only_the_caches_keys_go() {
    let f = fixture(Settings::new(Caching::Layered)).await;
    assert_eq!(f.get(0, "/pages/tea/1").await.status(), StatusCode::OK);
    assert_eq!(f.get(1, "/pages/tea/1").await.status(), StatusCode::OK);
    assert_eq!(f.get(0, "/products/3").await.status(), StatusCode::OK);
    let mut conn = f.stage.conn();
    let foreign = f.stage.key("another-service:config");
    let _: () = conn.set_ex(&foreign, "keep me", 600).await.unwrap();
    let clear = |id: Option<String>| {
        let url = f.running.url(1, "/admin/cache/clear");
        let client = f.client.clone();
        async move {
            send(&client, Method::POST, &url, id.as_deref(), None::<&()>)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        clear(None).await.status,
        StatusCode::UNAUTHORIZED,
        "anonymous"
    );
    let user = f.login(0, 2).await;
    let user = f.elevate(2, &user).await;
    assert_eq!(
        clear(Some(user)).await.status,
        StatusCode::FORBIDDEN,
        "not an administrator"
    );
    let admin = f.login(0, 1).await;
    assert_eq!(
        clear(Some(admin.clone())).await.status,
        StatusCode::FORBIDDEN,
        "an administrator who has not confirmed the password"
    );
    let admin = f.elevate(1, &admin).await;
    let cached = f
        .deployment
        .shared
        .cache_namespace
        .keys(&mut conn)
        .await
        .unwrap();
    assert!(!cached.is_empty(), "the reads above left cache keys");
    let answer = clear(Some(admin.clone())).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let cleared: Cleared = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(cleared.keys, cached.len(), "keys removed");
    let left = f
        .deployment
        .shared
        .cache_namespace
        .keys(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, Vec::<String>::new(), "cache keys left after a clear");
    let page = f.get(1, "/pages/tea/1").await;
    assert_eq!(
        page.headers()[ANSWERED_BY],
        "database",
        "a page read on the instance that cleared: its memory and its disk must be empty too"
    );
    let kept: Option<String> = conn.get(&foreign).await.unwrap();
    assert_eq!(
        kept.as_deref(),
        Some("keep me"),
        "another service's key survives"
    );
    let me = send(
        &f.client,
        Method::GET,
        &f.running.url(0, "/me"),
        Some(&admin),
        None::<&()>,
    )
    .await
    .unwrap();
    assert_eq!(me.status, StatusCode::OK, "a clear logs nobody out");
    let group = send(
        &f.client,
        Method::POST,
        &f.running.url(0, "/admin/cache/groups/c:tea:1"),
        Some(&admin),
        None::<&()>,
    )
    .await
    .unwrap();
    assert_eq!(
        group.status,
        StatusCode::NO_CONTENT,
        "dropping a group: {}",
        group.body
    );
    let _: () = conn.del(&foreign).await.unwrap();
    f.stop().await;
}

// ---- health (the source's bug 8) --------------------------------------------------------------

/// The source's `/health` said healthy whatever happened. With Redis stopped it must say
/// degraded, and the service still answers from the database.
#[tokio::test]
async fn health_says_degraded_while_redis_is_down_and_reads_go_on() {
    let f = private_fixture(Settings::new(Caching::Layered)).await;
    let healthy: Health = f.json(0, "/health").await;
    assert_eq!(healthy.status, "ok");
    f.stage.server().stop();
    let response = f.get(0, "/health").await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "Redis down: still serving"
    );
    let health: Health = read(response).await;
    assert_eq!(health.status, "degraded", "Redis stopped: {health:?}");
    assert_ne!(health.redis, "ok");
    assert_eq!(health.database, "ok");
    let product = f.get(1, "/products/5").await;
    assert_eq!(
        product.status(),
        StatusCode::OK,
        "reads go on from the database"
    );
    let page = f.get(1, "/pages/kitchen/1").await;
    assert_eq!(page.status(), StatusCode::OK, "pages too");
    let view = f
        .client
        .post(f.running.url(0, "/news/1/views"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        view.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a view cannot be acknowledged without Redis (counted later, it could be counted twice)"
    );
    // Back, so that the flushers drain (what is queued waits in Redis for a flusher otherwise).
    f.stage.server().restart().unwrap();
    // The connection finds out on its next command that it must reconnect.
    f.until_healthy("Redis restarted").await;
    f.stop().await;
}

// ---- operation: /metrics, /stats.json, /ready ------------------------------------------------

/// The samples of instance `i`'s `/metrics` named `name` whose labels include `labels`, summed.
async fn metric(f: &Fixture, i: usize, name: &str, labels: &[(&str, &str)]) -> f64 {
    let response = f.get(i, "/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    capstone::stats::parse(&text)
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// Each layer's hits and misses, each route's requests, counted by the instance that answered
/// them and by no other; `/stats.json` shows the same figures and computes the ratios from them.
#[tokio::test]
async fn metrics_count_each_layers_lookups_and_stats_json_shows_the_same_figures() {
    let f = fixture(Settings::new(Caching::Layered)).await;
    for _ in 0..2 {
        assert_eq!(f.get(0, "/products/5").await.status(), StatusCode::OK);
        assert_eq!(f.get(0, "/pages/books/3").await.status(), StatusCode::OK);
    }
    let lookups = "cache_lookups_total";
    let expected = [
        // The first read of each missed every layer; the second was answered by L1.
        (("products", "l1", "miss"), 1.0),
        (("products", "l1", "hit"), 1.0),
        (("products", "l2", "miss"), 1.0),
        (("pages", "l1", "miss"), 1.0),
        (("pages", "l1", "hit"), 1.0),
        (("pages", "l2", "miss"), 1.0),
        (("pages", "l3", "miss"), 1.0),
        (("pages", "l2", "hit"), 0.0),
    ];
    for ((cache, layer, result), count) in expected {
        let labels = [("cache", cache), ("layer", layer), ("result", result)];
        let found = metric(&f, 0, lookups, &labels).await;
        assert_eq!(
            found, count,
            "instance 1's {lookups} {labels:?} after two reads of one product and one page: \
             {found}, expected {count}"
        );
    }
    let route = [("route", "/products/{id}"), ("status", "200")];
    let requests = metric(&f, 0, "http_request_duration_seconds_count", &route).await;
    assert_eq!(
        requests, 2.0,
        "requests to /products/{{id}} timed by instance 1"
    );
    let elsewhere = metric(&f, 1, lookups, &[]).await;
    assert_eq!(
        elsewhere, 0.0,
        "instance 2 answered nothing, yet counts {elsewhere} lookups: the instances share a \
         recorder (the process-wide one?)"
    );
    let stats: capstone::stats::Stats = f.json(0, "/stats.json").await;
    assert_eq!(
        stats.hit_ratio,
        Some(0.5),
        "2 of 4 cached reads answered by a cache layer: {stats:?}"
    );
    let l1 = stats
        .layers
        .iter()
        .find(|l| l.cache == "products" && l.layer == "l1")
        .unwrap();
    assert_eq!((l1.hits, l1.misses, l1.hit_ratio), (1, 1, Some(0.5)));
    let route = stats
        .routes
        .iter()
        .find(|r| r.of == "/products/{id} 200")
        .unwrap();
    assert_eq!(route.count, 2);
    assert!(route.p99_ms.is_some_and(|ms| ms > 0.0), "{route:?}");
    assert_eq!(stats.health.status, "ok");
    assert!(
        stats.alerts.is_empty(),
        "nothing is wrong: {:?}",
        stats.alerts
    );
    f.stop().await;
}

/// Refusals and invalidations are counted where they happen.
#[tokio::test]
async fn refusals_and_invalidations_are_counted() {
    let mut settings = Settings::new(Caching::Layered);
    settings.rate_limit = 3;
    settings.api_keys = 2;
    let f = fixture(settings).await;
    let mut refused = 0;
    for _ in 0..10 {
        let response = f
            .client
            .get(f.running.url(1, "/products/9"))
            .header("authorization", "Bearer u1")
            .send()
            .await
            .unwrap();
        refused += u64::from(response.status() == StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(
        refused > 0,
        "10 requests at once, a limit of 3 a second: none refused"
    );
    let changed = f
        .send_json(
            Method::PUT,
            1,
            "/products/9/price",
            serde_json::json!({"price_cents": 77}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let stats: capstone::stats::Stats = f.json(1, "/stats.json").await;
    assert_eq!(
        stats.rate_limit.refused, refused,
        "429s the client saw from instance 2, and the refusals it counted"
    );
    assert_eq!(
        stats.invalidations.get("product"),
        Some(&1),
        "{:?}",
        stats.invalidations
    );
    assert_eq!(stats.invalidations.get("dashboard"), Some(&1));
    f.stop().await;
}

/// `/health`, `/ready` and `/stats.json` while Redis is paused: degraded and why, still ready
/// (every instance shares that Redis, and the reads go on), a critical alert; all well again
/// after; not ready once it begins to stop.
#[tokio::test]
async fn while_redis_is_paused_health_is_degraded_ready_stays_and_stats_raise_an_alert() {
    let f = private_fixture(Settings::new(Caching::Layered)).await;
    let pause = Duration::from_secs(3);
    f.stage.server().pause(pause).unwrap();
    let response = f.get(0, "/health").await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "Redis paused: still serving"
    );
    let health: Health = read(response).await;
    assert_eq!(health.status, "degraded", "Redis paused: {health:?}");
    assert_eq!(health.redis, "no answer within 500 ms");
    let ready = f.get(1, "/ready").await;
    assert_eq!(
        ready.status(),
        StatusCode::OK,
        "Redis paused: /ready said not ready, and every instance shares that Redis: a balancer \
         would take them all out of rotation at once"
    );
    let stats: capstone::stats::Stats = f.json(1, "/stats.json").await;
    assert_eq!(stats.health.status, "degraded");
    assert_eq!(
        stats
            .alerts
            .first()
            .map(|a| (a.level.as_str(), a.problem.as_str())),
        Some(("critical", "Redis: no answer within 500 ms")),
        "{:?}",
        stats.alerts
    );
    f.until_healthy("the pause ended").await;
    f.running.services[1].stop_taking_requests();
    let stopping = f.get(1, "/ready").await;
    assert_eq!(
        stopping.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "an instance that began to stop says so before its port closes"
    );
    f.stop().await;
}
