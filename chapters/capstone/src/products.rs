//! Product reads and price changes: the two-tier lesson's cache, or the database alone.
//!
//! A product is read on every page view and changed rarely, and a wrong price is a wrong answer,
//! so it gets the two-tier lesson's whole machine: L1 in each instance for a second at most, Redis
//! for every instance, a lease so that a cold key is loaded once across instances, absence cached
//! like a value (a scan of missing IDs does not reach the database), and a write that commits,
//! then drops the copies and tells every instance through the backplane.
//! Products are created and deleted in [`crate::catalog`].

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shared::{Database, Instance, Namespace, SetupError};
use two_tier::catalog::{self, Item};
use two_tier::{AnyCache, Kind, Layer};

use crate::settings::Caching;

/// One instance's products.
pub enum Products {
    /// Every read a query.
    Direct(Arc<Database>),
    /// Through the two-tier lesson's reader (Redis only, or L1 and Redis with the backplane).
    Cached(Box<AnyCache>, Arc<Database>),
}

/// A price committed, and whether Redis took the invalidation that followed it.
pub struct PriceChange {
    /// The item as committed.
    pub item: Item,
    /// `false` when Redis did not take the delete (down, or slower than its budget): its copy
    /// may outlive the change until the caller has the invalidation retried.
    pub forgotten: bool,
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
        let cache = AnyCache::build(kind, instance, url, db.clone(), namespace, settings).await?;
        Ok(Products::Cached(Box::new(cache), db))
    }

    /// Item `id` (or `None`), and the layer that answered.
    pub async fn item(&self, id: i64) -> Result<(Option<Item>, Layer), sqlx::Error> {
        match self {
            Products::Direct(db) => Ok((catalog::item(db, id).await?, Layer::Database)),
            Products::Cached(cache, _) => {
                let read = cache.item(id).await?;
                Ok((read.value, read.layer))
            }
        }
    }

    // ANCHOR: set_price
    /// Commits a price, then drops every copy as the two-tier lesson's writes do (this
    /// instance's, Redis's, and the other instances' through the backplane), and says whether
    /// Redis took it. `None` if there is no such item.
    pub async fn set_price(
        &self,
        id: i64,
        price_cents: i64,
    ) -> Result<Option<PriceChange>, sqlx::Error> {
        let (db, cache) = match self {
            Products::Direct(db) => (db, None),
            Products::Cached(cache, db) => (db, Some(cache)),
        };
        let Some(item) = catalog::commit_price(db, id, price_cents).await? else {
            return Ok(None);
        };
        let forgotten = match cache {
            Some(cache) => cache.forget(id).await,
            None => true,
        };
        Ok(Some(PriceChange { item, forgotten }))
    }
    // ANCHOR_END: set_price

    /// After a commit made elsewhere that changed item `id`: every copy forgotten (the relay's
    /// work). `false` if Redis did not take it.
    pub async fn forget(&self, id: i64) -> bool {
        match self {
            Products::Direct(_) => true,
            Products::Cached(cache, _) => cache.forget(id).await,
        }
    }

    /// What the cached reader counted (nothing without one).
    pub fn stats(&self) -> two_tier::Stats {
        match self {
            Products::Direct(_) => two_tier::Stats::default(),
            Products::Cached(cache, _) => cache.stats(),
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
