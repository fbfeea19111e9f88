//! A transactional outbox: the write and the invalidation it owes commit together, and a relay
//! pays it, however long that takes.
//!
//! Every other strategy invalidates *after* the commit, from the process that wrote, once. If
//! Redis is down at that moment, or the process dies between the commit and the delete, the old
//! value stays until its TTL and nobody knows. Here the write inserts an outbox row naming the
//! keys to delete in the same transaction as the change, so either both commit or neither does.
//! A relay then deletes the keys and marks the row relayed:
//!
//! - while Redis is down it retries with a doubling backoff, and the rows wait in the database:
//!   nothing is lost, and once Redis answers, every key is deleted with no call from the writer;
//! - it is idempotent: deleting a key twice, or marking a row twice, changes nothing, so a relay
//!   that died mid-batch, or two relays at once, are harmless; a new relay starts where the
//!   table says;
//! - its lag (commit to delete) is the strategy's staleness bound while Redis is up.
//!
//! On PostgreSQL the write also sends `NOTIFY` in its transaction, delivered on commit, and the
//! relay listens, so it wakes at once. A notification sent while no relay listens is dropped,
//! not queued, so the relay also polls every `relay_poll`: on SQLite polling is all it has.
//! Facebook's memcache (NSDI 2013) derives its invalidations from the commit log in the same spirit:
//! what the database committed decides what the cache forgets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::AsyncCommands;
use shared::lease::with_leases;
use shared::metrics::{Counter, Latency, LatencySummary};
use shared::worker::{Stop, Worker};
use shared::{Database, RedisConn, budget};
use sqlx::postgres::PgListener;

use crate::catalog::{Catalog, Item, OUTBOX_CHANNEL, OutboxEntry};
use crate::settings::Settings;
use crate::strategy::{Parts, Strategy};
use shared::clock::now_ms;

/// Reads through the cache; a write commits its change and its outbox row together.
pub struct Outbox {
    parts: Parts,
}

impl Outbox {
    /// One instance's strategy. Its writes are relayed by a [`Relay`] running somewhere.
    pub fn new(parts: Parts) -> Self {
        Outbox { parts }
    }
}

impl Strategy for Outbox {
    async fn set_price(&self, id: i64, price_cents: i64) -> Result<Option<Item>, sqlx::Error> {
        let owed = self.parts.keys.affected_by(id);
        self.parts
            .db
            .commit_price(id, price_cents, Some(&owed))
            .await
    }

    fn parts(&self) -> &Parts {
        &self.parts
    }
}

// ANCHOR: forget
/// What the relay does with an outbox row's keys. This lesson's rows name Redis keys, which
/// [`DeleteKeys`] deletes; a service whose dependents are more than keys (an L1 in every instance,
/// a group of responses) says what each of its names means.
pub trait Forget: Send + Sync + 'static {
    /// Makes the caches forget what `keys` name; `false` if it could not (Redis did not answer),
    /// and then the row stays in the outbox, to be tried again.
    fn forget(&self, keys: &[String]) -> impl Future<Output = bool> + Send;
}
// ANCHOR_END: forget

/// Deletes the keys, with their leases, in one `DEL` within the Redis budget.
pub struct DeleteKeys {
    conn: RedisConn,
    timeout: Duration,
    errors: Counter,
}

impl DeleteKeys {
    /// Deletes through `conn`, each call within `timeout`.
    pub fn new(conn: RedisConn, timeout: Duration) -> Self {
        DeleteKeys {
            conn,
            timeout,
            errors: Counter::default(),
        }
    }
}

impl Forget for DeleteKeys {
    async fn forget(&self, keys: &[String]) -> bool {
        let mut conn = self.conn.clone();
        let deleted = conn.del::<_, ()>(with_leases(keys));
        budget::within(self.timeout, &self.errors, deleted)
            .await
            .is_some()
    }
}

/// What a relay has done.
#[derive(Default)]
pub struct RelayMetrics {
    /// Outbox rows whose keys were forgotten and which were marked relayed.
    pub relayed: Counter,
    /// Batches that failed (Redis or the database) and were tried again.
    pub retries: Counter,
    /// Calls to forget an entry's keys (one `DEL` each with [`DeleteKeys`]).
    pub commands: Counter,
    /// From a write's commit to the deletion of its keys.
    pub lag: Mutex<Latency>,
}

impl RelayMetrics {
    /// The lag so far.
    pub fn lag(&self) -> LatencySummary {
        self.lag.lock().expect("lag lock").summary()
    }
}

/// Why one pass of the relay stopped short. What it had not marked stays in the outbox.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Reading or marking the outbox failed.
    #[error("the outbox could not be read or marked: {0}")]
    Database(#[from] sqlx::Error),
    /// Redis did not take a delete.
    #[error("Redis did not take the delete of {keys:?}")]
    Redis {
        /// The keys of the entry that failed.
        keys: Vec<String>,
    },
}

/// Forgets what the outbox says, and marks it done.
pub struct Relay<F: Forget = DeleteKeys> {
    db: Arc<Database>,
    forget: F,
    settings: Settings,
    /// What it has done so far.
    pub metrics: RelayMetrics,
}

impl Relay {
    /// A relay from `db`'s outbox to the Redis behind `conn`, deleting the keys.
    pub fn new(db: Arc<Database>, conn: RedisConn, settings: Settings) -> Self {
        let forget = DeleteKeys::new(conn, settings.redis_timeout);
        Relay::with(db, forget, settings)
    }
}

impl<F: Forget> Relay<F> {
    /// A relay from `db`'s outbox that hands each row's keys to `forget`.
    pub fn with(db: Arc<Database>, forget: F, settings: Settings) -> Self {
        Relay {
            db,
            forget,
            settings,
            metrics: RelayMetrics::default(),
        }
    }

    /// One batch: the oldest waiting rows, each one's keys deleted (with their leases), then
    /// marked relayed. Returns how many it relayed. A row whose delete failed is not marked,
    /// nor is any after it, so the next pass starts with it.
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        // ANCHOR: relay_in_order
        let waiting = self.db.waiting_in_outbox(self.settings.relay_batch).await?;
        let mut done: Vec<OutboxEntry> = Vec::with_capacity(waiting.len());
        let mut failed = None;
        for entry in waiting {
            self.metrics.commands.inc();
            if self.forget.forget(&entry.keys).await {
                done.push(entry);
            } else {
                failed = Some(entry.keys);
                break;
            }
        }
        self.db.mark_relayed(&done).await?;
        // ANCHOR_END: relay_in_order
        let now = now_ms() as i64;
        let mut lag = self.metrics.lag.lock().expect("lag lock");
        for entry in &done {
            let ms = now.saturating_sub(entry.written_ms).max(0) as u64;
            lag.record(Duration::from_millis(ms));
        }
        self.metrics.relayed.add(done.len() as u64);
        match failed {
            Some(keys) => Err(RelayError::Redis { keys }),
            None => Ok(done.len()),
        }
    }

    /// Relays until stopped: a pass, then another at once if it was full, else a wait for a
    /// notification (PostgreSQL) or `relay_poll`; after a failure, a doubling backoff.
    pub fn start(self: Arc<Self>) -> Worker {
        Worker::spawn("outbox relay", move |mut stop| async move {
            let mut listener = self.listen().await;
            let mut backoff = self.settings.relay_backoff;
            while !stop.is_requested() {
                let wait = match self.relay_once().await {
                    Ok(n) if n as i64 == self.settings.relay_batch => continue,
                    Ok(_) => {
                        backoff = self.settings.relay_backoff;
                        self.settings.relay_poll
                    }
                    Err(_) => {
                        self.metrics.retries.inc();
                        let wait = backoff;
                        backoff = (backoff * 2).min(self.settings.relay_max_backoff);
                        wait
                    }
                };
                wake_or_wait(&mut listener, wait, &mut stop).await;
            }
        })
    }

    /// A listener for the outbox's notifications on PostgreSQL; `None` elsewhere, or if it
    /// cannot be had (then polling does the work).
    async fn listen(&self) -> Option<PgListener> {
        if self.db.backend() != "postgres" {
            return None;
        }
        let mut listener = PgListener::connect(&self.db.attachment().url).await.ok()?;
        listener.listen(OUTBOX_CHANNEL).await.ok()?;
        Some(listener)
    }
}

/// Waits `wait`, or less if a notification arrives or the relay is stopped.
async fn wake_or_wait(listener: &mut Option<PgListener>, wait: Duration, stop: &mut Stop) {
    let notified = async {
        match listener {
            Some(listener) => {
                let _ = listener.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = notified => {}
        () = tokio::time::sleep(wait) => {}
        () = stop.requested() => {}
    }
}
