//! Product reads and price changes: the two-tier lesson's cache, or the database alone.
//!
//! A product is read on every page view and changed rarely, and a wrong price is a wrong answer,
//! so it gets the two-tier lesson's whole machine: L1 in each instance for a second at most, Redis
//! for every instance, a lease so that a cold key is loaded once across instances, absence cached
//! like a value (a scan of missing IDs does not reach the database), and a write that commits,
//! then drops the copies and tells every instance through the backplane.
//!
//! A product created or deleted changes more than its own entry: a cached absence, the listing
//! pages it lands on or leaves, the dashboard. Those are owed in the invalidation lesson's outbox,
//! in the write's own transaction, and a relay in each instance pays them ([`crate::dependents`]):
//! what the database committed decides what the caches forget, even if Redis is down at that
//! moment or the instance dies after its commit. New IDs come from the database, never from
//! `max(id) + 1`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shared::db::Transaction;
use shared::{Database, Instance, Namespace, SetupError};
use sqlx::Row;
use two_tier::catalog::{self, Item};
use two_tier::{AnyCache, Kind, Layer};

use crate::listing;
use crate::settings::Caching;

/// One instance's products.
pub enum Products {
    /// Every read a query.
    Direct(Arc<Database>),
    /// Through the two-tier lesson's reader (Redis only, or L1 and Redis with the backplane).
    Cached(Box<AnyCache>),
}

impl Products {
    /// The products of `instance` under `caching`.
    pub async fn new(
        caching: Caching,
        instance: &Instance,
        url: &str,
        db: Arc<Database>,
        namespace: &Namespace,
        settings: two_tier::Settings,
    ) -> Result<Self, SetupError> {
        let kind = match caching {
            Caching::NoCache => return Ok(Products::Direct(db)),
            Caching::RedisOnly => Kind::RedisOnly,
            Caching::Layered | Caching::Conditional => Kind::TwoTier,
        };
        let cache = AnyCache::build(kind, instance, url, db, namespace, settings).await?;
        Ok(Products::Cached(Box::new(cache)))
    }

    /// Item `id` (or `None`), and the layer that answered.
    pub async fn item(&self, id: i64) -> Result<(Option<Item>, Layer), sqlx::Error> {
        match self {
            Products::Direct(db) => Ok((catalog::item(db, id).await?, Layer::Database)),
            Products::Cached(cache) => {
                let read = cache.item(id).await?;
                Ok((read.value, read.layer))
            }
        }
    }

    /// Commits a price; the cached reader then drops every copy.
    pub async fn set_price(&self, id: i64, price_cents: i64) -> Result<Option<Item>, sqlx::Error> {
        match self {
            Products::Direct(db) => catalog::commit_price(db, id, price_cents).await,
            Products::Cached(cache) => cache.set_price(id, price_cents).await,
        }
    }

    /// After a commit made elsewhere that changed item `id`: every copy forgotten (the relay's
    /// work). `false` if Redis did not take it.
    pub async fn forget(&self, id: i64) -> bool {
        match self {
            Products::Direct(_) => true,
            Products::Cached(cache) => cache.forget(id).await,
        }
    }

    /// What the cached reader counted (nothing without one).
    pub fn stats(&self) -> two_tier::Stats {
        match self {
            Products::Direct(_) => two_tier::Stats::default(),
            Products::Cached(cache) => cache.stats(),
        }
    }
}

/// A product as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductView {
    /// The item's id.
    pub id: i64,
    /// Its category.
    pub category: String,
    /// Its price in cents.
    pub price_cents: i64,
    /// Raised by every committed change.
    pub version: i64,
}

impl From<Item> for ProductView {
    fn from(item: Item) -> Self {
        ProductView {
            id: item.id,
            category: item.category,
            price_cents: item.price_cents,
            version: item.version,
        }
    }
}

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
        let mut keys = vec![crate::dependents::product(id)];
        keys.extend(listing::pages_showing(&position).map(crate::dependents::listing));
        keys.push(crate::dependents::DASHBOARD.to_string());
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
        let mut keys = vec![crate::dependents::product(id)];
        keys.extend(
            listing::pages_from(&position)
                .into_iter()
                .map(crate::dependents::listing),
        );
        keys.push(crate::dependents::DASHBOARD.to_string());
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
