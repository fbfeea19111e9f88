//! The counter-example: write-behind as the source material builds it, kept to be measured.
//!
//! It updates the cache, then puts the write on a queue in the process's memory, and a task
//! flushes up to 100 queued writes a second, one statement each. Every line of that loses data:
//!
//! - the queue dies with the process: a crash, an OOM kill or a deploy loses every acknowledged
//!   write not yet flushed (and the cache, which has no TTL, goes on serving them until
//!   something evicts it, while the database never gets them);
//! - a write the database refuses is counted and dropped (the source prints it);
//! - a "batch" is a loop of single-row statements, so the flush falls behind a busy writer;
//! - a polite stop flushes one batch of 100 and drops the rest.
//!
//! (The source also built its SQL by formatting table and column names into the statement; this
//! copy keeps bound parameters, as every query in the course does.)

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::AsyncCommands;
use shared::metrics::Counter;
use shared::worker::{Panicked, Worker};
use shared::{Database, RedisConn};

use crate::layout::Layout;

/// How many queued writes one flush takes, as in the source.
const BATCH: usize = 100;

/// Write-behind with the queue in process memory.
pub struct InProcessQueue {
    conn: RedisConn,
    db: Arc<Database>,
    layout: Layout,
    queue: Mutex<VecDeque<(i64, i64)>>,
    /// Writes the database refused, dropped.
    pub dropped: Counter,
    /// Writes still queued when the flusher stopped, dropped with the process's memory.
    pub abandoned: Counter,
}

impl InProcessQueue {
    /// Caches in `layout`'s keys through `conn` and flushes to `db`.
    pub fn new(conn: RedisConn, db: Arc<Database>, layout: Layout) -> Self {
        InProcessQueue {
            conn,
            db,
            layout,
            queue: Mutex::new(VecDeque::new()),
            dropped: Counter::default(),
            abandoned: Counter::default(),
        }
    }

    /// Adds points in the cache (no TTL), then queues the new total in memory, and returns.
    pub async fn add_points(&self, player: i64, delta: i64) -> redis::RedisResult<i64> {
        let mut conn = self.conn.clone();
        let points: i64 = conn
            .hincr(self.layout.score(player), "points", delta)
            .await?;
        // A crash here, or anywhere before the flush, loses an acknowledged write.
        self.queue
            .lock()
            .expect("queue lock")
            .push_back((player, points));
        Ok(points)
    }

    /// Starts the flush loop: every `interval`, up to 100 writes, one statement each. Stopping
    /// it flushes one more batch and drops the rest, as the source's `stop()` does.
    pub fn start(self: Arc<Self>, interval: Duration) -> Worker {
        Worker::spawn("in-process flusher", move |mut stop| async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => self.flush_batch().await,
                    _ = stop.requested() => break,
                }
            }
            self.flush_batch().await;
            let left = std::mem::take(&mut *self.queue.lock().expect("queue lock"));
            self.abandoned.add(left.len() as u64);
        })
    }

    /// Stops the flush loop (see [`InProcessQueue::start`]).
    pub async fn stop(worker: Worker) -> Result<(), Panicked> {
        worker.stop().await
    }

    /// Up to 100 queued writes, each in its own statement; a failure is dropped.
    async fn flush_batch(&self) {
        let batch: Vec<(i64, i64)> = {
            let mut queue = self.queue.lock().expect("queue lock");
            let n = queue.len().min(BATCH);
            queue.drain(..n).collect()
        };
        for (player, points) in batch {
            let written = async {
                let mut conn = self.db.connection().await?;
                sqlx::query("UPDATE scores SET points = $1 WHERE player_id = $2")
                    .bind(points)
                    .bind(player)
                    .execute(&mut *conn)
                    .await
            };
            if written.await.is_err() {
                self.dropped.inc();
            }
        }
    }
}
