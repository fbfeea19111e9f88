//! What an instance measures about itself, through the `metrics` facade into a Prometheus
//! recorder of its own, and `/metrics` that shows it.
//!
//! The source's monitor kept its own counters in a dictionary and printed them. A team running
//! the service wants the figures where its other services' figures are: scraped by Prometheus,
//! in its text format. The `metrics` crate is the facade the Rust ecosystem records through, and
//! `metrics-exporter-prometheus` renders what was recorded; its own HTTP listener is left out
//! (the service answers `/metrics` on its own routes, behind nothing but loopback here).
//!
//! Each instance has a recorder of its own rather than the process-wide one: the demo and the
//! tests run two instances (and several deployments) in one process, and each instance's
//! `/metrics` must show that instance, as it would if each ran alone. What it records:
//!
//! - every request's duration by route and status ([`observe`], a middleware around every
//!   route);
//! - each cached read's lookups, layer by layer, hit or miss, and its duration by the layer
//!   that answered (from the `x-answered-by` header the handlers already set);
//! - how old the answers served from a cache were (their `Age`);
//! - the rate limiter's decisions, and the invalidations the instance made;
//! - at each scrape, what is read rather than counted: the database queries, the views written
//!   behind and not yet flushed and the oldest one's age, Redis's memory and `maxmemory`, the
//!   process's resident memory.
//!
//! Ratios are not recorded: a hit ratio exported as a gauge cannot be added up across
//! instances or over a time range. They are computed from the counters, by Prometheus's
//! queries or by [`crate::stats`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use crate::api::ANSWERED_BY;
use crate::service::Service;

/// Every request's duration, by `route` (the route's pattern) and `status`.
pub const REQUEST_DURATION: &str = "http_request_duration_seconds";
/// Cached reads' lookups, by `cache` (products or pages), `layer` and `result` (hit or miss).
pub const LOOKUPS: &str = "cache_lookups_total";
/// Cached reads' duration, by `cache` and the layer that answered (`answered_by`).
pub const READ_DURATION: &str = "cache_read_duration_seconds";
/// How old an answer served from a cache was (its `Age`), by `route`.
pub const SERVED_AGE: &str = "served_age_seconds";
/// The rate limiter's decisions, by `decision` (allowed or refused) and `decided_by`.
pub const RATE_LIMIT: &str = "rate_limit_decisions_total";
/// Invalidations this instance made, by `what` was dropped.
pub const INVALIDATIONS: &str = "cache_invalidations_total";
/// Queries sent to the database (its handle's count, the deployment's instances together).
pub const DB_QUERIES: &str = "database_queries_total";
/// Views written behind and not yet in the database.
pub const QUEUE_PENDING: &str = "write_behind_pending";
/// How long the oldest of them has waited.
pub const QUEUE_LAG: &str = "write_behind_lag_seconds";
/// Redis's `used_memory` and `maxmemory` (0: no limit).
pub const REDIS_MEMORY: &str = "redis_memory_bytes";
/// This process's resident memory.
pub const PROCESS_MEMORY: &str = "process_resident_memory_bytes";

/// How often histograms are folded into their summaries when nobody scrapes: their buffers
/// would otherwise grow with every request.
const UPKEEP: Duration = Duration::from_secs(5);

/// An instance's recorder, and the task that keeps its histograms bounded.
pub struct Telemetry {
    recorder: PrometheusRecorder,
    started: Instant,
    upkeep: tokio::task::JoinHandle<()>,
}

impl Telemetry {
    /// A recorder whose summaries cover the last minute (three 20 s buckets, the exporter's
    /// default) with the quantiles the dashboard shows.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_quantiles(&[0.5, 0.9, 0.99])
            .expect("quantiles between 0 and 1")
            .build_recorder();
        let handle = recorder.handle();
        let upkeep = tokio::spawn(async move {
            loop {
                tokio::time::sleep(UPKEEP).await;
                handle.run_upkeep();
            }
        });
        Telemetry {
            recorder,
            started: Instant::now(),
            upkeep,
        }
    }

    /// Runs `record` with this instance's recorder behind the `metrics` macros.
    pub fn record(&self, record: impl FnOnce()) {
        metrics::with_local_recorder(&self.recorder, record)
    }

    /// What was recorded, in Prometheus's text format.
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }

    /// How long the instance has been up.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Counts an invalidation of `what` (a product, a listing page, the dashboard...).
    pub fn invalidated(&self, what: &'static str, how_many: u64) {
        self.record(|| metrics::counter!(INVALIDATIONS, "what" => what).increment(how_many));
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.upkeep.abort();
    }
}

/// The layers a cached read tries, in order, for the route that serves it (none for the
/// routes without layers, or without a cache).
fn layers_of(service: &Service, route: &str) -> (&'static str, Vec<&'static str>) {
    let caching = service.settings.caching;
    let (l1, l2) = (caching.local(), caching.redis());
    let (cache, layers) = match route {
        "/products/{id}" => ("products", [(l1, "l1"), (l2, "l2"), (false, "l3")]),
        "/pages/{category}/{page}" => ("pages", [(l1, "l1"), (l2, "l2"), (l1, "l3")]),
        _ => return ("", Vec::new()),
    };
    let tried = layers.iter().filter(|(on, _)| *on).map(|(_, name)| *name);
    (cache, tried.collect())
}

// ANCHOR: observe
/// Times every request by route and status; for a cached read, counts a miss at each layer
/// tried before the one that answered and a hit there; for an answer with an `Age`, records it;
/// for an answer the rate limiter decided, counts its decision (from the headers it set).
pub async fn observe(
    State(service): State<Arc<Service>>,
    route: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = route.map_or_else(|| "unmatched".to_string(), |r| r.as_str().to_string());
    let response = next.run(request).await;
    let took = started.elapsed().as_secs_f64();
    let status = response.status();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
    let answered_by = header(ANSWERED_BY).map(str::to_string);
    let age: Option<f64> = header(header::AGE.as_str()).and_then(|age| age.parse().ok());
    // The limiter names its policy on every answer it let through or refused, and what is left
    // only when Redis decided (its fallback knows no count).
    let limited = header("ratelimit-policy").is_some();
    let decided_by = if header("ratelimit").is_some() {
        "redis"
    } else {
        "local"
    };
    let decision = if status == StatusCode::TOO_MANY_REQUESTS {
        "refused"
    } else {
        "allowed"
    };
    let (cache, layers) = layers_of(&service, &route);
    service.telemetry.record(|| {
        let code = status.as_u16().to_string();
        metrics::histogram!(REQUEST_DURATION, "route" => route.clone(), "status" => code)
            .record(took);
        if let (Some(answered_by), false) = (&answered_by, layers.is_empty()) {
            for layer in &layers {
                let result = if layer == answered_by { "hit" } else { "miss" };
                metrics::counter!(LOOKUPS, "cache" => cache, "layer" => *layer, "result" => result)
                    .increment(1);
                if result == "hit" {
                    break;
                }
            }
            let by = answered_by.clone();
            metrics::histogram!(READ_DURATION, "cache" => cache, "answered_by" => by).record(took);
        }
        if limited {
            metrics::counter!(RATE_LIMIT, "decision" => decision, "decided_by" => decided_by)
                .increment(1);
        }
        if let Some(age) = age {
            metrics::histogram!(SERVED_AGE, "route" => route).record(age);
        }
    });
    response
}
// ANCHOR_END: observe

/// `GET /metrics`: the figures read rather than counted are read now, then everything is
/// rendered.
pub async fn metrics(State(service): State<Arc<Service>>) -> Response {
    read_gauges(&service).await;
    let text = service.telemetry.render();
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// Reads the database's query count, the views' queue, Redis's memory and the process's, into
/// their gauges. A Redis that does not answer within the service's budget leaves its gauges as
/// they were last read (and `/health` says why).
pub async fn read_gauges(service: &Service) {
    let budget = service.settings.pages.redis_timeout;
    let queue = tokio::time::timeout(budget, service.news.backlog()).await;
    let mut conn = service.conn.clone();
    let mut info = redis::cmd("INFO");
    let info = info.arg("memory").query_async::<redis::InfoDict>(&mut conn);
    let memory = tokio::time::timeout(budget, info).await;
    let queries = service.db.queries();
    let resident = resident_memory();
    service.telemetry.record(|| {
        metrics::counter!(DB_QUERIES).absolute(queries);
        if let Ok(Some(backlog)) = queue {
            metrics::gauge!(QUEUE_PENDING).set(backlog.pending as f64);
            let lag = backlog.oldest.map_or(0.0, |age| age.as_secs_f64());
            metrics::gauge!(QUEUE_LAG).set(lag);
        }
        if let Ok(Ok(info)) = memory {
            for (field, label) in [("used_memory", "used"), ("maxmemory", "max")] {
                if let Some(bytes) = info.get::<u64>(field) {
                    metrics::gauge!(REDIS_MEMORY, "of" => label).set(bytes as f64);
                }
            }
        }
        if let Some(bytes) = resident {
            metrics::gauge!(PROCESS_MEMORY).set(bytes as f64);
        }
    });
}

/// This process's resident memory, from `/proc/self/status` (Linux; `None` elsewhere).
pub fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
