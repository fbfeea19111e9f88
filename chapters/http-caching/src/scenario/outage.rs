//! The demo's second part: a slow, flaky weather service, switched off for a while under steady
//! traffic, behind the source's cache and behind the lesson's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::Serialize;
use shared::Stage;
use shared::metrics::LatencySummary;
use shared::report::{self, Row};
use shared_http::{Answer, Load, Request, Served};

use http_caching::upstream::{
    self, FakeUpstream, Freshness, Served as ServedFrom, SourceWeather, UpstreamCache, Weather,
};

/// The cities asked for; some in several spellings, as users type them.
const CITIES: [&str; 12] = [
    "Paris", "paris", "London", "Berlin", "Madrid", "Rome", "Oslo", "Lisbon", "Vienna", "Prague",
    "Dublin", "Athens",
];

/// How the part runs.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// The service's latency.
    pub latency: Duration,
    /// The share of the service's answers that fail.
    pub failure_rate: f64,
    /// How long the service is off, from half a second in; the clients send for a second more.
    pub outage: Duration,
    /// Requests per second the clients send.
    pub rate: f64,
    /// The draws' seed.
    pub seed: u64,
}

/// How the lesson's cache uses the service's answers: fresh for 1 s, served stale for 1 s more
/// while revalidating, and for 60 s when the service fails.
pub const FRESHNESS: Freshness = Freshness {
    fresh: Duration::from_secs(1),
    while_revalidate: Duration::from_secs(1),
    if_error: Duration::from_secs(60),
};

/// One cache's row.
#[derive(Serialize)]
pub struct Line {
    /// Which cache.
    pub cache: &'static str,
    /// Requests sent.
    pub requests: u64,
    /// Requests that failed (a `5xx`).
    pub errors: u64,
    /// Answers older than the freshness the service allows.
    pub stale: u64,
    /// The oldest answer served, in seconds.
    pub oldest_s: u64,
    /// Calls to the service.
    pub service_calls: u64,
    /// Latency of the answered requests.
    pub latency: LatencySummary,
    /// Answers for another city.
    pub wrong: u64,
}

impl Row for Line {
    fn headers() -> Vec<&'static str> {
        vec![
            "weather cache",
            "requests",
            "errors",
            "stale answers",
            "oldest answer",
            "calls to the service",
            "p50",
            "p99",
            "wrong answers",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.cache.to_string(),
            report::count(self.requests),
            report::count(self.errors),
            report::count(self.stale),
            format!("{} s", self.oldest_s),
            report::count(self.service_calls),
            report::micros(self.latency.p50_us),
            report::micros(self.latency.p99_us),
            report::count(self.wrong),
        ]
    }
}

/// Runs the source's cache, then the lesson's, each in front of a fresh service that goes down
/// for `settings.outage`.
pub async fn run(stage: &Stage, settings: Settings, progress: bool) -> anyhow::Result<Vec<Line>> {
    let length = settings.outage + Duration::from_secs(1);
    let count = (settings.rate * length.as_secs_f64()) as u64;
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let zipf = Zipf::new(CITIES.len() as f64, 1.0).expect("cities");
    let requests: Vec<Request> = (0..count)
        .map(|_| {
            let city = CITIES[zipf.sample(&mut rng) as usize - 1];
            Request::get(rng.random_range(1..=10), format!("/weather/{city}"))
        })
        .collect();
    let mut lines = Vec::new();
    for lessons in [false, true] {
        let service = FakeUpstream::new(settings.latency, settings.failure_rate);
        let upstream = Served::start("the weather service", service.routes()).await?;
        let namespace = stage
            .namespace()
            .child(if lessons { "weather" } else { "source-weather" });
        let (routes, cache, label) = if lessons {
            let cache = UpstreamCache::<Weather>::new(
                stage.conn(),
                namespace,
                upstream.url(""),
                FRESHNESS,
                http_caching::app::REDIS_BUDGET,
            );
            (
                cache.routes(),
                Some(cache),
                "stale-while-revalidate + stale-if-error",
            )
        } else {
            // The source kept answers for a fixed time; here as long as the lesson's are fresh.
            let source =
                SourceWeather::new(stage.conn(), namespace, upstream.url(""), FRESHNESS.fresh);
            (source.routes(), None, "source's (a plain TTL)")
        };
        let served = Served::start("the weather API", routes).await?;
        warm(&served).await;
        let calls_before = service.calls.get();
        let (stale, oldest) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let check = {
            let (stale, oldest) = (stale.clone(), oldest.clone());
            move |request: &Request, answer: &Answer| -> Result<(), String> {
                if answer.status != StatusCode::OK {
                    return Err(format!("status {}", answer.status));
                }
                let got: upstream::Answer<Weather> =
                    serde_json::from_slice(answer.body).map_err(|e| e.to_string())?;
                if got.served != ServedFrom::Fresh && got.served != ServedFrom::Fetched {
                    stale.fetch_add(1, Ordering::Relaxed);
                }
                oldest.fetch_max(got.age_s, Ordering::Relaxed);
                let asked = upstream::normalised(request.path.trim_start_matches("/weather/"));
                if upstream::normalised(&got.value.city) == asked {
                    Ok(())
                } else {
                    Err(format!("asked for {asked}, got {}", got.value.city))
                }
            }
        };
        let load = Load {
            concurrency: 0,
            rate: Some(settings.rate),
            keep_etags: false,
            gzip: false,
            progress,
        };
        // The service goes off half a second in, and comes back after `outage`.
        let switch = {
            let service = service.clone();
            let outage = settings.outage;
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                service.set_down(true);
                tokio::time::sleep(outage).await;
                service.set_down(false);
            })
        };
        let stats = load
            .drive(&served.url(""), requests.clone(), label, check)
            .await;
        switch.abort();
        if let Some(cache) = &cache {
            cache.settle().await;
        }
        served.stop().await?;
        upstream.stop().await?;
        lines.push(Line {
            cache: label,
            requests: stats.requests,
            errors: stats.failures,
            stale: stale.load(Ordering::Relaxed),
            oldest_s: oldest.load(Ordering::Relaxed),
            service_calls: service.calls.get() - calls_before,
            latency: stats.latency,
            wrong: stats.wrong,
        });
    }
    Ok(lines)
}

/// Asks for every city, all at once, until the service has answered for each (it fails some
/// requests even when up): the part measures an outage, not a cold start.
async fn warm(served: &Served) {
    let client = reqwest::Client::new();
    let asks: Vec<_> = CITIES
        .iter()
        .map(|city| {
            let (client, url) = (client.clone(), served.url(&format!("/weather/{city}")));
            tokio::spawn(async move {
                for _ in 0..20 {
                    let answered = client.get(&url).send().await;
                    if answered.is_ok_and(|r| r.status().is_success()) {
                        break;
                    }
                }
            })
        })
        .collect();
    for ask in asks {
        let _ = ask.await;
    }
}

/// Sentences computed from the two rows.
pub fn conclude(lines: &[Line], settings: &Settings) -> String {
    let [source, lessons] = lines else {
        return String::new();
    };
    format!(
        "With the weather service off for {:.1} s (and failing {} of its answers otherwise), the \
         source's cache failed {} of {} requests and called the service {} times; the lesson's \
         failed {}, served {} stale answers, the oldest {} s old, and called the service {} times.",
        settings.outage.as_secs_f64(),
        report::percent(settings.failure_rate),
        report::count(source.errors),
        report::count(source.requests),
        report::count(source.service_calls),
        report::count(lessons.errors),
        report::count(lessons.stale),
        lessons.oldest_s,
        report::count(lessons.service_calls),
    )
}
