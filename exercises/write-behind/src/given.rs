//! The given parts of the page-view exercise: the row and entry types, the settings, the
//! counter's state, its database side, the cold-page fill and the stream read. Written for you;
//! the tasks are in `lib.rs`. (The worked answer in `solutions/write-behind` includes this very
//! file, so the two can never drift apart.)

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, RedisResult, Script};
use shared::RedisConn;
use shared::metrics::Counter;
use shared::{Database, Namespace};
use sqlx::Row;

/// The consumer group every flusher reads the queue in.
pub const GROUP: &str = "flushers";

/// A page's view count and the version of its last write: 0 for the seed row, one more for
/// every acknowledged write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewCount {
    /// The page, e.g. `page-3`.
    pub page: String,
    /// Views so far; never negative.
    pub views: i64,
    /// The version of the write that produced this count.
    pub version: i64,
}

/// One queued write, as a flusher reads it from the stream: the count *after* the write, not
/// the views it added, so that applying it twice changes nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The stream entry id, `<ms>-<seq>`: what `XACK` and `XDEL` take.
    pub id: String,
    /// The page.
    pub page: String,
    /// The page's views after the write.
    pub views: i64,
    /// The write's version.
    pub version: i64,
}

impl Entry {
    /// The entry in a stream reply (`XREADGROUP`, `XAUTOCLAIM`), or `None` if it lacks a field
    /// (`page`, `views`, `version`).
    pub fn from_stream(id: &StreamId) -> Option<Entry> {
        Some(Entry {
            id: id.id.clone(),
            page: id.get("page")?,
            views: id.get("views")?,
            version: id.get("version")?,
        })
    }
}

/// The counter's tuning.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The most entries one flush reads, and so the most rows of one upsert: at most 1,000, so
    /// one statement's 3,000 parameters stay within both databases' limits.
    pub batch_size: usize,
    /// How long a read for new entries waits when the queue is empty.
    pub block: Duration,
    /// How long an entry must have been pending with another consumer before it is claimed.
    pub claim_idle: Duration,
    /// The TTL a page's cached count gets once it is flushed (clean). A dirty count has none.
    pub ttl: Duration,
    /// The longest any one Redis call may take.
    pub redis_timeout: Duration,
}

/// Why a write was not acknowledged.
#[derive(Debug)]
pub enum WriteError {
    /// Redis, which holds the queue, failed or did not answer in time. Nothing was written to
    /// the database instead: the queue may hold older writes that would overwrite it.
    QueueUnavailable(redis::RedisError),
    /// Reading the page's row (to cache a cold page) failed.
    Database(sqlx::Error),
    /// There is no such page.
    NoSuchPage(String),
    /// The page's cached count is gone while writes of it are still queued (see
    /// [`Views::fill`]); try again once they are flushed.
    Behind(String),
}

impl From<redis::RedisError> for WriteError {
    fn from(error: redis::RedisError) -> Self {
        WriteError::QueueUnavailable(error)
    }
}

impl From<sqlx::Error> for WriteError {
    fn from(error: sqlx::Error) -> Self {
        WriteError::Database(error)
    }
}

/// Why a flush did not complete. Whatever was read and not acknowledged stays pending.
#[derive(Debug)]
pub enum FlushError {
    /// Reading, acknowledging or claiming failed.
    Redis(redis::RedisError),
    /// The transaction failed; nothing of it was applied.
    Database(sqlx::Error),
}

impl From<redis::RedisError> for FlushError {
    fn from(error: redis::RedisError) -> Self {
        FlushError::Redis(error)
    }
}

impl From<sqlx::Error> for FlushError {
    fn from(error: sqlx::Error) -> Self {
        FlushError::Database(error)
    }
}

/// Caches a page's row read from the database, with its TTL, unless the page is cached already
/// or the register holds a newer version than the row (a write is still queued: the row is
/// behind). KEYS: the count, the register. ARGV: page, views, version, TTL in ms.
const FILL: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
local issued = tonumber(redis.call('HGET', KEYS[2], ARGV[1]))
if issued and issued > tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], 'views', ARGV[2], 'version', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
";

/// The page-view counter of one application instance, and its flusher.
pub struct Views {
    /// The site's database; every query is counted.
    pub db: Arc<Database>,
    /// The Redis connection (clone it to get a `&mut` one: clones share the connection).
    pub redis: RedisConn,
    /// The prefix of every key; [`Views::key`], [`Views::queue`] and [`Views::versions`] apply
    /// it.
    pub namespace: Namespace,
    /// The tuning to apply.
    pub settings: Settings,
    /// Redis calls that failed or ran out of time.
    pub redis_errors: Counter,
}

impl Views {
    /// Creates the `page_views` table in `db`, seeds `page-1` to `page-{pages}` at 0 views,
    /// version 0, and creates the queue with its consumer group. (Setup: not counted.)
    pub async fn open(
        db: Arc<Database>,
        redis: RedisConn,
        namespace: Namespace,
        settings: Settings,
        pages: usize,
    ) -> Result<Self, FlushError> {
        let mut setup = db.setup().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS page_views (
                page TEXT PRIMARY KEY,
                views BIGINT NOT NULL CHECK (views >= 0),
                version BIGINT NOT NULL
            )",
        )
        .execute(&mut *setup)
        .await?;
        for n in 1..=pages {
            sqlx::query(
                "INSERT INTO page_views (page, views, version) VALUES ($1, 0, 0) \
                 ON CONFLICT (page) DO NOTHING",
            )
            .bind(format!("page-{n}"))
            .execute(&mut *setup)
            .await?;
        }
        setup.commit().await?;
        let views = Views {
            db,
            redis,
            namespace,
            settings,
            redis_errors: Counter::default(),
        };
        let mut conn = views.redis.clone();
        let created: RedisResult<()> = conn.xgroup_create_mkstream(views.queue(), GROUP, "0").await;
        match created {
            Err(error) if error.code() == Some("BUSYGROUP") => {}
            other => other?,
        }
        Ok(views)
    }

    /// Where `page`'s count is cached: a hash `{views, version}`. Every key of the exercise
    /// shares the hash tag `{views}`, so one script may touch them all, on a cluster too.
    pub fn key(&self, page: &str) -> String {
        format!("{}:page:{page}", self.namespace.key("views"))
    }

    /// The queue: a Redis Stream of writes not yet in the database.
    pub fn queue(&self) -> String {
        format!("{}:queue", self.namespace.key("views"))
    }

    /// The version register: a hash of the last version handed out per page. [`Views::fill`]
    /// reads it; your write script must keep it up to date.
    pub fn versions(&self) -> String {
        format!("{}:versions", self.namespace.key("views"))
    }

    /// `page`'s row in the database, or `None`.
    pub async fn load(&self, page: &str) -> Result<Option<ViewCount>, sqlx::Error> {
        let mut conn = self.db.connection().await?;
        let row = sqlx::query("SELECT page, views, version FROM page_views WHERE page = $1")
            .bind(page)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|row| {
            Ok(ViewCount {
                page: row.try_get("page")?,
                views: row.try_get("views")?,
                version: row.try_get("version")?,
            })
        })
        .transpose()
    }

    /// Makes sure a cold page is cached, so that a write has a count to add to: reads its row
    /// and caches it with the TTL, unless it is cached already. A row read just before a flush
    /// landed and cached after the flushed count expired would be behind; the register
    /// ([`Views::versions`]) tells, and then nothing is cached: read again (call `fill` again).
    /// An unknown page is [`WriteError::NoSuchPage`].
    pub async fn fill(&self, page: &str) -> Result<(), WriteError> {
        let row = self.load(page).await?;
        let row = row.ok_or_else(|| WriteError::NoSuchPage(page.to_string()))?;
        let script = Script::new(FILL);
        let mut fill = script.prepare_invoke();
        fill.key(self.key(page))
            .key(self.versions())
            .arg(page)
            .arg(row.views)
            .arg(row.version)
            .arg(self.settings.ttl.as_millis() as u64);
        let mut conn = self.redis.clone();
        self.redis_call(fill.invoke_async::<i64>(&mut conn)).await?;
        Ok(())
    }

    /// Reads up to `settings.batch_size` entries no consumer has received yet, as `consumer` of
    /// [`GROUP`], waiting up to `settings.block` for the first (`XREADGROUP ... >`). They are
    /// pending to `consumer` until acknowledged.
    pub async fn read_new(&self, consumer: &str) -> RedisResult<Vec<Entry>> {
        let options = StreamReadOptions::default()
            .group(GROUP, consumer)
            .count(self.settings.batch_size)
            .block(self.settings.block.as_millis() as usize);
        let mut conn = self.redis.clone();
        let queues = [self.queue()];
        let read = conn.xread_options::<_, _, Option<StreamReadReply>>(&queues, &[">"], &options);
        // The server waits up to `block` before it answers; the budget comes on top.
        let reply = self
            .within(self.settings.block + self.settings.redis_timeout, read)
            .await?;
        Ok(reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .filter_map(|id| Entry::from_stream(&id))
            .collect())
    }

    /// Runs one Redis call within `settings.redis_timeout`. A failure or a timeout adds one to
    /// `redis_errors` and comes back as the error (a timeout as an `io` error): with `?`, it
    /// becomes [`WriteError::QueueUnavailable`] or [`FlushError::Redis`].
    pub async fn redis_call<T>(
        &self,
        call: impl Future<Output = RedisResult<T>>,
    ) -> RedisResult<T> {
        self.within(self.settings.redis_timeout, call).await
    }

    async fn within<T>(
        &self,
        budget: Duration,
        call: impl Future<Output = RedisResult<T>>,
    ) -> RedisResult<T> {
        let result = match tokio::time::timeout(budget, call).await {
            Ok(result) => result,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("Redis did not answer within {budget:?}"),
            )
            .into()),
        };
        if result.is_err() {
            self.redis_errors.inc();
        }
        result
    }
}
