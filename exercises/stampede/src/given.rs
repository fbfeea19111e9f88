//! The given parts of the storefront exercise: settings, errors, the lock's state, the page
//! record, the storefront's state, its keys, and reading and waiting for a cached listing.
//! Written for you; the tasks are in `lib.rs`. (The worked answer in `solutions/stampede`
//! includes this very file, so the two can never drift apart.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{AsyncCommands, RedisResult};
use serde::{Deserialize, Serialize};
use shared::RedisConn;
use shared::{Database, Namespace, Product, codec};

/// Lifetimes and patience of the storefront's cache.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Task 2: lifetime of a cached listing.
    pub ttl: Duration,
    /// Tasks 2 and 3: how long a lock lives if its holder never releases it.
    pub lock_ttl: Duration,
    /// Task 2: the longest a request waits for another request's load.
    pub max_wait: Duration,
    /// Task 3: how long a page is fresh.
    pub soft_ttl: Duration,
    /// Task 3: how long a page is kept at all (stale after `soft_ttl`, gone after this).
    pub hard_ttl: Duration,
}

/// Why the storefront could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StorefrontError {
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Redis failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Another request is loading this listing and it did not arrive within `max_wait`.
    #[error("the {category} listing is being loaded by another request; try again shortly")]
    Busy {
        /// The listing asked for.
        category: String,
    },
}

/// A lock in Redis, held by whoever knows its token.
#[derive(Debug)]
pub struct Lock {
    /// The lock's key.
    pub(crate) key: String,
    /// The random token that proves the lock is ours.
    pub(crate) token: String,
}

impl Lock {
    /// The lock's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The token that proves the lock is ours.
    pub fn token(&self) -> &str {
        &self.token
    }
}

/// What task 3 stores under a page key: the listing and the end of its freshness.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PageRecord {
    /// The listing.
    pub products: Vec<Product>,
    /// Milliseconds since the Unix epoch after which `products` is stale.
    pub fresh_until_ms: u64,
}

/// Milliseconds since the Unix epoch, the clock every instance shares.
pub use shared::clock::now_ms;

/// One application instance's storefront: the database, the Redis connection and settings.
#[derive(Clone)]
pub struct Storefront {
    /// The shop's database; every query is counted.
    pub db: Arc<Database>,
    /// The Redis connection (clone it to get a `&mut` one: clones share the connection).
    pub redis: RedisConn,
    /// The prefix of every key; the key helpers apply it.
    pub namespace: Namespace,
    /// The lifetimes and patience to apply.
    pub settings: Settings,
}

impl Storefront {
    /// A storefront over `db`, cached through `redis` under `namespace`.
    pub fn new(
        db: Arc<Database>,
        redis: RedisConn,
        namespace: Namespace,
        settings: Settings,
    ) -> Self {
        Storefront {
            db,
            redis,
            namespace,
            settings,
        }
    }

    /// Where task 2 caches the listing of `category`.
    pub fn listing_key(&self, category: &str) -> String {
        self.namespace.key(&format!("listing:{category}"))
    }

    /// The lock that lets one request load the listing of `category`.
    pub fn listing_lock_key(&self, category: &str) -> String {
        format!("{}:lock", self.listing_key(category))
    }

    /// Where task 3 caches the page of `category`.
    pub fn page_key(&self, category: &str) -> String {
        self.namespace.key(&format!("page:{category}"))
    }

    /// The lock that lets one request refresh the page of `category`.
    pub fn page_refresh_key(&self, category: &str) -> String {
        format!("{}:refresh", self.page_key(category))
    }

    /// The cached listing of `category`, if any (an unreadable entry counts as none).
    pub async fn cached_listing(&self, category: &str) -> RedisResult<Option<Vec<Product>>> {
        let bytes: Option<Vec<u8>> = self.redis.clone().get(self.listing_key(category)).await?;
        Ok(bytes.and_then(|b| codec::decode(&b).ok()))
    }

    /// Waits until the listing of `category` is cached and returns it, checking every 5 ms.
    /// Returns `None` once `limit` has passed, or as soon as the listing's lock is gone with no
    /// listing stored (its holder failed or died): then it is worth trying the lock again.
    ///
    /// (Polling every 5 ms is simple and good enough here; the chapter's `LockedLoader` is woken
    /// by a pub/sub message instead.)
    pub async fn wait_for_listing(
        &self,
        category: &str,
        limit: Duration,
    ) -> RedisResult<Option<Vec<Product>>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(products) = self.cached_listing(category).await? {
                return Ok(Some(products));
            }
            let locked: bool = self
                .redis
                .clone()
                .exists(self.listing_lock_key(category))
                .await?;
            if !locked || Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
