//! `/stats.json`: the figures of `/metrics`, read back from its text, with the ratios computed and
//! the alerts a monitor would raise, each with what to do.
//!
//! The dashboard and the tests read this rather than the Prometheus text. It is made from that
//! very text, so the two can never disagree: a figure here is a figure an operator's Prometheus
//! would have scraped. The source's monitor raised alerts on a low hit ratio, high latency and
//! memory near the limit; here they are raised on the same figures, and on two it did not have:
//! a write-behind queue falling behind, and a dependency that does not answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::health::{self, Health};
use crate::observe::read_gauges;
use crate::service::Service;
use crate::telemetry as t;

/// Below this hit ratio (with at least [`MIN_READS`] cached reads) the cache is not earning its
/// keep: the source's monitor alerted at the same figure.
pub const LOW_HIT_RATIO: f64 = 0.5;
/// Cached reads before a hit ratio means anything.
pub const MIN_READS: u64 = 100;
/// A 99th percentile of cached reads above this is high: a hit should cost a few milliseconds.
pub const SLOW_READ_MS: f64 = 100.0;
/// Redis's memory above this share of `maxmemory` is near the point where it evicts or refuses.
pub const MEMORY_NEAR_LIMIT: f64 = 0.9;
/// A view waiting longer than this to be flushed means the flushers are falling behind.
pub const LAG_ALERT_MS: f64 = 5_000.0;

/// What `/stats.json` answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// The instance's configuration.
    pub configuration: String,
    /// Seconds since it started.
    pub uptime_s: f64,
    /// What `/health` says now.
    pub health: Health,
    /// Cached reads answered by a cache layer, over all cached reads, since the start (`None`
    /// before any).
    pub hit_ratio: Option<f64>,
    /// The same over about the last minute (since the latest reading at least a minute old,
    /// readings being taken by the calls to `/stats.json`), and the cached reads it counts.
    pub last_minute: LastMinute,
    /// Each layer's lookups, products and pages apart.
    pub layers: Vec<LayerStats>,
    /// Cached reads' latency by the layer that answered.
    pub reads: Vec<Latency>,
    /// Every route's requests by status, and their latency.
    pub routes: Vec<Latency>,
    /// Requests answered, all routes.
    pub requests: u64,
    /// Of them, answered with a `5xx`.
    pub server_errors: u64,
    /// Rate-limit decisions: allowed and refused.
    pub rate_limit: RateLimit,
    /// Queries the database was sent.
    pub database_queries: u64,
    /// Views written behind and not yet flushed, and the oldest one's wait in ms.
    pub queue: Queue,
    /// How old the answers served from caches were, by route.
    pub staleness: Vec<Age>,
    /// Invalidations made, by what was dropped.
    pub invalidations: BTreeMap<String, u64>,
    /// Memory: this process's, and Redis's with its limit.
    pub memory: Memory,
    /// What a monitor would raise now, each with what to do.
    pub alerts: Vec<Alert>,
}

/// The hit ratio over about the last minute.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LastMinute {
    /// Cached reads in the window.
    pub reads: u64,
    /// Those answered by a cache layer, over all of them (`None` without any).
    pub hit_ratio: Option<f64>,
}

/// One layer's lookups for one cache.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerStats {
    /// `products` or `pages`.
    pub cache: String,
    /// `l1`, `l2` or `l3`.
    pub layer: String,
    /// Lookups it answered.
    pub hits: u64,
    /// Lookups it passed on.
    pub misses: u64,
    /// Hits over lookups.
    pub hit_ratio: Option<f64>,
}

/// Requests of one kind: how many, and their latency over the last minute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// What they were (a route and status, or a cache and the layer that answered).
    pub of: String,
    /// How many since the start.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: Option<f64>,
    /// 90th percentile, ms.
    pub p90_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
}

/// The rate limiter's decisions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests let through.
    pub allowed: u64,
    /// Requests refused with a `429`.
    pub refused: u64,
    /// Decisions made by the in-process fallback while Redis did not answer.
    pub decided_locally: u64,
}

/// The views' write-behind queue.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Queue {
    /// Views acknowledged and not yet in the database.
    pub pending: Option<u64>,
    /// How long the oldest has waited, ms.
    pub lag_ms: Option<f64>,
}

/// How old the answers of one route were.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Age {
    /// The route.
    pub route: String,
    /// Answers with an age.
    pub count: u64,
    /// Median age, seconds.
    pub p50_s: Option<f64>,
    /// 99th percentile, seconds.
    pub p99_s: Option<f64>,
}

/// Memory.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// This process's resident memory (both instances of the demo share one process).
    pub process_bytes: Option<u64>,
    /// Redis's `used_memory`.
    pub redis_used_bytes: Option<u64>,
    /// Redis's `maxmemory` (0: no limit).
    pub redis_max_bytes: Option<u64>,
}

/// Something a monitor would raise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// `critical` or `warning`.
    pub level: String,
    /// What is wrong, with the figure.
    pub problem: String,
    /// What to do about it.
    pub recommendation: String,
}

/// `GET /stats.json`.
pub async fn stats(State(service): State<Arc<Service>>) -> Json<Stats> {
    let (_, health) = health::check(&service).await;
    read_gauges(&service).await;
    let text = service.telemetry.render();
    let configuration = service.settings.caching.label().to_string();
    let uptime = service.telemetry.uptime().as_secs_f64();
    let mut stats = from_text(&text, configuration, uptime, health);
    let hits = stats.layers.iter().map(|l| l.hits).sum();
    let reads = stats.reads.iter().map(|r| r.count).sum();
    let (hits, reads) = service.telemetry.recent.since_a_minute_ago(hits, reads);
    stats.last_minute = LastMinute {
        reads,
        hit_ratio: ratio(hits, reads),
    };
    stats.alerts = alerts(&stats);
    Json(stats)
}

/// One line of the Prometheus text format: a name, its labels and a value.
#[derive(Debug, PartialEq)]
pub struct Sample {
    /// The metric's name (with `_sum` or `_count` for a summary's totals).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// The samples of a Prometheus text, comments left out.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(parse_line)
        .collect()
}

/// `name{a="x",b="y"} 1.5` or `name 1.5`; label values may hold `{`, `}`, `,` and escaped
/// quotes (the routes' patterns do).
fn parse_line(line: &str) -> Option<Sample> {
    let (head, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let Some((name, rest)) = head.split_once('{') else {
        return Some(Sample {
            name: head.to_string(),
            labels: BTreeMap::new(),
            value,
        });
    };
    let mut labels = BTreeMap::new();
    let mut rest = rest.strip_suffix('}')?;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => value.push(chars.next()?.1),
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim_start_matches(',').to_string(), value);
        rest = &after[end + 1..];
    }
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The statistics in the rendered text `text`, with `health` as just checked.
pub fn from_text(text: &str, configuration: String, uptime_s: f64, health: Health) -> Stats {
    let samples = parse(text);
    let total = |name: &str, keep: &dyn Fn(&Sample) -> bool| -> u64 {
        let matching = samples.iter().filter(|s| s.name == name && keep(s));
        matching.map(|s| s.value as u64).sum()
    };
    let gauge = |name: &str, of: Option<&str>| {
        samples
            .iter()
            .find(|s| s.name == name && of.is_none_or(|of| s.label("of") == of))
            .map(|s| s.value)
    };

    let mut layers: Vec<LayerStats> = Vec::new();
    for sample in samples.iter().filter(|s| s.name == t::LOOKUPS) {
        let (cache, layer) = (sample.label("cache"), sample.label("layer"));
        let index = match layers
            .iter()
            .position(|l| l.cache == cache && l.layer == layer)
        {
            Some(index) => index,
            None => {
                layers.push(LayerStats {
                    cache: cache.to_string(),
                    layer: layer.to_string(),
                    hits: 0,
                    misses: 0,
                    hit_ratio: None,
                });
                layers.len() - 1
            }
        };
        match sample.label("result") {
            "hit" => layers[index].hits += sample.value as u64,
            _ => layers[index].misses += sample.value as u64,
        }
    }
    layers.sort_by(|a, b| (&a.cache, &a.layer).cmp(&(&b.cache, &b.layer)));
    for layer in &mut layers {
        layer.hit_ratio = ratio(layer.hits, layer.hits + layer.misses);
    }
    let reads = latencies(&samples, t::READ_DURATION, &["cache", "answered_by"]);
    let cached_reads: u64 = reads.iter().map(|r| r.count).sum();
    let from_a_cache: u64 = layers.iter().map(|l| l.hits).sum();
    let mut routes = latencies(&samples, t::REQUEST_DURATION, &["route", "status"]);
    routes.sort_by(|a, b| b.count.cmp(&a.count).then(a.of.cmp(&b.of)));
    let staleness = latencies(&samples, t::SERVED_AGE, &["route"])
        .into_iter()
        .map(|l| Age {
            route: l.of,
            count: l.count,
            p50_s: l.p50_ms.map(|ms| ms / 1e3),
            p99_s: l.p99_ms.map(|ms| ms / 1e3),
        })
        .collect();
    let invalidations = samples
        .iter()
        .filter(|s| s.name == t::INVALIDATIONS)
        .map(|s| (s.label("what").to_string(), s.value as u64))
        .collect();
    let count_name = format!("{}_count", t::REQUEST_DURATION);
    let mut stats = Stats {
        configuration,
        uptime_s,
        health,
        hit_ratio: ratio(from_a_cache, cached_reads),
        last_minute: LastMinute::default(),
        layers,
        reads,
        routes,
        requests: total(&count_name, &|_| true),
        server_errors: total(&count_name, &|s| s.label("status").starts_with('5')),
        rate_limit: RateLimit {
            allowed: total(t::RATE_LIMIT, &|s| s.label("decision") == "allowed"),
            refused: total(t::RATE_LIMIT, &|s| s.label("decision") == "refused"),
            decided_locally: total(t::RATE_LIMIT, &|s| s.label("decided_by") == "local"),
        },
        database_queries: total(t::DB_QUERIES, &|_| true),
        queue: Queue {
            pending: gauge(t::QUEUE_PENDING, None).map(|v| v as u64),
            lag_ms: gauge(t::QUEUE_LAG, None).map(|s| s * 1e3),
        },
        staleness,
        invalidations,
        memory: Memory {
            process_bytes: gauge(t::PROCESS_MEMORY, None).map(|v| v as u64),
            redis_used_bytes: gauge(t::REDIS_MEMORY, Some("used")).map(|v| v as u64),
            redis_max_bytes: gauge(t::REDIS_MEMORY, Some("max")).map(|v| v as u64),
        },
        alerts: Vec::new(),
    };
    stats.alerts = alerts(&stats);
    stats
}

/// The summaries named `name`, one per distinct value of `by`, with their count and quantiles.
fn latencies(samples: &[Sample], name: &str, by: &[&str]) -> Vec<Latency> {
    let count_name = format!("{name}_count");
    let of = |s: &Sample| by.iter().map(|b| s.label(b)).collect::<Vec<_>>().join(" ");
    let mut rows: Vec<Latency> = samples
        .iter()
        .filter(|s| s.name == count_name)
        .map(|s| Latency {
            of: of(s),
            count: s.value as u64,
            p50_ms: None,
            p90_ms: None,
            p99_ms: None,
        })
        .collect();
    for sample in samples.iter().filter(|s| s.name == name) {
        let Some(row) = rows.iter_mut().find(|r| r.of == of(sample)) else {
            continue;
        };
        // An empty window renders as NaN: no figure rather than a made-up one.
        let ms = Some(sample.value * 1e3).filter(|v| v.is_finite());
        match sample.label("quantile") {
            "0.5" => row.p50_ms = ms,
            "0.9" => row.p90_ms = ms,
            "0.99" => row.p99_ms = ms,
            _ => {}
        }
    }
    rows.sort_by(|a, b| a.of.cmp(&b.of));
    rows
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

// ANCHOR: alerts
/// The alerts `stats` calls for, the most urgent first.
pub fn alerts(stats: &Stats) -> Vec<Alert> {
    let mut alerts = Vec::new();
    let mut raise = |level: &str, problem: String, recommendation: &str| {
        alerts.push(Alert {
            level: level.to_string(),
            problem,
            recommendation: recommendation.to_string(),
        })
    };
    if stats.health.redis != "ok" {
        raise(
            "critical",
            format!("Redis: {}", stats.health.redis),
            "Reads go to the database meanwhile (slower, not wrong) and views cannot be \
             counted: check the Redis server, its network and its slow log.",
        );
    }
    if stats.health.database != "ok" {
        raise(
            "critical",
            format!("The database: {}", stats.health.database),
            "Only what the caches hold can be served: check the database server and its \
             connection limit.",
        );
    }
    // Over the last minute when there is one (what is true now), else since the start.
    let (reads, ratio) = match stats.last_minute.reads {
        0 => (stats.reads.iter().map(|r| r.count).sum(), stats.hit_ratio),
        reads => (reads, stats.last_minute.hit_ratio),
    };
    if let Some(ratio) = ratio.filter(|ratio| reads >= MIN_READS && *ratio < LOW_HIT_RATIO) {
        raise(
            "warning",
            format!("Low hit ratio: {:.0}% of cached reads", ratio * 100.0),
            "Warm the hot keys at start, lengthen TTLs where the data allows it, and look for \
             writes that drop entries faster than they are read.",
        );
    }
    let cache_layers = stats.reads.iter().filter(|r| !r.of.ends_with("database"));
    for read in cache_layers {
        if let Some(p99) = read.p99_ms.filter(|p99| *p99 > SLOW_READ_MS) {
            raise(
                "warning",
                format!("Slow cache reads: {} p99 {p99:.0} ms", read.of),
                "A hit should take milliseconds: check Redis's latency (SLOWLOG, LATENCY \
                 DOCTOR), large values (compress them) and the network.",
            );
        }
    }
    let memory = &stats.memory;
    let limited = memory.redis_max_bytes.filter(|max| *max > 0);
    if let (Some(used), Some(max)) = (memory.redis_used_bytes, limited) {
        let share = used as f64 / max as f64;
        if share >= MEMORY_NEAR_LIMIT {
            raise(
                "warning",
                format!("Redis memory at {:.0}% of maxmemory", 100.0 * share),
                "Raise maxmemory or shorten TTLs; with volatile-lru, keys without a TTL (the \
                 views' queues) are never evicted, the caches' are.",
            );
        }
    }
    if let Some(lag) = stats.queue.lag_ms.filter(|lag| *lag > LAG_ALERT_MS) {
        raise(
            "warning",
            format!(
                "Views written behind wait {:.1} s ({} pending)",
                lag / 1e3,
                stats.queue.pending.unwrap_or(0)
            ),
            "The flushers are falling behind: check the database's commit times, raise the \
             batch size, or run more instances.",
        );
    }
    alerts
}
// ANCHOR_END: alerts

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Health {
        Health {
            status: "ok".into(),
            redis: "ok".into(),
            database: "ok".into(),
        }
    }

    #[test]
    fn a_label_value_may_hold_braces_commas_and_escaped_quotes() {
        let line = r#"http_request_duration_seconds{route="/pages/{category}/{page}",status="200",quantile="0.5"} 0.25"#;
        let sample = &parse(line)[0];
        assert_eq!(sample.name, "http_request_duration_seconds");
        assert_eq!(sample.label("route"), "/pages/{category}/{page}");
        assert_eq!(sample.label("status"), "200");
        assert_eq!(sample.label("quantile"), "0.5");
        assert_eq!(sample.value, 0.25);
        let odd = &parse(r#"x{what="a \"b\", {c}"} 3"#)[0];
        assert_eq!(odd.label("what"), r#"a "b", {c}"#);
        assert_eq!(parse("# HELP x y\n# TYPE x counter\nx 7\n")[0].value, 7.0);
    }

    /// Lookups of products: 3 answered by L1 of 10; the 7 others by L2 (2) or the database (5).
    const TEXT: &str = r#"
cache_lookups_total{cache="products",layer="l1",result="hit"} 3
cache_lookups_total{cache="products",layer="l1",result="miss"} 7
cache_lookups_total{cache="products",layer="l2",result="hit"} 2
cache_lookups_total{cache="products",layer="l2",result="miss"} 5
cache_read_duration_seconds{cache="products",answered_by="l1",quantile="0.99"} 0.0005
cache_read_duration_seconds_count{cache="products",answered_by="l1"} 3
cache_read_duration_seconds{cache="products",answered_by="l2",quantile="0.99"} 0.25
cache_read_duration_seconds_count{cache="products",answered_by="l2"} 2
cache_read_duration_seconds{cache="products",answered_by="database",quantile="0.99"} NaN
cache_read_duration_seconds_count{cache="products",answered_by="database"} 5
http_request_duration_seconds_count{route="/products/{id}",status="200"} 10
http_request_duration_seconds_count{route="/news/{id}/views",status="503"} 4
rate_limit_decisions_total{decision="allowed",decided_by="redis"} 12
rate_limit_decisions_total{decision="refused",decided_by="redis"} 2
rate_limit_decisions_total{decision="allowed",decided_by="local"} 1
redis_memory_bytes{of="used"} 950
redis_memory_bytes{of="max"} 1000
write_behind_pending 40
write_behind_lag_seconds 6.5
"#;

    #[test]
    fn ratios_are_computed_from_the_counters_and_each_threshold_raises_its_alert() {
        let stats = from_text(TEXT, "L1 + Redis".into(), 1.0, healthy());
        assert_eq!(
            stats.hit_ratio,
            Some(0.5),
            "5 of 10 reads from a cache layer"
        );
        let l1 = &stats.layers[0];
        assert_eq!((l1.layer.as_str(), l1.hits, l1.misses), ("l1", 3, 7));
        assert_eq!(l1.hit_ratio, Some(0.3));
        assert_eq!(stats.layers[1].hit_ratio, Some(2.0 / 7.0));
        assert_eq!((stats.requests, stats.server_errors), (14, 4));
        assert_eq!(stats.rate_limit.allowed, 13);
        assert_eq!(stats.rate_limit.refused, 2);
        assert_eq!(stats.rate_limit.decided_locally, 1);
        assert_eq!(stats.queue.pending, Some(40));
        assert_eq!(stats.queue.lag_ms, Some(6_500.0));
        let database = stats
            .reads
            .iter()
            .find(|r| r.of == "products database")
            .unwrap();
        assert_eq!(
            database.p99_ms, None,
            "an empty window is no figure, not NaN"
        );
        // Ten reads are too few for a hit ratio alert; the slow L2, the memory and the lag raise
        // theirs.
        let problems: Vec<&str> = stats.alerts.iter().map(|a| a.problem.as_str()).collect();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(
            problems[0].starts_with("Slow cache reads: products l2 p99 250 ms"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("Redis memory at 95%"),
            "{problems:?}"
        );
        assert!(
            problems[2].starts_with("Views written behind wait 6.5 s (40 pending)"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_low_hit_ratio_alert_judges_the_last_minute_when_there_is_one() {
        let many = TEXT
            .replace("answered_by=\"l1\"} 3", "answered_by=\"l1\"} 3000")
            .replace("result=\"hit\"} 3", "result=\"hit\"} 3000");
        let mut stats = from_text(&many, "L1 + Redis".into(), 3_600.0, healthy());
        let low = |stats: &Stats| {
            let alerts = alerts(stats);
            alerts
                .iter()
                .any(|a| a.problem.starts_with("Low hit ratio"))
        };
        assert!(
            !low(&stats),
            "since the start: 3,002 of 3,007 reads from a cache"
        );
        stats.last_minute = LastMinute {
            reads: 200,
            hit_ratio: Some(0.1),
        };
        assert!(
            low(&stats),
            "the last minute: 10% of 200 reads; the alert must see it"
        );
    }

    #[test]
    fn a_dependency_down_comes_first_and_a_low_hit_ratio_needs_enough_reads() {
        let many = TEXT
            .replace("answered_by=\"l1\"} 3", "answered_by=\"l1\"} 30")
            .replace(
                "answered_by=\"database\"} 5",
                "answered_by=\"database\"} 170",
            );
        let down = Health {
            status: "degraded".into(),
            redis: "no answer within 500 ms".into(),
            database: "ok".into(),
        };
        let stats = from_text(&many, "L1 + Redis".into(), 1.0, down);
        assert_eq!(stats.alerts[0].level, "critical");
        assert_eq!(stats.alerts[0].problem, "Redis: no answer within 500 ms");
        assert!(
            stats
                .alerts
                .iter()
                .any(|a| a.problem.starts_with("Low hit ratio: 2%")),
            "5 of 202 reads from a cache: {:?}",
            stats.alerts
        );
    }
}
