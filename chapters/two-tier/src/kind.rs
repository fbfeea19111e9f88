//! The four ways the demo and the tests read items, behind one type.

use std::num::NonZeroUsize;
use std::sync::Arc;

use redis::caching::CacheConfig;
use shared::staleness::Probed;
use shared::{Database, Instance, Namespace, SetupError};

use crate::aside::Aside;
use crate::catalog::Item;
use crate::l2::L2;
use crate::metrics::{Metrics, Stats};
use crate::settings::Settings;
use crate::source::SourceTwoTier;
use crate::two_tier::{Read, ReadError, TwoTier};

shared::variants! {
    /// Which reader, in the order the demo shows them. The slug names its keys and namespaces.
    pub enum Kind {
        /// Cache-aside over Redis, nothing in the process.
        RedisOnly = ("redis-only", "Redis only"),
        /// The source material's dictionary in front of Redis.
        Source = ("source", "dict L1 (source)"),
        /// moka in front of Redis, kept in step by a backplane.
        TwoTier = ("two-tier", "two-tier + backplane"),
        /// Redis's own client-side caching: tracking and invalidation pushes, through redis-rs.
        Tracking = ("tracking", "client tracking"),
    }
}

/// One instance's reader, whichever it is.
pub enum AnyCache {
    /// [`Kind::RedisOnly`] or [`Kind::Tracking`].
    Aside(Aside),
    /// [`Kind::Source`].
    Source(SourceTwoTier),
    /// [`Kind::TwoTier`].
    TwoTier(TwoTier),
}

impl AnyCache {
    /// `kind`'s reader for `instance`. Tracking opens a connection of its own (RESP3, with a
    /// client-side cache as big and as long-lived as the L1), which can fail.
    pub async fn build(
        kind: Kind,
        instance: &Instance,
        url: &str,
        db: Arc<Database>,
        namespace: &Namespace,
        settings: Settings,
    ) -> Result<Self, SetupError> {
        let metrics = Arc::new(Metrics::default());
        let l2 = |conn| L2::new(conn, namespace.clone(), &settings, metrics.clone());
        Ok(match kind {
            Kind::RedisOnly => AnyCache::Aside(Aside::new(db, l2(instance.conn.clone()), metrics)),
            Kind::Tracking => {
                let size =
                    NonZeroUsize::new(settings.l1_capacity as usize).unwrap_or(NonZeroUsize::MIN);
                let cache = CacheConfig::new()
                    .set_size(size)
                    .set_default_client_ttl(settings.l1_ttl);
                let conn = shared::connection::connect_tracking(url, cache).await?;
                AnyCache::Aside(Aside::new(db, l2(conn), metrics))
            }
            Kind::Source => {
                let capacity = settings.l1_capacity as usize;
                AnyCache::Source(SourceTwoTier::new(
                    db,
                    l2(instance.conn.clone()),
                    metrics.clone(),
                    capacity,
                ))
            }
            Kind::TwoTier => {
                AnyCache::TwoTier(TwoTier::new(instance, db, namespace, settings).await)
            }
        })
    }

    /// Item `id`, and the layer that answered.
    pub async fn item(&self, id: i64) -> Result<Read<Option<Item>>, ReadError> {
        match self {
            AnyCache::Aside(c) => c.item(id).await,
            AnyCache::Source(c) => c.item(id).await,
            AnyCache::TwoTier(c) => c.item(id).await,
        }
    }

    /// Commits a price and invalidates as this reader does.
    pub async fn set_price(&self, id: i64, price_cents: i64) -> Result<Option<Item>, sqlx::Error> {
        match self {
            AnyCache::Aside(c) => c.set_price(id, price_cents).await,
            AnyCache::Source(c) => c.set_price(id, price_cents).await,
            AnyCache::TwoTier(c) => c.set_price(id, price_cents).await,
        }
    }

    /// After a commit made elsewhere that changed item `id` (a create, a delete): forgets the
    /// copies as this reader's own writes do. `false` if Redis did not take the delete.
    pub async fn forget(&self, id: i64) -> bool {
        match self {
            AnyCache::Aside(c) => c.forget(id).await,
            AnyCache::Source(c) => c.forget(id).await,
            AnyCache::TwoTier(c) => c.forget(id).await,
        }
    }

    /// What this instance counted. For tracking, the replies its connection served from memory
    /// are moved from the L2 hits to the L1 hits, where they belong.
    pub fn stats(&self) -> Stats {
        match self {
            AnyCache::Aside(c) => {
                let mut stats = c.stats();
                let local = c.client_cache_hits().min(stats.l2_hits);
                stats.l2_hits -= local;
                stats.l1_hits += local;
                stats
            }
            AnyCache::Source(c) => c.stats(),
            AnyCache::TwoTier(c) => c.stats(),
        }
    }
}

/// A write is seen by an instance once a read of the item returns its version or a newer one.
impl Probed for AnyCache {
    async fn serves(&self, id: i64, version: i64) -> bool {
        let read = self.item(id).await.ok().and_then(|r| r.value);
        read.is_some_and(|item| item.version >= version)
    }
}
