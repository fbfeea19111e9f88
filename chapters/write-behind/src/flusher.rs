//! The flusher: from the queues to the database, in batches, without losing or doubling a write.
//!
//! Every flusher is a consumer in one consumer group per queue, so several can run side by side
//! and each entry goes to one of them. A flusher, for each shard:
//!
//! 1. **reads** a batch: first entries other consumers left unacknowledged for longer than
//!    `claim_idle` (`XAUTOCLAIM`: their flusher died, or the database refused the row), else new
//!    entries (`XREADGROUP ... >`), waiting up to `block` for them;
//! 2. **coalesces** it: a player written five times in the batch is one row, the latest version;
//! 3. **commits** the rows in one transaction: a multi-row upsert with bound parameters, split
//!    into statements that stay under the database's parameter limit, which replaces a row only
//!    with a newer version. A batch applied before (by a flusher that died before acknowledging
//!    it) is applied again and changes nothing: delivery is at least once, the effect exactly
//!    once;
//! 4. **acknowledges** the entries after the commit and only then, and in the same script
//!    deletes them from the queue (so it holds only unacknowledged entries and cannot grow
//!    without bound while the flusher keeps up) and gives each flushed player its TTL, unless a
//!    newer write made it dirty again.
//!
//! A transaction that fails because the database is unreachable is retried after a backoff that
//! doubles, the entries staying queued meanwhile. One that fails because the database *refused*
//! a row (a constraint) is split into one transaction per row, so the good rows go through; the
//! refused one stays pending, is delivered again after `claim_idle`, and after `max_deliveries`
//! moves to the shard's dead-letter stream with its error.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamPendingCountReply,
    StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use shared::metrics::{Counter, Latency, LatencySummary};
use shared::worker::{Panicked, Stop, Worker};
use shared::{Database, RedisConn, SetupError};
use tokio::sync::oneshot;

use crate::layout::{GROUP, Layout};
use crate::settings::Settings;
use crate::write::millis;

/// How a batch is applied to the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Apply {
    /// Write each player's latest result, unless the row already has that version or a newer
    /// one. Replays change nothing. The lesson's way.
    Versioned,
    /// Add each player's summed deltas to the row. The counter-example: a replay adds them again.
    Increments,
}

/// One queued write, as a flusher received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The stream entry id, `<ms>-<seq>`.
    pub id: String,
    /// The player.
    pub player: i64,
    /// The player's points after the write.
    pub points: i64,
    /// The write's version.
    pub version: i64,
    /// The points the write added.
    pub delta: i64,
    /// How many times the entry has been delivered to a consumer, this time included.
    pub deliveries: usize,
}

/// One player's row of a batch: the latest of its entries, and the sum of their deltas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// The player.
    pub player: i64,
    /// Points after the player's latest write in the batch.
    pub points: i64,
    /// That write's version.
    pub version: i64,
    /// The deltas of all the player's writes in the batch, added up.
    pub delta: i64,
}

// ANCHOR: coalesce
/// One row per player: the entry with the highest version wins, and the deltas add up. A batch
/// with the same player twice would otherwise put two rows with one key in one upsert, which
/// PostgreSQL refuses outright ("ON CONFLICT DO UPDATE command cannot affect row a second time").
pub fn coalesce(entries: &[Entry]) -> Vec<Row> {
    let mut rows: BTreeMap<i64, Row> = BTreeMap::new();
    for entry in entries {
        let row = rows.entry(entry.player).or_insert(Row {
            player: entry.player,
            points: entry.points,
            version: entry.version,
            delta: 0,
        });
        row.delta += entry.delta;
        if entry.version > row.version {
            (row.points, row.version) = (entry.points, entry.version);
        }
    }
    rows.into_values().collect()
}
// ANCHOR_END: coalesce

// ANCHOR: upsert
/// The upsert of `rows` rows: bound parameters only, three a row.
fn upsert_sql(rows: usize, apply: Apply) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
        .collect();
    let on_conflict = match apply {
        Apply::Versioned => {
            "DO UPDATE SET points = excluded.points, version = excluded.version \
             WHERE scores.version < excluded.version"
        }
        Apply::Increments => {
            "DO UPDATE SET points = scores.points + excluded.points, version = excluded.version"
        }
    };
    format!(
        "INSERT INTO scores (player_id, points, version) VALUES {} \
         ON CONFLICT (player_id) {on_conflict}",
        values.join(", ")
    )
}

/// How many rows one statement may carry: SQLite takes at most 32,766 bound parameters in a
/// statement, PostgreSQL 65,535, and each row binds three.
pub fn rows_per_statement(db: &Database) -> usize {
    let parameters = match db.backend() {
        "postgres" => 65_535,
        _ => 32_766,
    };
    parameters / 3
}
// ANCHOR_END: upsert

// ANCHOR: ack_script
/// Acknowledges a committed batch. KEYS: the queue, then the flushed players' scores. ARGV: the
/// group, the TTL in ms, the number of entry ids, the ids, then each score's flushed version.
/// Returns how many entries were acknowledged.
const ACK: &str = r#"
local ttl, n = ARGV[2], tonumber(ARGV[3])
local ids = {}
for i = 1, n do ids[i] = ARGV[3 + i] end
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
for i = 2, #KEYS do
  -- Clean now, unless a newer write arrived since this batch was read.
  if redis.call('HGET', KEYS[i], 'version') == ARGV[3 + n + i - 1] then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return acked
"#;
// ANCHOR_END: ack_script

/// Moves one player's refused entries to the dead letters. KEYS: queue, dead letters, score,
/// version register. ARGV: group, player, error, the player's latest version among them, then
/// five values per entry: id, points, version, delta, deliveries.
const DEAD_LETTER: &str = r#"
local group, player, err, latest = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
for i = 5, #ARGV, 5 do
  redis.call('XADD', KEYS[2], '*', 'entry', ARGV[i], 'player', player, 'points', ARGV[i + 1],
    'version', ARGV[i + 2], 'delta', ARGV[i + 3], 'deliveries', ARGV[i + 4], 'error', err)
  redis.call('XACK', KEYS[1], group, ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
end
-- If nothing newer is queued, the cached score holds what the database refused: drop it, and
-- the register with it, so the next read and write start from the database's row.
if redis.call('HGET', KEYS[3], 'version') == latest then
  redis.call('DEL', KEYS[3])
  redis.call('HDEL', KEYS[4], player)
end
return 1
"#;

/// What the flushers counted.
#[derive(Default)]
pub struct FlushMetrics {
    /// Committed transactions.
    pub transactions: Counter,
    /// Rows written by them (after coalescing).
    pub rows: Counter,
    /// Entries acknowledged.
    pub acknowledged: Counter,
    /// Entries folded into a later write of the same player in their batch.
    pub coalesced: Counter,
    /// Rows the upsert left alone because the table already had that version or a newer one:
    /// replays made harmless.
    pub replayed: Counter,
    /// Transactions retried after the database failed.
    pub retries: Counter,
    /// Entries taken over from a consumer that left them unacknowledged.
    pub claimed: Counter,
    /// Entries moved to a dead-letter stream.
    pub dead_letters: Counter,
    /// Redis calls of the flusher that failed.
    pub redis_errors: Counter,
    /// From acknowledgement (the entry id's time) to commit.
    pub lag: Mutex<Latency>,
}

/// A copy of the flush counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // each field is the counter of the same name
pub struct FlushStats {
    pub transactions: u64,
    pub rows: u64,
    pub acknowledged: u64,
    pub coalesced: u64,
    pub replayed: u64,
    pub retries: u64,
    pub claimed: u64,
    pub dead_letters: u64,
    pub redis_errors: u64,
    pub lag: LatencySummary,
}

impl FlushMetrics {
    /// The counters now.
    pub fn snapshot(&self) -> FlushStats {
        FlushStats {
            transactions: self.transactions.get(),
            rows: self.rows.get(),
            acknowledged: self.acknowledged.get(),
            coalesced: self.coalesced.get(),
            replayed: self.replayed.get(),
            retries: self.retries.get(),
            claimed: self.claimed.get(),
            dead_letters: self.dead_letters.get(),
            redis_errors: self.redis_errors.get(),
            lag: self.lag.lock().expect("lag lock").summary(),
        }
    }
}

impl FlushStats {
    /// Rows per committed transaction, on average.
    pub fn rows_per_transaction(&self) -> f64 {
        self.rows as f64 / self.transactions.max(1) as f64
    }
}

/// Where a flusher can be made to stop dead, for the tests and the demo's crash: just before
/// or just after a commit, the two moments a crash matters most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldPoint {
    /// The batch is read but not committed.
    BeforeCommit,
    /// The batch is committed but not acknowledged.
    AfterCommit,
}

struct Hold {
    point: HoldPoint,
    nth: u64,
    reached: oneshot::Sender<()>,
}

/// A flusher: one consumer of every shard's queue.
pub struct Flusher {
    db: Arc<Database>,
    layout: Layout,
    settings: Settings,
    apply: Apply,
    consumer: String,
    ack: Script,
    dead_letter: Script,
    commits: AtomicU64,
    hold: Mutex<Option<Hold>>,
    /// What it counted.
    pub metrics: FlushMetrics,
}

impl Flusher {
    /// A flusher named `consumer` (unique among live flushers) applying batches as `apply` says.
    pub fn new(
        db: Arc<Database>,
        layout: Layout,
        settings: Settings,
        apply: Apply,
        consumer: &str,
    ) -> Self {
        Flusher {
            db,
            layout,
            settings,
            apply,
            consumer: consumer.to_string(),
            ack: Script::new(ACK),
            dead_letter: Script::new(DEAD_LETTER),
            commits: AtomicU64::new(0),
            hold: Mutex::new(None),
            metrics: FlushMetrics::default(),
        }
    }

    /// Makes the flusher stop dead at `point` of its `nth` commit (counting from 1) and stay
    /// there; the receiver hears when it got there. What happens next is the caller's: a
    /// `kill -9`, or dropping the running flusher, which leaves Redis and the database exactly
    /// as a crash at that point would.
    pub fn hold_at(&self, point: HoldPoint, nth: u64) -> oneshot::Receiver<()> {
        let (reached, heard) = oneshot::channel();
        *self.hold.lock().expect("hold lock") = Some(Hold {
            point,
            nth,
            reached,
        });
        heard
    }

    /// Starts one loop per shard, each on a connection of its own to the Redis at `url` (a
    /// blocking read holds its connection).
    pub async fn start(self: Arc<Self>, url: &str) -> Result<Running, SetupError> {
        let mut conns = Vec::new();
        for _ in 0..self.layout.shards() {
            conns.push(shared::connection::connect(url).await?);
        }
        let flusher = self.clone();
        let worker = Worker::spawn("write-behind flusher", move |stop| async move {
            let loops = conns.into_iter().enumerate().map(|(shard, conn)| {
                let (flusher, stop) = (flusher.clone(), stop.clone());
                async move { flusher.run_shard(conn, shard as u16, stop).await }
            });
            futures_util::future::join_all(loops).await;
        });
        Ok(Running {
            worker,
            flusher: self,
        })
    }

    // ANCHOR: run_shard
    /// Flushes one shard until stopped; once stopped, until its queue is empty (or the drain
    /// deadline, a minute, passes while the database is down: what is left stays queued).
    async fn run_shard(&self, mut conn: RedisConn, shard: u16, stop: Stop) {
        let mut stopped_at: Option<Instant> = None;
        loop {
            if stop.is_requested() && stopped_at.is_none() {
                stopped_at = Some(Instant::now());
            }
            let batch = match self.next_batch(&mut conn, shard).await {
                Ok(batch) => batch,
                Err(error) => {
                    self.metrics.redis_errors.inc();
                    if error.code() == Some("NOGROUP") {
                        // Redis came back without the queue (no persistence): start a new one.
                        let _ = crate::write::create_queues(&conn, &self.layout).await;
                    }
                    if stopped_at.is_some_and(|at| at.elapsed() > DRAIN_DEADLINE) {
                        return;
                    }
                    tokio::time::sleep(self.settings.backoff).await;
                    continue;
                }
            };
            if !batch.is_empty() {
                self.flush(&mut conn, shard, batch, stopped_at).await;
                continue;
            }
            if let Some(at) = stopped_at {
                let empty = queue_length(&mut conn, &self.layout, shard).await == Ok(0);
                if empty || at.elapsed() > DRAIN_DEADLINE {
                    return;
                }
            }
        }
    }
    // ANCHOR_END: run_shard

    // ANCHOR: next_batch
    /// Entries abandoned by other consumers if there are any, else new ones.
    async fn next_batch(&self, conn: &mut RedisConn, shard: u16) -> redis::RedisResult<Vec<Entry>> {
        let queue = self.layout.queue(shard);
        let count = self.settings.batch_size;
        let options = StreamAutoClaimOptions::default().count(count);
        let idle = millis(self.settings.claim_idle);
        let claimed: StreamAutoClaimReply = conn
            .xautoclaim_options(&queue, GROUP, &self.consumer, idle, "0-0", options)
            .await?;
        if let (Some(first), Some(last)) = (claimed.claimed.first(), claimed.claimed.last()) {
            // How often each was delivered, this time included, decides when it is a dead letter.
            let pending: StreamPendingCountReply = conn
                .xpending_consumer_count(&queue, GROUP, &first.id, &last.id, count, &self.consumer)
                .await?;
            let deliveries: BTreeMap<&str, usize> = pending
                .ids
                .iter()
                .map(|p| (p.id.as_str(), p.times_delivered))
                .collect();
            self.metrics.claimed.add(claimed.claimed.len() as u64);
            return Ok(claimed
                .claimed
                .iter()
                .filter_map(|id| entry(id, deliveries.get(id.id.as_str()).copied().unwrap_or(1)))
                .collect());
        }
        let options = StreamReadOptions::default()
            .group(GROUP, &self.consumer)
            .count(count)
            .block(millis(self.settings.block) as usize);
        let read: Option<StreamReadReply> = conn.xread_options(&[&queue], &[">"], &options).await?;
        Ok(read
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .filter_map(|id| entry(&id, 1))
            .collect())
    }
    // ANCHOR_END: next_batch

    // ANCHOR: flush
    /// Commits a batch, then acknowledges it. A database that fails is retried with a doubling
    /// backoff; a row it refuses is split out ([`Self::flush_row_by_row`]).
    async fn flush(
        &self,
        conn: &mut RedisConn,
        shard: u16,
        entries: Vec<Entry>,
        stopped_at: Option<Instant>,
    ) {
        let rows = coalesce(&entries);
        let mut backoff = self.settings.backoff;
        loop {
            self.hold_if_armed(HoldPoint::BeforeCommit).await;
            match self.commit(&rows).await {
                Ok(applied) => {
                    self.hold_if_armed(HoldPoint::AfterCommit).await;
                    self.metrics.replayed.add(rows.len() as u64 - applied);
                    self.metrics
                        .coalesced
                        .add((entries.len() - rows.len()) as u64);
                    self.acknowledge(conn, shard, &entries, &rows).await;
                    return;
                }
                Err(error) if refused(&error) => {
                    return self.flush_row_by_row(conn, shard, entries).await;
                }
                Err(_) => {
                    // Unreachable, timed out, the table gone: the entries stay queued and
                    // pending to this consumer, and the batch is tried again.
                    self.metrics.retries.inc();
                    if stopped_at.is_some_and(|at| at.elapsed() > DRAIN_DEADLINE) {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.settings.max_backoff);
                }
            }
        }
    }
    // ANCHOR_END: flush

    // ANCHOR: commit
    /// Writes `rows` in one transaction, in as few statements as the parameter limit allows.
    /// Returns how many rows changed: a row the table already had at that version or a newer
    /// one is left alone.
    async fn commit(&self, rows: &[Row]) -> Result<u64, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let mut applied = 0;
        for chunk in rows.chunks(rows_per_statement(&self.db)) {
            let sql = upsert_sql(chunk.len(), self.apply);
            let mut statement = sqlx::query(&sql);
            for row in chunk {
                let points = match self.apply {
                    Apply::Versioned => row.points,
                    Apply::Increments => row.delta,
                };
                statement = statement.bind(row.player).bind(points).bind(row.version);
            }
            applied += statement.execute(tx.conn().await).await?.rows_affected();
        }
        tx.commit().await?;
        self.metrics.transactions.inc();
        self.metrics.rows.add(rows.len() as u64);
        Ok(applied)
    }
    // ANCHOR_END: commit

    // ANCHOR: acknowledge
    /// After the commit: acknowledge and delete the entries, mark the players clean, record the
    /// lag. If Redis fails here the entries stay pending and are delivered again later, which
    /// the versioned upsert makes harmless.
    async fn acknowledge(&self, conn: &mut RedisConn, shard: u16, entries: &[Entry], rows: &[Row]) {
        let mut call = self.ack.prepare_invoke();
        call.key(self.layout.queue(shard));
        for row in rows {
            call.key(self.layout.score(row.player));
        }
        call.arg(GROUP)
            .arg(millis(self.settings.ttl))
            .arg(entries.len());
        for entry in entries {
            call.arg(&entry.id);
        }
        for row in rows {
            call.arg(row.version);
        }
        match call.invoke_async::<u64>(conn).await {
            Ok(acked) => self.metrics.acknowledged.add(acked),
            Err(_) => self.metrics.redis_errors.inc(),
        }
        let now = now_ms();
        let mut lag = self.metrics.lag.lock().expect("lag lock");
        for entry in entries {
            let ms = now.saturating_sub(entry_ms(&entry.id));
            lag.record(Duration::from_millis(ms));
        }
    }
    // ANCHOR_END: acknowledge

    // ANCHOR: row_by_row
    /// The database refused something in the batch: each player in a transaction of its own, so
    /// the good rows go through. A refused player's entries stay pending and come back after
    /// `claim_idle`; once delivered `max_deliveries` times they become dead letters.
    async fn flush_row_by_row(&self, conn: &mut RedisConn, shard: u16, entries: Vec<Entry>) {
        for row in coalesce(&entries) {
            let own: Vec<Entry> = entries
                .iter()
                .filter(|e| e.player == row.player)
                .cloned()
                .collect();
            match self.commit(&[row]).await {
                Ok(applied) => {
                    self.metrics.replayed.add(1 - applied);
                    self.metrics.coalesced.add(own.len() as u64 - 1);
                    self.acknowledge(conn, shard, &own, &[row]).await;
                }
                Err(error) if refused(&error) => {
                    let delivered = own.iter().map(|e| e.deliveries).max().unwrap_or(1);
                    if delivered >= self.settings.max_deliveries {
                        self.bury(conn, shard, &row, &own, &error.to_string()).await;
                    }
                }
                Err(_) => self.metrics.retries.inc(),
            }
        }
    }

    /// Moves a player's refused entries to the dead letters, with the error.
    async fn bury(&self, conn: &mut RedisConn, shard: u16, row: &Row, own: &[Entry], error: &str) {
        let mut call = self.dead_letter.prepare_invoke();
        call.key(self.layout.queue(shard))
            .key(self.layout.dead(shard))
            .key(self.layout.score(row.player))
            .key(self.layout.versions(shard))
            .arg(GROUP)
            .arg(row.player)
            .arg(error)
            .arg(row.version);
        for e in own {
            call.arg(&e.id)
                .arg(e.points)
                .arg(e.version)
                .arg(e.delta)
                .arg(e.deliveries);
        }
        match call.invoke_async::<i64>(conn).await {
            Ok(_) => self.metrics.dead_letters.add(own.len() as u64),
            Err(_) => self.metrics.redis_errors.inc(),
        }
    }
    // ANCHOR_END: row_by_row

    /// Stops here for good if a hold is armed for this point and commit.
    async fn hold_if_armed(&self, point: HoldPoint) {
        let nth = match point {
            HoldPoint::BeforeCommit => self.commits.load(Ordering::SeqCst) + 1,
            HoldPoint::AfterCommit => self.commits.fetch_add(1, Ordering::SeqCst) + 1,
        };
        let reached = {
            let mut hold = self.hold.lock().expect("hold lock");
            match hold.take() {
                Some(h) if h.point == point && h.nth == nth => Some(h.reached),
                other => {
                    *hold = other;
                    None
                }
            }
        };
        if let Some(reached) = reached {
            let _ = reached.send(());
            std::future::pending::<()>().await;
        }
    }
}

/// A running flusher.
pub struct Running {
    worker: Worker,
    flusher: Arc<Flusher>,
}

impl Running {
    /// The flusher, for its metrics.
    pub fn flusher(&self) -> &Arc<Flusher> {
        &self.flusher
    }

    /// Stops taking new work once every queue is empty: the shutdown drain. Every entry is
    /// applied, or, if the database stays down past the deadline, left queued for the next
    /// flusher: never dropped.
    pub async fn drain(self) -> Result<(), Panicked> {
        self.worker.stop().await
    }
}

/// How long a stopping flusher keeps trying a database that fails before it leaves the rest of
/// the queue to the next flusher.
const DRAIN_DEADLINE: Duration = Duration::from_secs(60);

/// Whether the database refused the rows themselves (a constraint), as opposed to failing to
/// run the statement at all. Only a refusal is worth splitting the batch over.
fn refused(error: &sqlx::Error) -> bool {
    use sqlx::error::ErrorKind;
    match error {
        sqlx::Error::Database(db) => matches!(
            db.kind(),
            ErrorKind::CheckViolation
                | ErrorKind::NotNullViolation
                | ErrorKind::ForeignKeyViolation
                | ErrorKind::UniqueViolation
        ),
        _ => false,
    }
}

/// An entry from its stream fields; `None` if they are not the lesson's (another program's).
fn entry(id: &StreamId, deliveries: usize) -> Option<Entry> {
    Some(Entry {
        id: id.id.clone(),
        player: id.get("player")?,
        points: id.get("points")?,
        version: id.get("version")?,
        delta: id.get("delta")?,
        deliveries,
    })
}

/// The length of one shard's queue: the entries not yet acknowledged.
async fn queue_length(
    conn: &mut RedisConn,
    layout: &Layout,
    shard: u16,
) -> redis::RedisResult<u64> {
    conn.xlen(layout.queue(shard)).await
}

/// How many writes are queued and not yet acknowledged, over every shard.
pub async fn queue_depth(conn: &RedisConn, layout: &Layout) -> redis::RedisResult<u64> {
    let mut conn = conn.clone();
    let mut depth = 0;
    for shard in 0..layout.shards() {
        depth += queue_length(&mut conn, layout, shard).await?;
    }
    Ok(depth)
}

/// The time an entry was added, from its id `<ms>-<seq>`.
pub fn entry_ms(id: &str) -> u64 {
    id.split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
