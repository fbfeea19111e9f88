//! The given parts of the stock-ledger exercise: the row type, the settings, the ledger's state,
//! its database side and its time budget. Written for you; the tasks are in `lib.rs`. (The worked
//! answer in `solutions/write-through` includes this very file, so the two can never drift
//! apart.)

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::RedisResult;
use serde::{Deserialize, Serialize};
use shared::RedisConn;
use shared::metrics::Counter;
use shared::{Database, Namespace};
use sqlx::Row;

/// How many units of one SKU are in stock, and the version of that row: it starts at 1 and the
/// database raises it by one on every committed change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockLevel {
    /// The stock-keeping unit, e.g. `sku-3`.
    pub sku: String,
    /// Units in stock; never negative.
    pub quantity: i64,
    /// The row's version.
    pub version: i64,
}

/// The cache's TTL and time budget.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long a cached stock level lives: the last safety net.
    pub ttl: Duration,
    /// The longest any one Redis call may take.
    pub redis_timeout: Duration,
}

/// The stock ledger of one application instance.
pub struct Stock {
    /// The shop's database; every query is counted.
    pub db: Arc<Database>,
    /// The Redis connection (clone it to get a `&mut` one: clones share the connection).
    pub redis: RedisConn,
    /// The prefix of every key; [`Stock::key`] applies it.
    pub namespace: Namespace,
    /// The TTL and time budget to apply.
    pub settings: Settings,
    /// Redis calls that failed or ran out of time.
    pub redis_errors: Counter,
    /// Keys that must be deleted before they are served again, each with the version of the
    /// committed row whose store failed (task 3).
    pub unrepaired: Mutex<HashMap<String, i64>>,
}

impl Stock {
    /// Creates the `stock_levels` table in `db` and seeds `sku-1` to `sku-{skus}` with 10 units
    /// each, at version 1. (Setup: these statements are not counted.)
    pub async fn open(
        db: Arc<Database>,
        redis: RedisConn,
        namespace: Namespace,
        settings: Settings,
        skus: usize,
    ) -> Result<Self, sqlx::Error> {
        let mut setup = db.setup().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS stock_levels (
                sku TEXT PRIMARY KEY,
                quantity BIGINT NOT NULL CHECK (quantity >= 0),
                version BIGINT NOT NULL
            )",
        )
        .execute(&mut *setup)
        .await?;
        for n in 1..=skus {
            sqlx::query(
                "INSERT INTO stock_levels (sku, quantity, version) VALUES ($1, 10, 1) \
                 ON CONFLICT (sku) DO NOTHING",
            )
            .bind(format!("sku-{n}"))
            .execute(&mut *setup)
            .await?;
        }
        setup.commit().await?;
        Ok(Stock {
            db,
            redis,
            namespace,
            settings,
            redis_errors: Counter::default(),
            unrepaired: Mutex::new(HashMap::new()),
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
        let mut tx = self.db.begin().await?;
        let row = sqlx::query(
            "UPDATE stock_levels SET quantity = $1, version = version + 1 WHERE sku = $2 \
             RETURNING sku, quantity, version",
        )
        .bind(quantity)
        .bind(sku)
        .fetch_optional(tx.conn().await)
        .await?;
        tx.commit().await?;
        row.map(|row| level_from_row(&row)).transpose()
    }

    /// Runs one Redis call within `settings.redis_timeout`. A failure or a timeout adds one to
    /// `redis_errors` and becomes `None`.
    pub async fn within_budget<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Option<T> {
        shared::budget::within(self.settings.redis_timeout, &self.redis_errors, call).await
    }
}

fn level_from_row(row: &sqlx::any::AnyRow) -> Result<StockLevel, sqlx::Error> {
    Ok(StockLevel {
        sku: row.try_get("sku")?,
        quantity: row.try_get("quantity")?,
        version: row.try_get("version")?,
    })
}
