//! The items every variant caches, and the SQL that reads and writes them.
//!
//! An item is what a shop's page shows on every request: hot, small, and read far more often than
//! it is written. The `items` table and its seed rows are the course's ([`shared::db::items`]);
//! the queries are this lesson's. Every write raises the row's `version` in the same statement, so
//! a read can tell whether it returned what was committed last; that is how the demo counts stale
//! reads.

use serde::{Deserialize, Serialize};
use shared::Database;
use sqlx::Row;
use sqlx::any::AnyRow;

/// The course's `items` table: `create` seeds items `1..=count` at version 1, `reset` puts every
/// item back at its seed price and version 1 (neither counted).
pub use shared::db::items::{create, reset};

/// An item of the shop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The primary key.
    pub id: i64,
    /// Its category, one of [`shared::db::items::CATEGORIES`].
    pub category: String,
    /// The price in cents.
    pub price_cents: i64,
    /// Starts at 1 and rises by one with every committed write.
    pub version: i64,
}

/// One item, or `None` (one counted query).
pub async fn item(db: &Database, id: i64) -> Result<Option<Item>, sqlx::Error> {
    let mut conn = db.connection().await?;
    let row = sqlx::query("SELECT id, category, price_cents, version FROM items WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| item_from_row(&row)).transpose()
}

/// Sets an item's price and raises its version in one statement; the committed row, or `None` if
/// there is no such item.
pub async fn commit_price(
    db: &Database,
    id: i64,
    price_cents: i64,
) -> Result<Option<Item>, sqlx::Error> {
    let mut conn = db.connection().await?;
    let row = sqlx::query(
        "UPDATE items SET price_cents = $1, version = version + 1 WHERE id = $2 \
         RETURNING id, category, price_cents, version",
    )
    .bind(price_cents)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| item_from_row(&row)).transpose()
}

fn item_from_row(row: &AnyRow) -> Result<Item, sqlx::Error> {
    Ok(Item {
        id: row.try_get("id")?,
        category: row.try_get("category")?,
        price_cents: row.try_get("price_cents")?,
        version: row.try_get("version")?,
    })
}
