//! The hot paths of cache-aside, each against its baseline, in one run on one server.
//!
//! - `hit` vs `raw GET + decode`: what the pattern adds to the plain Redis read of the same bytes
//!   (key building, the timeout, counters). Target: at most 10% more.
//! - `miss`: invalidate, then load and store (lease, query, scripted store).
//! - `database alone`: the same lookup against SQLite with no artificial latency.

use std::hint::black_box;

use cache_aside::{CacheAside, Cached, Settings, Users};
use criterion::{Criterion, criterion_group, criterion_main};
use redis::AsyncCommands;
use shared::{User, codec};

fn cache_aside(c: &mut Criterion) {
    let (rt, stage) = shared::bench::stage("cache-aside-bench");
    let (conn, db) = (stage.conn(), stage.db().clone());
    let users = Users::new(
        db.clone(),
        CacheAside::new(conn.clone(), stage.namespace().clone(), Settings::default()),
    );
    rt.block_on(users.get(42)).unwrap();
    let key = stage.key("user:42");

    let mut group = c.benchmark_group("cache-aside");
    group.bench_function("raw GET + decode", |b| {
        b.to_async(&rt).iter(|| async {
            let bytes: Vec<u8> = conn.clone().get(&key).await.unwrap();
            black_box(codec::decode::<Cached<User>>(&bytes).unwrap())
        })
    });
    group.bench_function("hit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(users.get(42).await.unwrap()) })
    });
    group.bench_function("miss (invalidate, load, store)", |b| {
        b.to_async(&rt).iter(|| async {
            users.cache().invalidate("user:42").await;
            black_box(users.get(42).await.unwrap())
        })
    });
    group.bench_function("database alone", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(db.user(42).await.unwrap()) })
    });
    group.finish();

    let stats = users.cache().stats();
    assert_eq!(stats.errors, 0, "no Redis errors during the benchmark");
    drop((users, db));
    rt.block_on(stage.close()).unwrap();
}

criterion_group!(benches, cache_aside);
criterion_main!(benches);
