//! Redis only, and Redis with server-assisted client-side caching: the two readers the
//! two-tier cache is compared with, both plain cache-aside over [`L2`].
//!
//! *Redis only* pays a round trip for every read. *Tracking* is the same code on a connection
//! made with [`shared::connection::connect_tracking`]: redis-rs keeps the replies in the
//! process, the server remembers which keys this connection read and pushes an invalidation
//! when one changes, so a write's `DEL` alone reaches every instance's memory, with no channel
//! of our own. What it does not give: a lifetime we choose per value (redis-rs's is per
//! connection), the fail-safe, or a count of which reads it answered (only totals, from
//! [`RedisConn::client_cache`](shared::RedisConn::client_cache)).

use std::sync::Arc;

use shared::Database;

use crate::catalog::{self, Item};
use crate::l2::L2;
use crate::metrics::{Metrics, Stats};
use crate::two_tier::{Read, ReadError};

/// Cache-aside over Redis, with whatever the connection does below it.
pub struct Aside {
    db: Arc<Database>,
    l2: L2,
    metrics: Arc<Metrics>,
}

impl Aside {
    /// Cache-aside over `l2`, counting into `metrics` (the same `l2` counts into).
    pub fn new(db: Arc<Database>, l2: L2, metrics: Arc<Metrics>) -> Self {
        Aside { db, l2, metrics }
    }

    /// Item `id`, from Redis (or the connection's own memory, when it tracks) or the database.
    pub async fn item(&self, id: i64) -> Result<Read<Option<Item>>, ReadError> {
        let (value, layer) = self
            .l2
            .get_or_load(id, || catalog::item(&self.db, id))
            .await?;
        self.metrics.answered(layer);
        Ok(Read { value, layer })
    }

    /// Commits a price and deletes the Redis key (with tracking, the server then tells every
    /// connection that read it).
    pub async fn set_price(&self, id: i64, price_cents: i64) -> Result<Option<Item>, sqlx::Error> {
        let committed = catalog::commit_price(&self.db, id, price_cents).await?;
        if committed.is_some() {
            self.forget(id).await;
        }
        Ok(committed)
    }

    /// After a commit that changed item `id`: deletes the Redis key (with tracking, the server
    /// then tells every connection that read it). `false` if Redis did not take it.
    pub async fn forget(&self, id: i64) -> bool {
        self.l2.delete(id).await
    }

    /// What this instance counted so far; with tracking, the reads its connection answered from
    /// memory are among the L2 hits (see [`Aside::client_cache_hits`]).
    pub fn stats(&self) -> Stats {
        self.metrics.snapshot()
    }

    /// With tracking: replies the connection served from its own memory; else 0.
    pub fn client_cache_hits(&self) -> u64 {
        self.l2.conn().client_cache().map_or(0, |s| s.hit as u64)
    }
}
