//! `cargo run -p http-caching --example drive -- URL [REQUESTS] [CONCURRENCY]`: the course's load
//! driver against one URL, printing requests per second and latency, to compare with an
//! established load tool on the same endpoint (`wrk -t2 -c16 -d10s URL`).

use shared_http::{Load, Request};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .expect("usage: drive URL [REQUESTS] [CONCURRENCY]");
    let requests: usize = args
        .next()
        .map_or(50_000, |n| n.parse().expect("a number of requests"));
    let concurrency: usize = args
        .next()
        .map_or(16, |n| n.parse().expect("a concurrency"));
    let (base, path) = match url
        .find("://")
        .and_then(|at| url[at + 3..].find('/').map(|p| at + 3 + p))
    {
        Some(split) => (&url[..split], &url[split..]),
        None => (url.as_str(), "/"),
    };
    let load = Load {
        concurrency,
        rate: None,
        keep_etags: false,
        gzip: false,
        progress: true,
    };
    let plan = vec![Request::get(1, path); requests];
    let stats = load.drive(base, plan, "requests", |_, _| Ok(())).await;
    println!(
        "{} requests, {} at once: {:.0} requests/s, p50 {} µs, p99 {} µs, {} failed",
        stats.requests,
        concurrency,
        stats.requests_per_sec,
        stats.latency.p50_us,
        stats.latency.p99_us,
        stats.failures
    );
}
