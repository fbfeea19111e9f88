//! The demo's table: one row per run (the database alone, then cache-aside), and the conclusion
//! drawn from the figures, whichever way they came out.

use serde::Serialize;
use shared::report::{self, Row};
use shared::workload::RunStats;

/// One row of the table.
#[derive(Serialize)]
pub struct Line {
    pub strategy: &'static str,
    pub requests_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub db_queries: u64,
    /// `None` for the run without a cache.
    pub hit_ratio: Option<f64>,
    pub redis_errors: Option<u64>,
    pub failed_requests: u64,
    /// How many requests were sent.
    pub requests: u64,
}

impl Row for Line {
    fn headers() -> Vec<&'static str> {
        vec![
            "strategy",
            "requests/s",
            "p50",
            "p99",
            "db queries",
            "hit ratio",
            "redis errors",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.strategy.to_string(),
            report::count(self.requests_per_sec.round() as u64),
            report::micros(self.p50_us),
            report::micros(self.p99_us),
            report::count(self.db_queries),
            self.hit_ratio.map_or("-".into(), report::percent),
            self.redis_errors.map_or("-".into(), report::count),
        ]
    }
}

impl Line {
    /// The row of a run named `strategy`, its cache's figures left empty.
    pub fn new(strategy: &'static str, run: &RunStats, db_queries: u64) -> Self {
        Line {
            strategy,
            requests_per_sec: run.requests_per_sec,
            p50_us: run.latency.p50_us,
            p99_us: run.latency.p99_us,
            db_queries,
            hit_ratio: None,
            redis_errors: None,
            failed_requests: run.failures,
            requests: run.requests,
        }
    }
}

/// A few sentences drawn from the figures, whichever way they came out: the warm cache against
/// the database (the steady state, whatever the number of requests), then what the cold start
/// cost (that row depends on how many requests there were to spread its misses over).
pub fn conclude(base: &Line, cold: &Line, warm: &Line, db_latency_ms: f64) -> String {
    let mut text = steady_state(base, warm, db_latency_ms);
    if cold
        .redis_errors
        .and_then(|e| report::disturbed(e, cold.requests))
        .is_none()
    {
        text.push_str(&format!(
            " From a cold start the same {} requests ran at {:.1}x the database's throughput with \
             {} hits: each key's first read is a miss, so a cold start comes closer to warm the \
             more requests spread its misses.",
            report::count(cold.requests),
            cold.requests_per_sec / base.requests_per_sec,
            report::percent(cold.hit_ratio.unwrap_or(0.0)),
        ));
    }
    text
}

/// The warm cache against the database alone.
fn steady_state(base: &Line, cached: &Line, db_latency_ms: f64) -> String {
    let speedup = cached.requests_per_sec / base.requests_per_sec;
    let hits = report::percent(cached.hit_ratio.unwrap_or(0.0));
    let queries = format!(
        "asked the database {} times instead of {}",
        report::count(cached.db_queries),
        report::count(base.db_queries)
    );
    if let Some(disturbed) = cached
        .redis_errors
        .and_then(|errors| report::disturbed(errors, cached.requests))
    {
        return format!("{disturbed} Cache-aside {queries}.");
    }
    let mut text = if speedup >= 1.1 {
        format!(
            "Warm, cache-aside served {speedup:.1}x the requests per second of the database alone \
             with {hits} hits, at a p50 of {} instead of {}, and {queries}.",
            report::micros(cached.p50_us),
            report::micros(base.p50_us),
        )
    } else if speedup > 0.9 {
        format!(
            "A draw: warm, cache-aside ran at {speedup:.2}x the database's throughput with {hits} hits \
             and {queries}. At {db_latency_ms} ms a miss costs about what a Redis round trip does, \
             so the cache mainly spares the database, not the caller."
        )
    } else {
        format!(
            "The cache lost: warm, it ran at {speedup:.2}x the database's throughput (p50 {} vs {}) \
             even with {hits} hits. At {db_latency_ms} ms the database answers faster than a \
             Redis round trip; a cache pays when a miss costs more than the trip to Redis.",
            report::micros(cached.p50_us),
            report::micros(base.p50_us),
        )
    };
    if let Some(errors) = cached.redis_errors.filter(|e| *e > 0) {
        text.push_str(&format!(
            " Redis failed {} times; those requests were answered by the database.",
            report::count(errors)
        ));
    }
    text
}
