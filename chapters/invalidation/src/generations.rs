//! Versioned keys (generations): a category's keys carry its generation, and a write moves the
//! whole category to the next one.
//!
//! A read first asks for the category's generation (`GET ...:gen`), then reads the key of that
//! generation, `...:g7:item:12`. A write commits, then bumps the generation: one command, and
//! every key of the category, however many, is unreachable at once. Nothing is deleted. The old
//! generation's keys stay in memory until their TTL ends, which the demo measures: that memory is
//! the price of the one-command invalidation, along with the extra round trip on every read and
//! a whole category reloaded for one item's change. Rails' cache versioning and "namespace
//! versioning" in memcached are the same idea.
//!
//! The generation itself expires too, twice the TTL after the last bump, so that a category nobody
//! writes leaves nothing behind. A number must then never be handed out again: a read just before
//! the counter expired may have cached a key of its generation that lives one TTL longer, and a
//! counter starting again from 0 would, a few writes later, land on that generation and serve the
//! old value. So a bump moves to the next number or to the server's clock in milliseconds,
//! whichever is larger: a counter that expired starts again above every number it ever gave.
//!
//! What breaks it: the bump failing. Then the category stays at the old generation until its
//! keys expire, as with a failed delete.

use std::sync::LazyLock;

use redis::{AsyncCommands, Script};
use shared::budget;

use crate::catalog::{Catalog, Item, category_of};
use crate::strategy::{Parts, Strategy};

/// Moves a category to its next generation, never below the server's clock in milliseconds (so
/// that an expired counter starts again above every number it gave), and keeps the generation
/// alive for `ARGV[1]` ms. KEYS: the generation. Returns the new generation.
// ANCHOR: bump
static BUMP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = redis.call('TIME')
local clock = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local generation = math.max((tonumber(redis.call('GET', KEYS[1])) or 0) + 1, clock)
redis.call('SET', KEYS[1], generation, 'PX', ARGV[1])
return generation
",
    )
});
// ANCHOR_END: bump

/// Reads the category's generation, then its key in that generation; a write bumps it.
pub struct Generations {
    parts: Parts,
}

impl Generations {
    /// One instance's strategy.
    pub fn new(parts: Parts) -> Self {
        Generations { parts }
    }

    /// The category's generation now (0 before the first write), or `None` if Redis cannot say:
    /// then the read goes to the database, as any read does when Redis fails.
    async fn generation(&self, category: &str) -> Option<i64> {
        let mut conn = self.parts.cache.conn();
        let read = conn.get::<_, Option<i64>>(self.parts.keys.generation(category));
        let budget = self.parts.cache.settings().redis_timeout;
        let generation = budget::within(budget, self.parts.cache.errors(), read).await?;
        Some(generation.unwrap_or(0))
    }
}

impl Strategy for Generations {
    async fn item(&self, id: i64) -> Result<Option<Item>, sqlx::Error> {
        match self.generation(category_of(id)).await {
            Some(generation) => {
                let key = self.parts.keys.item_in(generation, id);
                self.parts
                    .cache
                    .get_or_load(&key, || self.parts.db.item(id))
                    .await
            }
            None => self.parts.db.item(id).await,
        }
    }

    async fn listing(&self, category: &str) -> Result<Vec<Item>, sqlx::Error> {
        match self.generation(category).await {
            Some(generation) => {
                let key = self.parts.keys.listing_in(generation, category);
                self.parts
                    .cache
                    .get_or_load(&key, || self.parts.db.listing(category))
                    .await
            }
            None => self.parts.db.listing(category).await,
        }
    }

    async fn set_price(&self, id: i64, price_cents: i64) -> Result<Option<Item>, sqlx::Error> {
        let committed = self.parts.db.commit_price(id, price_cents, None).await?;
        if committed.is_some() {
            self.parts.cache.invalidation_commands.inc();
            let settings = self.parts.cache.settings();
            let mut bump = BUMP.prepare_invoke();
            bump.key(self.parts.keys.generation(category_of(id)))
                .arg(2 * settings.ttl.as_millis() as u64);
            let mut conn = self.parts.cache.conn();
            let bumped = bump.invoke_async::<i64>(&mut conn);
            budget::within(settings.redis_timeout, self.parts.cache.errors(), bumped).await;
        }
        Ok(committed)
    }

    fn parts(&self) -> &Parts {
        &self.parts
    }
}
