//! Counting every query, and holding it for the database's simulated latency.
//!
//! Every query a lesson makes goes through [`Database::connection`] (one statement) or a
//! [`Transaction`] (several statements committed together), and both count it and can hold the
//! connection for an artificial latency before it runs.
//!
//! Why the latency: an in-process SQLite primary-key lookup takes about 8 µs here, faster than a
//! Redis round trip (about 55 µs on loopback), so without it every demo would show the cache
//! losing. A production database is a network hop away, shared with other work, and its misses
//! touch disk; `--db-latency-ms` stands for that, and every report prints the value it used. The
//! connection is held while waiting, as it is during a real round trip, so a small pool throttles
//! a slow database the way it does in production.

use std::sync::atomic::Ordering;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection};

use super::Database;

impl Database {
    // ANCHOR: counted
    /// The door every single-statement query goes through: count it, take a pooled connection,
    /// and hold it for the configured latency before the query runs on it.
    pub async fn connection(&self) -> Result<PoolConnection<Any>, sqlx::Error> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        let conn = self.pool.acquire().await?;
        self.wait_latency().await;
        Ok(conn)
    }
    // ANCHOR_END: counted

    /// Begins a transaction. Beginning is not a query; each statement sent through
    /// [`Transaction::conn`] is, and nothing is visible to others until [`Transaction::commit`].
    pub async fn begin(&self) -> Result<Transaction<'_>, sqlx::Error> {
        Ok(Transaction {
            db: self,
            tx: self.pool.begin().await?,
        })
    }

    /// How many queries have been counted so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::SeqCst)
    }

    /// Starts counting from zero again, e.g. after a warm-up.
    pub fn reset_queries(&self) {
        self.queries.store(0, Ordering::SeqCst);
    }

    /// The latency every counted query pays.
    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Ordering::Relaxed))
    }

    /// Changes the latency every counted query pays from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.latency_us
            .store(latency.as_micros() as u64, Ordering::Relaxed);
    }

    async fn wait_latency(&self) {
        let latency = self.latency();
        if !latency.is_zero() {
            hold_for(latency).await;
        }
    }
}

/// Counted statements that commit or roll back together: a row and its outbox entry, a batch of
/// upserts. Dropped without [`commit`](Self::commit), it rolls back.
pub struct Transaction<'db> {
    db: &'db Database,
    tx: sqlx::Transaction<'static, Any>,
}

impl Transaction<'_> {
    /// The transaction's connection, for one more statement: counted and held for the latency
    /// like any query. Pass it to sqlx as the executor: `.fetch_one(tx.conn().await)`.
    pub async fn conn(&mut self) -> &mut AnyConnection {
        self.db.queries.fetch_add(1, Ordering::SeqCst);
        self.db.wait_latency().await;
        &mut self.tx
    }

    /// Makes every statement of the transaction visible at once.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

/// Waits `latency` without blocking the async workers. tokio's timer ticks in whole
/// milliseconds, so `tokio::time::sleep(2 ms)` lasts about 3 ms (measured: 3.13 ms on average);
/// a thread of the blocking pool sleeps to within a few tens of microseconds (2.17 ms), so the
/// latency a report prints is the latency the queries paid.
///
/// The sleep cannot panic; the only error its join can return is its cancellation when the
/// runtime shuts down (a demo stopped with Ctrl-C), and then there is nothing left to wait for.
async fn hold_for(latency: Duration) {
    let _ = tokio::task::spawn_blocking(move || std::thread::sleep(latency)).await;
}
