//! Delete on write: after its commit, the writer deletes every key the write made stale.
//!
//! The order matters. Deleting *before* the commit lets a reader reload the old row between the
//! delete and the commit and cache it for a whole TTL. Deleting after it leaves a window no
//! longer than the delete itself, and the lease ([`shared::lease`]) closes the other race: a
//! reader that loaded the old row before the commit finds its lease deleted with the key and
//! stores nothing.
//!
//! What breaks it: the delete failing (Redis down or slow at that moment). Then the old value
//! stays until its TTL, and nothing retries; the [outbox](crate::outbox) is the fix.

use std::sync::Arc;

use shared::Database;

use crate::cache::Cache;
use crate::catalog::{Catalog, Item};
use crate::keys::Keys;
use crate::strategy::Strategy;

/// Reads through the cache; a write commits, then deletes the item's key and its listing's.
pub struct DeleteOnWrite {
    cache: Cache,
    db: Arc<Database>,
    keys: Keys,
}

impl DeleteOnWrite {
    /// One instance's strategy.
    pub fn new(cache: Cache, db: Arc<Database>, keys: Keys) -> Self {
        DeleteOnWrite { cache, db, keys }
    }
}

impl Strategy for DeleteOnWrite {
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

    // ANCHOR: set_price
    async fn set_price(&self, id: i64, price_cents: i64) -> Result<Option<Item>, sqlx::Error> {
        let committed = self.db.commit_price(id, price_cents, None).await?;
        if committed.is_some() {
            self.cache.delete(&self.keys.affected_by(id)).await;
        }
        Ok(committed)
    }
    // ANCHOR_END: set_price

    fn cache(&self) -> &Cache {
        &self.cache
    }
}
