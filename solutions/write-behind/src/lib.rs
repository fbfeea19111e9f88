//! # Solution: a write-behind page-view counter
//!
//! The worked answer to `exercises/write-behind`. Read the exercise first: the task descriptions
//! are the same here, the given parts are the exercise's own `given.rs`, included as it is, and
//! only the task bodies are filled in.
//!
//! The classic mistakes live beside this answer, not in it: each file in `mistakes/` is a patch
//! that plants one, with a note on what it breaks. CI applies each and checks that the exercise's
//! suite fails. To watch one fail: `git apply solutions/write-behind/mistakes/<name>.patch`, run
//! `cargo test -p write-behind-solution`, then `git apply -R` the same file.

#![warn(missing_docs)]

#[path = "../../../exercises/write-behind/src/given.rs"]
mod given;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use redis::streams::{StreamAutoClaimOptions, StreamAutoClaimReply};
use redis::{AsyncCommands, Script};

pub use given::{Entry, FlushError, GROUP, Settings, ViewCount, Views, WriteError};

/// Adds views to a cached count and queues the result, atomically. KEYS: the count, the
/// register, the queue. ARGV: page, views to add. Returns `{views, version}`, or `false` when
/// the page is not cached (or the key holds something else).
static RECORD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local views = tonumber(redis.pcall('HGET', KEYS[1], 'views'))
local version = tonumber(redis.pcall('HGET', KEYS[1], 'version'))
if not views or not version then return false end
views = views + tonumber(ARGV[2])
version = version + 1
redis.call('HSET', KEYS[1], 'views', views, 'version', version)
redis.call('PERSIST', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], version)
redis.call('XADD', KEYS[3], '*', 'page', ARGV[1], 'views', views, 'version', version)
return {views, version}
",
    )
});

/// Acknowledges and deletes entries, and gives each flushed page its TTL back unless a newer
/// write made it dirty again. KEYS: the queue, then one count per flushed page. ARGV: the group,
/// the TTL in ms, the number of entry ids, the ids, then one flushed version per page.
static ACKNOWLEDGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local ids = tonumber(ARGV[3])
for i = 4, 3 + ids do
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
end
for k = 2, #KEYS do
  local cached = redis.pcall('HGET', KEYS[k], 'version')
  if cached == ARGV[3 + ids + k - 1] then
    redis.call('PEXPIRE', KEYS[k], ARGV[2])
  end
end
return ids
",
    )
});

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
        for _ in 0..3 {
            let mut call = RECORD.prepare_invoke();
            call.key(self.key(page))
                .key(self.versions())
                .key(self.queue())
                .arg(page)
                .arg(n);
            let mut conn = self.redis.clone();
            let reply = self
                .redis_call(call.invoke_async::<Option<(i64, i64)>>(&mut conn))
                .await?;
            match reply {
                Some((views, version)) => {
                    return Ok(ViewCount {
                        page: page.to_string(),
                        views,
                        version,
                    });
                }
                None => self.fill(page).await?,
            }
        }
        Err(WriteError::Behind(page.to_string()))
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
        let mut latest: BTreeMap<&str, &Entry> = BTreeMap::new();
        for entry in entries {
            let newest = latest.entry(&entry.page).or_insert(entry);
            if entry.version > newest.version {
                *newest = entry;
            }
        }
        if latest.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<ViewCount> = latest
            .into_values()
            .map(|entry| ViewCount {
                page: entry.page.clone(),
                views: entry.views,
                version: entry.version,
            })
            .collect();
        let values: Vec<String> = (0..rows.len())
            .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO page_views (page, views, version) VALUES {} \
             ON CONFLICT (page) DO UPDATE SET views = excluded.views, version = excluded.version \
             WHERE page_views.version < excluded.version",
            values.join(", ")
        );
        let mut upsert = sqlx::query(&sql);
        for row in &rows {
            upsert = upsert.bind(&row.page).bind(row.views).bind(row.version);
        }
        let mut tx = self.db.begin().await?;
        upsert.execute(tx.conn().await).await?;
        tx.commit().await?;
        Ok(rows)
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
    ///
    /// ### This answer
    ///
    /// After the commit: acknowledges and deletes `entries`, and gives each page of `flushed`
    /// its TTL back, unless it was written again meanwhile. One script, one command.
    pub async fn acknowledge(
        &self,
        entries: &[Entry],
        flushed: &[ViewCount],
    ) -> Result<(), FlushError> {
        let mut call = ACKNOWLEDGE.prepare_invoke();
        call.key(self.queue());
        for row in flushed {
            call.key(self.key(&row.page));
        }
        call.arg(GROUP)
            .arg(self.settings.ttl.as_millis() as u64)
            .arg(entries.len());
        for entry in entries {
            call.arg(&entry.id);
        }
        for row in flushed {
            call.arg(row.version);
        }
        let mut conn = self.redis.clone();
        self.redis_call(call.invoke_async::<i64>(&mut conn)).await?;
        Ok(())
    }

    /// ## Task 2c: one flush
    ///
    /// Reads the entries no consumer has received yet, as `consumer` ([`Views::read_new`]),
    /// applies them, and **only after the commit** acknowledges them. Returns how many entries
    /// it flushed (entries read, not pages: 0 if there were none). If the database fails, the
    /// flush is [`FlushError::Database`] and nothing is acknowledged: the entries stay pending
    /// with `consumer`, to be applied later (task 3), and their pages keep no TTL.
    ///
    /// ### This answer
    ///
    /// Reads the entries no consumer has received yet, as `consumer`, applies them and
    /// acknowledges them. Returns how many entries it flushed.
    pub async fn flush_once(&self, consumer: &str) -> Result<usize, FlushError> {
        let entries = self.read_new(consumer).await?;
        if entries.is_empty() {
            return Ok(0);
        }
        let flushed = self.apply(&entries).await?;
        self.acknowledge(&entries, &flushed).await?;
        Ok(entries.len())
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
    ///
    /// ### This answer
    ///
    /// Claims, as `consumer`, every entry that has been pending with any consumer for at least
    /// `settings.claim_idle`, applies and acknowledges them batch by batch. Returns how many
    /// entries it recovered.
    pub async fn recover(&self, consumer: &str) -> Result<usize, FlushError> {
        let idle = self.settings.claim_idle.as_millis() as u64;
        let mut cursor = "0-0".to_string();
        let mut recovered = 0;
        loop {
            let mut conn = self.redis.clone();
            let claim = conn.xautoclaim_options(
                self.queue(),
                GROUP,
                consumer,
                idle,
                &cursor,
                StreamAutoClaimOptions::default().count(self.settings.batch_size),
            );
            let reply: StreamAutoClaimReply = self.redis_call(claim).await?;
            let entries: Vec<Entry> = reply
                .claimed
                .iter()
                .filter_map(Entry::from_stream)
                .collect();
            if !entries.is_empty() {
                let flushed = self.apply(&entries).await?;
                self.acknowledge(&entries, &flushed).await?;
                recovered += entries.len();
            }
            if reply.next_stream_id == "0-0" {
                return Ok(recovered);
            }
            cursor = reply.next_stream_id;
        }
    }
}
