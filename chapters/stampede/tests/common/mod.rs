//! Test fixtures: a real Redis, a real seeded SQLite database, and a product source the tests can
//! hold at a gate, so they decide when a load finishes instead of guessing with sleeps.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use shared::{Database, DbOptions, Namespace, Product, RedisServer, RedisTarget};
use stampede::{
    LoadError, LockedLoader, Policy, ProductPages, SingleFlight, Source, StaleWhileRevalidate,
    Stats, Strategy, Unprotected, XFetch,
};
use tokio::sync::watch;

pub struct Fixture {
    pub redis: RedisTarget,
    pub conn: ConnectionManager,
    pub db: Arc<Database>,
    pub ns: Namespace,
}

/// `REDIS_URL` if set, else a private server.
pub async fn fixture() -> Fixture {
    with_target(RedisTarget::from_env().expect("a Redis for the tests")).await
}

/// Always a private server, for tests that stop it or count its commands.
pub async fn private_fixture() -> Fixture {
    with_target(RedisTarget::Private(
        RedisServer::start().expect("redis-server on PATH"),
    ))
    .await
}

async fn with_target(redis: RedisTarget) -> Fixture {
    let conn = redis.connect().await.expect("connect to the test Redis");
    let db = Database::open(DbOptions {
        users: 10,
        products: 200,
        max_connections: 50,
        ..DbOptions::default()
    })
    .await
    .expect("open the test database");
    Fixture {
        redis,
        conn,
        db: Arc::new(db),
        ns: Namespace::new("stampede-test"),
    }
}

impl Fixture {
    pub fn server(&self) -> &RedisServer {
        self.redis.server().expect("a private server")
    }

    pub fn pages(&self) -> Arc<Pages> {
        Arc::new(Pages::new(self.db.clone()))
    }

    /// A connection of its own, as a separate application instance would have.
    pub async fn instance_conn(&self) -> ConnectionManager {
        self.redis.connect().await.expect("connect an instance")
    }

    pub async fn unprotected(&self, source: &Arc<Pages>, policy: &Policy) -> Unprotected<Pages> {
        let conn = self.instance_conn().await;
        Unprotected::new(conn, self.ns.clone(), source.clone(), policy.clone())
    }

    pub async fn single_flight(&self, source: &Arc<Pages>, policy: &Policy) -> SingleFlight<Pages> {
        let conn = self.instance_conn().await;
        SingleFlight::new(conn, self.ns.clone(), source.clone(), policy.clone())
    }

    pub async fn locked(&self, source: &Arc<Pages>, policy: &Policy) -> LockedLoader<Pages> {
        let conn = self.instance_conn().await;
        let client = shared::connection::client(&self.redis.url()).unwrap();
        LockedLoader::new(
            conn,
            client,
            self.ns.clone(),
            source.clone(),
            policy.clone(),
        )
        .await
    }

    /// `n` lock instances, as `n` application processes would run them.
    pub async fn locked_instances(
        &self,
        n: usize,
        source: &Arc<Pages>,
        policy: &Policy,
    ) -> Vec<Arc<LockedLoader<Pages>>> {
        let mut instances = Vec::new();
        for _ in 0..n {
            instances.push(Arc::new(self.locked(source, policy).await));
        }
        instances
    }

    pub async fn xfetch(&self, source: &Arc<Pages>, policy: &Policy) -> XFetch<Pages> {
        let conn = self.instance_conn().await;
        XFetch::new(conn, self.ns.clone(), source.clone(), policy.clone())
    }

    pub async fn stale(&self, source: &Arc<Pages>, policy: &Policy) -> StaleWhileRevalidate<Pages> {
        let conn = self.instance_conn().await;
        StaleWhileRevalidate::new(conn, self.ns.clone(), source.clone(), policy.clone())
    }

    pub async fn exists(&self, local: &str) -> bool {
        self.conn.clone().exists(self.ns.key(local)).await.unwrap()
    }

    pub async fn pttl_ms(&self, local: &str) -> i64 {
        self.conn.clone().pttl(self.ns.key(local)).await.unwrap()
    }
}

/// Product pages from the test database, with a gate the test opens and a count of loads started.
pub struct Pages {
    pages: ProductPages,
    open: watch::Sender<bool>,
    started: watch::Sender<u64>,
    /// When set, the next load never finishes: a lock holder that hangs or dies mid-load.
    hang_next: AtomicBool,
}

impl Pages {
    pub fn new(db: Arc<Database>) -> Self {
        Pages {
            pages: ProductPages::new(db),
            open: watch::Sender::new(true),
            started: watch::Sender::new(0),
            hang_next: AtomicBool::new(false),
        }
    }

    /// From now on loads wait at the gate until [`Pages::open`].
    pub fn close(&self) {
        self.open.send_replace(false);
    }

    pub fn open(&self) {
        self.open.send_replace(true);
    }

    pub fn hang_next(&self) {
        self.hang_next.store(true, Ordering::SeqCst);
    }

    pub fn started(&self) -> u64 {
        *self.started.borrow()
    }

    /// Returns once `n` loads have started (whether or not they finished).
    pub async fn until_started(&self, n: u64) {
        let mut started = self.started.subscribe();
        tokio::time::timeout(Duration::from_secs(10), started.wait_for(|s| *s >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} loads did not start; {} did", self.started()))
            .unwrap();
    }
}

impl Source for Pages {
    type Value = Product;

    async fn load(&self, key: &str) -> Result<Product, LoadError> {
        self.started.send_modify(|n| *n += 1);
        if self.hang_next.swap(false, Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let mut open = self.open.subscribe();
        open.wait_for(|open| *open).await.expect("gate alive");
        self.pages.load(key).await
    }
}

/// Sends `n` concurrent requests for `key`, request `i` to instance `i % instances.len()`, and
/// returns every answer.
pub async fn burst<T>(
    instances: &[Arc<T>],
    key: &str,
    n: usize,
) -> Vec<Result<T::Value, stampede::Error>>
where
    T: Strategy,
    T::Value: 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let instance = instances[i % instances.len()].clone();
            let barrier = barrier.clone();
            let key = key.to_string();
            tokio::spawn(async move {
                barrier.wait().await;
                instance.get(&key).await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for task in tasks {
        answers.push(task.await.expect("request task"));
    }
    answers
}

/// The stats of all instances added up.
pub fn total<T: Strategy>(instances: &[Arc<T>]) -> Stats {
    instances.iter().map(|i| i.stats()).sum()
}

/// Waits, checking every few ms, until `condition` holds; panics after 10 s.
pub async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
