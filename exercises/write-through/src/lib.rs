//! # Exercise: a write-through stock ledger
//!
//! A shop shows "only 3 left" on every product page, and the number must be right: a page that
//! says "in stock" after the last unit sold is a support ticket. Stock levels are read far more
//! often than they change, so they are cached write-through: every change goes to the database
//! and then to the cache, and reads always come from the cache. You will make that promise hold
//! in three tasks. Run the graded tests with
//!
//! ```text
//! cargo test -p write-through-exercise
//! ```
//!
//! and replace each `todo!()` until they pass. The tests of one task run alone with
//! `cargo test -p write-through-exercise task1` (or `task2`, `task3`). The tests use a real Redis
//! and a real database, count queries and Redis commands, look at the cached records, and stop
//! Redis at the worst moment. Stuck? Each task
//! has a hint in `exercises/write-through/HINTS.md` (also in the book), and a worked answer in
//! `solutions/write-through`.
//!
//! What you have to work with (all given):
//! - [`Stock::load`] and [`Stock::commit_quantity`]: the database side, one transaction per
//!   change, returning the committed row and its new version;
//! - [`Stock::key`]: where a SKU's stock level is cached; the tests look there;
//! - [`Stock::within_budget`]: runs a Redis call within `settings.redis_timeout` and counts its
//!   failure, so a Redis problem becomes `None` instead of an error;
//! - [`shared::codec`]: `encode` / `decode` between [`StockLevel`] and JSON bytes.
//!
//! The given parts ([`StockLevel`], [`Settings`], the [`Stock`]'s state and its database side)
//! are in `src/given.rs`.

#![warn(missing_docs)]

mod given;

pub use given::{Settings, Stock, StockLevel};

impl Stock {
    /// ## Task 1a: read through the cache
    ///
    /// Return the stock level of `sku` from its key if it is cached; otherwise load it, store it
    /// (with [`Stock::store`]) and return it. An unknown SKU is `None` and need not be cached.
    /// Redis trouble is never an error: read the database instead. Bytes under the key that do
    /// not decode as a [`StockLevel`] are a miss, never a panic or an error: load, and store
    /// over them.
    pub async fn get(&self, sku: &str) -> Result<Option<StockLevel>, sqlx::Error> {
        let _ = sku;
        todo!("task 1a: the cache first; on a miss, load and store")
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
        let _ = (sku, quantity);
        todo!("task 1b: commit first, then store the committed row; task 3: repair a failed store")
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
        let _ = level;
        todo!("task 2: store unless the cache holds this version or a newer one, atomically")
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
