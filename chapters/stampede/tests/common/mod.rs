//! The tests' stage (a real Redis, a real seeded SQLite database), the strategies built on it, and
//! a product source the tests can hold at a gate, so they decide when a load finishes instead of
//! guessing with sleeps.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::AsyncCommands;
use shared::{Database, DbOptions, Product, ServerOptions, Stage};
use stampede::{
    LoadError, LockedLoader, ProductPages, Settings, SingleFlight, Source, StaleWhileRevalidate,
    Stats, Strategy, Unprotected, XFetch,
};
use tokio::sync::watch;

fn db() -> DbOptions {
    DbOptions {
        users: 10,
        products: 200,
        max_connections: 50,
        ..DbOptions::default()
    }
}

/// `REDIS_URL` if set, else a private server.
pub async fn fixture() -> Stage {
    Stage::from_env("stampede-test", db())
        .await
        .expect("a Redis and a database for the tests")
}

/// Always a private server, for tests that stop it or count its commands.
pub async fn private_fixture() -> Stage {
    Stage::private("stampede-test", db(), ServerOptions::default())
        .await
        .expect("redis-server on PATH")
}

/// The lesson's strategies on a stage, each as a separate application instance (connections of
/// its own), and what the tests look at in Redis.
pub trait LessonStage {
    fn pages(&self) -> Arc<Pages>;
    async fn unprotected(&self, source: &Arc<Pages>, settings: &Settings) -> Unprotected<Pages>;
    async fn single_flight(&self, source: &Arc<Pages>, settings: &Settings) -> SingleFlight<Pages>;
    async fn locked(&self, source: &Arc<Pages>, settings: &Settings) -> LockedLoader<Pages>;
    /// `n` lock instances, as `n` application processes would run them.
    async fn locked_instances(
        &self,
        n: usize,
        source: &Arc<Pages>,
        settings: &Settings,
    ) -> Vec<Arc<LockedLoader<Pages>>>;
    async fn xfetch(&self, source: &Arc<Pages>, settings: &Settings) -> XFetch<Pages>;
    async fn stale(&self, source: &Arc<Pages>, settings: &Settings) -> StaleWhileRevalidate<Pages>;
    async fn exists(&self, local: &str) -> bool;
    async fn pttl_ms(&self, local: &str) -> i64;
}

impl LessonStage for Stage {
    fn pages(&self) -> Arc<Pages> {
        Arc::new(Pages::new(self.db().clone()))
    }

    async fn unprotected(&self, source: &Arc<Pages>, settings: &Settings) -> Unprotected<Pages> {
        let i = self.instance().await.unwrap();
        Unprotected::new(i.conn, i.namespace, source.clone(), settings.clone())
    }

    async fn single_flight(&self, source: &Arc<Pages>, settings: &Settings) -> SingleFlight<Pages> {
        let i = self.instance().await.unwrap();
        SingleFlight::new(i.conn, i.namespace, source.clone(), settings.clone())
    }

    async fn locked(&self, source: &Arc<Pages>, settings: &Settings) -> LockedLoader<Pages> {
        let i = self.instance().await.unwrap();
        LockedLoader::new(
            i.conn,
            i.client,
            i.namespace,
            source.clone(),
            settings.clone(),
        )
        .await
    }

    async fn locked_instances(
        &self,
        n: usize,
        source: &Arc<Pages>,
        settings: &Settings,
    ) -> Vec<Arc<LockedLoader<Pages>>> {
        let mut instances = Vec::new();
        for _ in 0..n {
            instances.push(Arc::new(self.locked(source, settings).await));
        }
        instances
    }

    async fn xfetch(&self, source: &Arc<Pages>, settings: &Settings) -> XFetch<Pages> {
        let i = self.instance().await.unwrap();
        XFetch::new(i.conn, i.namespace, source.clone(), settings.clone())
    }

    async fn stale(&self, source: &Arc<Pages>, settings: &Settings) -> StaleWhileRevalidate<Pages> {
        let i = self.instance().await.unwrap();
        StaleWhileRevalidate::new(i.conn, i.namespace, source.clone(), settings.clone())
    }

    async fn exists(&self, local: &str) -> bool {
        self.conn().exists(self.key(local)).await.unwrap()
    }

    async fn pttl_ms(&self, local: &str) -> i64 {
        self.conn().pttl(self.key(local)).await.unwrap()
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
