//! The demo's table, one row per cache, and the conclusion computed from it.

use axum::http::StatusCode;
use serde::Serialize;
use shared::metrics::LatencySummary;
use shared::report::{self, Row};

use http_caching::Caching;

use super::Measured;

/// One cache's row.
#[derive(Serialize)]
pub struct Line {
    /// Which cache.
    pub caching: Caching,
    /// Requests sent.
    pub requests: u64,
    /// Requests per second.
    pub requests_per_sec: f64,
    /// Latency of the answered requests.
    pub latency: LatencySummary,
    /// Database queries per 1,000 requests.
    pub queries_per_1000: f64,
    /// Share of requests the cache answered (hits and 304s).
    pub cache_answered: f64,
    /// `304 Not Modified` answers.
    pub not_modified: u64,
    /// Body bytes on the wire per request.
    pub bytes_per_request: f64,
    /// Answers for another user, another query, or a write that did not happen.
    pub wrong: u64,
    /// Why the first wrong answer was wrong.
    pub first_wrong: Option<String>,
    /// Transport errors and `5xx`s.
    pub errors: u64,
    /// Redis calls of the response cache that failed (`None`: the source's, which drops them).
    pub redis_errors: Option<u64>,
}

impl Line {
    /// The row of `measured`.
    pub fn new(measured: &Measured) -> Line {
        let load = &measured.load;
        let requests = load.requests.max(1) as f64;
        Line {
            caching: measured.caching,
            requests: load.requests,
            requests_per_sec: load.requests_per_sec,
            latency: load.latency,
            queries_per_1000: measured.queries as f64 * 1000.0 / requests,
            cache_answered: measured.cache_answers as f64 / requests,
            not_modified: load.count(StatusCode::NOT_MODIFIED),
            bytes_per_request: load.body_bytes as f64 / requests,
            wrong: load.wrong,
            first_wrong: load.first_wrong.clone(),
            errors: load.failures,
            redis_errors: measured.redis_errors,
        }
    }
}

impl Row for Line {
    fn headers() -> Vec<&'static str> {
        vec![
            "cache",
            "requests/s",
            "p50",
            "p99",
            "DB queries per 1,000",
            "answered by the cache",
            "304s",
            "body bytes per request",
            "wrong answers",
            "errors",
            "redis errors",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.caching.to_string(),
            format!("{:.0}", self.requests_per_sec),
            report::micros(self.latency.p50_us),
            report::micros(self.latency.p99_us),
            format!("{:.0}", self.queries_per_1000),
            report::percent(self.cache_answered),
            report::count(self.not_modified),
            format!("{:.0}", self.bytes_per_request),
            report::count(self.wrong),
            report::count(self.errors),
            self.redis_errors.map_or("–".into(), report::count),
        ]
    }
}

/// Sentences computed from the rows: the lesson's caches against no cache, and the source's
/// wrong answers.
pub fn conclude(lines: &[Line]) -> String {
    let find = |caching| lines.iter().find(|l| l.caching == caching);
    let (Some(none), Some(source), Some(response), Some(conditional)) = (
        find(Caching::NoCache),
        find(Caching::Source),
        find(Caching::Response),
        find(Caching::Conditional),
    ) else {
        return String::new();
    };
    let ratio = |line: &Line| line.requests_per_sec / none.requests_per_sec.max(1e-9);
    // Redis trouble during a row sends its requests to the handlers: say so before its figures.
    let redis_errors = [response, conditional]
        .iter()
        .map(|line| line.redis_errors.unwrap_or(0))
        .max()
        .unwrap_or(0);
    let mut said = match report::disturbed(redis_errors, response.requests) {
        Some(disturbed) => disturbed + " ",
        None if redis_errors > 0 => format!(
            "Redis failed {} times during a response cache's run (see the redis errors column): \
             those requests went to the handlers. ",
            report::count(redis_errors)
        ),
        None => String::new(),
    };
    said += &format!(
        "The response cache answered {:.1}x the requests per second of no cache with {} database \
         queries per 1,000 requests instead of {}, and {} wrong answers. ",
        ratio(response),
        report::count(response.queries_per_1000.round() as u64),
        report::count(none.queries_per_1000.round() as u64),
        report::count(response.wrong),
    );
    said += &format!(
        "Answering If-None-Match from Redis, it sent {} 304s and {:.0} body bytes per request \
         instead of {:.0} ({:.1}x no cache's requests per second). ",
        report::count(conditional.not_modified),
        conditional.bytes_per_request,
        response.bytes_per_request,
        ratio(conditional),
    );
    said += &match &source.first_wrong {
        Some(first) => format!(
            "The source's middleware looked {:.1}x as fast, and {} of its {} answers were wrong; \
             the first: {first}.",
            ratio(source),
            report::count(source.wrong),
            report::count(source.requests),
        ),
        None => format!(
            "The source's middleware ran at {:.1}x with no wrong answer this time: its flaws need \
             more users or writes to show (try --users 50).",
            ratio(source)
        ),
    };
    let lessons_wrong = response.wrong + conditional.wrong;
    if lessons_wrong > 0 {
        said += &format!(
            " The lesson's caches gave {} wrong answers: that is a bug.",
            report::count(lessons_wrong)
        );
    }
    said
}
