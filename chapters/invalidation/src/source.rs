//! The source material's dependency tracking, kept as the counter-example.
//!
//! It remembers which cached keys depend on which item in a map in the process's own memory, and
//! also adds them to a Redis set with no TTL. A write of an item deletes the keys *this process*
//! remembers. Two things go wrong:
//!
//! - each instance knows only the listings it cached itself: when instance B writes an item whose
//!   listing instance A cached, B's map has no entry, and A's listing stays stale until its TTL;
//! - the Redis sets never expire: every key ever cached is named in some set for ever, long after
//!   the key itself expired, and the sets grow without bound.
//!
//! The course's copy gives each set a TTL of an hour, [`SAFETY_TTL`], set with the `SADD` in one
//! transaction: within a run that is never, so the flaw shows, but a run killed before it could
//! clean up leaves nothing on the learner's Redis for ever.
//!
//! [`crate::tags`] is the fix: the sets live in Redis, are read by the writer whoever cached the
//! listing, and expire with what they track.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use shared::budget;

use crate::catalog::{Catalog, Item};
use crate::strategy::{Parts, Strategy};

/// How long the course's copy keeps a dependency set: far beyond any run, unlike the listings
/// the set tracks (the flaw), but not for ever (a killed run's sets go in the end).
pub const SAFETY_TTL: std::time::Duration = std::time::Duration::from_secs(3_600);

/// Listings tracked in this process's memory, and in Redis sets that never expire.
pub struct LocalDependencies {
    parts: Parts,
    /// Item id to the keys this process cached that depend on it.
    dependents: Mutex<HashMap<i64, HashSet<String>>>,
}

impl LocalDependencies {
    /// One instance's strategy, with an empty map of its own.
    pub fn new(parts: Parts) -> Self {
        LocalDependencies {
            parts,
            dependents: Mutex::new(HashMap::new()),
        }
    }
}

impl LocalDependencies {
    /// Notes, in this process's map, that `key` depends on item `id`.
    fn remember(&self, id: i64, key: &str) {
        let mut map = self.dependents.lock().expect("dependency map lock");
        map.entry(id).or_default().insert(key.to_string());
    }
}

impl Strategy for LocalDependencies {
    async fn listing(&self, category: &str) -> Result<Vec<Item>, sqlx::Error> {
        let key = self.parts.keys.listing(category);
        let load = || async {
            let listing = self.parts.db.listing(category).await?;
            // Caching it: note what it depends on, here and in Redis (with no TTL in the source;
            // the course's safety TTL in the same transaction).
            let mut conn = self.parts.cache.conn();
            let budget = self.parts.cache.settings().redis_timeout;
            for item in &listing {
                self.remember(item.id, &key);
                let set = self.parts.keys.dependents(item.id);
                let mut add = redis::pipe();
                add.atomic()
                    .sadd(&set, &key)
                    .ignore()
                    .pexpire(&set, SAFETY_TTL.as_millis() as i64)
                    .ignore();
                let added = add.query_async::<()>(&mut conn);
                budget::within(budget, self.parts.cache.errors(), added).await;
            }
            Ok(listing)
        };
        self.parts.cache.get_or_load(&key, load).await
    }

    async fn set_price(&self, id: i64, price_cents: i64) -> Result<Option<Item>, sqlx::Error> {
        let committed = self.parts.db.commit_price(id, price_cents, None).await?;
        if committed.is_some() {
            let remembered = self
                .dependents
                .lock()
                .expect("dependency map lock")
                .remove(&id)
                .unwrap_or_default();
            let mut stale = vec![self.parts.keys.item(id)];
            stale.extend(remembered);
            self.parts.cache.delete(&stale).await;
        }
        Ok(committed)
    }

    fn parts(&self) -> &Parts {
        &self.parts
    }
}
