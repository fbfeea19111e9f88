//! The hit path of every strategy against the plain Redis read of the same bytes, in one run on
//! one server. A defence against stampedes that slowed every hit would cost more than it saves:
//! the target is at most 15% over `raw GET + decode`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use redis::AsyncCommands;
use shared::{Namespace, Product, codec};
use stampede::{
    LockedLoader, Policy, ProductPages, SingleFlight, StaleWhileRevalidate, Strategy, Unprotected,
    XFetch,
};

fn hits(c: &mut Criterion) {
    let shared::bench::Setup {
        rt,
        redis,
        conn,
        db,
    } = shared::bench::setup();
    let pages = Arc::new(ProductPages::new(db.clone()));
    let policy = Policy::default();
    // One namespace per strategy (each stores its own record shape under the same key), one for
    // the raw read.
    let spaces: Vec<Namespace> = (0..6).map(|_| Namespace::new("stampede-bench")).collect();
    let ns = |i: usize| spaces[i].clone();
    let (unprotected, flight, lock, xfetch, stale) = rt.block_on(async {
        let client = shared::connection::client(&redis.url()).unwrap();
        (
            Unprotected::new(conn.clone(), ns(0), pages.clone(), policy.clone()),
            SingleFlight::new(conn.clone(), ns(1), pages.clone(), policy.clone()),
            LockedLoader::new(conn.clone(), client, ns(2), pages.clone(), policy.clone()).await,
            XFetch::new(conn.clone(), ns(3), pages.clone(), policy.clone()),
            StaleWhileRevalidate::new(conn.clone(), ns(4), pages.clone(), policy.clone()),
        )
    });
    let raw_key = ns(5).key("42");
    rt.block_on(async {
        let product = db.product(42).await.unwrap().unwrap();
        let _: () = conn
            .clone()
            .set(&raw_key, codec::encode(&product).unwrap())
            .await
            .unwrap();
        unprotected.get("42").await.unwrap();
        flight.get("42").await.unwrap();
        lock.get("42").await.unwrap();
        xfetch.get("42").await.unwrap();
        stale.get("42").await.unwrap();
    });

    let mut group = c.benchmark_group("stampede hit");
    group.bench_function("raw GET + decode", |b| {
        b.to_async(&rt).iter(|| async {
            let bytes: Vec<u8> = conn.clone().get(&raw_key).await.unwrap();
            black_box(codec::decode::<Product>(&bytes).unwrap())
        })
    });
    bench_hit(&mut group, &rt, "no protection", &unprotected);
    bench_hit(&mut group, &rt, "single flight", &flight);
    bench_hit(&mut group, &rt, "distributed lock", &lock);
    bench_hit(&mut group, &rt, "XFetch", &xfetch);
    bench_hit(&mut group, &rt, "stale-while-revalidate", &stale);
    group.finish();

    for (name, stats) in [
        ("no protection", unprotected.stats()),
        ("single flight", flight.stats()),
        ("distributed lock", lock.stats()),
        ("XFetch", xfetch.stats()),
        ("stale-while-revalidate", stale.stats()),
    ] {
        assert_eq!(
            stats.errors, 0,
            "{name}: no Redis errors during the benchmark"
        );
        assert_eq!(stats.loads, 1, "{name}: every benchmarked read was a hit");
    }
    let mut conn = conn.clone();
    rt.block_on(async {
        for space in &spaces {
            space.remove_all(&mut conn).await.unwrap();
        }
    });
}

fn bench_hit<T: Strategy>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    strategy: &T,
) {
    group.bench_function(name, |b| {
        b.to_async(rt)
            .iter(|| async { black_box(strategy.get("42").await.unwrap()) })
    });
}

criterion_group!(benches, hits);
criterion_main!(benches);
