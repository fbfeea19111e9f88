//! The hit path of every strategy against the plain Redis read of the same bytes, in one run on
//! one server. A defence against stampedes that slowed every hit would cost more than it saves:
//! the target is at most 15% over `raw GET + decode`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use redis::AsyncCommands;
use shared::{Product, codec};
use stampede::{AnyStrategy, Kind, ProductPages, Settings, Strategy};

fn hits(c: &mut Criterion) {
    let (rt, stage) = shared::bench::stage("stampede-bench");
    let pages = Arc::new(ProductPages::new(stage.db().clone()));
    // One namespace per strategy (each stores its own record shape under the same key), and the
    // raw read's own.
    let strategies: Vec<(Kind, AnyStrategy<ProductPages>)> = rt.block_on(async {
        let mut all = Vec::new();
        for kind in Kind::ALL {
            let mut instance = stage.instance().await.unwrap();
            instance.namespace = stage.namespace().child(&format!("{kind:?}"));
            let strategy =
                AnyStrategy::build(kind, &instance, pages.clone(), Settings::default()).await;
            strategy.get("42").await.unwrap();
            all.push((kind, strategy));
        }
        all
    });
    let conn = stage.conn();
    let raw_key = stage.namespace().child("raw").key("42");
    rt.block_on(async {
        let product = stage.db().product(42).await.unwrap().unwrap();
        let bytes = codec::encode(&product).unwrap();
        let _: () = conn.clone().set_ex(&raw_key, bytes, 600).await.unwrap();
    });

    let mut group = c.benchmark_group("stampede hit");
    group.bench_function("raw GET + decode", |b| {
        b.to_async(&rt).iter(|| async {
            let bytes: Vec<u8> = conn.clone().get(&raw_key).await.unwrap();
            black_box(codec::decode::<Product>(&bytes).unwrap())
        })
    });
    for (kind, strategy) in &strategies {
        group.bench_function(kind.label(), |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(strategy.get("42").await.unwrap()) })
        });
    }
    group.finish();

    for (kind, strategy) in &strategies {
        let stats = strategy.stats();
        let name = kind.label();
        assert_eq!(
            stats.errors, 0,
            "{name}: no Redis errors during the benchmark"
        );
        assert_eq!(stats.loads, 1, "{name}: every benchmarked read was a hit");
    }
    drop((strategies, pages));
    rt.block_on(stage.close()).unwrap();
}

criterion_group!(benches, hits);
criterion_main!(benches);
