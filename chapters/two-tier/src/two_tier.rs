//! The two-tier cache: L1 in the instance's memory, L2 in Redis, the database behind both, and
//! the backplane keeping the L1s of every instance within their bound.
//!
//! A read tries the layers in order of cost: L1 (under a microsecond), then Redis (a round
//! trip), then the database. Concurrent misses of one key in one instance make one trip between
//! them ([`L1::get_or_fetch`]); a write commits, drops its own copy, deletes the Redis key and
//! announces the id on the backplane.
//!
//! **Fail-safe.** When Redis and the database both fail, a value loaded in the last
//! `fail_safe_max_age` is better than an error for most pages (a price a minute old rather than
//! no page). So L1 keeps an entry past its freshness, up to that age, and a failed fetch
//! answers with it, marked [`Layer::FailSafe`] ([`L1::get_or_fetch`]), fresh again for
//! `fail_safe_throttle` only, so a failing database is asked again once per throttle per key,
//! not once per request. After the maximum age there is nothing to serve, and the read fails.

use std::sync::Arc;

use shared::{Database, Instance, Namespace};

use crate::backplane::Backplane;
use crate::catalog::{self, Item};
use crate::l1::{Fetch, L1};
use crate::l2::L2;
use crate::metrics::{Layer, Metrics, Stats};
use crate::settings::Settings;

/// A value, and the layer that answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read<V> {
    /// The value.
    pub value: V,
    /// Which layer answered.
    pub layer: Layer,
}

/// A read that no layer could answer: the database failed, and the fail-safe had nothing young
/// enough.
pub type ReadError = sqlx::Error;

/// One application instance's two-tier cache of items.
pub struct TwoTier {
    db: Arc<Database>,
    l1: Arc<L1<Option<Item>>>,
    l2: L2,
    backplane: Backplane,
    metrics: Arc<Metrics>,
    settings: Settings,
}

impl TwoTier {
    /// The cache of `instance`, on `db`, keys and channel under `namespace`.
    pub async fn new(
        instance: &Instance,
        db: Arc<Database>,
        namespace: &Namespace,
        settings: Settings,
    ) -> Self {
        let metrics = Arc::new(Metrics::default());
        let l1 = Arc::new(L1::new(&settings));
        let l2 = L2::new(
            instance.conn.clone(),
            namespace.clone(),
            &settings,
            metrics.clone(),
        );
        let backplane = Backplane::join(instance, namespace, l1.clone(), metrics.clone()).await;
        TwoTier {
            db,
            l1,
            l2,
            backplane,
            metrics,
            settings,
        }
    }

    /// Item `id`, from the cheapest layer that has it.
    pub async fn item(&self, id: i64) -> Result<Read<Option<Item>>, ReadError> {
        if let Some(entry) = self.l1.get(id).await {
            // A fail-safe answer kept for the throttle is still an old value: say so.
            let layer = match entry.layer {
                Layer::FailSafe => Layer::FailSafe,
                _ => Layer::L1,
            };
            self.metrics.answered(layer);
            return Ok(Read {
                value: entry.value,
                layer,
            });
        }
        // ANCHOR: through_the_layers
        let fetched = self.l2.get_or_load(id, || catalog::item(&self.db, id));
        let (entry, fetch) = self.l1.get_or_fetch(id, fetched).await?;
        // ANCHOR_END: through_the_layers
        match fetch {
            Fetch::Waited => self.metrics.coalesced.inc(),
            Fetch::Kept | Fetch::FailSafe => self.metrics.answered(entry.layer),
            Fetch::Undone => {
                self.metrics.superseded.inc();
                self.metrics.answered(entry.layer);
            }
        }
        Ok(Read {
            value: entry.value,
            layer: entry.layer,
        })
    }

    // ANCHOR: set_price
    /// Commits a new price, then forgets every copy of the item. The committed row, or `None` if
    /// there is no such item.
    pub async fn set_price(&self, id: i64, price_cents: i64) -> Result<Option<Item>, sqlx::Error> {
        let committed = catalog::commit_price(&self.db, id, price_cents).await?;
        if committed.is_some() {
            self.forget(id).await;
        }
        Ok(committed)
    }

    /// After a commit that changed item `id` (here, or a create or delete made elsewhere): drops
    /// this instance's copy, deletes the Redis key with its lease, and announces the change to
    /// every other instance. `false` if Redis did not take the delete.
    pub async fn forget(&self, id: i64) -> bool {
        self.l1.invalidate(id).await;
        let deleted = self.l2.delete(id).await;
        let conn = self.l2.conn();
        let (settings, metrics) = (&self.settings, &*self.metrics);
        self.backplane.announce(&conn, id, settings, metrics).await;
        deleted
    }
    // ANCHOR_END: set_price

    /// What this instance counted so far.
    pub fn stats(&self) -> Stats {
        self.metrics.snapshot()
    }

    /// This instance's L1, for the tests to look into.
    pub fn l1(&self) -> &L1<Option<Item>> {
        &self.l1
    }

    /// How many times the backplane subscription was lost and made again.
    pub fn reconnects(&self) -> u64 {
        self.backplane.reconnects()
    }
}
