//! TTL only: nothing happens after a write, and the old value lives until it expires.
//!
//! The baseline every other strategy is measured against, and the safety net under all of them:
//! whatever else fails, an entry is gone `ttl` after it was stored, so an old value is served for
//! at most `ttl` after the commit (a reader that stored just before the write).

use crate::catalog::{Catalog, Item};
use crate::strategy::{Parts, Strategy};

/// Reads through the cache; writes only commit.
pub struct TtlOnly {
    parts: Parts,
}

impl TtlOnly {
    /// One instance's strategy.
    pub fn new(parts: Parts) -> Self {
        TtlOnly { parts }
    }
}

impl Strategy for TtlOnly {
    async fn set_price(&self, id: i64, price_cents: i64) -> Result<Option<Item>, sqlx::Error> {
        self.parts.db.commit_price(id, price_cents, None).await
    }

    fn parts(&self) -> &Parts {
        &self.parts
    }
}
