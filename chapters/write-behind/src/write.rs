//! The acknowledged write, and the read that always sees it.
//!
//! **The write** is one Lua script, so the cache and the queue change together or not at all:
//! there is no moment, and no crash, in which the cache holds a write the queue does not, or the
//! reverse. It adds the points to the cached score, raises its version, appends the new score and
//! version to the shard's queue (`XADD`), and takes the cached score's TTL away. Only when the
//! script has returned is the caller told "done": from then on the write is in Redis, in the
//! append-only file (fsynced about once a second, up to about two when the disk is slow, or
//! before the reply with `appendfsync always`).
//!
//! The queue carries the *result* (points 130 at version 8), not the operation (+10): applying
//! a result twice changes nothing, adding +10 twice adds 20. That is what makes a replay after a
//! crash harmless ([`crate::flusher`]).
//!
//! **A player not cached** has no score to add to, so the script says so and the write reads
//! the row from the database and tries again with it as the base. A base read before a flush
//! and used after the flushed score expired would be stale, so the shard keeps a *version
//! register*, the last version handed out per player, which never expires while the queue
//! lives: a base whose version is not the register's is refused and read again.
//!
//! **The read** returns the cached score, which is the latest acknowledged write for as long as
//! the player is dirty: a dirty score has no TTL, so it cannot expire, and under a `volatile-*`
//! or `noeviction` policy Redis never evicts a key without a TTL ([`check_eviction_policy`]).
//! A clean score (flushed, with its TTL) that is gone is read from the database, which holds it.

use std::sync::Arc;
use std::time::Duration;

use redis::{AsyncCommands, Script, Value};
use shared::RedisConn;
use shared::metrics::{CacheMetrics, CacheStats};
use shared::{Database, budget};

use crate::layout::{GROUP, Layout};
use crate::settings::Settings;
use crate::table::Scores;

// ANCHOR: add_script
/// Adds points to a cached score and queues the result, atomically.
///
/// KEYS: the score, the shard's version register, the shard's queue.
/// ARGV: player, delta, and when the score is not cached, the base read from the database
/// (points, version).
/// Returns `{points, version, entry id}`, or `{"NEED_BASE"}`, or `{"STALE_BASE"}`.
pub const ADD_POINTS: &str = r#"
local score, versions, queue = KEYS[1], KEYS[2], KEYS[3]
local player, delta = ARGV[1], tonumber(ARGV[2])
local points = tonumber(redis.pcall('HGET', score, 'points'))
local version = tonumber(redis.pcall('HGET', score, 'version'))
if not points or not version then
  -- Not cached, or unreadable (another program's bytes): start from the database's row.
  if ARGV[3] == nil then return {'NEED_BASE'} end
  points, version = tonumber(ARGV[3]), tonumber(ARGV[4])
  local issued = redis.call('HGET', versions, player)
  if issued and tonumber(issued) ~= version then return {'STALE_BASE'} end
  redis.call('DEL', score)
end
points = points + delta
version = version + 1
local id = redis.call('XADD', queue, '*',
  'player', player, 'points', points, 'version', version, 'delta', delta)
redis.call('HSET', score, 'points', points, 'version', version)
redis.call('PERSIST', score)
redis.call('HSET', versions, player, version)
return {points, version, id}
"#;
// ANCHOR_END: add_script

/// Caches a score read from the database, unless the cache already holds one or the register
/// says the row is behind a queued write. KEYS: score, register. ARGV: player, points, version,
/// TTL in ms. Returns 1 if stored.
const FILL: &str = r#"
if redis.pcall('HGET', KEYS[1], 'version') and redis.call('TYPE', KEYS[1]).ok == 'hash' then
  return 0
end
local issued = redis.call('HGET', KEYS[2], ARGV[1])
if issued and tonumber(issued) ~= tonumber(ARGV[3]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'points', ARGV[2], 'version', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"#;

/// What the caller is told once a write is durable in Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The player's points after the write.
    pub points: i64,
    /// The write's version: one more than the player's previous write.
    pub version: i64,
    /// The queue entry that carries it, e.g. `1763800000000-3`; its first part is the time the
    /// write was acknowledged, in milliseconds.
    pub entry: String,
}

/// Why a write was not acknowledged. Nothing was queued, unless the cause was a reply lost
/// after Redis ran the script (a timeout): retry only a write that is safe to repeat.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Redis, which holds the queue, failed or did not answer within the budget.
    #[error(
        "the write was not acknowledged: Redis, which holds the write-behind queue, {cause}. \
         Nothing is written to the database behind the queue's back (a queued older write \
         would overwrite it); retry once Redis answers"
    )]
    QueueUnavailable {
        /// What went wrong.
        cause: String,
    },
    /// The player's row could not be read as the base of its first cached write.
    #[error("the write was not acknowledged: reading the player's row failed: {0}")]
    Database(#[from] sqlx::Error),
    /// There is no such player.
    #[error("the write was not acknowledged: there is no player {0}")]
    NoSuchPlayer(i64),
    /// The player has queued writes but its cached score is gone (deleted by hand, or evicted
    /// under an `allkeys-*` policy), so there is no base to add to until the flusher catches up.
    #[error(
        "the write was not acknowledged: player {0} has writes still queued but its cached \
         score is gone (was it evicted? write-behind needs maxmemory-policy noeviction or \
         volatile-*); retry after the queue is flushed"
    )]
    Behind(i64),
}

/// The application's side of write-behind: acknowledged writes and the reads that see them.
pub struct WriteBehind {
    conn: RedisConn,
    db: Arc<Database>,
    layout: Layout,
    settings: Settings,
    add_points: Script,
    fill: Script,
    /// The read side's counters; Redis failures on either side are counted in `errors`.
    pub reads: CacheMetrics,
}

impl WriteBehind {
    /// Writes and reads through `conn`, the queues laid out as `layout`.
    pub fn new(conn: RedisConn, db: Arc<Database>, layout: Layout, settings: Settings) -> Self {
        WriteBehind {
            conn,
            db,
            layout,
            settings,
            add_points: Script::new(ADD_POINTS),
            fill: Script::new(FILL),
            reads: CacheMetrics::default(),
        }
    }

    /// The key layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The read counters now.
    pub fn read_stats(&self) -> CacheStats {
        self.reads.snapshot()
    }

    /// Adds `delta` points to `player`'s score. Returns once the write is in Redis with its
    /// queue entry; the database gets it later, from a flusher.
    pub async fn add_points(&self, player: i64, delta: i64) -> Result<Ack, WriteError> {
        let mut base = None;
        for _ in 0..3 {
            let reply = self.run_add_points(player, delta, base).await?;
            match reply.as_slice() {
                [Value::BulkString(word)] if word == b"NEED_BASE" || word == b"STALE_BASE" => {
                    let row = self.db.score(player).await?;
                    let row = row.ok_or(WriteError::NoSuchPlayer(player))?;
                    base = Some((row.points, row.version));
                }
                [points, version, entry] => {
                    return Ok(Ack {
                        points: parse(points)?,
                        version: parse(version)?,
                        entry: parse(entry)?,
                    });
                }
                other => {
                    return Err(WriteError::QueueUnavailable {
                        cause: format!("answered {other:?}"),
                    });
                }
            }
        }
        // The base stayed stale: writes are queued but the cached score is gone.
        Err(WriteError::Behind(player))
    }

    /// One call of the write script, within the time budget.
    async fn run_add_points(
        &self,
        player: i64,
        delta: i64,
        base: Option<(i64, i64)>,
    ) -> Result<Vec<Value>, WriteError> {
        let shard = self.layout.shard(player);
        let mut call = self.add_points.prepare_invoke();
        call.key(self.layout.score(player))
            .key(self.layout.versions(shard))
            .key(self.layout.queue(shard))
            .arg(player)
            .arg(delta);
        if let Some((points, version)) = base {
            call.arg(points).arg(version);
        }
        let mut conn = self.conn.clone();
        let budget = self.settings.redis_timeout;
        match tokio::time::timeout(budget, call.invoke_async(&mut conn)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(error)) => {
                self.reads.errors.inc();
                Err(unavailable(error))
            }
            Err(_) => {
                self.reads.errors.inc();
                Err(WriteError::QueueUnavailable {
                    cause: format!("did not answer within {budget:?}"),
                })
            }
        }
    }

    /// `player`'s points: the latest acknowledged write, from the cache, or from the database
    /// when the player is clean and not cached (then cached, with its TTL).
    pub async fn score(&self, player: i64) -> Result<Option<i64>, sqlx::Error> {
        let key = self.layout.score(player);
        let mut conn = self.conn.clone();
        let mut hmget = redis::cmd("HMGET");
        hmget.arg(&key).arg("points").arg("version");
        let read = hmget.query_async::<(Option<i64>, Option<i64>)>(&mut conn);
        let budget = self.settings.redis_timeout;
        let cached = budget::within(budget, &self.reads.errors, read).await;
        if let Some((Some(points), Some(_))) = cached {
            self.reads.hits.inc();
            return Ok(Some(points));
        }
        self.reads.misses.inc();
        self.reads.loads.inc();
        let Some(row) = self.db.score(player).await? else {
            return Ok(None);
        };
        if cached.is_some() {
            let shard = self.layout.shard(player);
            let mut fill = self.fill.prepare_invoke();
            fill.key(&key)
                .key(self.layout.versions(shard))
                .arg(player)
                .arg(row.points)
                .arg(row.version)
                .arg(millis(self.settings.ttl));
            let filled = fill.invoke_async::<i64>(&mut conn);
            budget::within(budget, &self.reads.errors, filled).await;
        }
        Ok(Some(row.points))
    }
}

/// One value of the write script's reply.
fn parse<T: redis::FromRedisValue>(value: &Value) -> Result<T, WriteError> {
    redis::from_redis_value_ref(value).map_err(|error| unavailable(error.into()))
}

fn unavailable(error: redis::RedisError) -> WriteError {
    WriteError::QueueUnavailable {
        cause: format!("failed ({error})"),
    }
}

/// Creates every shard's queue and its consumer group, if not there yet. Entries written before
/// the group existed are read too (the group starts at the queue's beginning).
pub async fn create_queues(conn: &RedisConn, layout: &Layout) -> redis::RedisResult<()> {
    let mut conn = conn.clone();
    for shard in 0..layout.shards() {
        let created: redis::RedisResult<()> = conn
            .xgroup_create_mkstream(layout.queue(shard), GROUP, "0")
            .await;
        match created {
            Err(error) if error.code() == Some("BUSYGROUP") => {}
            other => other?,
        }
    }
    Ok(())
}

/// Refuses a Redis whose eviction policy may evict keys without a TTL (`allkeys-*`): it could
/// evict a dirty score, or a whole queue, and lose acknowledged writes. A Redis that does not
/// allow `CONFIG GET` (some managed services) is given the benefit of the doubt.
pub async fn check_eviction_policy(conn: &RedisConn) -> Result<(), String> {
    let mut conn = conn.clone();
    let policy: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(&mut conn)
        .await;
    match policy.ok().and_then(|reply| reply.get(1).cloned()) {
        Some(policy) if policy.starts_with("allkeys-") => Err(format!(
            "this Redis evicts any key when memory runs out (maxmemory-policy {policy}), \
             including queued writes. Write-behind needs noeviction or a volatile-* policy: \
             CONFIG SET maxmemory-policy volatile-lru"
        )),
        _ => Ok(()),
    }
}

/// What this Redis keeps across a crash of its own, read from its configuration, and what a crash
/// can lose of the acknowledged writes still queued: write-behind's promise rests on Redis keeping
/// them. `None`: the server does not say (`CONFIG GET` refused, as on some managed services).
pub async fn persistence(conn: &RedisConn) -> Option<String> {
    let mut conn = conn.clone();
    let mut setting = async |name: &str| -> Option<String> {
        let reply: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query_async(&mut conn)
            .await
            .ok()?;
        reply.get(1).cloned()
    };
    let appendonly = setting("appendonly").await?;
    let fsync = setting("appendfsync").await.unwrap_or_default();
    let save = setting("save").await.unwrap_or_default();
    Some(match (appendonly.as_str(), fsync.as_str()) {
        ("yes", "always") => {
            "AOF, fsync always: a crash of Redis loses no acknowledged write".into()
        }
        ("yes", "everysec") => {
            "AOF, fsync every second: a crash may lose up to about 2 s of acknowledged writes \
             (when an fsync is slow, replies go out before the data is on disk)"
                .into()
        }
        ("yes", _) => format!(
            "AOF, fsync {fsync} (left to the OS): a crash of the machine may lose the last \
             ~30 s of acknowledged writes"
        ),
        _ if !save.trim().is_empty() => format!(
            "snapshots only (save {save}): a crash of Redis loses every acknowledged write since \
             the last snapshot that is not yet in the database"
        ),
        _ => "none: a crash of Redis loses every acknowledged write not yet in the database \
              (CONFIG SET appendonly yes)"
            .into(),
    })
}

/// How long a flusher waits, as a wait the server understands (`BLOCK`, `PEXPIRE`).
pub(crate) fn millis(duration: Duration) -> u64 {
    duration.as_millis().max(1) as u64
}
