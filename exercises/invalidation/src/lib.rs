//! # Exercise: invalidating a blog's pages
//!
//! A blog caches three kinds of page: a post's own page, an author's page (every post they
//! wrote) and a tag's page (every post with that tag). Change one post's title and up to four
//! cached pages are wrong, in Redis, for every instance of the application. You will make every
//! one of them go, in three tasks. Run the graded tests with
//!
//! ```text
//! cargo test -p invalidation-exercise
//! ```
//!
//! and replace each `todo!()` until they pass. The tests of one task run alone with
//! `cargo test -p invalidation-exercise task1` (or `task2`, `task3`). They use a real Redis and a
//! real database, with two application instances: one caches, the other writes. They count
//! queries and Redis commands, read the keys and their TTLs, race a reader against a write, and
//! stop Redis. Stuck? Each task has a hint in `exercises/invalidation/HINTS.md` (also in the
//! book), and a worked answer in `solutions/invalidation`.
//!
//! What you have to work with (all given, in `src/given.rs`):
//! - [`Blog::post`] and [`Blog::author_page`]: cached reads, through [`Blog::cached`]
//!   (cache-aside with a lease: a reader stores what it loaded only if its lease, the key
//!   followed by `:lease`, is still there);
//! - [`Blog::commit_title`]: the change, in one transaction, with an optional outbox entry;
//! - the keys: [`Blog::post_key`], [`Blog::author_key`], [`Blog::tag_key`],
//!   [`Blog::dependents_key`], all with the hash tag `{blog}`, so one script may touch them all;
//! - [`Blog::waiting_in_outbox`] and [`Blog::mark_relayed`]: the outbox;
//! - [`Blog::leases`]: `take` and `store` of [`shared::lease`], and `shared::lease::with_leases`
//!   (every key with its lease);
//! - [`Blog::within_budget`]: a Redis call within `settings.redis_timeout`, its failure counted
//!   in `redis_errors` and turned into `None`.

#![warn(missing_docs)]

mod given;

pub use given::{AUTHORS, Blog, OutboxEntry, Post, RelayError, Settings, TAGS};

impl Blog {
    /// ## Task 1: delete on write
    ///
    /// Changes post `id`'s title ([`Blog::commit_title`], no outbox) and returns the committed
    /// post, or `None` if there is no such post. **After** the commit, and never before, calls
    /// [`Blog::invalidate`] with the committed post. A refused change (an empty title) is an
    /// error and invalidates nothing: every cached page stays. Redis failing or stalling is not
    /// an error: the change is committed.
    pub async fn update_title(&self, id: i64, title: &str) -> Result<Option<Post>, sqlx::Error> {
        let _ = (id, title);
        todo!("task 1: commit, then invalidate")
    }

    /// ## Tasks 1 and 2: invalidate a post's pages
    ///
    /// Deletes every cached page that shows `post`, **with its lease**, so that a reader that
    /// loaded the old post before the change cannot store it afterwards, **in one command**
    /// (the tests count them), within the time budget ([`Blog::within_budget`]): a Redis that
    /// stalls gets `settings.redis_timeout`, then the call gives up (counted in
    /// `redis_errors`). Returns whether Redis did it.
    ///
    /// - Task 1: the post's page and its author's page.
    /// - Task 2: also every key named in the post's dependents set ([`Blog::dependents_key`]),
    ///   and the set itself, and nothing else: a tag page that does not show the post stays.
    ///   The set is in Redis, shared by every instance: an instance that never cached a tag
    ///   page must still remove it. Reading the set and deleting its keys is one Lua script, so
    ///   that a page stored in between is not missed.
    pub async fn invalidate(&self, post: &Post) -> bool {
        let _ = post;
        todo!("tasks 1 and 2: DEL the post's pages and their leases; task 2: and its dependents")
    }

    /// ## Task 2: a tag page that records what it depends on
    ///
    /// The page of every post tagged `tag`: cached under [`Blog::tag_key`], read like
    /// [`Blog::cached`] does (Redis trouble is a miss, unreadable bytes are a miss). On a miss,
    /// take the key's lease, *then* load ([`Blog::load_tag_page`]) and then, **in one Lua
    /// script, sent as one command**: if the lease is still yours, store the page with
    /// `settings.ttl`, delete the lease, add the page's key to the dependents set of every post
    /// on it (not only the first), and raise each of those sets' TTL to `settings.ttl` if it is
    /// shorter (a new set has none: its `PTTL` is -1), a set that already exists included. So a
    /// set expires with the newest page it names: not before (a change would then leave that
    /// page cached), and not long after (a set without a TTL lives for ever). Just after a
    /// store, the tests expect each set's `PTTL` to be 55,000 to 60,000 ms, with a 60 s
    /// `settings.ttl`. The script is the only command that stores or registers: beside the
    /// read's `GET` and the lease's `SET NX`, no `SET`, `SETEX`, `PSETEX`, `SADD`, `EXPIRE` or
    /// `PEXPIRE` of your own. If the lease is gone or not yours, an invalidation came after your
    /// load: store nothing, register nothing, and return what you loaded. No dependency map in
    /// the process's memory: another instance must find the page through Redis.
    pub async fn tag_page(&self, tag: &str) -> Result<Vec<Post>, sqlx::Error> {
        let _ = tag;
        todo!("task 2: read through; on a miss, store with the dependencies in one script")
    }

    /// ## Task 3a: a change that owes its invalidation
    ///
    /// Changes post `id`'s title like [`Blog::update_title`], but sends nothing to Redis: the
    /// keys to delete (the post's page, its author's page and the page of each of its tags) go
    /// into the outbox, in the same transaction as the change ([`Blog::commit_title`] with
    /// `Some(keys)`): the change and its entry commit together or not at all, so a change whose
    /// entry could not be written is rolled back and is an error. A change that is refused
    /// records nothing.
    pub async fn update_title_logged(
        &self,
        id: i64,
        title: &str,
    ) -> Result<Option<Post>, sqlx::Error> {
        let _ = (id, title);
        todo!("task 3a: the keys into the outbox, in the change's transaction")
    }

    /// ## Task 3b: the relay
    ///
    /// One pass over the outbox: up to 100 waiting entries ([`Blog::waiting_in_outbox`]), in
    /// order; for each, delete its keys and their leases (one command within the time budget);
    /// then mark relayed ([`Blog::mark_relayed`]) exactly the entries whose delete Redis took.
    /// If a delete fails, stop there: that entry and every one after it stay waiting, for the
    /// next pass, and the pass returns `Err(RelayError::Redis { relayed })` with how many it
    /// relayed before the failure (0 when the first delete failed: an `Ok` would tell the
    /// caller nothing is owed). Otherwise returns `Ok` with how many it relayed (0 when nothing
    /// was waiting). Relaying an entry twice must be harmless.
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        todo!("task 3b: delete each entry's keys, mark only what Redis took")
    }
}
