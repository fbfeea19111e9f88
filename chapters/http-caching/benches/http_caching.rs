//! One product page over loopback HTTP, four ways, measured in the same run: from the handler and
//! the database (no cache), from the response cache (a hit), as a `304` answered from the entry's
//! validators, and the floor every cached answer pays, an HTTP request to a handler that does
//! nothing. The ratios to the floor say what the cache's own work adds; to no cache, what it saves
//! with an unslowed SQLite on the same machine (a real database across a network saves more).

use std::hint::black_box;

use axum::Router;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http_caching::{Caching, Catalogue, app};
use reqwest::header;
use shared_http::Served;

fn product_page(c: &mut Criterion) {
    let (rt, stage) = shared::bench::stage("http-caching-bench");
    let catalogue = rt
        .block_on(Catalogue::create(stage.db().clone(), 100, 10))
        .expect("the catalogue's tables");
    let client = reqwest::Client::new();
    let mut group = c.benchmark_group("GET /products/7");

    let floor = rt
        .block_on(Served::start(
            "floor",
            Router::new().route("/", get(|| async { "{}" })),
        ))
        .unwrap();
    group.bench_function("floor: an empty handler", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                client
                    .get(floor.url("/"))
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap(),
            )
        })
    });

    for caching in [Caching::NoCache, Caching::Response, Caching::Conditional] {
        let namespace = stage.namespace().child(caching.slug());
        let (router, _caches) = app(catalogue.clone(), caching, stage.conn(), namespace);
        let served = rt.block_on(Served::start("the API", router)).unwrap();
        let url = served.url("/products/7");
        let etag = rt.block_on(async {
            let first = client.get(&url).send().await.unwrap();
            first.headers()[header::ETAG].to_str().unwrap().to_string()
        });
        let label = match caching {
            Caching::Conditional => "304 from the entry's validators",
            Caching::Response => "response cache hit",
            _ => "no cache: handler and database",
        };
        group.bench_function(label, |b| {
            b.to_async(&rt).iter(|| async {
                let mut request = client.get(&url);
                if caching == Caching::Conditional {
                    request = request.header(header::IF_NONE_MATCH, &etag);
                }
                black_box(request.send().await.unwrap().bytes().await.unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, product_page);
criterion_main!(benches);
