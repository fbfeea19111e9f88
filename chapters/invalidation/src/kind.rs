//! Every strategy behind one type, for everything that runs them side by side.
//!
//! The demo runs each through the same workload and the same Redis outage, and the tests hold
//! each to its bound. [`Kind`] names a strategy and [`AnyStrategy`] is any one of them, built for
//! one application [`Instance`], which the demo's staleness probe asks for the item and its
//! listing after each write ([`Probed`]).

use std::sync::Arc;

use shared::staleness::Probed;
use shared::{Database, Instance};

use crate::cache::Cache;
use crate::catalog::{Item, category_of};
use crate::delete::DeleteOnWrite;
use crate::events::Broadcast;
use crate::generations::Generations;
use crate::keys::Keys;
use crate::outbox::Outbox;
use crate::pattern::PatternDelete;
use crate::settings::Settings;
use crate::source::LocalDependencies;
use crate::strategy::{Parts, Strategy};
use crate::tags::Tags;
use crate::ttl_only::TtlOnly;

shared::variants! {
    /// Which strategy, in the order of the chapter, the counter-example last. The slug names the
    /// strategy's keys in a run that compares several.
    pub enum Kind {
        /// Nothing after a write: the TTL alone.
        TtlOnly = ("ttl", "TTL only"),
        /// Delete the keys after the commit.
        Delete = ("delete", "delete on write"),
        /// Own copies per instance, dropped by a broadcast.
        Events = ("events", "broadcast events"),
        /// Keys carry the category's generation; a write bumps it.
        Generations = ("generations", "generations"),
        /// Dependency sets in Redis; a write deletes every dependent.
        Tags = ("tags", "tags in Redis"),
        /// `SCAN` + `UNLINK` every key of the category.
        Pattern = ("pattern", "pattern delete"),
        /// The invalidation committed with the write, paid by a relay.
        Outbox = ("outbox", "outbox + relay"),
        /// The source material's dependency map in process memory (the counter-example).
        LocalDependencies = ("local-deps", "local dependency map (source)"),
    }
}

/// One application instance running one of the strategies.
pub enum AnyStrategy {
    /// See [`TtlOnly`].
    TtlOnly(TtlOnly),
    /// See [`DeleteOnWrite`].
    Delete(DeleteOnWrite),
    /// See [`Broadcast`].
    Events(Broadcast),
    /// See [`Generations`].
    Generations(Generations),
    /// See [`Tags`].
    Tags(Tags),
    /// See [`PatternDelete`].
    Pattern(PatternDelete),
    /// See [`Outbox`].
    Outbox(Outbox),
    /// See [`LocalDependencies`].
    LocalDependencies(LocalDependencies),
}

impl AnyStrategy {
    /// Strategy `kind` on `instance`'s connection, keeping its keys as `keys` says.
    pub async fn build(
        kind: Kind,
        instance: &Instance,
        db: Arc<Database>,
        keys: Keys,
        settings: Settings,
    ) -> Self {
        let cache = Cache::new(instance.conn.clone(), settings);
        let parts = Parts { cache, db, keys };
        match kind {
            Kind::TtlOnly => AnyStrategy::TtlOnly(TtlOnly::new(parts)),
            Kind::Delete => AnyStrategy::Delete(DeleteOnWrite::new(parts)),
            Kind::Events => AnyStrategy::Events(Broadcast::new(parts, instance).await),
            Kind::Generations => AnyStrategy::Generations(Generations::new(parts)),
            Kind::Tags => AnyStrategy::Tags(Tags::new(parts)),
            Kind::Pattern => AnyStrategy::Pattern(PatternDelete::new(parts)),
            Kind::Outbox => AnyStrategy::Outbox(Outbox::new(parts)),
            Kind::LocalDependencies => {
                AnyStrategy::LocalDependencies(LocalDependencies::new(parts))
            }
        }
    }
}

/// Calls the same method on whichever strategy it is.
macro_rules! each {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStrategy::TtlOnly($s) => $call,
            AnyStrategy::Delete($s) => $call,
            AnyStrategy::Events($s) => $call,
            AnyStrategy::Generations($s) => $call,
            AnyStrategy::Tags($s) => $call,
            AnyStrategy::Pattern($s) => $call,
            AnyStrategy::Outbox($s) => $call,
            AnyStrategy::LocalDependencies($s) => $call,
        }
    };
}

impl Strategy for AnyStrategy {
    async fn item(&self, id: i64) -> Result<Option<Item>, sqlx::Error> {
        each!(self, s => s.item(id).await)
    }

    async fn listing(&self, category: &str) -> Result<Vec<Item>, sqlx::Error> {
        each!(self, s => s.listing(category).await)
    }

    async fn set_price(&self, id: i64, price_cents: i64) -> Result<Option<Item>, sqlx::Error> {
        each!(self, s => s.set_price(id, price_cents).await)
    }

    fn parts(&self) -> &Parts {
        each!(self, s => s.parts())
    }
}

/// A write is seen by an instance once both places that show the item do: its own page and its
/// category's listing.
impl Probed for AnyStrategy {
    async fn serves(&self, id: i64, version: i64) -> bool {
        let item = self.item(id).await.ok().flatten();
        let listing = self.listing(category_of(id)).await.unwrap_or_default();
        let listed = listing.iter().find(|i| i.id == id);
        let fresh = |v: Option<i64>| v.is_some_and(|v| v >= version);
        fresh(item.map(|i| i.version)) && fresh(listed.map(|i| i.version))
    }
}
