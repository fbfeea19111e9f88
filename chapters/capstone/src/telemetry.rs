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
//! - every request's duration by route and status ([`crate::observe`], a middleware around
//!   every route);
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

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

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
/// Queries sent to the database: the count of the handle the deployment's instances share, so
/// the one figure here that is not this instance's alone (each instance's says the same).
pub const DB_QUERIES: &str = "database_queries_total";
/// Views written behind and not yet in the database.
pub const QUEUE_PENDING: &str = "write_behind_pending";
/// How long the oldest of them has waited.
pub const QUEUE_LAG: &str = "write_behind_lag_seconds";
/// Whether Redis answered the last scrape's `INFO` within the budget (1) or not (0): the
/// Redis gauges keep their last values meanwhile, and this says they are old.
pub const REDIS_UP: &str = "redis_up";
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
    /// Readings of the cached reads' totals, for the last minute's hit ratio.
    pub recent: Readings,
}

/// Readings of two running totals (cached reads answered by a cache, and all cached reads),
/// at most one a second, kept for a minute: what a ratio over the last minute is computed from.
/// A counter since the start says little about now: after an hour of good traffic, a hit ratio
/// that collapsed a minute ago hardly moves the total's.
pub struct Readings(Mutex<VecDeque<(Instant, u64, u64)>>);

impl Readings {
    /// Readings that start at zero, now.
    fn new() -> Self {
        Readings(Mutex::new(VecDeque::from([(Instant::now(), 0, 0)])))
    }

    /// Notes the totals `hits` and `reads` now, and returns how much each grew since the latest
    /// reading at least a minute old (or since the start, in the first minute).
    pub fn since_a_minute_ago(&self, hits: u64, reads: u64) -> (u64, u64) {
        let now = Instant::now();
        let mut readings = self.0.lock().expect("never poisoned");
        let minute_old = |at: &Instant| now.duration_since(*at) >= Duration::from_secs(60);
        while readings.get(1).is_some_and(|(at, _, _)| minute_old(at)) {
            readings.pop_front();
        }
        if readings
            .back()
            .is_none_or(|(at, _, _)| now.duration_since(*at) >= Duration::from_secs(1))
        {
            readings.push_back((now, hits, reads));
        }
        let (_, base_hits, base_reads) = readings[0];
        (
            hits.saturating_sub(base_hits),
            reads.saturating_sub(base_reads),
        )
    }
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
            recent: Readings::new(),
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

/// This process's resident memory, from `/proc/self/status` (Linux; `None` elsewhere).
pub fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
