//! # Exercise: a write-through stock ledger
//!
//! A shop shows "only 3 left" on every product page, and the number must be right: a page that
//! says "in stock" after the last unit sold is a support ticket. Stock levels are read far more
//! often than they change, so they are cached write-through: every change goes to the database
//! and then to the cache, and reads always come from the cache. You will make that promise hold
//! in three tasks. Run the graded tests with
//!
//! ```text
//! cargo test -p write-through-exercise
//! ```
//!
//! and replace each `todo!()` until they pass. The tests use a real Redis and a real database,
//! count queries, look at the cached records, and stop Redis at the worst moment. Stuck? Each task
//! has a hint in `exercises/write-through/HINTS.md` (also in the book), and a worked answer in
//! `solutions/write-through`.
//!
//! What you have to work with (all given):
//! - [`Stock::load`] and [`Stock::commit_quantity`]: the database side, one transaction per
//!   change, returning the committed row and its new version;
//! - [`Stock::key`]: where a SKU's stock level is cached; the tests look there;
//! - [`Stock::within_budget`]: runs a Redis call within `settings.redis_timeout` and counts its
//!   failure, so a Redis problem becomes `None` instead of an error;
//! - [`shared::codec`]: `encode` / `decode` between [`StockLevel`] and JSON bytes.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::RedisResult;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use shared::metrics::Counter;
use shared::{Database, Namespace};
use sqlx::Row;

/// How many units of one SKU are in stock, and the version of that row: it starts at 1 and the
/// database raises it by one on every committed change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    pub sku: String,
    pub quantity: i64,
    pub version: i64,
}

#[derive(Clone, Debug)]
pub struct Settings {
    /// How long a cached stock level lives: the last safety net.
    pub ttl: Duration,
    /// The longest any one Redis call may take.
    pub redis_timeout: Duration,
}

pub struct Stock {
    pub db: Arc<Database>,
    pub redis: ConnectionManager,
    pub namespace: Namespace,
    pub settings: Settings,
    /// Redis calls that failed or ran out of time.
    pub redis_errors: Counter,
    /// Keys that must be deleted before they are served again (task 3).
    pub unrepaired: Mutex<HashSet<String>>,
}

impl Stock {
    /// Creates the `stock_levels` table in `db` and seeds `sku-1` to `sku-{skus}` with 10 units
    /// each, at version 1. (These queries are counted like any other; the tests reset the count.)
    pub async fn open(
        db: Arc<Database>,
        redis: ConnectionManager,
        namespace: Namespace,
        settings: Settings,
        skus: usize,
    ) -> Result<Self, sqlx::Error> {
        let mut conn = db.connection().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS stock_levels (
                sku TEXT PRIMARY KEY,
                quantity BIGINT NOT NULL CHECK (quantity >= 0),
                version BIGINT NOT NULL
            )",
        )
        .execute(&mut *conn)
        .await?;
        for n in 1..=skus {
            sqlx::query(
                "INSERT INTO stock_levels (sku, quantity, version) VALUES ($1, 10, 1) \
                 ON CONFLICT (sku) DO NOTHING",
            )
            .bind(format!("sku-{n}"))
            .execute(&mut *conn)
            .await?;
        }
        Ok(Stock {
            db,
            redis,
            namespace,
            settings,
            redis_errors: Counter::default(),
            unrepaired: Mutex::new(HashSet::new()),
        })
    }

    /// Where the stock level of `sku` is cached.
    pub fn key(&self, sku: &str) -> String {
        self.namespace.key(&format!("stock:{sku}"))
    }

    /// The stock level of `sku` in the database, or `None`.
    pub async fn load(&self, sku: &str) -> Result<Option<StockLevel>, sqlx::Error> {
        let mut conn = self.db.connection().await?;
        let row = sqlx::query("SELECT sku, quantity, version FROM stock_levels WHERE sku = $1")
            .bind(sku)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|row| level_from_row(&row)).transpose()
    }

    /// Sets the quantity of `sku` in the database, raising its version, in one transaction, and
    /// returns the committed row (`None`: no such SKU). A negative quantity is refused by the
    /// table: the transaction fails and nothing changes.
    pub async fn commit_quantity(
        &self,
        sku: &str,
        quantity: i64,
    ) -> Result<Option<StockLevel>, sqlx::Error> {
        let mut conn = self.db.connection().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let row = sqlx::query(
            "UPDATE stock_levels SET quantity = $1, version = version + 1 WHERE sku = $2 \
             RETURNING sku, quantity, version",
        )
        .bind(quantity)
        .bind(sku)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(|row| level_from_row(&row)).transpose()
    }

    /// Runs one Redis call within `settings.redis_timeout`. A failure or a timeout adds one to
    /// `redis_errors` and becomes `None`.
    pub async fn within_budget<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Option<T> {
        match tokio::time::timeout(self.settings.redis_timeout, call).await {
            Ok(Ok(value)) => Some(value),
            _ => {
                self.redis_errors.inc();
                None
            }
        }
    }

    /// ## Task 1a: read through the cache
    ///
    /// Return the stock level of `sku` from its key if it is cached; otherwise load it, store it
    /// (with [`Stock::store`]) and return it. An unknown SKU is `None` and need not be cached.
    /// Redis trouble is never an error: read the database instead.
    pub async fn get(&self, sku: &str) -> Result<Option<StockLevel>, sqlx::Error> {
        let _ = sku;
        todo!("task 1a: the cache first; on a miss, load and store")
    }

    /// ## Task 1b: write through
    ///
    /// Set the quantity of `sku`: commit it with [`Stock::commit_quantity`], then store the
    /// committed row (with its new version) in the cache. If the commit fails, the cache must be
    /// exactly as it was. Returns the committed row.
    pub async fn set_quantity(
        &self,
        sku: &str,
        quantity: i64,
    ) -> Result<Option<StockLevel>, sqlx::Error> {
        let _ = (sku, quantity);
        todo!("task 1b: commit first, then store the committed row; task 3: repair a failed store")
    }

    /// ## Task 2: versioned store
    ///
    /// Store `level` under its key for `settings.ttl`, unless the cache already holds that
    /// version or a newer one: check and write atomically, in one Lua script. Returns
    /// `Some(true)` if stored, `Some(false)` if refused as older, `None` if Redis failed.
    /// An unreadable entry counts as older.
    pub async fn store(&self, level: &StockLevel) -> Option<bool> {
        let _ = level;
        todo!("task 2: store unless the cache holds this version or a newer one, atomically")
    }
}

// ## Task 3: when the cache write fails
//
// No new function: make `set_quantity` and `get` keep the promise when Redis fails after the
// commit. The database has the new row; the cache may still hold the old one, and must never
// serve it again:
// - if storing the committed row fails, delete the key;
// - if the delete fails too (Redis is unreachable), remember the key in `self.unrepaired`, and
//   have `get` delete it before serving that key from Redis again (until it can, `get` reads
//   the database).

fn level_from_row(row: &sqlx::any::AnyRow) -> Result<StockLevel, sqlx::Error> {
    Ok(StockLevel {
        sku: row.try_get("sku")?,
        quantity: row.try_get("quantity")?,
        version: row.try_get("version")?,
    })
}
