//! Each limiter's decision against two baselines measured in the same run: a raw `GET` on the
//! same connection (the round trip every Redis limiter pays, its floor) and an in-process check
//! of the `governor` crate (what a limit costs when it is not shared). The ratios to the floor
//! say what each script's own work adds; the ratio to `governor`, what sharing the limit costs.
//!
//! Each decision is for one of 1,000 clients in turn, with a limit they never reach, so every
//! decision takes the admitting path and writes.

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};
use rate_limiting::{Algorithm, Limit, Limiter, RedisLimiter};
use redis::AsyncCommands;

fn decisions(c: &mut Criterion) {
    let (rt, stage) = shared::bench::stage("rate-limiting-bench");
    let limit = Limit::per(1_000_000, Duration::from_secs(60)).with_burst(1_000_000);
    let clients: Vec<String> = (0..1000).map(|n| format!("client-{n}")).collect();
    let mut group = c.benchmark_group("rate-limit decision");

    let mut conn = stage.conn();
    let floor = stage.key("floor");
    rt.block_on(async { conn.set_ex::<_, _, ()>(&floor, 1, 300).await })
        .unwrap();
    group.bench_function("floor: one GET", |b| {
        b.to_async(&rt).iter(|| {
            let mut conn = conn.clone();
            let floor = &floor;
            async move { black_box(conn.get::<_, Option<i64>>(floor).await.unwrap()) }
        })
    });

    let local = RateLimiter::keyed(Quota::per_second(NonZeroU32::new(1_000_000).unwrap()));
    let mut n = 0;
    group.bench_function("in-process: governor", |b| {
        b.iter(|| {
            n += 1;
            black_box(local.check_key(&clients[n % clients.len()]).is_ok())
        })
    });

    for algorithm in Algorithm::ALL {
        let limiter = RedisLimiter::new(
            algorithm,
            limit,
            stage.conn(),
            stage.namespace().child(algorithm.slug()),
        );
        let mut n = 0;
        group.bench_function(algorithm.label(), |b| {
            b.to_async(&rt).iter(|| {
                n += 1;
                let client = &clients[n % clients.len()];
                let limiter = &limiter;
                async move { black_box(limiter.check(client).await.unwrap().allowed) }
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = decisions
}
criterion_main!(benches);
