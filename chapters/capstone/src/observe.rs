//! The middleware that records every request into the instance's [`Telemetry`], and `/metrics`,
//! which reads what is read rather than counted and renders everything.
//!
//! [`Telemetry`]: crate::telemetry::Telemetry

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::ANSWERED_BY;
use crate::service::Service;
use crate::telemetry::{
    DB_QUERIES, LOOKUPS, PROCESS_MEMORY, QUEUE_LAG, QUEUE_PENDING, RATE_LIMIT, READ_DURATION,
    REDIS_MEMORY, REDIS_UP, REQUEST_DURATION, SERVED_AGE, resident_memory,
};

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
        metrics::gauge!(REDIS_UP).set(f64::from(u8::from(matches!(memory, Ok(Ok(_))))));
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
