//! Test fixtures: a real Redis and a real, seeded SQLite database per test.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use cache_aside::{CacheAside, Policy, Users};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use shared::{Database, DbOptions, Namespace, RedisServer, RedisTarget};

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

/// Always a private server, for tests that stop or pause it.
pub async fn private_fixture() -> Fixture {
    with_target(RedisTarget::Private(
        RedisServer::start().expect("redis-server on PATH"),
    ))
    .await
}

async fn with_target(redis: RedisTarget) -> Fixture {
    let conn = redis.connect().await.expect("connect to the test Redis");
    let db = Database::open(DbOptions {
        users: 200,
        products: 50,
        ..DbOptions::default()
    })
    .await
    .expect("open the test database");
    Fixture {
        redis,
        conn,
        db: Arc::new(db),
        ns: Namespace::new("cache-aside-test"),
    }
}

impl Fixture {
    pub fn cache(&self, policy: Policy) -> CacheAside {
        CacheAside::new(self.conn.clone(), self.ns.clone(), policy)
    }

    pub fn users(&self) -> Users {
        self.users_with(Policy::default())
    }

    pub fn users_with(&self, policy: Policy) -> Users {
        Users::new(self.db.clone(), self.cache(policy))
    }

    pub fn server(&self) -> &RedisServer {
        self.redis.server().expect("a private server")
    }

    /// The raw bytes under the lesson key `local`, if any.
    pub async fn raw(&self, local: &str) -> Option<String> {
        self.conn.clone().get(self.ns.key(local)).await.unwrap()
    }

    pub async fn exists(&self, local: &str) -> bool {
        self.conn.clone().exists(self.ns.key(local)).await.unwrap()
    }

    pub async fn pttl(&self, local: &str) -> Duration {
        let ms: i64 = self.conn.clone().pttl(self.ns.key(local)).await.unwrap();
        assert!(ms > 0, "{local} has no TTL (PTTL {ms})");
        Duration::from_millis(ms as u64)
    }
}
