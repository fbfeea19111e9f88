//! The acknowledged write against write-through's write and the database write alone, in one
//! run, at the demo's default database latency (2 ms) and on a Redis keeping an append-only
//! file fsynced every second, as the demo's does (`REDIS_URL` names another).
//!
//! - `database write alone`: one committed `UPDATE ... RETURNING`;
//! - `write-through write`: that, then the versioned cache write;
//! - `write-behind acknowledged write`: the one script that caches and queues;
//! - `floor: one script call`: a script that does nothing, on the same connection: the round
//!   trip every acknowledged write pays, against which its own work is measured.
//!
//! The flusher runs throughout, on a thread of its own, so the queue is drained as the bench writes; the bench checks
//! at the end that nothing was lost and the queue is empty.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use redis::{AsyncCommands, Script};
use shared::{DbOptions, Persistence, ServerOptions, Stage};
use write_behind::write::create_queues;
use write_behind::{Apply, Flusher, Layout, Scores, Settings, WriteBehind};

fn writes(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let db = DbOptions {
        latency: Duration::from_millis(2),
        ..DbOptions::default()
    };
    let aof = ServerOptions {
        persistence: Persistence::AofEverySec,
        ..ServerOptions::default()
    };
    let stage = rt
        .block_on(async {
            match std::env::var("REDIS_URL") {
                Ok(_) => Stage::from_env("write-behind-bench", db).await,
                Err(_) => Stage::private("write-behind-bench", db, aof).await,
            }
        })
        .expect("a Redis and a database for the benchmarks");
    let db = stage.db().clone();
    rt.block_on(write_behind::table::create(&db, 100)).unwrap();
    let settings = Settings::default();
    let layout = Layout::new(stage.namespace().clone(), settings.shards);
    rt.block_on(create_queues(&stage.conn(), &layout)).unwrap();
    let writer = WriteBehind::new(stage.conn(), db.clone(), layout.clone(), settings.clone());
    let flusher = Arc::new(Flusher::new(
        db.clone(),
        layout.clone(),
        settings,
        Apply::Versioned,
        "bench",
    ));
    // The flusher runs on a thread of its own, as it would in a process of its own: the bench
    // measures the writer's path, not the two sharing one thread.
    let flusher_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("the flusher's runtime");
    let running = flusher_rt
        .block_on(flusher.clone().start(&stage.redis_url()))
        .unwrap();
    rt.block_on(writer.add_points(42, 1)).unwrap(); // the base is read once
    let store = Script::new(
        "redis.call('HSET', KEYS[1], 'points', ARGV[1], 'version', ARGV[2]) \
         redis.call('PEXPIRE', KEYS[1], 600000) return 1",
    );
    let through_key = stage.key("write-through:43");

    let mut group = c.benchmark_group("write-behind");
    group.bench_function("database write alone", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(db.add_points_now(44, 1).await.unwrap()) })
    });
    group.bench_function("write-through write", |b| {
        b.to_async(&rt).iter(|| async {
            let row = db.add_points_now(43, 1).await.unwrap().unwrap();
            let mut conn = stage.conn();
            let stored: i64 = store
                .key(&through_key)
                .arg(row.points)
                .arg(row.version)
                .invoke_async(&mut conn)
                .await
                .unwrap();
            black_box(stored)
        })
    });
    group.bench_function("write-behind acknowledged write", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(writer.add_points(42, 1).await.unwrap()) })
    });
    let nothing = Script::new("return 1");
    let score = layout.score(42);
    group.bench_function("floor: one script call", |b| {
        b.to_async(&rt).iter(|| async {
            let mut conn = stage.conn();
            let one: i64 = nothing.key(&score).invoke_async(&mut conn).await.unwrap();
            black_box(one)
        })
    });
    group.finish();

    rt.block_on(async {
        let acked: i64 = stage.conn().hget(layout.score(42), "points").await.unwrap();
        let drained = flusher_rt.spawn(running.drain());
        drained.await.unwrap().unwrap();
        let in_db = db.score(42).await.unwrap().unwrap().points;
        assert_eq!(
            in_db, acked,
            "every acknowledged write reached the database"
        );
        let stats = flusher.metrics.snapshot();
        eprintln!(
            "flusher: {} transactions, {:.1} rows each, {} writes coalesced, lag p99 {} µs",
            stats.transactions,
            stats.rows_per_transaction(),
            stats.coalesced,
            stats.lag.p99_us
        );
    });
    drop((writer, flusher, db));
    flusher_rt.shutdown_background();
    rt.block_on(stage.close()).unwrap();
}

criterion_group!(benches, writes);
criterion_main!(benches);
