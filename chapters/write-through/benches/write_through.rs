//! The write and read paths of write-through, each against its baseline, in one run on one
//! server.
//!
//! - `write-through update` vs `database update alone`: what the versioned cache write adds to a
//!   committed update (one scripted round trip).
//! - `read hit` vs `raw GET + decode`: what the read path adds to a plain Redis read of the same
//!   record (key, timeout, counters).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use redis::AsyncCommands;
use shared::codec;
use write_through::{Article, Articles, Settings, Versioned, WriteThrough};

fn paths(c: &mut Criterion) {
    let (rt, stage) = shared::bench::stage("write-through-bench");
    let (conn, db) = (stage.conn(), stage.db().clone());
    rt.block_on(write_through::table::create(&db, 100)).unwrap();
    let store = WriteThrough::new(
        db.clone(),
        conn.clone(),
        stage.namespace().clone(),
        Settings::default(),
    );
    rt.block_on(store.get(42)).unwrap();
    let key = store.key(42);

    let mut group = c.benchmark_group("write-through");
    group.bench_function("database update alone", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(db.update_article(43, "Bench", "Body").await.unwrap()) })
    });
    group.bench_function("write-through update", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(store.update(42, "Bench", "Body").await.unwrap()) })
    });
    group.bench_function("raw GET + decode", |b| {
        b.to_async(&rt).iter(|| async {
            let bytes: Vec<u8> = conn.clone().get(&key).await.unwrap();
            black_box(codec::decode::<Versioned<Article>>(&bytes).unwrap())
        })
    });
    group.bench_function("read hit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(store.get(42).await.unwrap()) })
    });
    group.finish();

    let reads = store.read_stats();
    assert_eq!(reads.errors, 0, "no Redis errors during the benchmark");
    assert_eq!(reads.misses, 1, "every benchmarked read was a hit");
    assert_eq!(store.write_stats().failed, 0);
    drop((store, db));
    rt.block_on(stage.close()).unwrap();
}

criterion_group!(benches, paths);
criterion_main!(benches);
