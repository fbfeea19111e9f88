//! Broadcast events: every instance keeps its own copies, and a write tells them all to drop them.
//!
//! An instance that keeps values in its own memory answers in well under a microsecond, and
//! nothing in Redis can reach into that memory: a delete there leaves every instance's copy as it
//! was. So after its commit the writer deletes the keys in Redis *and* publishes the item's id on
//! a channel every instance subscribes to; each drops its copies of the item and its listing.
//!
//! Pub/sub is **at most once**. A subscriber whose connection dropped misses every message sent
//! until it has resubscribed, and nobody tells it which. What bounds the damage here:
//!
//! - the subscription reports that it reconnected ([`shared::pubsub::Event::Missed`]), and the
//!   instance then drops *every* copy: it may have missed anything;
//! - until it notices, every copy expires `local_ttl` after it was made.
//!
//! One race remains inside an instance: a load that started before an event and finishes after
//! it would put the old value back. Each event raises an *epoch*, and a load stores its copy only
//! if the epoch is the one it started under.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use moka::sync::Cache as LocalCache;
use redis::AsyncCommands;
use shared::metrics::Counter;
use shared::pubsub::{Event, Subscription};
use shared::worker::Worker;
use shared::{Instance, budget};

use crate::catalog::{Catalog, Item, category_of};
use crate::strategy::{Parts, Strategy};

/// What one instance holds in its own memory, and how it learns to drop it.
struct Local {
    items: LocalCache<i64, Option<Item>>,
    listings: LocalCache<String, Vec<Item>>,
    /// Raised by every event: a load that saw another epoch when it started must not store.
    epoch: AtomicU64,
    /// Events heard.
    events: Counter,
    /// Times every copy was dropped because events may have been missed.
    flushes: Counter,
}

impl Local {
    fn drop_item(&self, id: i64) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.items.invalidate(&id);
        self.listings.invalidate(category_of(id));
    }

    fn drop_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.items.invalidate_all();
        self.listings.invalidate_all();
        self.flushes.inc();
    }
}

/// Own copies in front of the Redis cache, dropped by events on a channel.
pub struct Broadcast {
    parts: Parts,
    channel: String,
    local: Arc<Local>,
    _listener: Worker,
    _subscription: Subscription,
}

impl Broadcast {
    /// One instance's strategy: its own copies, and its subscription to the run's channel.
    pub async fn new(parts: Parts, instance: &Instance) -> Self {
        let ttl = parts.cache.settings().local_ttl;
        let local = Arc::new(Local {
            items: LocalCache::builder().time_to_live(ttl).build(),
            listings: LocalCache::builder().time_to_live(ttl).build(),
            epoch: AtomicU64::new(0),
            events: Counter::default(),
            flushes: Counter::default(),
        });
        let channel = parts.keys.namespace().key("invalidations");
        let subscription = instance.subscribe(&channel).await;
        let listener = {
            let local = local.clone();
            subscription.handle_each("invalidation listener", move |event| {
                let local = local.clone();
                async move {
                    match event {
                        Event::Message(payload) => {
                            local.events.inc();
                            match std::str::from_utf8(&payload)
                                .ok()
                                .and_then(|s| s.parse().ok())
                            {
                                Some(id) => local.drop_item(id),
                                None => local.drop_all(),
                            }
                        }
                        Event::Missed => local.drop_all(),
                    }
                }
            })
        };
        Broadcast {
            parts,
            channel,
            local,
            _listener: listener,
            _subscription: subscription,
        }
    }

    /// Events this instance heard, and the times it dropped every copy.
    pub fn heard(&self) -> (u64, u64) {
        (self.local.events.get(), self.local.flushes.get())
    }

    /// The epoch now, for a load to compare with when it is done.
    fn epoch(&self) -> u64 {
        self.local.epoch.load(Ordering::SeqCst)
    }
}

impl Strategy for Broadcast {
    async fn item(&self, id: i64) -> Result<Option<Item>, sqlx::Error> {
        if let Some(copy) = self.local.items.get(&id) {
            return Ok(copy);
        }
        // ANCHOR: epoch
        let started = self.epoch();
        let item = self
            .parts
            .cache
            .get_or_load(&self.parts.keys.item(id), || self.parts.db.item(id))
            .await?;
        if self.epoch() == started {
            self.local.items.insert(id, item.clone());
        }
        // ANCHOR_END: epoch
        Ok(item)
    }

    async fn listing(&self, category: &str) -> Result<Vec<Item>, sqlx::Error> {
        if let Some(copy) = self.local.listings.get(category) {
            return Ok(copy);
        }
        let started = self.epoch();
        let listing = self
            .parts
            .cache
            .get_or_load(&self.parts.keys.listing(category), || {
                self.parts.db.listing(category)
            })
            .await?;
        if self.epoch() == started {
            self.local
                .listings
                .insert(category.to_string(), listing.clone());
        }
        Ok(listing)
    }

    async fn set_price(&self, id: i64, price_cents: i64) -> Result<Option<Item>, sqlx::Error> {
        let committed = self.parts.db.commit_price(id, price_cents, None).await?;
        if committed.is_some() {
            self.local.drop_item(id);
            self.parts
                .cache
                .delete(&self.parts.keys.affected_by(id))
                .await;
            self.parts.cache.invalidation_commands.inc();
            let mut conn = self.parts.cache.conn();
            let publish = conn.publish::<_, _, i64>(&self.channel, id.to_string());
            let budget = self.parts.cache.settings().redis_timeout;
            budget::within(budget, self.parts.cache.errors(), publish).await;
        }
        Ok(committed)
    }

    fn parts(&self) -> &Parts {
        &self.parts
    }
}
