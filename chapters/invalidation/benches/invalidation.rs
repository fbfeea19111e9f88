//! What each strategy costs on its hot paths, against a baseline, in one run on one server.
//!
//! - reads of a cached item: a raw `GET` + decode (the baseline), delete on write, generations
//!   (a second round trip for the generation) and broadcast events (a copy in the instance's own
//!   memory);
//! - a price change: the commit alone (the baseline), then with each strategy's invalidation
//!   (a `DEL`, a generation bump, the tags' script, an outbox row in the same transaction).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use invalidation::catalog::{self, Catalog, Item};
use invalidation::keys::Keys;
use invalidation::{AnyStrategy, Kind, Settings, Strategy};
use redis::AsyncCommands;
use shared::codec;

fn paths(c: &mut Criterion) {
    let (rt, stage) = shared::bench::stage("invalidation-bench");
    let db = stage.db().clone();
    rt.block_on(catalog::create(&db, 100)).unwrap();
    let settings = Settings {
        ttl: std::time::Duration::from_secs(600),
        local_ttl: std::time::Duration::from_secs(600),
        ..Settings::default()
    };
    let instance = rt.block_on(stage.instance()).unwrap();
    let build = |kind: Kind| {
        let keys = Keys::new(stage.namespace().child(kind.slug()));
        rt.block_on(AnyStrategy::build(
            kind,
            &instance,
            db.clone(),
            keys,
            settings.clone(),
        ))
    };
    let strategies: Vec<(Kind, AnyStrategy)> = [
        Kind::Delete,
        Kind::Generations,
        Kind::Events,
        Kind::Tags,
        Kind::Outbox,
    ]
    .into_iter()
    .map(|kind| (kind, build(kind)))
    .collect();
    for (_, strategy) in &strategies {
        rt.block_on(strategy.item(42)).unwrap();
    }
    let raw_key = Keys::new(stage.namespace().child(Kind::Delete.slug())).item(42);
    let conn = stage.conn();

    let mut reads = c.benchmark_group("invalidation read hit");
    reads.bench_function("raw GET + decode", |b| {
        b.to_async(&rt).iter(|| async {
            let bytes: Vec<u8> = conn.clone().get(&raw_key).await.unwrap();
            black_box(codec::decode::<Option<Item>>(&bytes).unwrap())
        })
    });
    for (kind, strategy) in &strategies {
        if matches!(kind, Kind::Delete | Kind::Generations | Kind::Events) {
            reads.bench_function(kind.label(), |b| {
                b.to_async(&rt)
                    .iter(|| async { black_box(strategy.item(42).await.unwrap()) })
            });
        }
    }
    reads.finish();

    let mut writes = c.benchmark_group("invalidation write");
    writes.bench_function("commit alone", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(db.commit_price(43, 500, None).await.unwrap()) })
    });
    for (kind, strategy) in &strategies {
        writes.bench_function(kind.label(), |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(strategy.set_price(42, 500).await.unwrap()) })
        });
    }
    writes.finish();

    for (kind, strategy) in &strategies {
        assert_eq!(
            strategy.stats().errors,
            0,
            "{}: no Redis errors",
            kind.label()
        );
    }
    drop((strategies, instance, db));
    rt.block_on(stage.close()).unwrap();
}

criterion_group!(benches, paths);
criterion_main!(benches);
