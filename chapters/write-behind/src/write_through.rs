//! The baseline write-behind is measured against: write-through of the same scores.
//!
//! A write commits first, in a transaction of its own ([`Scores::add_points_now`]: one `UPDATE`
//! that adds the points and raises the version), and only then stores the committed score in the
//! cache, so the caller waits for the database on every write: the cost write-behind exists to
//! remove. Two writers of one player can reach Redis in either order after their commits, so the
//! store is a script that keeps the higher version, the write-through lesson's versioned store
//! written for this lesson's score hash. The database alone is the same commit without the store.

use std::sync::Arc;

use redis::Script;
use shared::metrics::Counter;
use shared::{Database, RedisConn};

use crate::layout::Layout;
use crate::settings::Settings;
use crate::table::{Score, Scores};

/// Stores a committed score only over an older version. KEYS: score. ARGV: points, version,
/// TTL in ms. Returns 1 if stored, 0 if the cache already held that version or a newer one.
const STORE_IF_NEWER: &str = r#"
local cached = tonumber(redis.call('HGET', KEYS[1], 'version'))
if cached and cached >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'points', ARGV[1], 'version', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"#;

/// Why a write-through write failed, and so whether its points are in the database.
#[derive(Debug, thiserror::Error)]
pub enum WriteThroughError {
    /// The transaction failed. Nothing was committed, unless the reply was lost after the
    /// commit: the caller cannot tell.
    #[error("the write was not committed: {0}")]
    Database(#[from] sqlx::Error),
    /// There is no such player: nothing to commit.
    #[error("the write was not committed: there is no player {0}")]
    NoSuchPlayer(i64),
    /// The write was committed but the cache write failed; the cache keeps its older score until
    /// its TTL ends it.
    #[error("the write was committed but not cached: {0}")]
    Cache(redis::RedisError),
}

impl WriteThroughError {
    /// Whether the database answered, so that what it holds is known: the write committed, or
    /// there was no row to write. Only a failed transaction leaves the outcome unknown.
    pub fn database_answered(&self) -> bool {
        !matches!(self, WriteThroughError::Database(_))
    }
}

/// Write-through of scores: commit, then cache the committed score unless the cache holds a
/// newer one.
pub struct WriteThroughScores {
    conn: RedisConn,
    db: Arc<Database>,
    layout: Layout,
    /// How long a stored score lives, in milliseconds.
    ttl_ms: u64,
    store_if_newer: Script,
    /// Transactions committed: one per write, the database load write-behind's batches cut.
    pub transactions: Counter,
}

impl WriteThroughScores {
    /// Commits to `db`, then caches in `layout`'s score keys through `conn`, for `settings.ttl`.
    pub fn new(conn: RedisConn, db: Arc<Database>, layout: Layout, settings: &Settings) -> Self {
        WriteThroughScores {
            conn,
            db,
            layout,
            ttl_ms: settings.ttl.as_millis() as u64,
            store_if_newer: Script::new(STORE_IF_NEWER),
            transactions: Counter::default(),
        }
    }

    /// Adds `delta` points to `player`'s score: commits, then caches the committed score.
    /// Returns the committed score once both are done.
    pub async fn add_points(&self, player: i64, delta: i64) -> Result<Score, WriteThroughError> {
        let score = self.db.add_points_now(player, delta).await?;
        let score = score.ok_or(WriteThroughError::NoSuchPlayer(player))?;
        self.transactions.inc();
        self.store(&score).await.map_err(WriteThroughError::Cache)?;
        Ok(score)
    }

    /// Caches `score` unless the cache already holds its version or a newer one. Returns
    /// whether it was stored.
    pub async fn store(&self, score: &Score) -> redis::RedisResult<bool> {
        let mut conn = self.conn.clone();
        let stored: i64 = self
            .store_if_newer
            .key(self.layout.score(score.player))
            .arg(score.points)
            .arg(score.version)
            .arg(self.ttl_ms)
            .invoke_async(&mut conn)
            .await?;
        Ok(stored == 1)
    }
}
