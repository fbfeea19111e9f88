//! # Exercise: a write-behind page-view counter
//!
//! A news site counts views on every page load, and shows the count beside each article. That
//! is a write on every request, far too many for the database one at a time, and a count that
//! may reach the database a second late. So the counts are cached write-behind: a view is
//! acknowledged once Redis has it, and a flusher writes the counts to the database in batches.
//! The promise to keep: **no acknowledged view is ever lost or counted twice**, whatever crashes
//! when. You will keep it in three tasks. Run the graded tests with
//!
//! ```text
//! cargo test -p write-behind-exercise
//! ```
//!
//! and replace each `todo!()` until they pass. The tests of one task run alone with
//! `cargo test -p write-behind-exercise task1` (or `task2`, `task3`). The tests use a real Redis
//! and a real database; they count queries and Redis commands, read the cached counts, the queue
//! and its pending entries, break the database mid-flush and stop Redis. Stuck? Each task has a
//! hint in `exercises/write-behind/HINTS.md` (also in the book), and a worked answer in
//! `solutions/write-behind`.
//!
//! How the parts fit (all keys share the hash tag `{views}`, so one script may touch any of
//! them, on a cluster too):
//! - [`Views::key`]: a page's cached count, a hash with the fields `views` and `version`. It has
//!   a TTL while *clean* (the database has it) and none while *dirty* (a write of it is queued):
//!   Redis never expires it, nor evicts it under a `volatile-*` policy, before it is flushed.
//! - [`Views::queue`]: a Redis Stream of the writes not yet in the database, read by flushers in
//!   the consumer group [`GROUP`]. Each entry carries `page`, `views` and `version`: the count
//!   *after* the write, so that applying an entry twice changes nothing.
//! - [`Views::versions`]: the register, a hash of the last version handed out per page.
//!
//! What you have to work with (all given, in `src/given.rs`):
//! - [`Views::fill`]: caches a cold page's row from the database, with its TTL (it reads the
//!   register, so it never caches a row that is behind a queued write);
//! - [`Views::load`]: a page's row in the database;
//! - [`Views::read_new`]: reads up to `settings.batch_size` new entries as a consumer of
//!   [`GROUP`], as [`Entry`] values; [`Entry::from_stream`] turns any stream reply's entry
//!   into one;
//! - [`Views::redis_call`]: runs a Redis call within `settings.redis_timeout` and counts its
//!   failure; with `?` its error becomes [`WriteError::QueueUnavailable`] or
//!   [`FlushError::Redis`];
//! - `self.db.begin()`, `tx.conn()`, `tx.commit()`: a counted transaction (every statement sent
//!   through `tx.conn()` is counted; the tests count them).

#![warn(missing_docs)]

mod given;

pub use given::{Entry, FlushError, GROUP, Settings, ViewCount, Views, WriteError};

impl Views {
    /// ## Task 1: the acknowledged write
    ///
    /// Adds `n` views to `page` and returns its count after the write. Returns once the new
    /// count is cached *and* queued, and not before.
    ///
    /// - **One Lua script, sent as one command**, so that the cache and the queue change
    ///   together or not at all (once the page is cached, the tests see exactly one `EVAL` or
    ///   `EVALSHA` per write, and nothing else). With KEYS [`Views::key`], [`Views::versions`],
    ///   [`Views::queue`], it reads the cached `views` and `version`, adds `n` and 1, writes them
    ///   back, removes the key's TTL (`PERSIST`: the count is dirty now), sets the page's field
    ///   in the register to the new version, and appends an entry with the fields `page`,
    ///   `views` and `version` (the new count and version, not `n`) with `XADD queue *`. Never
    ///   cap or trim the queue (no `MAXLEN` or `MINID`, however large): it holds the only copy
    ///   of the writes not yet in the database, and only their acknowledgement may remove them.
    /// - **A page not cached** (no key, or no readable count under it): the script changes
    ///   nothing and says so (for example `return false`, which arrives as `None`); then call
    ///   [`Views::fill`] and run the script again, at most three times in all, then give up with
    ///   [`WriteError::Behind`]. So a cold page counts on from its database row: 40 views at
    ///   version 7, plus 2, is 42 views at version 8. (Giving up happens when the page's key is
    ///   gone while a write of it is still queued: `fill` then caches nothing, and trying for
    ///   ever would hang the request until a flush.)
    /// - An unknown page is [`WriteError::NoSuchPage`] (from `fill`), and leaves no key and no
    ///   entry behind.
    /// - **The database is not written**: a write reads it only through `fill`, for a cold page.
    ///   Redis failing (through [`Views::redis_call`]) is [`WriteError::QueueUnavailable`], never a
    ///   write to the database behind the queue's back (a queued older count would overwrite
    ///   it when flushed).
    pub async fn record_views(&self, page: &str, n: i64) -> Result<ViewCount, WriteError> {
        let _ = (page, n);
        todo!("task 1: cache and queue the new count in one script; fill a cold page and retry")
    }

    /// ## Task 2a: apply a batch
    ///
    /// Writes `entries` to the database in one transaction of one statement, and returns, for
    /// each page of `entries` (once each, in any order), the entry it kept for that page as a
    /// [`ViewCount`]: the page's highest version in `entries`, whether or not the row took it
    /// (a row at that version or a newer one keeps its own). [`Views::acknowledge`] gives those
    /// pages their TTL back, so a page left out (say, one the version guard refused on a
    /// replay) would stay without a TTL.
    ///
    /// - **Coalesce**: entries may come in any order and name a page several times; keep, per
    ///   page, the entry with the highest version. (A page twice in one upsert is an error on
    ///   PostgreSQL: "ON CONFLICT DO UPDATE command cannot affect row a second time".)
    /// - **One statement** in one transaction (`self.db.begin()`, one `tx.conn()`,
    ///   `tx.commit()`): a multi-row `INSERT INTO page_views (page, views, version) VALUES
    ///   (...), (...) ON CONFLICT (page) DO UPDATE ...`, with **bound parameters only**
    ///   (`$1, $2, ...`; a page may be called `o'clock`). `settings.batch_size` keeps a batch
    ///   within both databases' parameter limits.
    /// - **Only a newer version replaces a row**: an entry applied a second time, or an older
    ///   one after a newer one, changes nothing (`... WHERE page_views.version <
    ///   excluded.version`).
    /// - No entries: no query, and an empty result. A failure is an error, and the transaction
    ///   leaves the table as it was.
    pub async fn apply(&self, entries: &[Entry]) -> Result<Vec<ViewCount>, sqlx::Error> {
        let _ = entries;
        todo!("task 2a: coalesce, then one versioned multi-row upsert in one transaction")
    }

    /// ## Task 2b: acknowledge a flushed batch
    ///
    /// Called after the commit of `flushed` (what [`Views::apply`] returned for `entries`).
    /// **One Lua script, sent as one command**:
    /// - `XACK` (group [`GROUP`]) and `XDEL` every entry, so that the queue holds only what is
    ///   not yet in the database: its length is the backlog, and it cannot grow without bound;
    /// - give each flushed page's key its TTL back (`PEXPIRE`, `settings.ttl`), **only if its
    ///   cached version is still the flushed one**: a page written again since the batch was read
    ///   is dirty and must keep no TTL. Checking in Rust and expiring after would let that
    ///   write slip in between.
    pub async fn acknowledge(
        &self,
        entries: &[Entry],
        flushed: &[ViewCount],
    ) -> Result<(), FlushError> {
        let _ = (entries, flushed);
        todo!("task 2b: XACK and XDEL the entries, PEXPIRE the pages still at the flushed version")
    }

    /// ## Task 2c: one flush
    ///
    /// Reads the entries no consumer has received yet, as `consumer` ([`Views::read_new`]),
    /// applies them, and **only after the commit** acknowledges them. Returns how many entries
    /// it flushed (entries read, not pages: 0 if there were none). If the database fails, the
    /// flush is [`FlushError::Database`] and nothing is acknowledged: the entries stay pending
    /// with `consumer`, to be applied later (task 3), and their pages keep no TTL.
    pub async fn flush_once(&self, consumer: &str) -> Result<usize, FlushError> {
        let _ = consumer;
        todo!("task 2c: read, apply, then acknowledge")
    }

    /// ## Task 3: recover a dead flusher's entries
    ///
    /// A flusher that died between reading and acknowledging left its entries pending. Claim
    /// them as `consumer` with `XAUTOCLAIM`, apply and acknowledge them batch by batch, and
    /// return how many entries were recovered.
    ///
    /// - Claim only entries pending for at least `settings.claim_idle`: a live flusher's batch,
    ///   read a moment ago, is not yours to take.
    /// - Start at `0-0`, claim at most `settings.batch_size` at a time (`COUNT`), and follow the
    ///   cursor `XAUTOCLAIM` returns until it comes back as `0-0`: one call claims one batch, not
    ///   all. Only the cursor says when you are done: a batch may come back empty with a cursor
    ///   that is not `0-0` (pending entries already deleted from the stream are dropped from the
    ///   pending list and not returned).
    /// - Apply and acknowledge each batch before claiming the next: one statement per batch that
    ///   holds entries, so that a crash part-way loses none of the batches already done.
    /// - Some of what you claim may have been applied already (its flusher died after the
    ///   commit, before the acknowledgement). Applying it again must change nothing: that is
    ///   why an entry carries the count and its version, and why `apply` refuses older versions.
    pub async fn recover(&self, consumer: &str) -> Result<usize, FlushError> {
        let _ = consumer;
        todo!("task 3: XAUTOCLAIM after claim_idle, following the cursor; apply and acknowledge")
    }
}
