//! Products created and deleted: IDs from the database, and what each write makes wrong owed in
//! the outbox.
//!
//! A product created or deleted changes more than its own entry: a cached absence, the listing
//! pages it lands on or leaves, the dashboard. Those are owed in the invalidation lesson's outbox,
//! in the write's own transaction, and a relay in each instance pays them ([`crate::dependents`]):
//! what the database committed decides what the caches forget, even if Redis is down at that
//! moment or the instance dies after its commit. New IDs come from the database, never from
//! `max(id) + 1`.

use serde::{Deserialize, Serialize};
use shared::Database;
use shared::db::Transaction;
use sqlx::Row;
use two_tier::catalog::Item;

use crate::dependents;
use crate::listing;

/// A new product.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewProduct {
    /// One of the categories.
    pub category: String,
    /// Its price in cents, at least 0.
    pub price_cents: i64,
}

/// Creates the sequence new product IDs come from, after the `seeded` items: a sequence on
/// PostgreSQL; on SQLite, which has none, a table whose `AUTOINCREMENT` key is one.
pub async fn create_id_sequence(db: &Database, seeded: i64) -> Result<(), sqlx::Error> {
    let mut setup = db.setup().await?;
    if db.backend() == "postgres" {
        let create = format!("CREATE SEQUENCE product_ids START WITH {}", seeded + 1);
        sqlx::query(&create).execute(&mut *setup).await?;
    } else {
        sqlx::query("CREATE TABLE product_ids (id INTEGER PRIMARY KEY AUTOINCREMENT)")
            .execute(&mut *setup)
            .await?;
        // The last ID handed out so far; the next one is `seeded + 1`.
        sqlx::query("INSERT INTO product_ids (id) VALUES ($1)")
            .bind(seeded)
            .execute(&mut *setup)
            .await?;
    }
    setup.commit().await
}

/// The next product ID, inside `tx`: two creates at once, on any instance, get two IDs.
async fn next_id(db: &Database, tx: &mut Transaction<'_>) -> Result<i64, sqlx::Error> {
    let next = match db.backend() {
        "postgres" => "SELECT nextval('product_ids') AS id",
        _ => "INSERT INTO product_ids DEFAULT VALUES RETURNING id",
    };
    let row = sqlx::query(next).fetch_one(tx.conn().await).await?;
    row.try_get("id")
}

// ANCHOR: create
/// Creates a product, its ID from the database; with `owes`, the same transaction records in
/// the outbox what its creation makes wrong: a cached absence of its ID, the listing pages it
/// lands on, the dashboard.
pub async fn create(db: &Database, new: &NewProduct, owes: bool) -> Result<Item, sqlx::Error> {
    let mut tx = db.begin().await?;
    let id = next_id(db, &mut tx).await?;
    sqlx::query("INSERT INTO items (id, category, price_cents, version) VALUES ($1, $2, $3, 1)")
        .bind(id)
        .bind(&new.category)
        .bind(new.price_cents)
        .execute(tx.conn().await)
        .await?;
    if owes {
        let position = position_in(&mut tx, id, &new.category).await?;
        let mut keys = vec![dependents::product(id)];
        keys.extend(listing::pages_showing(&position).map(dependents::listing));
        keys.push(dependents::DASHBOARD.to_string());
        invalidation::catalog::owe(db, &mut tx, id, 1, &keys).await?;
    }
    tx.commit().await?;
    Ok(Item {
        id,
        category: new.category.clone(),
        price_cents: new.price_cents,
        version: 1,
    })
}

/// Owes `keys` in the outbox for version `version` of item `id`, a write committed already
/// whose invalidation Redis did not take: the relay drops them once Redis answers. A crash
/// between that commit and this one leaves the copies until their TTL, as before the outbox.
pub async fn owe_after(
    db: &Database,
    id: i64,
    version: i64,
    keys: &[String],
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    invalidation::catalog::owe(db, &mut tx, id, version, keys).await?;
    tx.commit().await
}

/// Deletes product `id`; with `owes`, the same transaction records what its absence makes
/// wrong: its entry, every listing page from its own on (each item after it moves up), the
/// dashboard. The deleted row, or `None` if there was none.
pub async fn delete(db: &Database, id: i64, owes: bool) -> Result<Option<Item>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let row =
        sqlx::query("DELETE FROM items WHERE id = $1 RETURNING id, category, price_cents, version")
            .bind(id)
            .fetch_optional(tx.conn().await)
            .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let item = Item {
        id: row.try_get("id")?,
        category: row.try_get("category")?,
        price_cents: row.try_get("price_cents")?,
        version: row.try_get("version")?,
    };
    if owes {
        let position = position_in(&mut tx, id, &item.category).await?;
        let mut keys = vec![dependents::product(id)];
        keys.extend(
            listing::pages_from(&position)
                .into_iter()
                .map(dependents::listing),
        );
        keys.push(dependents::DASHBOARD.to_string());
        // The delete is the row's next version: the outbox keys a write by item and version.
        invalidation::catalog::owe(db, &mut tx, id, item.version + 1, &keys).await?;
    }
    tx.commit().await?;
    Ok(Some(item))
}
// ANCHOR_END: create

/// Where item `id` stands, inside `tx`.
async fn position_in(
    tx: &mut Transaction<'_>,
    id: i64,
    category: &str,
) -> Result<listing::Position, sqlx::Error> {
    let row = sqlx::query(listing::POSITION)
        .bind(id)
        .bind(category)
        .fetch_one(tx.conn().await)
        .await?;
    listing::position_from(&row, category)
}
