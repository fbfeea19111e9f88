//! The application as one instance serves it, with the sessions of each configuration the demo
//! compares.

use std::time::Duration;

use axum::Router;
use serde::Serialize;
use shared::{Namespace, RedisConn};
use shared_http::Served;
use tower_sessions::cookie::SameSite;
use tower_sessions::cookie::time::Duration as CookieDuration;
use tower_sessions::{CachingSessionStore, Expiry, SessionManagerLayer};

use crate::accounts::Accounts;
use crate::api::{self, AppState};
use crate::source::{self, LocalCopy, SourceState};
use crate::store::RedisStore;
use crate::timeouts::{Clock, Timeouts};

/// Whose sessions an instance runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sessions {
    /// The source material's: any password, no rotation, a sliding expiry written on every
    /// request, a copy in each instance's memory.
    Source,
    /// The lesson's, with the idle deadline pushed out on every request.
    EveryRequest,
    /// The lesson's: the deadline pushed out only past the threshold.
    Lesson,
}

impl Sessions {
    /// Every configuration, in the order the demo reports them.
    pub const ALL: [Sessions; 3] = [Sessions::Source, Sessions::EveryRequest, Sessions::Lesson];

    /// The demo's label.
    pub fn label(self) -> &'static str {
        match self {
            Sessions::Source => "source's",
            Sessions::EveryRequest => "lesson's, every request",
            Sessions::Lesson => "lesson's, threshold",
        }
    }

    /// A short name for keys.
    pub fn slug(self) -> &'static str {
        match self {
            Sessions::Source => "source",
            Sessions::EveryRequest => "every-request",
            Sessions::Lesson => "lesson",
        }
    }
}

/// What the instances of one configuration share: Redis, the accounts, the timeouts, the clock.
#[derive(Clone)]
pub struct Deployment {
    /// The configuration.
    pub sessions: Sessions,
    /// Redis.
    pub conn: RedisConn,
    /// Where the sessions' keys go.
    pub namespace: Namespace,
    /// The accounts.
    pub accounts: Accounts,
    /// The timeouts (the source uses only `idle`, as its sliding expiry).
    pub timeouts: Timeouts,
    /// How long the source's per-instance copy lives after each write.
    pub local_copy: Duration,
    /// Whether the cookie is `Secure` (sent over HTTPS only): yes behind TLS; the demo serves
    /// plain HTTP on loopback and turns it off (browsers refuse a `Secure` cookie over plain
    /// HTTP, except from localhost).
    pub secure: bool,
    /// The servers' clock.
    pub clock: Clock,
}

impl Deployment {
    /// One instance's application, and its Redis store (whose counts are this instance's).
    pub fn instance(&self) -> (Router, RedisStore) {
        let store = self.store();
        let idle = CookieDuration::milliseconds(self.timeouts.idle.as_millis() as i64);
        let router = match self.sessions {
            Sessions::Source => {
                let both = CachingSessionStore::new(LocalCopy::new(self.local_copy), store.clone());
                // The source's cookie is HttpOnly and Lax, and never Secure.
                let layer = cookie_rules(SessionManagerLayer::new(both), false)
                    .with_expiry(Expiry::OnInactivity(idle))
                    .with_always_save(true);
                source::routes(SourceState {
                    accounts: self.accounts.clone(),
                    clock: self.clock.clone(),
                })
                .layer(layer)
            }
            Sessions::EveryRequest | Sessions::Lesson => {
                let mut timeouts = self.timeouts;
                if self.sessions == Sessions::EveryRequest {
                    timeouts.refresh_after = Duration::ZERO;
                }
                api::routes(AppState {
                    accounts: self.accounts.clone(),
                    store: store.clone(),
                    timeouts,
                    clock: self.clock.clone(),
                })
                .layer(self.layer(&store))
            }
        };
        (router, store)
    }

    /// The lesson's session middleware over `store`, for routes of a service of its own (the
    /// capstone's). An anonymous session (a cart) lives `idle` after its last change.
    pub fn layer(&self, store: &RedisStore) -> SessionManagerLayer<RedisStore> {
        let idle = CookieDuration::milliseconds(self.timeouts.idle.as_millis() as i64);
        cookie_rules(SessionManagerLayer::new(store.clone()), self.secure)
            .with_expiry(Expiry::OnInactivity(idle))
    }

    /// A Redis store for one instance of this deployment.
    pub fn store(&self) -> RedisStore {
        RedisStore::new(
            self.conn.clone(),
            self.namespace.clone(),
            self.timeouts.absolute.as_millis() as u64,
        )
    }
}

/// A configuration's instances, each on a loopback port of its own, behind no load balancer: the
/// clients choose the instance of every request, as a round-robin balancer would.
pub struct Running {
    /// The instances.
    pub instances: Vec<Served>,
    /// Their stores, whose counts are the Redis commands each instance sent.
    pub stores: Vec<RedisStore>,
}

impl Deployment {
    /// Starts `count` instances.
    pub async fn start(&self, count: usize) -> std::io::Result<Running> {
        let mut running = Running {
            instances: Vec::new(),
            stores: Vec::new(),
        };
        for _ in 0..count {
            let (router, store) = self.instance();
            running
                .instances
                .push(Served::start("an instance", router).await?);
            running.stores.push(store);
        }
        Ok(running)
    }
}

impl Running {
    /// The URL of `path` on instance `i` (any `i`: it wraps around).
    pub fn url(&self, i: usize, path: &str) -> String {
        self.instances[i % self.instances.len()].url(path)
    }

    /// Redis reads and writes sent by every instance's store so far.
    pub fn commands(&self) -> (u64, u64) {
        self.stores.iter().fold((0, 0), |(reads, writes), store| {
            (
                reads + store.stats.reads.get(),
                writes + store.stats.writes.get(),
            )
        })
    }

    /// Stops every instance.
    pub async fn stop(self) -> anyhow::Result<()> {
        for instance in self.instances {
            instance.stop().await?;
        }
        Ok(())
    }
}

// ANCHOR: cookie
/// The cookie's attributes: `HttpOnly` (no script reads it, so an injected script cannot send it
/// away), `SameSite=Lax` (no cross-site POST carries it), `Path=/`, and `Secure` (never sent over
/// plain HTTP) when `secure`.
fn cookie_rules<S: tower_sessions::SessionStore>(
    layer: SessionManagerLayer<S>,
    secure: bool,
) -> SessionManagerLayer<S> {
    layer
        .with_name(crate::client::COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_secure(secure)
}
// ANCHOR_END: cookie
