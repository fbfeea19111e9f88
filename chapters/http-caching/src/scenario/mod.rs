//! The demo's measurement: the same requests through each cache, every answer checked.

pub mod outage;
pub mod plan;
pub mod table;

use anyhow::Context;
use http_caching::{Caching, Catalogue, app};
use shared::Stage;
use shared_http::{Load, LoadStats, Served};

use plan::Mix;

/// What one configuration measured.
pub struct Measured {
    /// Which cache was in front.
    pub caching: Caching,
    /// What the clients saw.
    pub load: LoadStats,
    /// Database queries during the run.
    pub queries: u64,
    /// Answers from the cache (the lesson's: hits and 304s; the source's: hits).
    pub cache_answers: u64,
    /// Redis calls of the lesson's response cache that failed or ran out of time (`None` for the
    /// source's middleware, which drops its errors unseen).
    pub redis_errors: Option<u64>,
}

/// Sends `mix`'s requests through each cache in turn, on `catalogue`.
pub async fn run(
    stage: &Stage,
    catalogue: &Catalogue,
    mix: &Mix,
    concurrency: usize,
    progress: bool,
) -> anyhow::Result<Vec<Measured>> {
    let requests = plan::requests(mix);
    let mut measured = Vec::new();
    for caching in Caching::ALL {
        let namespace = stage.namespace().child(caching.slug());
        let (router, caches) = app(catalogue.clone(), caching, stage.conn(), namespace);
        let served = Served::start("the API", router)
            .await
            .context("could not listen on a loopback port")?;
        let load = Load {
            concurrency,
            rate: None,
            // Only the clients of the last configuration keep ETags: before it, the server
            // would ignore them.
            keep_etags: caching == Caching::Conditional,
            // As every browser does.
            gzip: true,
            progress,
        };
        let before = catalogue.db().queries();
        let stats = load
            .drive(
                &served.url(""),
                requests.clone(),
                caching.label(),
                plan::check,
            )
            .await;
        let queries = catalogue.db().queries() - before;
        served.stop().await?;
        let cache_answers = match (&caches.response, &caches.source) {
            (Some(cache), _) => cache.stats.hits.get() + cache.stats.not_modified.get(),
            (None, Some(source)) => source.hits.get(),
            (None, None) => 0,
        };
        let redis_errors = match (&caches.response, &caches.source) {
            (Some(cache), _) => Some(cache.stats.errors.get()),
            (None, Some(_)) => None,
            (None, None) => Some(0),
        };
        measured.push(Measured {
            caching,
            load: stats,
            queries,
            cache_answers,
            redis_errors,
        });
    }
    Ok(measured)
}
