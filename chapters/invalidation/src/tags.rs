//! Tags kept in Redis: a cached listing records the items it depends on, and a write of an item
//! removes every key that depends on it, in one step.
//!
//! For each item, a Redis set, `...:deps:item:12`, names the cached keys built from it. Storing a
//! listing adds the listing's key to the set of every item in it, in the same script that stores
//! the listing (checking the reader's lease first). A write of item 12 runs one script that reads
//! that set and deletes every key in it, their leases, the item's own key and the set itself.
//!
//! Two things the source material's version gets wrong, fixed here:
//!
//! - its dependency map lives in one process's memory, so an instance that did not cache the
//!   listing cannot find it when *it* writes the item: here the sets are in Redis, shared by all;
//! - its sets never expire: here each set lives at least as long as the longest-lived key it
//!   names, and no longer than that without a new one, so it goes when what it tracks goes.
//!
//! On a Redis Cluster a script may only touch keys of one slot. An item, its listing and its set
//! share the category's hash tag, so they do; the script also deletes keys it reads from the set
//! rather than receives as arguments, which Redis allows only because they are in the same slot.
//! A listing that gathered items of several categories would need one script per slot, and the
//! invalidation would no longer be one atomic step.

use std::sync::LazyLock;

use redis::Script;
use shared::budget::{self, Lookup, Trouble};
use shared::codec;
use shared::lease::{Leases, lease_key};

use crate::catalog::{Catalog, Item};
use crate::strategy::{Parts, Strategy};

/// Stores a listing if the reader's lease survived, and records it in the dependency set of each
/// item it contains, each set kept alive at least as long as the listing.
/// KEYS: the listing, its lease, then one dependency set per item. ARGV: lease token, listing
/// bytes, TTL in ms. Returns 1 if stored.
static STORE_WITH_DEPENDENCIES: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
local ttl = tonumber(ARGV[3])
for i = 3, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[1])
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
",
    )
});

// ANCHOR: invalidate_script
/// Deletes an item's key, every key its dependency set names, their leases, and the set.
/// KEYS: the item's key, its dependency set. Returns how many keys it deleted.
static INVALIDATE_DEPENDENTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local deleted = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  deleted = deleted + redis.call('DEL', key, key .. ':lease')
end
deleted = deleted + redis.call('DEL', KEYS[1], KEYS[1] .. ':lease', KEYS[2])
return deleted
",
    )
});
// ANCHOR_END: invalidate_script

/// Listings that know what they depend on, and writes that find them through Redis.
pub struct Tags {
    parts: Parts,
    leases: Leases,
}

impl Tags {
    /// One instance's strategy.
    pub fn new(parts: Parts) -> Self {
        let settings = parts.cache.settings();
        let conn = parts.cache.conn();
        let leases = Leases::new(conn, settings.lease_ttl, settings.redis_timeout);
        Tags { parts, leases }
    }

    /// Stores `listing` under its key with its dependencies, if the lease `token` survived.
    async fn store_listing(&self, key: &str, token: &str, listing: &[Item]) {
        let settings = self.parts.cache.settings();
        let bytes = codec::encode(&listing).expect("listings serialize to JSON");
        let mut store = STORE_WITH_DEPENDENCIES.prepare_invoke();
        store.key(key).key(lease_key(key));
        for item in listing {
            store.key(self.parts.keys.dependents(item.id));
        }
        store
            .arg(token)
            .arg(bytes)
            .arg(settings.ttl.as_millis() as u64);
        let mut conn = self.parts.cache.conn();
        let stored = store.invoke_async::<i64>(&mut conn);
        budget::within(settings.redis_timeout, self.parts.cache.errors(), stored).await;
    }
}

impl Strategy for Tags {
    async fn listing(&self, category: &str) -> Result<Vec<Item>, sqlx::Error> {
        let key = self.parts.keys.listing(category);
        let stats = self.parts.cache.counters();
        let trouble = Trouble {
            errors: self.parts.cache.errors(),
            corrupt: &stats.corrupt,
        };
        let budget = self.parts.cache.settings().redis_timeout;
        let lease =
            match budget::get::<Vec<Item>>(&self.parts.cache.conn(), &key, budget, trouble).await {
                Lookup::Found(listing) => {
                    stats.hits.inc();
                    return Ok(listing);
                }
                Lookup::Missing => self.leases.take(&key, self.parts.cache.errors()).await,
                Lookup::Unavailable => None,
            };
        stats.misses.inc();
        stats.loads.inc();
        let listing = self.parts.db.listing(category).await?;
        if let Some(token) = lease {
            self.store_listing(&key, &token, &listing).await;
        }
        Ok(listing)
    }

    async fn set_price(&self, id: i64, price_cents: i64) -> Result<Option<Item>, sqlx::Error> {
        let committed = self.parts.db.commit_price(id, price_cents, None).await?;
        if committed.is_some() {
            self.parts.cache.invalidation_commands.inc();
            let mut invalidate = INVALIDATE_DEPENDENTS.prepare_invoke();
            invalidate
                .key(self.parts.keys.item(id))
                .key(self.parts.keys.dependents(id));
            let mut conn = self.parts.cache.conn();
            let deleted = invalidate.invoke_async::<i64>(&mut conn);
            let budget = self.parts.cache.settings().redis_timeout;
            budget::within(budget, self.parts.cache.errors(), deleted).await;
        }
        Ok(committed)
    }

    fn parts(&self) -> &Parts {
        &self.parts
    }
}
