//! The given parts of the blog exercise: the post type, the settings, the blog's state, its
//! database side (posts, their tags, the outbox), its keys and its cached read. Written for you;
//! the tasks are in `lib.rs`. (The worked answer in `solutions/invalidation` includes this very
//! file, so the two can never drift apart.)

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::RedisResult;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shared::budget::{self, Lookup, Trouble};
use shared::lease::Leases;
use shared::metrics::Counter;
use shared::{Database, Namespace, RedisConn, codec};
use sqlx::Row;

/// The tags of the seed data.
pub const TAGS: [&str; 4] = ["rust", "redis", "sql", "ops"];
/// The authors of the seed data.
pub const AUTHORS: [&str; 3] = ["ada", "bob", "cy"];

/// A blog post, with its tags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Post {
    /// The primary key.
    pub id: i64,
    /// Who wrote it: one of [`AUTHORS`].
    pub author: String,
    /// The title; never empty (the table refuses an empty one).
    pub title: String,
    /// Starts at 1 and rises by one with every committed change.
    pub version: i64,
    /// Its tags, in alphabetical order.
    pub tags: Vec<String>,
}

/// One outbox row: a committed change whose cache keys are still to be deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The post changed.
    pub post: i64,
    /// The version the change committed.
    pub version: i64,
    /// The cache keys to delete.
    pub keys: Vec<String>,
}

/// Why a relay pass stopped short. What it had not marked stays in the outbox.
#[derive(Debug)]
pub enum RelayError {
    /// Reading or marking the outbox failed.
    Database(sqlx::Error),
    /// Redis did not take a delete; `relayed` entries before it were relayed and marked.
    Redis {
        /// Entries relayed before the failure.
        relayed: usize,
    },
}

impl From<sqlx::Error> for RelayError {
    fn from(error: sqlx::Error) -> Self {
        RelayError::Database(error)
    }
}

/// The blog's TTL and time budget.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long a cached page lives: the last safety net.
    pub ttl: Duration,
    /// The longest any one Redis call may take.
    pub redis_timeout: Duration,
}

/// The blog of one application instance.
pub struct Blog {
    /// The blog's database; every query is counted.
    pub db: Arc<Database>,
    /// The Redis connection (clone it to get a `&mut` one: clones share the connection).
    pub redis: RedisConn,
    /// The prefix of every key; the key methods apply it.
    pub namespace: Namespace,
    /// The TTL and time budget to apply.
    pub settings: Settings,
    /// Redis calls that failed or ran out of time.
    pub redis_errors: Counter,
    /// Leases for the cached reads ([`shared::lease`]).
    pub leases: Leases,
}

impl Blog {
    /// Creates the `posts`, `post_tags` and `outbox` tables and seeds posts `1..=posts`: post
    /// `n` by `AUTHORS[n % 3]`, tagged `TAGS[n % 4]` and `TAGS[(n + 1) % 4]`, titled
    /// `Post n`, at version 1. (Setup: not counted.)
    pub async fn open(
        db: Arc<Database>,
        redis: RedisConn,
        namespace: Namespace,
        settings: Settings,
        posts: i64,
    ) -> Result<Self, sqlx::Error> {
        let mut setup = db.setup().await?;
        for statement in [
            "CREATE TABLE IF NOT EXISTS posts (
                id BIGINT PRIMARY KEY,
                author TEXT NOT NULL,
                title TEXT NOT NULL CHECK (title <> ''),
                version BIGINT NOT NULL
            )",
            "CREATE TABLE IF NOT EXISTS post_tags (
                post_id BIGINT NOT NULL,
                tag TEXT NOT NULL,
                PRIMARY KEY (post_id, tag)
            )",
            "CREATE TABLE IF NOT EXISTS outbox (
                post_id BIGINT NOT NULL,
                version BIGINT NOT NULL,
                cache_keys TEXT NOT NULL,
                relayed BIGINT NOT NULL DEFAULT 0,
                PRIMARY KEY (post_id, version)
            )",
        ] {
            sqlx::query(statement).execute(&mut *setup).await?;
        }
        for n in 1..=posts {
            sqlx::query(
                "INSERT INTO posts (id, author, title, version) VALUES ($1, $2, $3, 1) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(n)
            .bind(AUTHORS[n as usize % 3])
            .bind(format!("Post {n}"))
            .execute(&mut *setup)
            .await?;
            for tag in [TAGS[n as usize % 4], TAGS[(n as usize + 1) % 4]] {
                sqlx::query(
                    "INSERT INTO post_tags (post_id, tag) VALUES ($1, $2) \
                     ON CONFLICT (post_id, tag) DO NOTHING",
                )
                .bind(n)
                .bind(tag)
                .execute(&mut *setup)
                .await?;
            }
        }
        setup.commit().await?;
        let leases = Leases::new(
            redis.clone(),
            Duration::from_secs(5),
            settings.redis_timeout,
        );
        Ok(Blog {
            db,
            redis,
            namespace,
            settings,
            redis_errors: Counter::default(),
            leases,
        })
    }

    // ---- keys: every key of the blog shares the hash tag `{blog}`, so one script may touch
    // ---- any of them, on a cluster too.

    /// Where post `id`'s page is cached.
    pub fn post_key(&self, id: i64) -> String {
        format!("{}:post:{id}", self.namespace.key("blog"))
    }

    /// Where the page of every post tagged `tag` is cached.
    pub fn tag_key(&self, tag: &str) -> String {
        format!("{}:tag:{tag}", self.namespace.key("blog"))
    }

    /// Where the page of every post by `author` is cached.
    pub fn author_key(&self, author: &str) -> String {
        format!("{}:author:{author}", self.namespace.key("blog"))
    }

    /// The Redis set of cached keys that depend on post `id` (task 2).
    pub fn dependents_key(&self, id: i64) -> String {
        format!("{}:deps:post:{id}", self.namespace.key("blog"))
    }

    // ---- the database side

    /// Post `id`, or `None`.
    pub async fn load_post(&self, id: i64) -> Result<Option<Post>, sqlx::Error> {
        let mut conn = self.db.connection().await?;
        let rows = sqlx::query(&format!(
            "{SELECT_POSTS} WHERE p.id = $1 ORDER BY p.id, t.tag"
        ))
        .bind(id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(posts_from_rows(&rows)?.into_iter().next())
    }

    /// Every post tagged `tag`, by id.
    pub async fn load_tag_page(&self, tag: &str) -> Result<Vec<Post>, sqlx::Error> {
        let mut conn = self.db.connection().await?;
        let rows = sqlx::query(&format!(
            "{SELECT_POSTS} WHERE p.id IN (SELECT post_id FROM post_tags WHERE tag = $1) \
             ORDER BY p.id, t.tag"
        ))
        .bind(tag)
        .fetch_all(&mut *conn)
        .await?;
        posts_from_rows(&rows)
    }

    /// Every post by `author`, by id.
    pub async fn load_author_page(&self, author: &str) -> Result<Vec<Post>, sqlx::Error> {
        let mut conn = self.db.connection().await?;
        let rows = sqlx::query(&format!(
            "{SELECT_POSTS} WHERE p.author = $1 ORDER BY p.id, t.tag"
        ))
        .bind(author)
        .fetch_all(&mut *conn)
        .await?;
        posts_from_rows(&rows)
    }

    /// Sets post `id`'s title and raises its version, in one transaction (two statements: the
    /// row is read, then updated), and returns the committed post (`None`: no such post). An empty title is refused by the table: the
    /// transaction fails and nothing changes. With `outbox` keys, the same transaction records
    /// them in the outbox (task 3): both commit, or neither.
    pub async fn commit_title(
        &self,
        id: i64,
        title: &str,
        outbox: Option<&[String]>,
    ) -> Result<Option<Post>, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        // The row as it was: a real change checks it first, and the write takes a while.
        sqlx::query("SELECT version FROM posts WHERE id = $1")
            .bind(id)
            .fetch_optional(tx.conn().await)
            .await?;
        let row = sqlx::query(
            "UPDATE posts SET title = $1, version = version + 1 WHERE id = $2 RETURNING version",
        )
        .bind(title)
        .bind(id)
        .fetch_optional(tx.conn().await)
        .await?;
        let Some(row) = row else {
            // Ended here, not left to the drop: an open transaction would hold its locks until
            // the pool next touched the connection.
            tx.commit().await?;
            return Ok(None);
        };
        let version: i64 = row.try_get("version")?;
        if let Some(keys) = outbox {
            sqlx::query("INSERT INTO outbox (post_id, version, cache_keys) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(version)
                .bind(keys.join("\n"))
                .execute(tx.conn().await)
                .await?;
        }
        tx.commit().await?;
        self.load_post(id).await
    }

    /// Up to `limit` outbox entries not yet relayed, oldest first.
    pub async fn waiting_in_outbox(&self, limit: i64) -> Result<Vec<OutboxEntry>, sqlx::Error> {
        let mut conn = self.db.connection().await?;
        let rows = sqlx::query(
            "SELECT post_id, version, cache_keys FROM outbox WHERE relayed = 0 \
             ORDER BY post_id, version LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                let keys: String = row.try_get("cache_keys")?;
                Ok(OutboxEntry {
                    post: row.try_get("post_id")?,
                    version: row.try_get("version")?,
                    keys: keys.lines().map(str::to_string).collect(),
                })
            })
            .collect()
    }

    /// Marks outbox entries relayed. Marking one twice changes nothing.
    pub async fn mark_relayed(&self, entries: &[OutboxEntry]) -> Result<(), sqlx::Error> {
        for entry in entries {
            let mut conn = self.db.connection().await?;
            sqlx::query("UPDATE outbox SET relayed = 1 WHERE post_id = $1 AND version = $2")
                .bind(entry.post)
                .bind(entry.version)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    // ---- reading through the cache

    /// Post `id`'s page, cached.
    pub async fn post(&self, id: i64) -> Result<Option<Post>, sqlx::Error> {
        self.cached(&self.post_key(id), || self.load_post(id)).await
    }

    /// The page of `author`, cached.
    pub async fn author_page(&self, author: &str) -> Result<Vec<Post>, sqlx::Error> {
        self.cached(&self.author_key(author), || self.load_author_page(author))
            .await
    }

    /// Cache-aside with a lease: the value under `key`, else `load`'s, stored with the TTL if no
    /// invalidation deleted the key's lease meanwhile. Redis trouble is a miss, never an error;
    /// bytes that do not decode are a miss.
    pub async fn cached<T, F, Fut>(&self, key: &str, load: F) -> Result<T, sqlx::Error>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let corrupt = Counter::default();
        let trouble = Trouble {
            errors: &self.redis_errors,
            corrupt: &corrupt,
        };
        let lookup = budget::get::<T>(&self.redis, key, self.settings.redis_timeout, trouble).await;
        let lease = match lookup {
            Lookup::Found(value) => return Ok(value),
            Lookup::Missing => self.leases.take(key, &self.redis_errors).await,
            Lookup::Unavailable => None,
        };
        let value = load().await?;
        if let Some(token) = lease {
            let bytes = codec::encode(&value).expect("posts serialize to JSON");
            let ttl = self.settings.ttl;
            self.leases
                .store(key, &token, &bytes, ttl, &self.redis_errors)
                .await;
        }
        Ok(value)
    }

    /// Runs one Redis call within `settings.redis_timeout`. A failure or a timeout adds one to
    /// `redis_errors` and becomes `None`.
    pub async fn within_budget<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Option<T> {
        budget::within(self.settings.redis_timeout, &self.redis_errors, call).await
    }
}

/// Posts joined with their tags: one row per (post, tag).
const SELECT_POSTS: &str = "SELECT p.id, p.author, p.title, p.version, t.tag FROM posts p JOIN post_tags t ON t.post_id = p.id";

/// Folds rows of [`SELECT_POSTS`], ordered by post, into posts with their tags.
fn posts_from_rows(rows: &[sqlx::any::AnyRow]) -> Result<Vec<Post>, sqlx::Error> {
    let mut posts: Vec<Post> = Vec::new();
    for row in rows {
        let id: i64 = row.try_get("id")?;
        let tag: String = row.try_get("tag")?;
        match posts.last_mut() {
            Some(post) if post.id == id => post.tags.push(tag),
            _ => posts.push(Post {
                id,
                author: row.try_get("author")?,
                title: row.try_get("title")?,
                version: row.try_get("version")?,
                tags: vec![tag],
            }),
        }
    }
    Ok(posts)
}
