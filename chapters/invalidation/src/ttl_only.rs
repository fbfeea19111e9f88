//! TTL only: nothing happens after a write, and the old value lives until it expires.
//!
//! The baseline every other strategy is measured against, and the safety net under all of them:
//! whatever else fails, an entry is gone `ttl` after it was stored, so an old value is served for
//! at most `ttl` after the commit (a reader that stored just before the write).

use std::sync::Arc;

use shared::Database;

use crate::cache::Cache;
use crate::catalog::{Catalog, Item};
use crate::keys::Keys;
use crate::strategy::Strategy;

/// Reads through the cache; writes only commit.
pub struct TtlOnly {
    cache: Cache,
    db: Arc<Database>,
    keys: Keys,
}

impl TtlOnly {
    /// One instance's strategy.
    pub fn new(cache: Cache, db: Arc<Database>, keys: Keys) -> Self {
        TtlOnly { cache, db, keys }
    }
}

impl Strategy for TtlOnly {
    async fn item(&self, id: i64) -> Result<Option<Item>, sqlx::Error> {
        self.cache
            .get_or_load(&self.keys.item(id), || self.db.item(id))
            .await
    }

    async fn listing(&self, category: &str) -> Result<Vec<Item>, sqlx::Error> {
        self.cache
            .get_or_load(&self.keys.listing(category), || self.db.listing(category))
            .await
    }

    async fn set_price(&self, id: i64, price_cents: i64) -> Result<Option<Item>, sqlx::Error> {
        self.db.commit_price(id, price_cents, None).await
    }

    fn cache(&self) -> &Cache {
        &self.cache
    }
}
