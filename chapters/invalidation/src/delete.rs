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

use crate::catalog::{Catalog, Item};
use crate::strategy::{Parts, Strategy};

/// Reads through the cache; a write commits, then deletes the item's key and its listing's.
pub struct DeleteOnWrite {
    parts: Parts,
}

impl DeleteOnWrite {
    /// One instance's strategy.
    pub fn new(parts: Parts) -> Self {
        DeleteOnWrite { parts }
    }
}

impl Strategy for DeleteOnWrite {
    async fn set_price(&self, id: i64, price_cents: i64) -> Result<Option<Item>, sqlx::Error> {
        // ANCHOR: set_price
        let committed = self.parts.db.commit_price(id, price_cents, None).await?;
        if committed.is_some() {
            self.parts
                .cache
                .delete(&self.parts.keys.affected_by(id))
                .await;
        }
        Ok(committed)
        // ANCHOR_END: set_price
    }

    fn parts(&self) -> &Parts {
        &self.parts
    }
}
