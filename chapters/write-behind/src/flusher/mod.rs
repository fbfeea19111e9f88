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
//!
//! Each step has a module: [`claim`] reads a batch and takes over stalled entries, [`upsert`]
//! coalesces and commits it, [`acknowledge`] acknowledges it after the commit, [`dead_letter`]
//! splits out and buries what the database refuses; [`hold`] lets the tests and the demo stop a
//! flusher dead at a commit, and [`metrics`] is what it counts.

pub mod acknowledge;
pub mod claim;
pub mod dead_letter;
pub mod hold;
pub mod metrics;
pub mod upsert;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{AsyncCommands, Script};
use shared::worker::{Panicked, Stop, Worker};
use shared::{Database, RedisConn, SetupError};

use crate::layout::Layout;
use crate::settings::Settings;

pub use acknowledge::entry_ms;
pub use claim::Entry;
pub use hold::HoldPoint;
pub use metrics::{DbOutage, FlushMetrics, FlushStats};
pub use upsert::{Apply, ScoreUpdate, coalesce, rows_per_statement};

use acknowledge::ACK;
use dead_letter::{DEAD_LETTER, refused};
use hold::Hold;

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

    /// Starts one loop per shard, each on a connection of its own to the Redis at `url` (a
    /// blocking read holds its connection). A Redis that is restarting is waited for
    /// ([`shared::comeback`]): a flusher is started to drain what is queued there.
    pub async fn start(self: Arc<Self>, url: &str) -> Result<Running, SetupError> {
        let mut conns = Vec::new();
        for _ in 0..self.layout.shards() {
            let connect = || shared::connection::connect(url);
            conns.push(shared::comeback::awaiting_comeback(url, connect).await?);
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

    /// Flushes one shard until stopped; once stopped, until its queue is empty (or the drain
    /// deadline, a minute, passes while the database is down: what is left stays queued).
    async fn run_shard(&self, mut conn: RedisConn, shard: u16, stop: Stop) {
        let mut stopped_at: Option<Instant> = None;
        let mut cursor = String::from("0-0"); // where the walk of the pending entries goes on
        loop {
            if stop.is_requested() && stopped_at.is_none() {
                stopped_at = Some(Instant::now());
            }
            let batch = match self.next_batch(&mut conn, shard, &mut cursor).await {
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

    /// Commits a batch, then acknowledges it. A database that fails is retried with a doubling
    /// backoff; a row it refuses is split out ([`Self::flush_row_by_row`]).
    async fn flush(
        &self,
        conn: &mut RedisConn,
        shard: u16,
        entries: Vec<Entry>,
        stopped_at: Option<Instant>,
    ) {
        let updates = coalesce(&entries);
        let mut backoff = self.settings.backoff;
        loop {
            self.hold_if_armed(HoldPoint::BeforeCommit).await;
            match self.commit(&updates).await {
                Ok(applied) => {
                    self.metrics.commit_succeeded();
                    self.hold_if_armed(HoldPoint::AfterCommit).await;
                    self.metrics.replayed.add(updates.len() as u64 - applied);
                    self.metrics
                        .coalesced
                        .add((entries.len() - updates.len()) as u64);
                    self.acknowledge(conn, shard, &entries, &updates).await;
                    return;
                }
                Err(error) if refused(&error) => {
                    return self.flush_row_by_row(conn, shard, entries).await;
                }
                Err(error) => {
                    // Unreachable, timed out, the table gone: the entries stay queued and
                    // pending to this consumer, and the batch is tried again.
                    self.metrics.retries.inc();
                    self.metrics.commit_failed(&error);
                    if stopped_at.is_some_and(|at| at.elapsed() > DRAIN_DEADLINE) {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.settings.max_backoff);
                }
            }
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

/// When the oldest write still queued was acknowledged, in ms since the Unix epoch by Redis's
/// clock (an entry's ID begins with it), over every shard; `None` when every queue is empty.
/// How far behind the flushers are: an operator's figure, read without disturbing them.
pub async fn oldest_queued(conn: &RedisConn, layout: &Layout) -> redis::RedisResult<Option<u64>> {
    let mut conn = conn.clone();
    let mut oldest: Option<u64> = None;
    for shard in 0..layout.shards() {
        let first: redis::streams::StreamRangeReply =
            conn.xrange_count(layout.queue(shard), "-", "+", 1).await?;
        let ms = first
            .ids
            .first()
            .and_then(|entry| entry.id.split('-').next()?.parse().ok());
        oldest = match (oldest, ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(oldest)
}
