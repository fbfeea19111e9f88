//! The demo's tables, and the conclusion computed from them: the load on each configuration,
//! where the reads were answered, and the latency of each kind of request.

use serde::Serialize;
use shared::report::{self, Row};
use shared_http::LoadStats;

use super::Measured;
use super::plan::Class;
use capstone::Caching;

/// Both instances' clients as one.
pub fn combined(a: LoadStats, b: LoadStats) -> LoadStats {
    let mut histogram = a.histogram.clone();
    histogram.merge(&b.histogram);
    let mut statuses = a.statuses.clone();
    for (status, n) in &b.statuses {
        *statuses.entry(*status).or_default() += n;
    }
    LoadStats {
        requests: a.requests + b.requests,
        // The two ran side by side over the same time.
        requests_per_sec: a.requests_per_sec + b.requests_per_sec,
        latency: histogram.summary(),
        statuses,
        body_bytes: a.body_bytes + b.body_bytes,
        wrong: a.wrong + b.wrong,
        first_wrong: a.first_wrong.or(b.first_wrong),
        failures: a.failures + b.failures,
        first_failure: a.first_failure.or(b.first_failure),
        histogram,
    }
}

/// One configuration's load: what it sustained and what it cost the database and Redis.
#[derive(Serialize)]
pub struct Load {
    /// The configuration.
    pub caching: &'static str,
    /// Requests per second.
    pub requests_per_sec: f64,
    /// Against no cache in the same run.
    pub speedup: f64,
    /// Database queries per 1,000 requests.
    pub queries_per_1k: f64,
    /// Calls to the third-party service per 1,000 requests.
    pub upstream_per_1k: f64,
    /// Redis commands per request.
    pub redis_per_request: f64,
    /// Response body bytes per request.
    pub bytes_per_request: f64,
    /// `304` answers.
    pub not_modified: u64,
    /// `429` answers (the greedy client's).
    pub refused: u64,
    /// Answers the checks refused.
    pub wrong: u64,
    /// Transport errors and `5xx`.
    pub errors: u64,
}

impl Load {
    /// The rows of `measured`, against its first (no cache).
    pub fn rows(measured: &[Measured]) -> Vec<Load> {
        let baseline = measured.first().map_or(1.0, |m| m.load.requests_per_sec);
        measured
            .iter()
            .map(|m| {
                let requests = m.load.requests.max(1) as f64;
                Load {
                    caching: m.caching.label(),
                    requests_per_sec: m.load.requests_per_sec,
                    speedup: m.load.requests_per_sec / baseline.max(1e-9),
                    queries_per_1k: m.queries as f64 * 1_000.0 / requests,
                    upstream_per_1k: m.upstream_calls as f64 * 1_000.0 / requests,
                    redis_per_request: m.commands as f64 / requests,
                    bytes_per_request: m.load.body_bytes as f64 / requests,
                    not_modified: m.load.count(axum::http::StatusCode::NOT_MODIFIED),
                    refused: m.load.count(axum::http::StatusCode::TOO_MANY_REQUESTS),
                    wrong: m.load.wrong,
                    errors: m.load.failures,
                }
            })
            .collect()
    }
}

impl Row for Load {
    fn headers() -> Vec<&'static str> {
        vec![
            "configuration",
            "req/s",
            "vs none",
            "db/1k req",
            "upstream/1k",
            "redis/req",
            "bytes/req",
            "304",
            "429",
            "wrong",
            "errors",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.caching.to_string(),
            report::count(self.requests_per_sec as u64),
            format!("{:.1}x", self.speedup),
            format!("{:.0}", self.queries_per_1k),
            format!("{:.1}", self.upstream_per_1k),
            format!("{:.2}", self.redis_per_request),
            report::count(self.bytes_per_request as u64),
            report::count(self.not_modified),
            report::count(self.refused),
            report::count(self.wrong),
            report::count(self.errors),
        ]
    }
}

/// Where one configuration's product and page reads were answered, how stale, and what the
/// disk layer's compression and the prefetching did.
#[derive(Serialize)]
pub struct Layers {
    /// The configuration.
    pub caching: &'static str,
    /// Share of product and page reads answered by L1, L2, L3 and the database.
    pub shares: [f64; 4],
    /// Product, article, listing and article-list reads that began after a newer version had been committed
    /// and returned an older one.
    pub stale: u64,
    /// How long, at most, the version such a read served had been out of date, in ms.
    pub longest_stale_ms: f64,
    /// How far trending trailed the acknowledged views, at most, in ms.
    pub trending_lag_ms: f64,
    /// How far the dashboard trailed the acknowledged price changes, at most, in ms.
    pub dashboard_lag_ms: f64,
    /// Page bytes rendered over page bytes stored.
    pub compression: f64,
    /// Pages a prefetch put in L1 (rendered, or brought up from L2 or L3).
    pub prefetched: u64,
    /// Reads that a prefetched page answered.
    pub prefetch_hits: u64,
    /// Pages a prefetch rendered: the extra loads it cost.
    pub prefetch_renders: u64,
}

impl Layers {
    /// The rows of `measured`.
    pub fn rows(measured: &[Measured]) -> Vec<Layers> {
        measured
            .iter()
            .map(|m| {
                let reads = m.layers.iter().sum::<u64>().max(1) as f64;
                let stale = *m.tally.stale.lock().expect("not poisoned");
                Layers {
                    caching: m.caching.label(),
                    shares: m.layers.map(|n| n as f64 / reads),
                    stale: stale.0,
                    longest_stale_ms: stale.1.as_secs_f64() * 1_000.0,
                    trending_lag_ms: ms(*m.tally.trending_lag.lock().expect("not poisoned")),
                    dashboard_lag_ms: ms(*m.tally.dashboard_lag.lock().expect("not poisoned")),
                    compression: m.page_bytes.0 as f64 / m.page_bytes.1.max(1) as f64,
                    prefetched: m.prefetch.0,
                    prefetch_hits: m.prefetch.1,
                    prefetch_renders: m.prefetch.2,
                }
            })
            .collect()
    }
}

impl Row for Layers {
    fn headers() -> Vec<&'static str> {
        vec![
            "configuration",
            "L1",
            "L2",
            "L3",
            "database",
            "stale reads",
            "longest",
            "trending lag",
            "dashboard lag",
            "compression",
        ]
    }

    fn cells(&self) -> Vec<String> {
        let share = |i: usize| match self.caching == Caching::NoCache.label() {
            true => "–".to_string(),
            false => report::percent(self.shares[i]),
        };
        vec![
            self.caching.to_string(),
            share(0),
            share(1),
            share(2),
            share(3),
            report::count(self.stale),
            match self.stale {
                0 => "–".to_string(),
                _ => format!("{:.1} ms", self.longest_stale_ms),
            },
            format!("{:.0} ms", self.trending_lag_ms),
            format!("{:.0} ms", self.dashboard_lag_ms),
            match self.compression > 0.0 && self.caching != Caching::NoCache.label() {
                true => format!("{:.1}x", self.compression),
                false => "–".to_string(),
            },
        ]
    }
}

/// The latency of one kind of request in one configuration.
#[derive(Serialize)]
pub struct Latency {
    /// The configuration.
    pub caching: &'static str,
    /// The kind of request.
    pub class: &'static str,
    /// How many.
    pub requests: u64,
    /// Percentiles, in microseconds.
    pub p50_us: u64,
    /// See `p50_us`.
    pub p99_us: u64,
    /// See `p50_us`.
    pub p999_us: u64,
}

impl Latency {
    /// The rows of `measured`, configuration by configuration, the classes that were sent.
    pub fn rows(measured: &[Measured]) -> Vec<Latency> {
        let mut rows = Vec::new();
        for m in measured {
            let latency = m.tally.latency.lock().expect("not poisoned");
            for class in Class::ALL {
                let histogram = &latency[class as usize];
                let count = histogram.summary().count;
                if count == 0 {
                    continue;
                }
                rows.push(Latency {
                    caching: m.caching.label(),
                    class: class.label(),
                    requests: count,
                    p50_us: histogram.at_quantile(0.5),
                    p99_us: histogram.at_quantile(0.99),
                    p999_us: histogram.at_quantile(0.999),
                });
            }
        }
        rows
    }
}

impl Row for Latency {
    fn headers() -> Vec<&'static str> {
        vec!["configuration", "request", "count", "p50", "p99", "p99.9"]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.caching.to_string(),
            self.class.to_string(),
            report::count(self.requests),
            report::micros(self.p50_us),
            report::micros(self.p99_us),
            report::micros(self.p999_us),
        ]
    }
}

/// Sentences computed from the rows.
pub fn conclude(load: &[Load], layers: &[Layers]) -> String {
    let (Some(none), Some(best)) = (
        load.first(),
        load.iter()
            .max_by(|a, b| a.requests_per_sec.total_cmp(&b.requests_per_sec)),
    ) else {
        return String::new();
    };
    let wrong: u64 = load.iter().map(|l| l.wrong).sum();
    let errors: u64 = load.iter().map(|l| l.errors).sum();
    let stale: u64 = layers.iter().map(|l| l.stale).sum();
    let mut said = match (wrong, errors) {
        (0, 0) => "Every answer was checked and none was wrong; no request failed. ".to_string(),
        _ => format!(
            "{} answers were wrong and {} requests failed (see the table): that is a bug, or \
             Redis or the database failed during the run. ",
            report::count(wrong),
            report::count(errors)
        ),
    };
    said += &format!(
        "{} served {:.1}x the requests per second of no cache, with {:.0} database queries per \
         1,000 requests instead of {:.0}, and {:.1} calls to the third-party service instead of \
         {:.1}. ",
        best.caching,
        best.speedup,
        best.queries_per_1k,
        none.queries_per_1k,
        best.upstream_per_1k,
        none.upstream_per_1k
    );
    said += &match stale {
        0 => "No product, article, listing or article-list read returned a version older than one already \
              committed and acknowledged when the read began. "
            .to_string(),
        _ => {
            let longest = layers
                .iter()
                .map(|l| l.longest_stale_ms)
                .fold(0.0, f64::max);
            format!(
                "{} product, article, listing or article-list reads returned a version older than one already \
                 acknowledged, for at most {longest:.1} ms: the backplane's delay between \
                 instances, within L1's TTL. ",
                report::count(stale)
            )
        }
    };
    let find = |caching: Caching| load.iter().find(|l| l.caching == caching.label());
    if let (Some(conditional), Some(layered)) = (find(Caching::Conditional), find(Caching::Layered))
    {
        said += &format!(
            "Clients that kept ETags received {} bytes per request instead of {}. ",
            report::count(conditional.bytes_per_request as u64),
            report::count(layered.bytes_per_request as u64)
        );
    }
    said
}

/// `duration` in milliseconds.
fn ms(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

/// What the layers did, in the configuration with all three.
pub fn conclude_layers(
    layers: &[Layers],
    trending_ttl: std::time::Duration,
    report_cost: std::time::Duration,
) -> String {
    let Some(layered) = layers
        .iter()
        .find(|l| l.caching == Caching::Layered.label())
    else {
        return String::new();
    };
    let redis_only = layers
        .iter()
        .find(|l| l.caching == Caching::RedisOnly.label());
    let mut said = format!(
        "With memory in front of Redis, L1 answered {} of product and page reads and Redis {}{}; \
         the database {}. ",
        report::percent(layered.shares[0]),
        report::percent(layered.shares[1]),
        redis_only.map_or(String::new(), |r| format!(
            " (Redis alone answered {})",
            report::percent(r.shares[1])
        )),
        report::percent(layered.shares[3]),
    );
    said += &format!(
        "Pages were stored {:.1}x smaller than rendered (LZ4). Prefetching the next page put {} \
         pages in memory ahead of their readers ({} of them rendered for it, its extra loads), \
         which answered {} reads. The disk layer answers only when Redis has lost a page (a \
         restart, an eviction), so it answered {} here; the next table has it answer. ",
        layered.compression,
        report::count(layered.prefetched),
        report::count(layered.prefetch_renders),
        report::count(layered.prefetch_hits),
        report::percent(layered.shares[2]),
    );
    let lag = layers.iter().map(|l| l.trending_lag_ms).fold(0.0, f64::max);
    said += &format!(
        "Trending trailed the views already acknowledged by at most {lag:.0} ms: its TTL ({} ms) \
         plus the time the flusher took to write the views to the database. ",
        trending_ttl.as_millis()
    );
    let lag = layers
        .iter()
        .map(|l| l.dashboard_lag_ms)
        .fold(0.0, f64::max);
    said += &format!(
        "The dashboard trailed the price changes already acknowledged by at most {lag:.0} ms: a \
         change refreshes it at once, and a refresh under way when it landed runs again, so at \
         most two reports ({} ms each) behind.",
        report_cost.as_millis()
    );
    said
}

/// The product reads' latency, from no cache to the layered configuration.
pub fn conclude_latency(rows: &[Latency]) -> String {
    let find = |caching: Caching| {
        rows.iter()
            .find(|r| r.caching == caching.label() && r.class == Class::Product.label())
    };
    match (
        find(Caching::NoCache),
        find(Caching::RedisOnly),
        find(Caching::Layered),
    ) {
        (Some(none), Some(redis), Some(layered)) => format!(
            "Product reads: p50 {} without a cache, {} through Redis, {} with memory in front; p99 \
             {}, {} and {}. Every request also pays the rate limit's round trip to Redis, and the \
             clients run on the same cores as the servers.",
            report::micros(none.p50_us),
            report::micros(redis.p50_us),
            report::micros(layered.p50_us),
            report::micros(none.p99_us),
            report::micros(redis.p99_us),
            report::micros(layered.p99_us),
        ),
        _ => String::new(),
    }
}
