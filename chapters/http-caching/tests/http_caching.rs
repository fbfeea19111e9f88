//! What the response cache and the upstream cache promise, over real HTTP on loopback, against a
//! real Redis and database (as the environment names them), and what the source's versions break.

use std::sync::Arc;
use std::time::Duration;

use http_caching::api::{self, ListingPage, ProductPage, SavedPage};
use http_caching::app::Caches;
use http_caching::upstream::{
    FakeUpstream, Freshness, Rates, Served as ServedFrom, SourceWeather, UpstreamCache, Weather,
};
use http_caching::{Caching, Catalogue, app, source};
use redis::AsyncCommands;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use shared::{DbOptions, ServerOptions, Stage};
use shared_http::Served;

/// The application with one cache in front, served on loopback.
struct Running {
    stage: Stage,
    catalogue: Catalogue,
    caches: Caches,
    served: Served,
    client: reqwest::Client,
}

async fn running_on(stage: Stage, caching: Caching) -> Running {
    let catalogue = Catalogue::create(stage.db().clone(), 40, 5).await.unwrap();
    let (router, caches) = app(
        catalogue.clone(),
        caching,
        stage.conn(),
        stage.namespace().child(caching.slug()),
    );
    let served = Served::start("test app", router).await.unwrap();
    Running {
        stage,
        catalogue,
        caches,
        served,
        client: reqwest::Client::new(),
    }
}

async fn running(caching: Caching) -> Running {
    let options = DbOptions {
        products: 1,
        users: 1,
        ..DbOptions::default()
    };
    let stage = Stage::from_env("http-caching-test", options).await.unwrap();
    running_on(stage, caching).await
}

impl Running {
    /// `GET path` as `user`, with `headers`; the status, headers and body.
    async fn get(
        &self,
        user: u32,
        path: &str,
        headers: &[(header::HeaderName, &str)],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut request = self
            .client
            .get(self.served.url(path))
            .header(header::AUTHORIZATION, shared_http::Request::token(user));
        for (name, value) in headers {
            request = request.header(name.clone(), *value);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.bytes().await.unwrap().to_vec())
    }

    async fn set_price(&self, id: i64, price_cents: i64) -> StatusCode {
        self.client
            .put(self.served.url(&format!("/products/{id}/price")))
            .header(header::CONTENT_TYPE, "application/json")
            .body(format!("{{\"price_cents\": {price_cents}}}"))
            .send()
            .await
            .unwrap()
            .status()
    }

    fn queries(&self) -> u64 {
        self.catalogue.db().queries()
    }

    /// The keys of the run, as a sorted list.
    async fn keys(&self) -> Vec<String> {
        let mut keys = self
            .stage
            .namespace()
            .keys(&mut self.stage.conn())
            .await
            .unwrap();
        keys.sort();
        keys
    }
}

fn header_of(headers: &HeaderMap, name: header::HeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn a_product_is_loaded_once_then_served_from_redis_with_its_age() {
    let app = running(Caching::Response).await;
    let (status, first, body) = app.get(1, "/products/7", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let page: ProductPage = serde_json::from_slice(&body).unwrap();
    assert_eq!(page.product.id, 7);
    assert_eq!(header_of(&first, header::CACHE_CONTROL), api::CATALOGUE);
    assert_eq!(
        header_of(&first, header::ETAG),
        "\"1\"",
        "the ETag is the row's version"
    );
    assert!(
        header_of(&first, header::VARY)
            .to_ascii_lowercase()
            .contains("accept-encoding")
    );
    let (status, second, again) = app.get(2, "/products/7", &[]).await;
    assert_eq!(
        (status, again),
        (StatusCode::OK, body),
        "the same bytes for another user"
    );
    assert_eq!(
        app.queries(),
        1,
        "the second request, from another user, hit the cache"
    );
    assert_eq!(
        header_of(&second, header::AGE),
        "0",
        "a hit says how old it is"
    );
    assert_eq!(header_of(&second, header::ETAG), "\"1\"");
    let stats = &app.caches.response.as_ref().unwrap().stats;
    assert_eq!(
        (stats.hits.get(), stats.misses.get(), stats.stored.get()),
        (1, 1, 1)
    );
    // The entry expires after s-maxage (60 s), not before, and not never.
    let entry = app
        .keys()
        .await
        .into_iter()
        .find(|k| k.contains(":resp:{p7}:"))
        .unwrap();
    let ttl: i64 = app.stage.conn().pttl(&entry).await.unwrap();
    assert!(
        (50_000..=60_000).contains(&ttl),
        "the entry's TTL is s-maxage: {ttl} ms"
    );
}

#[tokio::test]
async fn the_query_is_normalised_defaults_filled_in_and_category_all_is_not_every_category() {
    let app = running(Caching::Response).await;
    let page = |body: &[u8]| serde_json::from_slice::<ListingPage>(body).unwrap();
    let (_, _, every) = app.get(1, "/products", &[]).await;
    let (_, _, same) = app
        .get(
            1,
            "/products?page=1&per_page=10&sort=price&utm_source=mail",
            &[],
        )
        .await;
    assert_eq!(every, same);
    assert_eq!(
        app.queries(),
        1,
        "defaults and unknown parameters share the entry"
    );
    let (_, _, all) = app.get(1, "/products?category=all", &[]).await;
    assert_eq!(page(&all).category.as_deref(), Some("all"));
    assert!(page(&all).items.is_empty(), "no category is named 'all'");
    assert_eq!(page(&every).items.len(), 10, "no category: every category");
    let (_, _, two) = app.get(1, "/products?per_page=10&page=2", &[]).await;
    assert_eq!(page(&two).page, 2);
    assert_ne!(page(&two).items, page(&every).items);
    let (_, _, reordered) = app.get(1, "/products?page=2&per_page=10", &[]).await;
    assert_eq!(reordered, two, "parameter order does not matter");
    assert_eq!(app.queries(), 3, "three distinct questions, three queries");
    let (status, _, _) = app.get(1, "/products?per_page=500", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = app.get(1, "/products?per_page=500", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        app.caches.response.as_ref().unwrap().stats.stored.get(),
        3,
        "a 400 is never stored"
    );
}

#[tokio::test]
async fn a_personal_page_is_never_stored_and_each_user_gets_their_own() {
    let app = running(Caching::Response).await;
    for user in [1, 2, 1, 2] {
        let (status, headers, body) = app.get(user, "/me/saved", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header_of(&headers, header::CACHE_CONTROL), api::PERSONAL);
        let saved: SavedPage = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            saved.user, user,
            "user {user} was sent user {}'s page",
            saved.user
        );
    }
    assert_eq!(
        app.queries(),
        4,
        "every personal page comes from the database"
    );
    assert!(
        !app.keys().await.iter().any(|k| k.contains(":resp:")),
        "a private, no-store page was stored: {:?}",
        app.keys().await
    );
}

#[tokio::test]
async fn a_missing_product_is_kept_a_few_seconds_and_a_server_error_never() {
    let app = running(Caching::Response).await;
    for _ in 0..3 {
        let (status, _, _) = app.get(1, "/products/999", &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    assert_eq!(app.queries(), 1, "the 404 was served from Redis");
    let entry = app
        .keys()
        .await
        .into_iter()
        .find(|k| k.contains(":resp:{p999}:"))
        .unwrap();
    let ttl: i64 = app.stage.conn().pttl(&entry).await.unwrap();
    assert!(
        (1..=5_000).contains(&ttl),
        "a 404 is kept at most 5 s: {ttl} ms"
    );
}

#[tokio::test]
async fn a_price_change_drops_the_product_and_every_listing_it_was_on() {
    let app = running(Caching::Response).await;
    let (_, _, before) = app.get(1, "/products/5", &[]).await;
    let category = serde_json::from_slice::<ProductPage>(&before)
        .unwrap()
        .product
        .category;
    let listing = format!("/products?category={category}&per_page=50");
    app.get(1, &listing, &[]).await;
    app.get(1, "/products?per_page=50", &[]).await;
    app.get(1, "/products/6", &[]).await;
    assert_eq!(app.queries(), 4);
    assert_eq!(app.set_price(5, 12_345).await, StatusCode::OK);
    let (_, headers, after) = app.get(1, "/products/5", &[]).await;
    let product = serde_json::from_slice::<ProductPage>(&after)
        .unwrap()
        .product;
    assert_eq!((product.price_cents, product.version), (12_345, 2));
    assert_eq!(header_of(&headers, header::ETAG), "\"2\"");
    for path in [listing.as_str(), "/products?per_page=50"] {
        let (_, _, body) = app.get(1, path, &[]).await;
        let items = serde_json::from_slice::<ListingPage>(&body).unwrap().items;
        let shown = items.iter().find(|p| p.id == 5).map(|p| p.price_cents);
        assert_eq!(shown, Some(12_345), "{path} still shows the old price");
    }
    app.get(1, "/products/6", &[]).await;
    // The write, then the product and the two listings again; product 6 stayed cached.
    assert_eq!(app.queries(), 4 + 1 + 3);
}

// ANCHOR: race
#[tokio::test]
async fn a_store_after_a_write_began_is_refused_by_the_generation() {
    // The race: a reader misses and loads, a write commits and invalidates, then the reader
    // stores what it loaded. Played with the database slowed so the write lands mid-load.
    let app = running(Caching::Response).await;
    app.catalogue.db().set_latency(Duration::from_millis(300));
    let reader = {
        let (client, url) = (app.client.clone(), app.served.url("/products/3"));
        tokio::spawn(async move { client.get(url).send().await.unwrap().bytes().await.unwrap() })
    };
    // The event: the reader's query has started.
    while app.queries() == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(app.set_price(3, 777).await, StatusCode::OK);
    let old = serde_json::from_slice::<ProductPage>(&reader.await.unwrap())
        .unwrap()
        .product;
    app.catalogue.db().set_latency(Duration::ZERO);
    let (_, _, body) = app.get(1, "/products/3", &[]).await;
    let now = serde_json::from_slice::<ProductPage>(&body)
        .unwrap()
        .product;
    assert_eq!(
        now.price_cents, 777,
        "the page loaded before the write was stored after it (old: {old:?})"
    );
}
// ANCHOR_END: race

#[tokio::test]
async fn if_none_match_gets_a_304_without_the_body_or_the_database() {
    // MONITOR sees one server: a private one, whatever the environment names.
    let options = DbOptions {
        products: 1,
        users: 1,
        ..DbOptions::default()
    };
    let stage = Stage::private("http-caching-test", options, ServerOptions::default())
        .await
        .unwrap();
    let app = running_on(stage, Caching::Conditional).await;
    let (_, first, _) = app.get(1, "/products/9", &[]).await;
    let etag = header_of(&first, header::ETAG).to_string();
    let mut watch = app.stage.server().watch_commands().await.unwrap();
    for tags in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"0\", {etag}"),
        "*".to_string(),
    ] {
        let (status, headers, body) = app
            .get(2, "/products/9", &[(header::IF_NONE_MATCH, &tags)])
            .await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "If-None-Match: {tags}");
        assert!(body.is_empty());
        assert_eq!(header_of(&headers, header::ETAG), etag);
        assert_eq!(header_of(&headers, header::CACHE_CONTROL), api::CATALOGUE);
        assert!(
            header_of(&headers, header::VARY)
                .to_ascii_lowercase()
                .contains("accept-encoding")
        );
        assert!(headers.contains_key(header::AGE));
    }
    let sent = watch.since_last().await;
    assert!(
        sent.iter().all(|c| c == "HMGET"),
        "a 304 reads the validators only, found {sent:?}"
    );
    assert_eq!(app.queries(), 1);
    let (status, _, body) = app
        .get(2, "/products/9", &[(header::IF_NONE_MATCH, "\"0\"")])
        .await;
    assert_eq!(status, StatusCode::OK, "an old ETag gets the page");
    assert!(!body.is_empty());
}

#[tokio::test]
async fn gzip_and_identity_are_two_entries_with_two_etags() {
    let app = running(Caching::Conditional).await;
    let gzip = [(header::ACCEPT_ENCODING, "gzip")];
    let (_, zipped, _) = app.get(1, "/products?per_page=50", &gzip).await;
    let (_, plain, _) = app.get(1, "/products?per_page=50", &[]).await;
    assert_eq!(header_of(&zipped, header::CONTENT_ENCODING), "gzip");
    assert_eq!(header_of(&plain, header::CONTENT_ENCODING), "");
    let (zipped_tag, plain_tag) = (
        header_of(&zipped, header::ETAG),
        header_of(&plain, header::ETAG),
    );
    assert_eq!(
        zipped_tag,
        format!("{}-gzip\"", plain_tag.trim_end_matches('"'))
    );
    let (status, _, _) = app
        .get(
            1,
            "/products?per_page=50",
            &[
                (header::IF_NONE_MATCH, zipped_tag),
                (header::ACCEPT_ENCODING, "gzip"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, _, _) = app
        .get(
            1,
            "/products?per_page=50",
            &[(header::IF_NONE_MATCH, zipped_tag)],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the gzip body's ETag does not validate the identity body"
    );
    assert_eq!(app.queries(), 2, "one load per encoding");
}

#[tokio::test]
async fn with_redis_stopped_requests_go_to_the_database_and_caching_resumes() {
    let stage = Stage::private(
        "http-caching-test",
        DbOptions {
            products: 1,
            users: 1,
            ..DbOptions::default()
        },
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let app = running_on(stage, Caching::Response).await;
    app.get(1, "/products/4", &[]).await;
    app.stage.server().stop();
    for _ in 0..3 {
        let (status, _, body) = app.get(1, "/products/4", &[]).await;
        assert_eq!(status, StatusCode::OK, "Redis down must not fail a request");
        assert_eq!(
            serde_json::from_slice::<ProductPage>(&body)
                .unwrap()
                .product
                .id,
            4
        );
    }
    assert_eq!(app.queries(), 4);
    app.stage.server().restart().unwrap();
    // The connection comes back on its own; once it has, the entry is stored and then served.
    let mut stored = 0;
    while stored == 0 {
        app.get(1, "/products/4", &[]).await;
        stored = app.caches.response.as_ref().unwrap().stats.stored.get();
    }
    let before = app.queries();
    app.get(1, "/products/4", &[]).await;
    assert_eq!(app.queries(), before, "served from Redis again");
}

// ANCHOR: source_middleware
#[tokio::test]
async fn the_sources_middleware_serves_one_users_page_to_another_and_page_one_for_page_two() {
    let app = running(Caching::Source).await;
    let (_, _, first) = app.get(1, "/me/saved", &[]).await;
    let (_, _, second) = app.get(2, "/me/saved", &[]).await;
    assert_eq!(
        serde_json::from_slice::<SavedPage>(&second).unwrap().user,
        1,
        "user 2 got user 1's page"
    );
    assert_eq!(first, second);
    let (_, _, one) = app.get(1, "/products?page=1", &[]).await;
    let (_, _, two) = app.get(1, "/products?page=2", &[]).await;
    assert_eq!(
        serde_json::from_slice::<ListingPage>(&two).unwrap().page,
        1,
        "?page=2 got page 1"
    );
    assert_eq!(one, two);
    // It stores errors too: a 404 kept for 300 s, served as a 200.
    app.get(1, "/products/999", &[]).await;
    let (status, _, _) = app.get(1, "/products/999", &[]).await;
    assert_eq!(status, StatusCode::OK, "the cached 404 comes back as a 200");
    let key = app
        .stage
        .namespace()
        .child("source")
        .key("request:/products/999");
    let ttl: i64 = app.stage.conn().pttl(&key).await.unwrap();
    assert!(ttl > 290_000, "{ttl}");
    // Its hits carry no validator and no lifetime, and a personal page is not private. (`Vary`
    // comes from the compression layer in front of it.)
    let (_, hit, _) = app.get(3, "/me/saved", &[]).await;
    for name in [header::ETAG, header::CACHE_CONTROL] {
        assert!(!hit.contains_key(&name), "the source's hit sent {name}");
    }
    // And its listing key puts "every category" and the category "all" on one key.
    assert_eq!(source::listing_key(None), source::listing_key(Some("all")));
}
// ANCHOR_END: source_middleware

#[test]
fn a_key_from_a_printed_list_depends_on_its_order_and_a_hashed_set_does_not() {
    // The source's `str(topics)`: one question, two keys; two questions, one key.
    assert_ne!(
        source::topics_key(&["rust", "redis"]),
        source::topics_key(&["redis", "rust"])
    );
    assert_eq!(
        source::topics_key(&["a', 'b"]),
        source::topics_key(&["a", "b"])
    );
    // The lesson's way: a set (sorted, duplicates gone), serialised, hashed.
    let key = |topics: &[&str]| {
        let set: std::collections::BTreeSet<&str> = topics.iter().copied().collect();
        shared::keys::hashed("trending", &set)
    };
    assert_eq!(key(&["rust", "redis"]), key(&["redis", "rust", "rust"]));
    assert_ne!(key(&["a', 'b"]), key(&["a", "b"]));
}

fn freshness(fresh_ms: u64) -> Freshness {
    Freshness {
        fresh: Duration::from_millis(fresh_ms),
        while_revalidate: Duration::from_secs(30),
        if_error: Duration::from_secs(300),
    }
}

async fn weather(stage: &Stage, service: &Served, fresh_ms: u64) -> Arc<UpstreamCache<Weather>> {
    UpstreamCache::new(
        stage.conn(),
        stage.namespace().child("weather"),
        service.url(""),
        freshness(fresh_ms),
        Duration::from_millis(200),
    )
}

#[tokio::test]
async fn many_requests_for_a_cold_city_make_one_upstream_call_and_case_does_not_matter() {
    let stage = Stage::from_env("http-caching-test", DbOptions::default())
        .await
        .unwrap();
    let service = FakeUpstream::new(Duration::from_millis(100), 0.0);
    let served = Served::start("weather", service.routes()).await.unwrap();
    let cache = weather(&stage, &served, 60_000).await;
    let asks: Vec<_> = ["Paris", "paris", " PARIS ", "paris"]
        .iter()
        .cycle()
        .take(20)
        .map(|city| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get(city).await.unwrap() })
        })
        .collect();
    for ask in asks {
        let answer = ask.await.unwrap();
        assert_eq!(answer.value.city, "paris");
    }
    assert_eq!(
        service.calls.get(),
        1,
        "20 requests for one cold city, one call"
    );
    // The source's first example keys by the city as typed: two entries, two calls.
    assert_ne!(
        source::weather_keys("Paris")[0],
        source::weather_keys("paris")[0]
    );
}

/// The same cache keeps another kind of answer, a currency's exchange rates, under keys of its own.
#[tokio::test]
async fn exchange_rates_are_cached_like_the_weather_under_keys_of_their_own() {
    let stage = Stage::from_env("http-caching-test", DbOptions::default())
        .await
        .unwrap();
    let service = FakeUpstream::new(Duration::ZERO, 0.0);
    let served = Served::start("rates", service.routes()).await.unwrap();
    let rates = UpstreamCache::<Rates>::new(
        stage.conn(),
        stage.namespace().child("rates"),
        served.url(""),
        freshness(60_000),
        Duration::from_millis(200),
    );
    let first = rates.get(" EUR").await.unwrap();
    assert_eq!(first.value.base, "eur");
    assert_eq!(
        first.value.rates.len(),
        4,
        "the other four currencies: {:?}",
        first.value.rates
    );
    let again = rates.get("eur").await.unwrap();
    assert_eq!(again.served, ServedFrom::Fresh);
    assert_eq!(service.calls.get(), 1, "one call for EUR, asked twice");
    let key = rates.key("Eur");
    assert!(key.ends_with("{upstream:rates:eur}"), "{key}");
    let ttl: i64 = stage.conn().pttl(&key).await.unwrap();
    assert!(
        (299_000..=360_000).contains(&ttl),
        "kept for fresh + stale-if-error (60 s + 300 s): {ttl} ms"
    );
    assert!(
        rates.get("xyz").await.is_err(),
        "a currency the service does not quote is the service's error, not an answer"
    );
}

#[tokio::test]
async fn a_stale_answer_is_served_at_once_while_one_fetch_replaces_it() {
    let stage = Stage::from_env("http-caching-test", DbOptions::default())
        .await
        .unwrap();
    let service = FakeUpstream::new(Duration::from_millis(50), 0.0);
    let served = Served::start("weather", service.routes()).await.unwrap();
    let cache = weather(&stage, &served, 0).await; // fresh for 0 ms: stale at once
    cache.get("oslo").await.unwrap();
    let answers: Vec<_> = (0..10)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get("oslo").await.unwrap().served })
        })
        .collect();
    for answer in answers {
        assert_eq!(answer.await.unwrap(), ServedFrom::StaleWhileRevalidate);
    }
    cache.settle().await;
    assert_eq!(
        service.calls.get(),
        2,
        "the first fetch, then one background revalidation"
    );
    let ttl: i64 = stage.conn().pttl(cache.key("oslo")).await.unwrap();
    assert!(
        (299_000..=300_000).contains(&ttl),
        "kept for fresh + stale-if-error: {ttl}"
    );
}

#[tokio::test]
async fn with_the_service_down_the_stale_answer_is_served_with_its_age_not_an_error() {
    let stage = Stage::from_env("http-caching-test", DbOptions::default())
        .await
        .unwrap();
    let service = FakeUpstream::new(Duration::ZERO, 0.0);
    let served = Served::start("weather", service.routes()).await.unwrap();
    let cache = UpstreamCache::<Weather>::new(
        stage.conn(),
        stage.namespace().child("weather"),
        served.url(""),
        Freshness {
            fresh: Duration::ZERO,
            while_revalidate: Duration::ZERO,
            if_error: Duration::from_secs(300),
        },
        Duration::from_millis(200),
    );
    let app = Served::start("cached weather", cache.routes())
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let first = client.get(app.url("/weather/rome")).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    service.set_down(true);
    for _ in 0..3 {
        let response = client.get(app.url("/weather/rome")).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "the service is down, a stale answer was at hand"
        );
        assert!(response.headers().contains_key(header::AGE));
        let answer: http_caching::upstream::Answer<Weather> =
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(answer.served, ServedFrom::StaleIfError);
    }
    // The source's cache: once its entry expires, the outage is every request's error.
    let source = SourceWeather::new(
        stage.conn(),
        stage.namespace().child("source"),
        served.url(""),
        Duration::from_millis(1),
    );
    let source_app = Served::start("source weather", source.routes())
        .await
        .unwrap();
    let failed = client
        .get(source_app.url("/weather/rome"))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
}
