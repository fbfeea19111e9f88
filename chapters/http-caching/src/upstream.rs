//! A slow, flaky third-party API, and the cache that makes it dependable.
//!
//! The source material caches a weather service and an exchange-rate service with a plain TTL:
//! when the entry expires, the next requests all call the service (as many calls as requests
//! arrive in that moment), wait for it, and fail if it fails, though a slightly old answer was at
//! hand a second earlier. RFC 5861's two `Cache-Control` extensions say what to do instead:
//!
//! - **stale-while-revalidate**: for a while after an answer goes stale, serve it at once and
//!   fetch a new one in the background; nobody waits for the slow service;
//! - **stale-if-error**: for a longer while, if the service fails, serve the stale answer rather
//!   than the error.
//!
//! Add **one call per key at a time** (the requests that find no usable answer wait for the one
//! fetch under way, then read what it stored) and an honest **`Age`** (how old the answer is,
//! so a client can judge it), and an outage of the service becomes a few answers older than
//! usual. The single flight here is per instance; the stampede lesson's lock makes it one call per
//! key across instances.
//!
//! One cache serves every kind of answer the service gives ([`Resource`]: a city's [`Weather`],
//! a currency's [`Rates`]), each under its own path and keys. [`FakeUpstream`] is the service: on
//! loopback, with a latency, a failure rate and an off switch.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::routing::get;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shared::clock::now_ms;
use shared::metrics::Counter;
use shared::worker::Tasks;
use shared::{Namespace, RedisConn};

/// A kind of answer the service gives for a name: where the service serves it
/// (`/{PATH}/{name}`), and where the cache keeps it (`upstream:{PATH}:{name}`).
pub trait Resource: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The first segment of its path, and of its keys.
    const PATH: &'static str;
}

/// A city's weather, as the service reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Weather {
    /// The city, as the service names it (lower case).
    pub city: String,
    /// The temperature.
    pub temp_c: i64,
    /// When the service measured it, in ms since the epoch.
    pub observed_ms: u64,
}

impl Resource for Weather {
    const PATH: &'static str = "weather";
}

/// A currency's exchange rates, as the service reports them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// The currency the rates are for (lower case): one unit of it buys `rates[other]` of each
    /// other.
    pub base: String,
    /// The other currencies' rates.
    pub rates: BTreeMap<String, f64>,
    /// When the service quoted them, in ms since the epoch.
    pub observed_ms: u64,
}

impl Resource for Rates {
    const PATH: &'static str = "rates";
}

/// The currencies the service quotes, and what one unit of each is worth in the first.
pub const CURRENCIES: [(&str, f64); 5] = [
    ("usd", 1.0),
    ("eur", 1.08),
    ("gbp", 1.27),
    ("chf", 1.12),
    ("jpy", 0.0067),
];

/// The fake third-party service: weather and exchange rates, slow, failing some of the time, and
/// switched off at will.
pub struct FakeUpstream {
    latency: Duration,
    failure_rate: f64,
    down: AtomicBool,
    /// Requests it received.
    pub calls: Counter,
}

impl FakeUpstream {
    /// A service answering after `latency`, failing a `failure_rate` of requests with a `503`.
    pub fn new(latency: Duration, failure_rate: f64) -> Arc<Self> {
        Arc::new(FakeUpstream {
            latency,
            failure_rate,
            down: AtomicBool::new(false),
            calls: Counter::default(),
        })
    }

    /// Switches the service off (every request fails) or on.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Its routes, `GET /weather/{city}` and `GET /rates/{currency}`.
    pub fn routes(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/weather/{city}", get(Self::weather))
            .route("/rates/{currency}", get(Self::rates))
            .with_state(self.clone())
    }

    /// Counts a call, waits the latency, and fails as often as it should.
    async fn answer(&self) -> Result<(), Response<Body>> {
        self.calls.inc();
        tokio::time::sleep(self.latency).await;
        if self.down.load(Ordering::SeqCst) || rand::random_bool(self.failure_rate) {
            let mut failed = Response::new(Body::from("the service is unavailable"));
            *failed.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            return Err(failed);
        }
        Ok(())
    }

    async fn weather(State(service): State<Arc<Self>>, Path(city): Path<String>) -> Response<Body> {
        if let Err(failed) = service.answer().await {
            return failed;
        }
        let observed_ms = now_ms();
        // Changes every ten seconds, differently per city.
        let temp_c = (city.len() as i64 * 7 + (observed_ms / 10_000) as i64) % 35 - 5;
        let body = Weather {
            city,
            temp_c,
            observed_ms,
        };
        Response::new(Body::from(serde_json::to_vec(&body).expect("plain data")))
    }

    async fn rates(State(service): State<Arc<Self>>, Path(base): Path<String>) -> Response<Body> {
        let Some(&(_, worth)) = CURRENCIES.iter().find(|(name, _)| *name == base) else {
            let mut unknown = Response::new(Body::from("no such currency"));
            *unknown.status_mut() = StatusCode::NOT_FOUND;
            return unknown;
        };
        if let Err(failed) = service.answer().await {
            return failed;
        }
        let observed_ms = now_ms();
        // Moves by up to 1% every ten seconds.
        let drift = 1.0 + ((observed_ms / 10_000) % 3) as f64 / 100.0;
        let rates = CURRENCIES
            .iter()
            .filter(|(name, _)| *name != base)
            .map(|(name, other)| (name.to_string(), worth / other * drift))
            .collect();
        let body = Rates {
            base,
            rates,
            observed_ms,
        };
        Response::new(Body::from(serde_json::to_vec(&body).expect("plain data")))
    }
}

/// How long an answer is used as it is, served stale while a new one is fetched, and served
/// stale when the service fails.
#[derive(Clone, Copy, Debug)]
pub struct Freshness {
    /// Answers younger than this are served as they are.
    pub fresh: Duration,
    /// Past `fresh`, for this long, served at once while one background fetch replaces them.
    pub while_revalidate: Duration,
    /// Past `fresh`, for this long, served when a fetch fails.
    pub if_error: Duration,
}

impl Freshness {
    /// The `Cache-Control` that says the same to the clients.
    pub fn cache_control(&self) -> String {
        format!(
            "public, max-age={}, stale-while-revalidate={}, stale-if-error={}",
            self.fresh.as_secs(),
            self.while_revalidate.as_secs(),
            self.if_error.as_secs()
        )
    }
}

/// How an answer was served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Served {
    /// A stored answer still fresh.
    Fresh,
    /// A stored answer past fresh, while a background fetch replaces it.
    StaleWhileRevalidate,
    /// A stored answer past fresh, because the service failed.
    StaleIfError,
    /// Fetched from the service for this request (or by the request it waited for).
    Fetched,
}

/// An answer and how old it is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Answer<R> {
    /// The service's answer.
    pub value: R,
    /// How long ago the service gave it, in whole seconds.
    pub age_s: u64,
    /// How it was served.
    pub served: Served,
}

/// What a cache of the service stores: the answer and when it was fetched.
#[derive(Serialize, Deserialize)]
struct Kept<R> {
    value: R,
    fetched_ms: u64,
}

/// What the upstream cache did, counted.
#[derive(Debug, Default)]
pub struct UpstreamStats {
    /// Fetches from the service.
    pub fetches: Counter,
    /// Fetches that failed.
    pub failed: Counter,
    /// Answers served stale while revalidating.
    pub stale_while_revalidate: Counter,
    /// Answers served stale because the service failed.
    pub stale_if_error: Counter,
    /// Redis calls that failed or ran out of time.
    pub errors: Counter,
}

/// What the fetches of one name remember: when the last one failed.
#[derive(Debug, Default)]
struct Flight {
    failed_at: Option<Instant>,
}

/// After a failed fetch, how long a name's requests serve what is kept (within stale-if-error)
/// without calling the service again. Without it, every request queued behind a failing fetch
/// makes a failing fetch of its own, one after another, each waiting for the service's error.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// The service failed and no usable answer was kept.
#[derive(Debug, thiserror::Error)]
#[error("the service failed ({0}) and no answer young enough was kept")]
pub struct Unavailable(pub String);

/// The cache in front of the service, for one kind of answer.
pub struct UpstreamCache<R: Resource> {
    conn: RedisConn,
    namespace: Namespace,
    client: reqwest::Client,
    service: String,
    freshness: Freshness,
    budget: Duration,
    /// One lock per name: the fetch under way, which the others wait for.
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Flight>>>>,
    background: Tasks,
    /// What it did.
    pub stats: UpstreamStats,
    kind: std::marker::PhantomData<R>,
}

impl<R: Resource> UpstreamCache<R> {
    /// A cache of the service at `service` (`http://127.0.0.1:PORT`), kept in `namespace`
    /// through `conn`, every Redis call within `budget`.
    pub fn new(
        conn: RedisConn,
        namespace: Namespace,
        service: String,
        freshness: Freshness,
        budget: Duration,
    ) -> Arc<Self> {
        Arc::new(UpstreamCache {
            conn,
            namespace,
            client: reqwest::Client::new(),
            service,
            freshness,
            budget,
            flights: Mutex::default(),
            background: Tasks::new(&format!("{} revalidation", R::PATH)),
            stats: UpstreamStats::default(),
            kind: std::marker::PhantomData,
        })
    }

    /// The key of `name`'s answer: the name trimmed and in lower case, so that "Paris", "paris "
    /// and "PARIS" share one entry (the source material had one example with `.lower()` and one
    /// without).
    pub fn key(&self, name: &str) -> String {
        self.namespace
            .key(&format!("upstream:{}:{}", R::PATH, normalised(name)))
    }

    // ANCHOR: weather
    /// The answer for `name` (a city's weather, a currency's rates): fresh from Redis; stale
    /// while one background fetch replaces it; or fetched now, one fetch per name at a time, and
    /// stale again if that fetch fails.
    pub async fn get(self: &Arc<Self>, name: &str) -> Result<Answer<R>, Unavailable> {
        let name = normalised(name);
        let key = self.key(&name);
        let kept = self.read(&key).await;
        if let Some(kept) = &kept {
            let age = age(kept);
            if age < self.freshness.fresh {
                return Ok(answer(kept, Served::Fresh));
            }
            if age < self.freshness.fresh + self.freshness.while_revalidate {
                self.revalidate_in_background(&name);
                self.stats.stale_while_revalidate.inc();
                return Ok(answer(kept, Served::StaleWhileRevalidate));
            }
        }
        // No usable answer: fetch, one request per name at a time; the others wait here, then
        // find what the first one stored, or that it failed a moment ago.
        let flight = self.flight(&name);
        let mut turn = flight.lock().await;
        if let Some(kept) = self.read(&key).await
            && age(&kept) < self.freshness.fresh
        {
            return Ok(answer(&kept, Served::Fetched));
        }
        // With a stale answer to fall back on, a fetch that failed a moment ago is not repeated;
        // with none, the service is the only hope, and is asked (one request at a time).
        let failed_recently = turn
            .failed_at
            .is_some_and(|at| at.elapsed() < RETRY_AFTER_FAILURE);
        let fetched = if failed_recently && kept.is_some() {
            Err("it failed less than a second ago".to_string())
        } else {
            self.fetch_and_store(&name).await
        };
        turn.failed_at = fetched.is_err().then(Instant::now);
        match fetched {
            Ok(fetched) => Ok(answer(&fetched, Served::Fetched)),
            Err(why) => match kept {
                Some(kept) if age(&kept) < self.freshness.fresh + self.freshness.if_error => {
                    self.stats.stale_if_error.inc();
                    Ok(answer(&kept, Served::StaleIfError))
                }
                _ => Err(Unavailable(why)),
            },
        }
    }
    // ANCHOR_END: weather

    /// Starts one background fetch for `name`, unless one is under way.
    fn revalidate_in_background(self: &Arc<Self>, name: &str) {
        let flight = self.flight(name);
        let Ok(turn) = flight.try_lock_owned() else {
            return; // a fetch is under way: it will store the new answer
        };
        let (cache, name) = (self.clone(), name.to_string());
        self.background.spawn(async move {
            let mut turn = turn;
            // A failure leaves the stale answer in place, served until stale-if-error ends.
            let fetched = cache.fetch_and_store(&name).await;
            turn.failed_at = fetched.is_err().then(Instant::now);
        });
    }

    /// Waits for the background fetches under way (the tests and the demo's end).
    pub async fn settle(&self) {
        let _ = self.background.join().await;
    }

    /// The lock of the fetches for `name`.
    fn flight(&self, name: &str) -> Arc<tokio::sync::Mutex<Flight>> {
        // One small entry per name ever asked for: bounded by the names the service knows.
        let mut flights = self.flights.lock().unwrap();
        flights.entry(name.to_string()).or_default().clone()
    }

    /// Asks the service, and stores its answer for as long as it may be served stale.
    async fn fetch_and_store(&self, name: &str) -> Result<Kept<R>, String> {
        self.stats.fetches.inc();
        let fetched = fetch::<R>(&self.client, &self.service, name).await;
        let value = match fetched {
            Ok(value) => value,
            Err(why) => {
                self.stats.failed.inc();
                return Err(why);
            }
        };
        let kept = Kept {
            value,
            fetched_ms: now_ms(),
        };
        let longest =
            self.freshness.fresh + self.freshness.while_revalidate.max(self.freshness.if_error);
        let mut set = redis::cmd("SET");
        set.arg(self.key(name))
            .arg(serde_json::to_vec(&kept).expect("plain data"))
            .arg("PX")
            .arg(longest.as_millis() as u64);
        let mut conn = self.conn.clone();
        let _: Option<()> =
            shared::budget::within(self.budget, &self.stats.errors, set.query_async(&mut conn))
                .await;
        Ok(kept)
    }

    /// The kept answer, if any; an unreadable one is none (and is replaced by the next fetch).
    async fn read(&self, key: &str) -> Option<Kept<R>> {
        let mut conn = self.conn.clone();
        let read: Option<Option<Vec<u8>>> = shared::budget::within(
            self.budget,
            &self.stats.errors,
            redis::cmd("GET").arg(key).query_async(&mut conn),
        )
        .await;
        let bytes = read.flatten()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The route `GET /{PATH}/{name}` (`/weather/paris`) in front of the cache: the answer with
    /// its `Age`, or a `503` when the service failed and nothing young enough was kept.
    pub fn routes(self: &Arc<Self>) -> Router {
        Router::new()
            .route(&format!("/{}/{{name}}", R::PATH), get(Self::route))
            .with_state(self.clone())
    }

    async fn route(State(cache): State<Arc<Self>>, Path(name): Path<String>) -> Response<Body> {
        match cache.get(&name).await {
            Ok(answer) => {
                let mut response =
                    Response::new(Body::from(serde_json::to_vec(&answer).expect("plain data")));
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                headers.insert(header::AGE, HeaderValue::from(answer.age_s));
                if let Ok(control) = HeaderValue::from_str(&cache.freshness.cache_control()) {
                    headers.insert(header::CACHE_CONTROL, control);
                }
                response
            }
            Err(unavailable) => {
                let mut response = Response::new(Body::from(unavailable.to_string()));
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                response
            }
        }
    }
}

/// The source material's weather cache: `weather:{city}` with a plain TTL, the service called by
/// every request that misses, its failure the request's failure.
pub struct SourceWeather {
    conn: RedisConn,
    namespace: Namespace,
    client: reqwest::Client,
    service: String,
    ttl: Duration,
}

impl SourceWeather {
    /// The source's cache of the service at `service`, entries kept `ttl`.
    pub fn new(conn: RedisConn, namespace: Namespace, service: String, ttl: Duration) -> Arc<Self> {
        Arc::new(SourceWeather {
            conn,
            namespace,
            client: reqwest::Client::new(),
            service,
            ttl,
        })
    }

    /// Its route, `GET /weather/{city}`.
    pub fn routes(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/weather/{city}", get(Self::route))
            .with_state(self.clone())
    }

    async fn route(State(cache): State<Arc<Self>>, Path(city): Path<String>) -> Response<Body> {
        use redis::AsyncCommands;
        let key = cache.namespace.key(&format!("weather:{city}"));
        let mut conn = cache.conn.clone();
        if let Ok(Some(kept)) = conn.get::<_, Option<Vec<u8>>>(&key).await
            && let Ok(kept) = serde_json::from_slice::<Kept<Weather>>(&kept)
        {
            return Response::new(Body::from(
                serde_json::to_vec(&answer(&kept, Served::Fresh)).expect("plain data"),
            ));
        }
        let url = format!("{}/weather/{city}", cache.service);
        let fetched = match cache.client.get(&url).send().await {
            Ok(response) if response.status().is_success() => response.bytes().await.ok(),
            _ => None,
        };
        let Some(weather) = fetched.and_then(|b| serde_json::from_slice::<Weather>(&b).ok()) else {
            let mut failed = Response::new(Body::from("the weather service failed"));
            *failed.status_mut() = StatusCode::BAD_GATEWAY;
            return failed;
        };
        let kept = Kept {
            value: weather,
            fetched_ms: now_ms(),
        };
        let bytes = serde_json::to_vec(&kept).expect("plain data");
        let _: Result<(), _> = conn
            .pset_ex(&key, bytes, cache.ttl.as_millis() as u64)
            .await;
        Response::new(Body::from(
            serde_json::to_vec(&answer(&kept, Served::Fetched)).expect("plain data"),
        ))
    }
}

/// Asks the service at `service` for `name`'s answer, once, within 2 s.
pub async fn fetch<R: Resource>(
    client: &reqwest::Client,
    service: &str,
    name: &str,
) -> Result<R, String> {
    let url = format!("{service}/{}/{name}", R::PATH);
    let response = client
        .get(&url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("it answered {}", response.status()));
    }
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    serde_json::from_slice(&body).map_err(|e| format!("an unreadable answer: {e}"))
}

/// A name as the cache keys it: trimmed, lower case.
pub fn normalised(name: &str) -> String {
    name.trim().to_lowercase()
}

fn answer<R: Clone>(kept: &Kept<R>, served: Served) -> Answer<R> {
    Answer {
        value: kept.value.clone(),
        age_s: age(kept).as_secs(),
        served,
    }
}

fn age<R>(kept: &Kept<R>) -> Duration {
    Duration::from_millis(now_ms().saturating_sub(kept.fetched_ms))
}
