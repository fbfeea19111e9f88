//! Weather and exchange rates, `GET /weather/{city}` and `GET /rates/{currency}`: a third party's
//! answers, through the HTTP caching lesson's upstream cache.
//!
//! The source cached both services with a plain TTL: when an entry expired, every request of that
//! moment called the service and waited for it, and failed if it failed. The lesson's cache serves
//! a stale answer at once while one fetch replaces it, serves it stale when the service fails,
//! calls the service once per name at a time, and says how old each answer is. Names are checked
//! against the ones the service knows first, so that made-up cities neither reach the service nor
//! take a place in the cache.

use std::sync::Arc;
use std::time::Duration;

use http_caching::upstream::{self, Answer, Freshness, Resource, Served, Unavailable};
use http_caching::upstream::{FakeUpstream, UpstreamCache};
use shared::{Namespace, RedisConn};

pub use http_caching::upstream::{CURRENCIES, Rates, Weather};

/// The cities the weather service knows.
pub const CITIES: [&str; 12] = [
    "amsterdam",
    "berlin",
    "lisbon",
    "london",
    "madrid",
    "nairobi",
    "oslo",
    "paris",
    "rome",
    "seoul",
    "tokyo",
    "vienna",
];

/// How long the service takes to answer: a third party across the internet.
pub const LATENCY: Duration = Duration::from_millis(50);

/// How the service's answers are kept: fresh for half a minute, then served while one fetch
/// replaces them, and for ten minutes if the service fails.
pub const FRESHNESS: Freshness = Freshness {
    fresh: Duration::from_secs(30),
    while_revalidate: Duration::from_secs(30),
    if_error: Duration::from_secs(600),
};

/// The third-party service, on loopback, for the demo and the tests.
pub fn service() -> Arc<FakeUpstream> {
    FakeUpstream::new(LATENCY, 0.0)
}

/// One kind of the service's answers, as one instance gets them.
pub enum Upstream<R: Resource> {
    /// Every request calls the service.
    Direct {
        /// The client the calls go through.
        client: reqwest::Client,
        /// The service's base URL.
        service: String,
    },
    /// Through the lesson's upstream cache.
    Cached(Arc<UpstreamCache<R>>),
}

impl<R: Resource> Upstream<R> {
    /// The service at `service`, cached in Redis under `namespace` when `conn` is given.
    pub fn new(service: String, cache: Option<(RedisConn, Namespace)>, budget: Duration) -> Self {
        match cache {
            Some((conn, namespace)) => Upstream::Cached(UpstreamCache::new(
                conn, namespace, service, FRESHNESS, budget,
            )),
            None => Upstream::Direct {
                client: reqwest::Client::new(),
                service,
            },
        }
    }

    /// `name`'s answer, and how old it is.
    pub async fn get(&self, name: &str) -> Result<Answer<R>, Unavailable> {
        match self {
            Upstream::Direct { client, service } => {
                let value = upstream::fetch::<R>(client, service, &upstream::normalised(name))
                    .await
                    .map_err(Unavailable)?;
                Ok(Answer {
                    value,
                    age_s: 0,
                    served: Served::Fetched,
                })
            }
            Upstream::Cached(cache) => cache.get(name).await,
        }
    }

    /// Waits for the background fetches under way (at stop).
    pub async fn settle(&self) {
        if let Upstream::Cached(cache) = self {
            cache.settle().await;
        }
    }
}
