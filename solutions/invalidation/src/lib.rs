//! # Solution: invalidating a blog's pages
//!
//! The worked answer to `exercises/invalidation`. Read the exercise first: the task descriptions
//! are the same here, the given parts are the exercise's own `given.rs`, included as it is, and
//! only the task bodies are filled in.
//!
//! The classic mistakes live beside this answer, not in it: each file in `mistakes/` is a patch
//! that plants one, with a note on what it breaks. CI applies each and checks that the exercise's
//! suite fails. To watch one fail: `git apply solutions/invalidation/mistakes/<name>.patch`, run
//! `cargo test -p invalidation-solution`, then `git apply -R` the same file.

#![warn(missing_docs)]

#[path = "../../../exercises/invalidation/src/given.rs"]
mod given;

use std::sync::LazyLock;

use redis::{AsyncCommands, Script};
use shared::budget::{self, Lookup, Trouble};
use shared::codec;
use shared::lease::{lease_key, with_leases};
use shared::metrics::Counter;

pub use given::{AUTHORS, Blog, OutboxEntry, Post, RelayError, Settings, TAGS};

/// Deletes keys, their leases, every key a dependents set names (with its lease) and the set.
/// KEYS: the set, then the keys to delete. Returns how many keys it deleted.
static INVALIDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local deleted = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  deleted = deleted + redis.call('DEL', key, key .. ':lease')
end
for i = 2, #KEYS do
  deleted = deleted + redis.call('DEL', KEYS[i], KEYS[i] .. ':lease')
end
return deleted + redis.call('DEL', KEYS[1])
",
    )
});

/// Stores a page if the lease survived, and records it in each post's dependents set, each
/// set kept alive at least as long as the page. KEYS: the page, its lease, then one dependents
/// set per post. ARGV: token, page bytes, TTL in ms. Returns 1 if stored.
static STORE_WITH_DEPENDENTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
for i = 3, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[1])
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[3]) then
    redis.call('PEXPIRE', KEYS[i], ARGV[3])
  end
end
return 1
",
    )
});

impl Blog {
    /// ## Task 1: delete on write
    ///
    /// Changes post `id`'s title ([`Blog::commit_title`], no outbox) and returns the committed
    /// post, or `None` if there is no such post. **After** the commit, and never before, calls
    /// [`Blog::invalidate`] with the committed post. A refused change (an empty title) is an
    /// error and invalidates nothing: every cached page stays. Redis failing or stalling is not
    /// an error: the change is committed.
    ///
    /// ### This answer
    ///
    /// Commits, then invalidates the committed post's pages.
    pub async fn update_title(&self, id: i64, title: &str) -> Result<Option<Post>, sqlx::Error> {
        let committed = self.commit_title(id, title, None).await?;
        if let Some(post) = &committed {
            self.invalidate(post).await;
        }
        Ok(committed)
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
    ///
    /// ### This answer
    ///
    /// One script: the post's page, its author's page, every dependent and the set.
    pub async fn invalidate(&self, post: &Post) -> bool {
        let mut call = INVALIDATE.prepare_invoke();
        call.key(self.dependents_key(post.id))
            .key(self.post_key(post.id))
            .key(self.author_key(&post.author));
        let mut conn = self.redis.clone();
        self.within_budget(call.invoke_async::<i64>(&mut conn))
            .await
            .is_some()
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
        let key = self.tag_key(tag);
        let corrupt = Counter::default();
        let trouble = Trouble {
            errors: &self.redis_errors,
            corrupt: &corrupt,
        };
        let budget = self.settings.redis_timeout;
        let lease = match budget::get::<Vec<Post>>(&self.redis, &key, budget, trouble).await {
            Lookup::Found(page) => return Ok(page),
            Lookup::Missing => self.leases.take(&key, &self.redis_errors).await,
            Lookup::Unavailable => None,
        };
        let page = self.load_tag_page(tag).await?;
        if let Some(token) = lease {
            let mut store = STORE_WITH_DEPENDENTS.prepare_invoke();
            store.key(&key).key(lease_key(&key));
            for post in &page {
                store.key(self.dependents_key(post.id));
            }
            store
                .arg(token)
                .arg(codec::encode(&page).expect("posts serialize to JSON"))
                .arg(self.settings.ttl.as_millis() as u64);
            let mut conn = self.redis.clone();
            self.within_budget(store.invoke_async::<i64>(&mut conn))
                .await;
        }
        Ok(page)
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
        let Some(before) = self.load_post(id).await? else {
            return Ok(None);
        };
        let mut keys = vec![self.post_key(id), self.author_key(&before.author)];
        keys.extend(before.tags.iter().map(|tag| self.tag_key(tag)));
        self.commit_title(id, title, Some(&keys)).await
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
        let waiting = self.waiting_in_outbox(100).await?;
        let mut relayed = Vec::with_capacity(waiting.len());
        let mut failed = false;
        for entry in waiting {
            let mut conn = self.redis.clone();
            let deleted = conn.del::<_, ()>(with_leases(&entry.keys));
            if self.within_budget(deleted).await.is_none() {
                failed = true;
                break;
            }
            relayed.push(entry);
        }
        self.mark_relayed(&relayed).await?;
        match failed {
            true => Err(RelayError::Redis {
                relayed: relayed.len(),
            }),
            false => Ok(relayed.len()),
        }
    }
}
