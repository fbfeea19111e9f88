//! # Solution: a write-through stock ledger
//!
//! The worked answer to `exercises/write-through`. Read the exercise first: the task descriptions
//! are the same here, the given parts are the exercise's own `given.rs`, included as it is, and
//! only the task bodies are filled in.
//!
//! The classic mistakes live beside this answer, not in it: each file in `mistakes/` is a patch
//! that plants one, with a note on what it breaks. CI applies each and checks that the exercise's
//! suite fails. To watch one fail: `git apply solutions/write-through/mistakes/<name>.patch`, run
//! `cargo test -p write-through-solution`, then `git apply -R` the same file.

#![warn(missing_docs)]

#[path = "../../../exercises/write-through/src/given.rs"]
mod given;

use std::sync::LazyLock;

use redis::{AsyncCommands, Script};
use shared::codec;

pub use given::{Settings, Stock, StockLevel};

/// Stores ARGV[2] under KEYS[1] unless the record there has version ARGV[1] or newer.
/// ARGV: version, record JSON, TTL in ms. Returns 1 if stored, 0 if refused.
static STORE_IF_NEWER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if current then
    local ok, record = pcall(cjson.decode, current)
    if ok and type(record) == 'table' and tonumber(record.version)
        and tonumber(record.version) >= tonumber(ARGV[1]) then
        return 0
    end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
",
    )
});

impl Stock {
    /// ## Task 1a: read through the cache
    ///
    /// Return the stock level of `sku` from its key if it is cached; otherwise load it, store it
    /// (with [`Stock::store`]) and return it. An unknown SKU is `None` and need not be cached.
    /// Redis trouble is never an error: read the database instead. Bytes under the key that do
    /// not decode as a [`StockLevel`] are a miss, never a panic or an error: load, and store
    /// over them.
    pub async fn get(&self, sku: &str) -> Result<Option<StockLevel>, sqlx::Error> {
        let key = self.key(sku);
        if !self.finish_repair(&key).await {
            return self.load(sku).await;
        }
        let cached: Option<Option<Vec<u8>>> =
            self.within_budget(self.redis.clone().get(&key)).await;
        if let Some(Some(bytes)) = &cached
            && let Ok(level) = codec::decode::<StockLevel>(bytes)
        {
            return Ok(Some(level));
        }
        let level = self.load(sku).await?;
        if cached.is_some()
            && let Some(level) = &level
        {
            self.store(level).await;
        }
        Ok(level)
    }

    /// ## Task 1b: write through
    ///
    /// Set the quantity of `sku`: commit it with [`Stock::commit_quantity`], then store the
    /// committed row (with its new version) in the cache. If the commit fails, the cache must be
    /// exactly as it was. Returns the committed row.
    pub async fn set_quantity(
        &self,
        sku: &str,
        quantity: i64,
    ) -> Result<Option<StockLevel>, sqlx::Error> {
        let Some(level) = self.commit_quantity(sku, quantity).await? else {
            return Ok(None);
        };
        if self.store(&level).await.is_none() {
            self.repair(&self.key(sku), level.version).await;
        }
        Ok(Some(level))
    }

    /// ## Task 2: versioned store
    ///
    /// Store `level` under its key for `settings.ttl`, unless the cache already holds that
    /// version or a newer one: check and write atomically, in one Lua script, sent as one
    /// command (a `GET` in Rust and a `SET` after it let another writer in between; the tests
    /// count the commands). Redis's Lua has `cjson`, so the script can read the version out of the
    /// JSON already there. Returns `Some(true)` if stored, `Some(false)` if refused as older,
    /// `None` if Redis failed (within the time budget, counted: use [`Stock::within_budget`]).
    /// An unreadable entry counts as older.
    pub async fn store(&self, level: &StockLevel) -> Option<bool> {
        let key = self.key(&level.sku);
        let bytes = codec::encode(level).expect("stock levels serialize");
        let ttl_ms = self.settings.ttl.as_millis().max(1) as u64;
        let mut invocation = STORE_IF_NEWER.key(&key);
        invocation.arg(level.version).arg(bytes).arg(ttl_ms);
        let mut conn = self.redis.clone();
        let answer: Option<i64> = self.within_budget(invocation.invoke_async(&mut conn)).await;
        let stored = answer.map(|stored| stored == 1);
        if stored == Some(true) {
            // Only a store at least as new as the failed one settles a pending repair.
            let mut unrepaired = self.unrepaired.lock().expect("repairs lock");
            if unrepaired
                .get(&key)
                .is_some_and(|&failed| level.version >= failed)
            {
                unrepaired.remove(&key);
            }
        }
        stored
    }

    /// Task 3: after a failed cache write of `version`, delete the key; if that fails too,
    /// remember it, with the version.
    async fn repair(&self, key: &str, version: i64) {
        let deleted = self
            .within_budget(self.redis.clone().del::<_, ()>(key))
            .await;
        if deleted.is_none() {
            let mut unrepaired = self.unrepaired.lock().expect("repairs lock");
            let failed = unrepaired.entry(key.to_string()).or_insert(version);
            *failed = (*failed).max(version);
        }
    }

    /// Task 3: deletes `key` first if its repair is pending. Returns whether it may be read.
    async fn finish_repair(&self, key: &str) -> bool {
        if !self
            .unrepaired
            .lock()
            .expect("repairs lock")
            .contains_key(key)
        {
            return true;
        }
        let deleted = self
            .within_budget(self.redis.clone().del::<_, ()>(key))
            .await;
        if deleted.is_some() {
            self.unrepaired.lock().expect("repairs lock").remove(key);
        }
        deleted.is_some()
    }
}

// ## Task 3: when the cache write fails
//
// No new function: make `set_quantity` and `get` keep the promise when Redis fails after the
// commit. The database has the new row; the cache may still hold the old one, and must never
// serve it again:
// - if storing the committed row fails, delete the key;
// - if the delete fails too (Redis is unreachable), remember the key in `self.unrepaired`, with
//   the version you failed to store, and have `get` delete it before serving that key from Redis
//   again (until it can, `get` reads the database);
// - a later store may settle the mark only if it stored that version or a newer one. An older one
//   can be stored too: a reader that loaded the row before the write, finding the key gone after
//   Redis came back empty, stores what it read, and that key must still be deleted before it is
//   served.
