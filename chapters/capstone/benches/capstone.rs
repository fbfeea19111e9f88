//! What each layer of the page cache costs a read, measured in the same run: L1 (the instance's
//! memory), L2 (Redis, a round trip and LZ4), L3 (the local disk: a file read, a checksum and
//! LZ4) and a render (a query and a template); and what LZ4 costs a page, each way.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use capstone::disk::DiskCache;
use capstone::packed;
use capstone::pages::{Layers, PageKey, PageSettings, Pages, render};
use criterion::{Criterion, criterion_group, criterion_main};

fn settings() -> PageSettings {
    PageSettings {
        l1_ttl: Duration::from_secs(3_600),
        l1_capacity: 1_000,
        ttl: Duration::from_secs(3_600),
        jitter: 0.2,
        compress_from: 1_024,
        prefetch: false,
        redis_timeout: Duration::from_millis(100),
    }
}

fn page_by_layer(c: &mut Criterion) {
    let (rt, stage) = shared::bench::stage("capstone-bench");
    rt.block_on(shared::db::items::create(stage.db(), 400))
        .expect("the items table");
    let folder = tempfile::tempdir().expect("a folder for the disk layer");
    let key = PageKey {
        category: "tea".to_string(),
        page: 2,
    };
    let only = |l1, l2, l3| Layers { l1, l2, l3 };
    let mut group = c.benchmark_group("a page read");
    let cases = [
        ("L1: memory", only(true, true, true)),
        ("L2: Redis", only(false, true, false)),
        ("L3: disk", only(false, false, true)),
        (
            "rendered: a query and a template",
            only(false, false, false),
        ),
    ];
    for (label, layers) in cases {
        let disk = layers
            .l3
            .then(|| DiskCache::open(folder.path(), 64 << 20).expect("the disk layer"));
        let namespace = stage
            .namespace()
            .child(label.split(':').next().unwrap_or("x"));
        let pages: Arc<Pages> = Pages::new(
            stage.db().clone(),
            stage.conn(),
            namespace,
            layers,
            disk,
            settings(),
        );
        // The first read fills the layers; every measured read is a hit in the layer named.
        rt.block_on(pages.page(&key)).expect("a page");
        group.bench_function(label, |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(pages.page(&key).await.expect("a page")) })
        });
    }
    group.finish();

    let html = rt.block_on(render(stage.db(), &key)).expect("a page");
    let stored = packed::pack(&html, u64::MAX, 1_024);
    println!(
        "a page of {} bytes is stored as {} bytes with LZ4 ({:.1}x)",
        html.len(),
        stored.len(),
        html.len() as f64 / stored.len() as f64
    );
    let mut group = c.benchmark_group("LZ4 on a page");
    group.bench_function("pack (compress, checksum)", |b| {
        b.iter(|| black_box(packed::pack(black_box(&html), u64::MAX, 1_024)))
    });
    group.bench_function("unpack (checksum, decompress)", |b| {
        b.iter(|| black_box(packed::unpack(black_box(&stored), 0).expect("whole")))
    });
    group.finish();
}

criterion_group!(benches, page_by_layer);
criterion_main!(benches);
