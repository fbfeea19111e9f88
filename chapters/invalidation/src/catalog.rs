//! The items and their `outbox`: this lesson's rows, and the SQL that reads and writes them.
//!
//! The `items` table, its seed rows and its categories are the course's
//! ([`shared::db::items`]); the queries are this lesson's. An item belongs to a category for
//! ever, and a category's *listing* (every item of it, with
//! its price) is the cached value that depends on many rows: the reason invalidation is harder
//! than deleting one key. Every write raises the row's `version` in the same statement, so a read
//! can always tell whether it returned what was committed last, which is how the demo counts
//! stale reads.
//!
//! The `outbox` holds, for each write that asked for it, the cache keys to invalidate, committed
//! in the same transaction as the write ([`crate::outbox`]). Its key is the write itself, the
//! item and its new version, so recording it twice is impossible and relaying it twice harmless.

use serde::{Deserialize, Serialize};
use shared::Database;
use shared::clock::now_ms;
use shared::db::{Transaction, items};
use sqlx::any::AnyRow;
use sqlx::{Executor, Row};

pub use shared::db::items::{CATEGORIES, category_of};

/// An item of the shop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The primary key.
    pub id: i64,
    /// One of [`CATEGORIES`], fixed by the id ([`category_of`]).
    pub category: String,
    /// The price in cents.
    pub price_cents: i64,
    /// Starts at 1 and rises by one with every committed write.
    pub version: i64,
}

/// One outbox row: a committed write whose cache keys are still to be invalidated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The item written.
    pub item: i64,
    /// The version the write committed.
    pub version: i64,
    /// The cache keys to delete.
    pub keys: Vec<String>,
    /// When the write committed, in ms since the Unix epoch (the writer's clock): where the
    /// relay's lag starts.
    pub written_ms: i64,
}

/// The PostgreSQL channel a write with an outbox row notifies, so the relay wakes at once.
pub const OUTBOX_CHANNEL: &str = "course_invalidation_outbox";

/// Creates the shared [`items`](shared::db::items) table, seeded with items `1..=count` at
/// version 1, and the outbox (not counted).
pub async fn create(db: &Database, count: i64) -> Result<(), sqlx::Error> {
    items::create(db, count).await?;
    create_outbox(db).await
}

/// Creates the `outbox` table alone (not counted), for a service whose items are made elsewhere.
pub async fn create_outbox(db: &Database) -> Result<(), sqlx::Error> {
    let mut setup = db.setup().await?;
    setup
        .execute(
            "CREATE TABLE outbox (
                item_id BIGINT NOT NULL,
                version BIGINT NOT NULL,
                cache_keys TEXT NOT NULL,
                written_ms BIGINT NOT NULL,
                relayed BIGINT NOT NULL DEFAULT 0,
                PRIMARY KEY (item_id, version)
            )",
        )
        .await?;
    setup
        .execute("CREATE INDEX outbox_waiting ON outbox (relayed, written_ms)")
        .await?;
    setup.commit().await
}

/// Records, inside the transaction `tx` of `db`, that the write of `item` at `version` owes the
/// invalidation of `keys`; on PostgreSQL it also notifies [`OUTBOX_CHANNEL`], which is delivered
/// only if that transaction commits. Every write that owes an invalidation calls this before its
/// commit, never after.
pub async fn owe(
    db: &Database,
    tx: &mut Transaction<'_>,
    item: i64,
    version: i64,
    keys: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (item_id, version, cache_keys, written_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind(item)
    .bind(version)
    .bind(keys.join("\n"))
    .bind(now_ms() as i64)
    .execute(tx.conn().await)
    .await?;
    if db.backend() == "postgres" {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(OUTBOX_CHANNEL)
            .execute(tx.conn().await)
            .await?;
    }
    Ok(())
}

/// Every item back to its seed price at version 1, and the outbox empty (not counted): each of
/// the demo's runs starts from the same rows.
pub async fn reset(db: &Database) -> Result<(), sqlx::Error> {
    items::reset(db).await?;
    let mut setup = db.setup().await?;
    setup.execute("DELETE FROM outbox").await?;
    setup.commit().await
}

/// The item queries, on the course database. Each statement is counted.
pub trait Catalog {
    /// One item, or `None`.
    fn item(&self, id: i64) -> impl Future<Output = Result<Option<Item>, sqlx::Error>> + Send;

    /// Every item of `category`, by id: a listing.
    fn listing(
        &self,
        category: &str,
    ) -> impl Future<Output = Result<Vec<Item>, sqlx::Error>> + Send;

    /// Sets an item's price and raises its version, in one transaction; with `outbox` keys, the
    /// same transaction records them for the relay (and, on PostgreSQL, notifies
    /// [`OUTBOX_CHANNEL`], which is delivered only if the transaction commits). Returns the committed row, or `None` if there
    /// is no such item.
    fn commit_price(
        &self,
        id: i64,
        price_cents: i64,
        outbox: Option<&[String]>,
    ) -> impl Future<Output = Result<Option<Item>, sqlx::Error>> + Send;

    /// Up to `limit` outbox entries not yet relayed, oldest write first.
    fn waiting_in_outbox(
        &self,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<OutboxEntry>, sqlx::Error>> + Send;

    /// Marks entries relayed. Marking one twice changes nothing.
    fn mark_relayed(
        &self,
        entries: &[OutboxEntry],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

impl Catalog for Database {
    async fn item(&self, id: i64) -> Result<Option<Item>, sqlx::Error> {
        let mut conn = self.connection().await?;
        let row = sqlx::query("SELECT id, category, price_cents, version FROM items WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|row| item_from_row(&row)).transpose()
    }

    async fn listing(&self, category: &str) -> Result<Vec<Item>, sqlx::Error> {
        let mut conn = self.connection().await?;
        let rows = sqlx::query(
            "SELECT id, category, price_cents, version FROM items WHERE category = $1 ORDER BY id",
        )
        .bind(category)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(item_from_row).collect()
    }

    async fn commit_price(
        &self,
        id: i64,
        price_cents: i64,
        outbox: Option<&[String]>,
    ) -> Result<Option<Item>, sqlx::Error> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE items SET price_cents = $1, version = version + 1 WHERE id = $2 \
             RETURNING id, category, price_cents, version",
        )
        .bind(price_cents)
        .bind(id)
        .fetch_optional(tx.conn().await)
        .await?;
        let item = row.map(|row| item_from_row(&row)).transpose()?;
        if let (Some(item), Some(keys)) = (&item, outbox) {
            owe(self, &mut tx, item.id, item.version, keys).await?;
        }
        tx.commit().await?;
        Ok(item)
    }

    async fn waiting_in_outbox(&self, limit: i64) -> Result<Vec<OutboxEntry>, sqlx::Error> {
        let mut conn = self.connection().await?;
        let rows = sqlx::query(
            "SELECT item_id, version, cache_keys, written_ms FROM outbox WHERE relayed = 0 \
             ORDER BY written_ms, item_id, version LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                let keys: String = row.try_get("cache_keys")?;
                Ok(OutboxEntry {
                    item: row.try_get("item_id")?,
                    version: row.try_get("version")?,
                    keys: keys.lines().map(str::to_string).collect(),
                    written_ms: row.try_get("written_ms")?,
                })
            })
            .collect()
    }

    async fn mark_relayed(&self, entries: &[OutboxEntry]) -> Result<(), sqlx::Error> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for entry in entries {
            sqlx::query("UPDATE outbox SET relayed = 1 WHERE item_id = $1 AND version = $2")
                .bind(entry.item)
                .bind(entry.version)
                .execute(tx.conn().await)
                .await?;
        }
        tx.commit().await
    }
}

fn item_from_row(row: &AnyRow) -> Result<Item, sqlx::Error> {
    Ok(Item {
        id: row.try_get("id")?,
        category: row.try_get("category")?,
        price_cents: row.try_get("price_cents")?,
        version: row.try_get("version")?,
    })
}
