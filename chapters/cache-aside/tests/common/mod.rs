//! The tests' stage: a real Redis and a real, seeded SQLite database per test, and the lesson's
//! objects built on it.

#![allow(dead_code)]

use std::time::Duration;

use cache_aside::{CacheAside, Settings, Users};
use redis::AsyncCommands;
use shared::{DbOptions, ServerOptions, Stage};

fn db() -> DbOptions {
    DbOptions {
        users: 200,
        products: 50,
        ..DbOptions::default()
    }
}

/// `REDIS_URL` if set, else a private server.
pub async fn fixture() -> Stage {
    Stage::from_env("cache-aside-test", db())
        .await
        .expect("a Redis and a database for the tests")
}

/// Always a private server, for tests that stop or pause it.
pub async fn private_fixture() -> Stage {
    Stage::private("cache-aside-test", db(), ServerOptions::default())
        .await
        .expect("redis-server on PATH")
}

/// The lesson's objects on a stage, and what the tests look at in Redis.
pub trait LessonStage {
    fn cache(&self, settings: Settings) -> CacheAside;
    fn users(&self) -> Users;
    fn users_with(&self, settings: Settings) -> Users;
    /// The raw bytes under the lesson key `local`, if any.
    async fn raw(&self, local: &str) -> Option<String>;
    async fn exists(&self, local: &str) -> bool;
    /// The TTL of `local`, which must have one.
    async fn pttl(&self, local: &str) -> Duration;
}

impl LessonStage for Stage {
    fn cache(&self, settings: Settings) -> CacheAside {
        CacheAside::new(self.conn(), self.namespace().clone(), settings)
    }

    fn users(&self) -> Users {
        self.users_with(Settings::default())
    }

    fn users_with(&self, settings: Settings) -> Users {
        Users::new(self.db().clone(), self.cache(settings))
    }

    async fn raw(&self, local: &str) -> Option<String> {
        self.conn().get(self.key(local)).await.unwrap()
    }

    async fn exists(&self, local: &str) -> bool {
        self.conn().exists(self.key(local)).await.unwrap()
    }

    async fn pttl(&self, local: &str) -> Duration {
        let ms: i64 = self.conn().pttl(self.key(local)).await.unwrap();
        assert!(ms > 0, "{local} has no TTL (PTTL {ms})");
        Duration::from_millis(ms as u64)
    }
}
