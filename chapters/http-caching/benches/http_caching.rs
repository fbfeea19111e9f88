//! One product page over loopback HTTP, four ways, measured in the same run: from the handler and
//! the database (no cache), from the response cache (a hit), as a `304` answered from the entry's
//! validators; and the two floors a cached answer stands on, an HTTP request to a handler that does
//! nothing and one `HGETALL` of the entry on the same connection. A hit costs about the sum of the
//! floors: what the cache's own work adds is the rest. Against no cache, it saves the query of an
//! unslowed SQLite on the same machine (a real database across a network saves more).

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

    let mut entry = None;
    for caching in [Caching::NoCache, Caching::Response, Caching::Conditional] {
        let namespace = stage.namespace().child(caching.slug());
        let (router, _caches) = app(catalogue.clone(), caching, stage.conn(), namespace);
        let served = rt.block_on(Served::start("the API", router)).unwrap();
        let url = served.url("/products/7");
        let etag = rt.block_on(async {
            let first = client.get(&url).send().await.unwrap();
            first.headers()[header::ETAG].to_str().unwrap().to_string()
        });
        if caching == Caching::Response {
            let mut keys = rt
                .block_on(namespace_keys(&stage, caching))
                .into_iter()
                .filter(|k| k.contains(":resp:{p7}:"));
            entry = keys.next();
        }
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
    let entry = entry.expect("the response cache stored product 7");
    let conn = stage.conn();
    group.bench_function("floor: one HGETALL of the entry", |b| {
        b.to_async(&rt).iter(|| {
            let (mut conn, entry) = (conn.clone(), &entry);
            async move {
                let fields: Vec<Vec<u8>> = redis::cmd("HGETALL")
                    .arg(entry)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                black_box(fields)
            }
        })
    });
    group.finish();
}

/// The keys the cache of `caching` holds.
async fn namespace_keys(stage: &shared::Stage, caching: Caching) -> Vec<String> {
    stage
        .namespace()
        .child(caching.slug())
        .keys(&mut stage.conn())
        .await
        .expect("SCAN of the bench's keys")
}

criterion_group!(benches, product_page);
criterion_main!(benches);
