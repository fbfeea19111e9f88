//! One instance of the service: its parts, built from the lessons' crates, and its routes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http_caching::ResponseCache;
use sessions::api::AppState;
use shared::sweep::OwnedDir;
use shared::{Database, Instance, Namespace, RedisConn, SetupError};

use crate::analytics::{Analytics, Report};
use crate::disk::DiskCache;
use crate::generation::Generational;
use crate::limits::RateLimiter;
use crate::listing;
use crate::news::{News, Timing};
use crate::pages::{Layers, Pages};
use crate::products::Products;
use crate::settings::{Caching, Settings};
use crate::tasks::Tasks;
use crate::telemetry::Telemetry;
use crate::upstream::{Rates, Upstream, Weather};

/// What the instances of one deployment share: Redis, the database, the namespaces, the accounts.
#[derive(Clone)]
pub struct Shared {
    /// Redis's URL (the two-tier lesson's tracking reader opens its own connection).
    pub url: String,
    /// The database.
    pub db: Arc<Database>,
    /// Where the service's cache keys go; administration clears exactly these.
    pub cache_namespace: Namespace,
    /// Where the rate limiter's keys go.
    pub limit_namespace: Namespace,
    /// Where the views' queues and the counts not yet flushed live: not a cache, never cleared.
    pub queue_namespace: Namespace,
    /// The sessions lesson's deployment: accounts, timeouts, the sessions' namespace, the clock.
    pub sessions: sessions::Deployment,
    /// How many instances share the rate limit.
    pub instances: u32,
}

/// One instance: its caches, its limiter, its sessions.
pub struct Service {
    /// How it is set up.
    pub settings: Settings,
    /// Redis.
    pub conn: RedisConn,
    /// The database.
    pub db: Arc<Database>,
    /// See [`Shared::cache_namespace`].
    pub cache_namespace: Namespace,
    /// Product reads and writes.
    pub products: Products,
    /// Rendered pages.
    pub pages: Arc<Pages>,
    /// The analytics dashboard.
    pub analytics: Analytics,
    /// The HTTP lesson's response cache, in front of the listing (`None`: no cache).
    pub responses: Option<Arc<ResponseCache>>,
    /// Tasks and their counts.
    pub tasks: Tasks,
    /// Articles, views and trending.
    pub news: News,
    /// The weather, from the third-party service.
    pub weather: Upstream<Weather>,
    /// Exchange rates, from the same service.
    pub rates: Upstream<Rates>,
    /// The rate limiter.
    pub limiter: Arc<RateLimiter>,
    /// What the sessions lesson's handlers need.
    pub sessions: AppState,
    /// What it measures about itself.
    pub telemetry: Telemetry,
    /// Whether it takes requests: false from the moment it begins to stop (`/ready`).
    taking_requests: AtomicBool,
    /// The disk layer's folder, removed with the instance.
    _disk_folder: Option<OwnedDir>,
}

impl Service {
    /// Builds one instance on `instance` (its own Redis connection and backplane subscription),
    /// asking the third-party service at `third_party` for weather and rates.
    pub async fn new(
        settings: Settings,
        shared: &Shared,
        instance: &Instance,
        third_party: &str,
    ) -> Result<Arc<Self>, SetupError> {
        let caching = settings.caching;
        let conn = instance.conn.clone();
        let products = Products::new(
            caching,
            instance,
            &shared.url,
            shared.db.clone(),
            &shared.cache_namespace.child("products"),
            settings.products.clone(),
        )
        .await?;
        let (disk_folder, disk) = if caching.local() {
            let folder = OwnedDir::new("capstone-disk").map_err(SetupError::Io)?;
            let disk =
                DiskCache::open(folder.path(), settings.disk_budget).map_err(SetupError::Io)?;
            (Some(folder), Some(disk))
        } else {
            (None, None)
        };
        let layers = Layers {
            l1: caching.local(),
            l2: caching.redis(),
            l3: caching.local(),
        };
        let pages = Pages::new(
            shared.db.clone(),
            conn.clone(),
            shared.cache_namespace.child("pages"),
            layers,
            disk,
            settings.pages.clone(),
        );
        let redis_timeout = settings.pages.redis_timeout;
        let generational = |name: &str, ttl| {
            let namespace = shared.cache_namespace.child(name);
            caching
                .redis()
                .then(|| Generational::new(conn.clone(), namespace, ttl, redis_timeout))
        };
        let responses = caching.redis().then(|| {
            let namespace = shared.cache_namespace.child("responses");
            // With conditional requests, it answers a kept ETag from Redis with a 304.
            let conditional = caching == Caching::Conditional;
            ResponseCache::new(
                conn.clone(),
                namespace,
                listing::describe,
                conditional,
                redis_timeout,
            )
        });
        let tasks = Tasks::new(shared.db.clone(), generational("tasks", settings.stats_ttl));
        let news = if caching.redis() {
            // A consumer name of its own: the instances' flushers share each queue's work.
            let consumer = format!("instance-{:016x}", rand::random::<u64>());
            let cache = shared.cache_namespace.child("news");
            let timing = Timing {
                trending_ttl: settings.trending_ttl,
                list_ttl: settings.stats_ttl,
                redis_timeout,
            };
            let (db, url, queues) = (
                shared.db.clone(),
                &shared.url,
                shared.queue_namespace.clone(),
            );
            News::cached(db, conn.clone(), url, cache, queues, &consumer, timing).await?
        } else {
            News::direct(shared.db.clone())
        };
        let report = Report::new(shared.db.clone(), settings.report_cost);
        let analytics = if caching.redis() {
            let namespace = shared.cache_namespace.child("analytics");
            let fresh = settings.dashboard_fresh;
            Analytics::cached(report, conn.clone(), namespace, fresh, redis_timeout)
        } else {
            Analytics::Direct(report)
        };
        let upstream_cache = |name: &str| {
            let namespace = shared.cache_namespace.child(name);
            caching.redis().then(|| (conn.clone(), namespace))
        };
        let weather = Upstream::new(
            third_party.to_string(),
            upstream_cache("weather"),
            redis_timeout,
        );
        let rates = Upstream::new(
            third_party.to_string(),
            upstream_cache("rates"),
            redis_timeout,
        );
        let limiter = Arc::new(RateLimiter::new(
            conn.clone(),
            shared.limit_namespace.clone(),
            settings.rate_limit,
            shared.instances,
            settings.api_keys,
        ));
        let deployment = &shared.sessions;
        let sessions = AppState {
            accounts: deployment.accounts.clone(),
            store: deployment.store(),
            timeouts: deployment.timeouts,
            clock: deployment.clock.clone(),
        };
        Ok(Arc::new(Service {
            settings,
            conn,
            db: shared.db.clone(),
            cache_namespace: shared.cache_namespace.clone(),
            products,
            pages,
            analytics,
            responses,
            tasks,
            news,
            weather,
            rates,
            limiter,
            sessions,
            telemetry: Telemetry::new(),
            taking_requests: AtomicBool::new(true),
            _disk_folder: disk_folder,
        }))
    }

    /// Whether it takes requests (what `/ready` says).
    pub fn taking_requests(&self) -> bool {
        self.taking_requests.load(Ordering::Relaxed)
    }

    /// Says, from now on, that it takes no more requests: the first step of a stop.
    pub fn stop_taking_requests(&self) {
        self.taking_requests.store(false, Ordering::Relaxed);
    }

    /// Drops the pages this instance holds, in memory and on disk (after an administrator cleared
    /// Redis). Its product L1 and the other instance's copies run out within their TTLs: a second
    /// for L1, the page TTL for the other instance's disk.
    pub async fn forget_local(&self) {
        self.pages.forget().await;
    }
}
