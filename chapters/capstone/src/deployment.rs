//! The service deployed: its tables, and instances on loopback ports sharing Redis and the
//! database, as the demo and the tests run it.

use std::net::SocketAddr;
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
    /// The instances' parts, for the demo's counts and the tests (a killed instance's stay here,
    /// dead, until it restarts).
    pub services: Vec<Arc<Service>>,
    /// Their servers (`None` while killed).
    served: Vec<Option<Served>>,
    /// Where each listens.
    addrs: Vec<SocketAddr>,
    /// The third-party service (its calls are counted).
    pub third_party: Arc<FakeUpstream>,
    /// Its server.
    third_party_served: Served,
    /// Each instance's outbox relay (none without a cache, or while killed).
    relays: Vec<Option<Worker>>,
    /// The relays' handle on the database: their polls are counted here, not with the requests'.
    relay_db: Arc<Database>,
    /// Their Redis connections and subscriptions, kept for as long as they serve.
    instances: Vec<Instance>,
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
        let db = stage.db();
        let relay_db = Database::attach(db.attachment().clone(), db.latency())
            .await
            .context("could not open the relays' connections to the database")?;
        let mut running = Running {
            services: Vec::new(),
            served: Vec::new(),
            addrs: Vec::new(),
            third_party,
            third_party_served,
            relays: Vec::new(),
            relay_db: Arc::new(relay_db),
            instances: Vec::new(),
        };
        for i in 0..self.shared.instances {
            let port = if port == 0 { 0 } else { port + i as u16 };
            let (service, served, relay, instance) = self.instance(stage, &running, port).await?;
            running.addrs.push(served.addr());
            running.served.push(Some(served));
            running.relays.push(relay);
            running.services.push(service);
            running.instances.push(instance);
        }
        Ok(running)
    }

    /// One instance on loopback port `port` (0: a free one): its parts, its server, its outbox
    /// relay (with a cache) and its connections.
    async fn instance(
        &self,
        stage: &Stage,
        running: &Running,
        port: u16,
    ) -> anyhow::Result<(Arc<Service>, Served, Option<Worker>, Instance)> {
        let instance = stage.instance().await?;
        let settings = self.settings.clone();
        let third_party_url = running.third_party_served.url("");
        let service = Service::new(settings, &self.shared, &instance, &third_party_url).await?;
        let routes = crate::routes::routes(&service, &self.shared.sessions);
        let served = Served::start_on("a capstone instance", routes, port)
            .await
            .with_context(|| format!("could not listen on loopback port {port}"))?;
        let relay = self.settings.caching.redis().then(|| {
            let relay_db = running.relay_db.clone();
            crate::dependents::start_relay(&service, relay_db)
        });
        Ok((service, served, relay, instance))
    }

    /// Starts instance `i` of `running` again, killed before, on its old port: empty memory,
    /// a new disk folder, a new flusher and relay.
    pub async fn restart(
        &self,
        stage: &Stage,
        running: &mut Running,
        i: usize,
    ) -> anyhow::Result<()> {
        let port = running.addrs[i].port();
        let (service, served, relay, instance) = self.instance(stage, running, port).await?;
        running.services[i] = service;
        running.served[i] = Some(served);
        running.relays[i] = relay;
        running.instances[i] = instance;
        Ok(())
    }
}

impl Running {
    /// The queries the outbox relays have made so far (their polls included).
    pub fn relay_queries(&self) -> u64 {
        self.relay_db.queries()
    }

    /// The URL of `path` on instance `i` (any `i`: it wraps around).
    pub fn url(&self, i: usize, path: &str) -> String {
        format!("http://{}{path}", self.addrs[i % self.addrs.len()])
    }

    /// Kills instance `i` as near as a crash as one process allows: its port closes at once
    /// (what is sent to it is refused) and so do its connections (a client's kept-alive one
    /// would otherwise go on reaching the dead instance); its outbox relay and its views'
    /// flusher are dropped mid-work without draining (what they held waits in the outbox and
    /// in Redis for the other instance's); its prefetches and its dashboard refresh are
    /// abandoned. Unlike a crash, the requests it was already answering finish.
    /// [`Deployment::restart`] brings it back.
    pub async fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        self.relays[i] = None;
        let service = &self.services[i];
        service.news.abandon();
        service.analytics.stop().await;
        if let Some(served) = self.served[i].take() {
            served.stop().await?;
        }
        Ok(())
    }

    /// Stops every instance: `/ready` says no first, then the requests in flight finish, then the outbox relays (what
    /// they leave waiting, the next start relays), then the prefetches and the
    /// upstream fetches; the dashboard's refresh is abandoned; then the flushers stop once the
    /// views queued are written.
    pub async fn stop(self) -> anyhow::Result<()> {
        for service in &self.services {
            service.stop_taking_requests();
        }
        for served in self.served.into_iter().flatten() {
            served.stop().await?;
        }
        for relay in self.relays.into_iter().flatten() {
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
