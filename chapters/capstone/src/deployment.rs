//! The service deployed: its tables, and instances on loopback ports sharing Redis and the
//! database, as the demo and the tests run it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http_caching::upstream::FakeUpstream;
use sessions::{Accounts, Clock, Timeouts};
use shared::worker::Worker;
use shared::{Database, Instance, Stage};
use shared_http::Served;

use crate::service::{Service, Shared};
use crate::settings::Settings;
use crate::tasks;

/// The sessions' timeouts: OWASP's ranges for an application of ordinary risk.
pub const TIMEOUTS: Timeouts = Timeouts {
    idle: Duration::from_secs(15 * 60),
    absolute: Duration::from_secs(8 * 3_600),
    refresh_after: Duration::from_secs(60),
};

/// Articles on the news site.
pub const ARTICLES: i64 = 200;

/// Creates the service's tables on the stage's database: `items` (seeded `1..=items`, new IDs
/// from a sequence after them) and the `outbox` of what their writes owe the caches, `tasks`,
/// `articles` and `scores` (the news site's [`ARTICLES`] and their views), and `accounts` (`users`
/// of them, user 1 the administrator).
pub async fn create_tables(stage: &Stage, items: i64, users: i64) -> anyhow::Result<Accounts> {
    let db = stage.db();
    shared::db::items::create(db, items)
        .await
        .context("could not create the items table")?;
    crate::catalog::create_id_sequence(db, items)
        .await
        .context("could not create the product IDs' sequence")?;
    invalidation::catalog::create_outbox(db)
        .await
        .context("could not create the outbox table")?;
    crate::news::create_tables(db, ARTICLES)
        .await
        .context("could not create the articles and scores tables")?;
    tasks::create_table(db)
        .await
        .context("could not create the tasks table")?;
    Accounts::create(db.clone(), users)
        .await
        .context("could not create the accounts table")
}

/// One configuration's shared parts on `stage`, its keys under `name` so that configurations
/// never share a cache entry.
pub fn shared_parts(stage: &Stage, accounts: Accounts, name: &str, instances: u32) -> Shared {
    let namespace = stage.namespace().child(name);
    Shared {
        url: stage.redis_url(),
        db: stage.db().clone(),
        cache_namespace: namespace.child("cache"),
        limit_namespace: namespace.child("limits"),
        queue_namespace: namespace.child("views"),
        sessions: sessions::Deployment {
            sessions: sessions::Sessions::Lesson,
            conn: stage.conn(),
            namespace: namespace.child("sessions"),
            accounts,
            timeouts: TIMEOUTS,
            local_copy: Duration::ZERO,
            // Plain HTTP on loopback; behind TLS this is true.
            secure: false,
            clock: Clock::default(),
        },
        instances,
    }
}

/// The service running: its instances, each with its own Redis connection and port, and the
/// third-party service they ask for weather and rates.
pub struct Running {
    /// The instances' parts, for the demo's counts and the tests.
    pub services: Vec<Arc<Service>>,
    /// Their servers.
    pub served: Vec<Served>,
    /// The third-party service (its calls are counted).
    pub third_party: Arc<FakeUpstream>,
    /// Its server.
    third_party_served: Served,
    /// Each instance's outbox relay (none without a cache).
    relays: Vec<Worker>,
    /// The relays' handle on the database: their polls are counted here, not with the requests'.
    relay_db: Arc<Database>,
    /// Their Redis connections and subscriptions, kept for as long as they serve.
    _instances: Vec<Instance>,
}

/// A configuration and its shared parts.
pub struct Deployment {
    /// What every instance is set up with.
    pub settings: Settings,
    /// What they share.
    pub shared: Shared,
}

impl Deployment {
    /// Starts `shared.instances` instances on `stage`, each on a free loopback port.
    pub async fn start(&self, stage: &Stage) -> anyhow::Result<Running> {
        self.start_on(stage, 0).await
    }

    /// Starts the instances on loopback ports `port`, `port + 1`, ... (0: free ones), and the
    /// third-party service on a free one.
    pub async fn start_on(&self, stage: &Stage, port: u16) -> anyhow::Result<Running> {
        let third_party = crate::upstream::service();
        let third_party_served =
            Served::start("the weather and rates service", third_party.routes())
                .await
                .context("could not start the third-party service on loopback")?;
        let third_party_url = third_party_served.url("");
        let db = stage.db();
        let relay_db = Database::attach(db.attachment().clone(), db.latency())
            .await
            .context("could not open the relays' connections to the database")?;
        let mut running = Running {
            services: Vec::new(),
            served: Vec::new(),
            third_party,
            third_party_served,
            relays: Vec::new(),
            relay_db: Arc::new(relay_db),
            _instances: Vec::new(),
        };
        for i in 0..self.shared.instances {
            let instance = stage.instance().await?;
            let settings = self.settings.clone();
            let service = Service::new(settings, &self.shared, &instance, &third_party_url).await?;
            let routes = crate::routes::routes(&service, &self.shared.sessions);
            let port = if port == 0 { 0 } else { port + i as u16 };
            let served = Served::start_on("a capstone instance", routes, port)
                .await
                .with_context(|| format!("could not listen on loopback port {port}"))?;
            running.served.push(served);
            if self.settings.caching.redis() {
                let relay_db = running.relay_db.clone();
                let relay = crate::dependents::start_relay(&service, relay_db);
                running.relays.push(relay);
            }
            running.services.push(service);
            running._instances.push(instance);
        }
        Ok(running)
    }
}

impl Running {
    /// The queries the outbox relays have made so far (their polls included).
    pub fn relay_queries(&self) -> u64 {
        self.relay_db.queries()
    }

    /// The URL of `path` on instance `i` (any `i`: it wraps around).
    pub fn url(&self, i: usize, path: &str) -> String {
        self.served[i % self.served.len()].url(path)
    }

    /// Stops every instance: the requests in flight finish first, then the outbox relays (what
    /// they leave waiting, the next start relays), then the prefetches and the
    /// upstream fetches; the dashboard's refresh is abandoned; then the flushers stop once the
    /// views queued are written.
    pub async fn stop(self) -> anyhow::Result<()> {
        for served in self.served {
            served.stop().await?;
        }
        for relay in self.relays {
            relay.stop().await?;
        }
        for service in &self.services {
            service.pages.settle().await;
            service.weather.settle().await;
            service.rates.settle().await;
            service.analytics.stop().await;
            service.news.drain().await;
        }
        self.third_party_served.stop().await?;
        Ok(())
    }
}
