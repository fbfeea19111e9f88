//! What a read costs in each layer, in one run on one server:
//!
//! - an L1 hit of the two-tier cache, against a raw moka `get` of the same value (the floor: what
//!   the freshness check and the bookkeeping add) and against an L2 hit (a Redis round trip and a
//!   decode, through the same code with nothing in the process);
//! - a read through the source's dictionary L1 and through client tracking, for scale.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use two_tier::{AnyCache, Item, Kind, Settings, catalog};

fn reads(c: &mut Criterion) {
    let (rt, stage) = shared::bench::stage("two-tier-bench");
    rt.block_on(catalog::create(stage.db(), 100)).unwrap();
    let settings = Settings {
        l1_ttl: Duration::from_secs(600),
        ..Settings::default()
    };
    let instance = rt.block_on(stage.instance()).unwrap();
    let url = stage.redis_url();
    let build = |kind: Kind| {
        let namespace = stage.namespace().child(kind.slug());
        let db = stage.db().clone();
        rt.block_on(AnyCache::build(
            kind,
            &instance,
            &url,
            db,
            &namespace,
            settings.clone(),
        ))
        .unwrap()
    };
    let readers: Vec<(Kind, AnyCache)> = Kind::ALL.into_iter().map(|k| (k, build(k))).collect();
    for (_, reader) in &readers {
        rt.block_on(reader.item(42)).unwrap();
    }
    let raw = moka::future::Cache::<i64, Option<Item>>::new(1_000);
    let item = rt.block_on(catalog::item(stage.db(), 42)).unwrap();
    rt.block_on(raw.insert(42, item));

    let mut group = c.benchmark_group("two-tier read hit");
    group.bench_function("raw moka get", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(raw.get(&42).await) })
    });
    for (kind, reader) in &readers {
        group.bench_function(kind.label(), |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(reader.item(42).await.unwrap()) })
        });
    }
    group.finish();
}

criterion_group!(benches, reads);
criterion_main!(benches);
