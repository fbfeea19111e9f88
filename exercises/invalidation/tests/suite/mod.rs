//! The suite shared by the exercise and the solution: `super::subject` is whichever crate runs it.
//!
//! Each test gets its own namespace and database (`DATABASE_URL`, else SQLite); Redis is
//! `REDIS_URL`, or a private cluster with `REDIS_CLUSTER=1`, else a private server, and
//! the tests that stop Redis or watch its commands always start a private one. Instance `a`
//! caches; instance `b`, a back office, writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use shared::DbOptions;
use shared::codec;
use shared::exercise::{Site, joined};

use super::subject::{Blog, Post, RelayError, Settings};

const TTL: Duration = Duration::from_secs(60);

fn settings() -> Settings {
    Settings {
        ttl: TTL,
        redis_timeout: Duration::from_millis(150),
    }
}

async fn site() -> Site {
    Site::from_env("invalidation-exercise").await
}

async fn site_with_private_redis() -> Site {
    Site::private("invalidation-exercise").await
}

/// What the tests build on a site and look at. Nothing here is counted as a query.
trait Inspect {
    /// One application instance with its own connection, 20 posts seeded. Setup is not counted.
    async fn blog(&self) -> Blog;
    /// The posts cached under `key`, read on a fresh connection: one post's page holds one.
    async fn cached(&self, key: &str) -> Option<Vec<Post>>;
    /// Whether `key` exists, asked on a fresh connection.
    async fn exists(&self, key: &str) -> bool;
    /// Runs one statement of setup on the database (not counted).
    async fn sql(&self, statement: &str);
    /// Waits until `key` exists: the event a test holds a reader at. Fails after 10 s, saying
    /// `meaning` (what the key's appearance means, and what to check if it never comes).
    async fn until_exists(&self, key: &str, meaning: &str);
    /// Takes every connection of the database's pool (10), so that the next query of any
    /// instance waits until they are given back ([`release`]).
    async fn hold_every_connection(&self) -> Vec<sqlx::Transaction<'static, sqlx::Any>>;
}

impl Inspect for Site {
    async fn blog(&self) -> Blog {
        let instance = self.instance().await.unwrap();
        let (conn, namespace) = (instance.conn, instance.namespace);
        let blog = Blog::open(self.db().clone(), conn, namespace, settings(), 20)
            .await
            .unwrap();
        self.db().reset_queries();
        blog
    }

    async fn cached(&self, key: &str) -> Option<Vec<Post>> {
        let mut conn = self.instance().await.unwrap().conn;
        let bytes: Option<Vec<u8>> = conn.get(key).await.unwrap();
        let bytes = bytes?;
        let page = codec::decode::<Vec<Post>>(&bytes)
            .or_else(|_| codec::decode::<Option<Post>>(&bytes).map(|p| p.into_iter().collect()));
        match page {
            Ok(page) => Some(page),
            Err(error) => panic!(
                "the value cached under {key}, read by the test: expected a page of posts \
                 (shared::codec's JSON of a Vec<Post>, or of one post), found {} bytes that do \
                 not decode ({error}). Store the page as it was loaded, encoded with \
                 codec::encode",
                bytes.len()
            ),
        }
    }

    async fn exists(&self, key: &str) -> bool {
        self.conn().exists(key).await.unwrap()
    }

    async fn sql(&self, statement: &str) {
        let mut setup = self.db().setup().await.unwrap();
        sqlx::query(statement).execute(&mut *setup).await.unwrap();
        setup.commit().await.unwrap();
    }

    async fn until_exists(&self, key: &str, meaning: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.exists(key).await {
            assert!(
                Instant::now() < deadline,
                "waited 10 s for {key} to exist, and it never did: {meaning}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn hold_every_connection(&self) -> Vec<sqlx::Transaction<'static, sqlx::Any>> {
        let mut held = Vec::new();
        for _ in 0..DbOptions::default().max_connections {
            held.push(self.db().setup().await.unwrap());
        }
        held
    }
}

/// Gives back the connections [`Inspect::hold_every_connection`] took. Rolled back here, not
/// left to the drop: a transaction left open would hold its connection until the pool next
/// touched it.
async fn release(held: Vec<sqlx::Transaction<'static, sqlx::Any>>) {
    for transaction in held {
        transaction.rollback().await.unwrap();
    }
}

/// The version of post `id` on `page`, if it is there.
fn version_on(page: &[Post], id: i64) -> Option<i64> {
    page.iter().find(|p| p.id == id).map(|p| p.version)
}

/// `blog.tag_page(tag)`, which must answer: the database and Redis are up.
async fn tag_page(blog: &Blog, tag: &str) -> Vec<Post> {
    match blog.tag_page(tag).await {
        Ok(page) => page,
        Err(error) => panic!(
            "tag_page({tag:?}) with the database and Redis up: expected Ok(the page), got \
             Err({error:?}). Only the database's errors are errors here; Redis trouble is a miss"
        ),
    }
}

/// `blog.update_title(id, title)` of a post that exists, with a title the table takes.
async fn update_title(blog: &Blog, id: i64, title: &str) {
    let changed = blog.update_title(id, title).await;
    assert!(
        matches!(changed, Ok(Some(_))),
        "update_title({id}, {title:?}) of post {id}, which exists: expected Ok(Some(the \
         committed post)), got {changed:?}"
    );
}

/// What a dependents set's PTTL says, when it is not the 55,000 to 60,000 ms the tests expect.
fn set_ttl_found(ttl: i64) -> &'static str {
    match ttl {
        -2 => {
            "-2 is no such key: the store script did not SADD the page's key to this set (the \
             dependents set of each post on the page)"
        }
        -1 => {
            "-1 is no TTL: the set lives for ever, naming pages long gone. PEXPIRE it to \
             settings.ttl when its PTTL is shorter (a new set's is -1; PEXPIRE ... GT counts no \
             TTL as infinite, and sets none)"
        }
        60_001.. => {
            "more than settings.ttl: the set outlives the newest page it names. Raise its TTL \
             to settings.ttl, no further"
        }
        _ => {
            "less than settings.ttl: the set expires before the page just added to it, and a \
             change then leaves that page cached. Raise it to settings.ttl, in ms for PEXPIRE"
        }
    }
}

// Post 1 is by bob, tagged redis and sql; post 2 by cy, tagged sql and ops; post 3 by ada,
// tagged ops and rust.

// ---- task 1: delete on write -------------------------------------------------------------------

#[tokio::test]
async fn task1_a_title_change_reaches_the_post_and_the_author_page() {
    let site = site().await;
    let (a, b) = (site.blog().await, site.blog().await);
    a.post(1).await.unwrap();
    a.author_page("bob").await.unwrap();
    let changed = b.update_title(1, "Hello again").await;
    let Ok(Some(changed)) = changed else {
        panic!(
            "update_title(1, \"Hello again\") of post 1, which exists: expected Ok(Some(the \
             committed post)), got {changed:?}. Return what commit_title returned"
        );
    };
    assert_eq!(
        (changed.title.as_str(), changed.version),
        ("Hello again", 2),
        "update_title(1, \"Hello again\") of post 1 at version 1: expected the committed post, \
         titled \"Hello again\" at version 2, got {changed:?}. Return the post commit_title \
         returned, not one read before the change"
    );
    let post = a.post(1).await.unwrap().unwrap();
    assert_eq!(
        post.version, 2,
        "instance a's post(1) after instance b's change: expected version 2, got {}: a's copy \
         cached before the change is still under post_key(1). Does update_title() call \
         invalidate() once the commit returned, and does invalidate() delete post_key(post.id)?",
        post.version
    );
    let page = a.author_page("bob").await.unwrap();
    let on_page = version_on(&page, 1);
    assert_eq!(
        on_page,
        Some(2),
        "post 1 on bob's author page (author_page(\"bob\"), cached by instance a before the \
         change) after instance b's change: expected version 2, got {on_page:?} (None: not on \
         the page). The page cached before the change is still there: does invalidate() \
         delete author_key(&post.author) too?"
    );
    let missing = b.update_title(404, "Nobody").await;
    assert!(
        matches!(missing, Ok(None)),
        "update_title(404, ..) of a post that does not exist: expected Ok(None), got \
         {missing:?}. commit_title says None for no such post: return it, and invalidate nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task1_a_reader_during_the_change_cannot_leave_the_old_title_cached() {
    let site = site().await;
    let (a, b) = (Arc::new(site.blog().await), site.blog().await);
    a.post(2).await.unwrap();
    // Every query now takes 40 ms, so the change's transaction (two statements) is open for
    // 80 ms, while a reader reads post 2 again and again.
    site.db().set_latency(Duration::from_millis(40));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (a, stop) = (a.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                a.post(2).await.unwrap();
            }
        })
    };
    update_title(&b, 2, "Changed under a reader").await;
    stop.store(true, Ordering::SeqCst);
    joined(reader).await;
    site.db().set_latency(Duration::ZERO);
    let cached = site.cached(&a.post_key(2)).await;
    let version = cached.as_deref().and_then(|page| version_on(page, 2));
    assert_ne!(
        version,
        Some(1),
        "post 2's cached page once the change returned: expected it gone or at version 2, \
         found version 1. A key deleted *before* the commit is reloaded by a reader from the \
         row not yet changed, and that old row stays cached for the whole TTL: delete after \
         the commit"
    );
}

#[tokio::test]
async fn task1_a_refused_change_is_an_error_and_changes_nothing() {
    let site = site().await;
    let (a, b) = (site.blog().await, site.blog().await);
    a.post(3).await.unwrap();
    a.author_page("ada").await.unwrap();
    let refused = b.update_title(3, "").await;
    assert!(
        refused.is_err(),
        "update_title(3, \"\"), which the table refuses: expected Err (the database's refusal), \
         got {refused:?}. commit_title's error is the refusal: pass it on with ?"
    );
    for key in [a.post_key(3), a.author_key("ada")] {
        assert!(
            site.exists(&key).await,
            "{key} after a refused change of post 3: expected still cached, it was deleted. \
             Nothing changed, so nothing is stale: invalidate only a post the commit returned \
             (an Err from commit_title means no commit)"
        );
    }
    let post = a.post(3).await.unwrap().unwrap();
    assert_eq!(
        post.version, 1,
        "post 3, read through instance a after the refused change: expected version 1 (nothing \
         was committed), got version {}. A refused change must commit nothing",
        post.version
    );
}

#[tokio::test]
async fn task1_an_invalidation_is_one_command_and_takes_the_leases() {
    let site = site_with_private_redis().await;
    let (a, b) = (site.blog().await, site.blog().await);
    a.post(4).await.unwrap();
    // Load the script once (if it is one), outside the watch.
    update_title(&b, 5, "Warm-up").await;
    // A slow reader of post 4 holds its lease: it loaded the row before the change.
    let lease = format!("{}:lease", a.post_key(4));
    let _: () = site.conn().set_ex(&lease, "reader", 60).await.unwrap();
    let mut sent = site.server().watch_commands().await.unwrap();
    let post = b.load_post(4).await.unwrap().unwrap();
    let done = b.invalidate(&post).await;
    assert!(
        done,
        "invalidate(post 4) with Redis up: expected true (Redis took the delete), got false, \
         with redis_errors = {}. Does it return whether within_budget gave back a result \
         (is_some())? A script that fails (a Lua error, or a key outside the {{blog}} hash \
         tag on a cluster) also comes back false",
        b.redis_errors.get()
    );
    let commands = sent.since_last().await;
    assert!(
        commands.len() == 1,
        "commands sent by one invalidate(): expected 1 (one DEL of every key and its lease, or \
         one script), got {commands:?}. Between two commands a reader that loaded the old post \
         can store it: delete everything in one command"
    );
    assert!(
        !site.exists(&lease).await,
        "the lease of post 4's page after invalidate(): expected deleted, it is still there. A \
         reader that loaded the old post before the change would store it after: delete each \
         key with its lease (shared::lease::with_leases)"
    );
}

#[tokio::test]
async fn task1_with_redis_down_a_change_still_commits() {
    let site = site_with_private_redis().await;
    let b = site.blog().await;
    site.server().stop();
    let changed = b.update_title(6, "Written while Redis is down").await;
    assert!(
        matches!(&changed, Ok(Some(post)) if post.version == 2),
        "update_title() with Redis stopped: expected the committed post (version 2), got \
         {changed:?}. Redis failing is not the change failing"
    );
    let errors = b.redis_errors.get();
    assert!(
        errors >= 1,
        "redis_errors after a change with Redis stopped: expected at least 1 (the invalidation \
         that failed), got {errors}. Send the invalidation through within_budget, which counts \
         a failure"
    );
}

#[tokio::test]
async fn task1_a_stalled_redis_does_not_stall_the_change() {
    let site = site_with_private_redis().await;
    let b = site.blog().await;
    let post = b.load_post(6).await.unwrap().unwrap();
    // Redis holds every command for a second, as a server busy with a slow command does.
    site.server().pause(Duration::from_secs(1)).unwrap();
    let done = b.invalidate(&post).await;
    let errors = b.redis_errors.get();
    assert!(
        !done && errors >= 1,
        "invalidate() while Redis holds every command for 1 s (redis_timeout 150 ms): expected \
         false with redis_errors >= 1 (the call given up after the budget), got {done} with \
         redis_errors = {errors}. A call that waits for the stalled server holds the change \
         (and the request behind it) for as long as Redis stalls: send it through \
         within_budget"
    );
}

// ---- task 2: tags in Redis ---------------------------------------------------------------------

#[tokio::test]
async fn task2_a_change_reaches_every_tag_page_whoever_cached_it() {
    let site = site().await;
    let (a, b) = (site.blog().await, site.blog().await);
    for tag in ["redis", "sql", "rust"] {
        tag_page(&a, tag).await;
    }
    site.db().reset_queries();
    for tag in ["redis", "sql", "rust"] {
        tag_page(&a, tag).await;
    }
    let queries = site.db().queries();
    assert_eq!(
        queries, 0,
        "database queries for the redis, sql and rust tag pages, each read once before: \
         expected 0 (all three cached), got {queries}. On a miss, the store script must store \
         the page (SET with settings.ttl) when the lease is still yours: is the token you \
         compare the one leases.take() returned, and the key you store tag_key(tag)?"
    );
    // Instance b, which never read a tag page, changes post 1 (tagged redis and sql).
    update_title(&b, 1, "Retitled").await;
    for tag in ["redis", "sql"] {
        let page = tag_page(&a, tag).await;
        let on_page = version_on(&page, 1);
        assert_eq!(
            on_page,
            Some(2),
            "post 1 on the {tag:?} tag page, cached by instance a, after instance b changed \
             it: expected version 2, got {on_page:?} (None: not on the page). Instance b never \
             cached this page, so only a dependents set kept in Redis can tell it the page \
             exists: does invalidate() delete every key in dependents_key(post.id)?"
        );
    }
    assert!(
        site.exists(&a.tag_key("rust")).await,
        "the rust tag page after a change of post 1, which it does not show: expected still \
         cached, found it deleted. Delete only the pages the post's dependents set names (and \
         its own and its author's page), not every tag page"
    );
}

#[tokio::test]
async fn task2_dependents_sets_expire_with_what_they_track() {
    let site = site().await;
    let a = site.blog().await;
    tag_page(&a, "ops").await; // posts 2, 3, 6, 7, ...
    let set = a.dependents_key(2);
    let members: Vec<String> = site.conn().smembers(&set).await.unwrap();
    assert_eq!(
        members,
        [a.tag_key("ops")],
        "the members of post 2's dependents set ({set}) after the ops page, which shows post 2, \
         was cached: expected just the ops page's key, got {members:?}. An empty set: the \
         store script did not SADD tag_key(\"ops\") to dependents_key(2) (a map in the \
         process's memory is not in Redis, where other instances look)"
    );
    let ttl: i64 = site.conn().pttl(&set).await.unwrap();
    assert!(
        (55_000..=60_000).contains(&ttl),
        "PTTL of post 2's dependents set just after the ops page was stored with settings.ttl \
         (60 s): expected 55,000 to 60,000 ms (settings.ttl, less the moment since), got {ttl} \
         ms: {}",
        set_ttl_found(ttl)
    );
    let page = tag_page(&a, "ops").await;
    let ids: Vec<i64> = page.iter().map(|post| post.id).collect();
    assert_eq!(
        ids,
        [2, 3, 6, 7, 10, 11, 14, 15, 18, 19],
        "the ids on the ops page, read a second time (from the cache): expected the 10 posts \
         tagged ops, by id, got {ids:?}. Store the page load_tag_page returned, as it is"
    );
    for post in &page {
        let set = a.dependents_key(post.id);
        let members: Vec<String> = site.conn().smembers(&set).await.unwrap();
        assert!(
            members.contains(&a.tag_key("ops")),
            "the members of post {}'s dependents set, post number {} on the ops page: expected \
             them to include the ops page's key, got {members:?}. Every post on a page is a \
             dependency: add the page's key to the set of each of them, not only the first, or \
             a change to that post leaves the page cached",
            post.id,
            page.iter()
                .position(|p| p.id == post.id)
                .unwrap_or_default()
                + 1
        );
    }
}

#[tokio::test]
async fn task2_a_dependents_set_lives_as_long_as_its_newest_page() {
    let site = site().await;
    let a = site.blog().await;
    tag_page(&a, "ops").await; // post 2 is on it
    let set = a.dependents_key(2);
    // 40 s later (as far as the set is concerned), post 2 goes on a second cached page.
    let _: () = site.conn().pexpire(&set, 20_000).await.unwrap();
    tag_page(&a, "sql").await; // post 2 is on it too
    let members: Vec<String> = site.conn().smembers(&set).await.unwrap();
    let ttl: i64 = site.conn().pttl(&set).await.unwrap();
    let found = if !members.contains(&a.tag_key("sql")) {
        "the set does not name the sql page: add the page's key to the sets that exist already \
         too"
    } else if (0..=20_000).contains(&ttl) {
        "the set kept the 20 s it had left: storing the sql page did not raise it (a TTL given \
         only to a new set, or none at all: task2_dependents_sets_expire_with_what_they_track \
         tells which). It then expires 40 s before the page it names, and a change of post 2 \
         leaves that page cached. Raise a shorter TTL to settings.ttl, on a set that exists too"
    } else {
        set_ttl_found(ttl)
    };
    assert!(
        members.contains(&a.tag_key("sql")) && (55_000..=60_000).contains(&ttl),
        "post 2's dependents set, which had 20 s of TTL left, after the sql page (stored with \
         settings.ttl, 60 s) was added to it: expected it to name the sql page with a PTTL of \
         55,000 to 60,000 ms (settings.ttl, less the moment since), got {members:?} with \
         {ttl} ms: {found}"
    );
}

#[tokio::test]
async fn task2_a_tag_page_loaded_before_an_invalidation_is_not_stored() {
    let site = site().await;
    let (a, b) = (site.blog().await, site.blog().await);
    tag_page(&a, "redis").await; // post 1 is on it; its dependents set names the page
    let key = a.tag_key("redis");
    let _: () = site.conn().del(&key).await.unwrap(); // the page is evicted; the set lives on
    let post = b.load_post(1).await.unwrap().unwrap();
    // With every database connection held, the next reader of the page misses, takes the
    // lease, and waits for a connection to load.
    let held = site.hold_every_connection().await;
    let lease = format!("{key}:lease");
    let change = async {
        site.until_exists(
            &lease,
            "the test waits for tag_page(\"redis\"), which misses, to take the page's lease \
             before it loads the page (it cannot load: the test holds every database \
             connection). Does tag_page take the lease (self.leases.take) on a miss, before \
             load_tag_page?",
        )
        .await;
        // A change of post 1 is invalidated while the reader waits to load the old page.
        let invalidated = b.invalidate(&post).await;
        release(held).await;
        invalidated
    };
    // Both in this task, side by side: the reader needs no thread of its own.
    let (read, invalidated) = tokio::join!(a.tag_page("redis"), change);
    if let Err(error) = read {
        panic!(
            "tag_page(\"redis\"), whose load waited for a database connection: expected Ok(the \
             page it loaded), got Err({error:?}). A store refused because the lease is gone is \
             no error: return what you loaded"
        );
    }
    assert!(
        invalidated,
        "invalidate(post 1) with Redis up: expected true (Redis took the delete), got false, \
         with redis_errors = {}. Is the script valid, and its result is_some() of within_budget?",
        b.redis_errors.get()
    );
    let stored = site.cached(&key).await;
    assert!(
        stored.is_none(),
        "the redis tag page after a reader that took its lease, then an invalidation of post 1 \
         (which deleted the lease), then the reader's load and store: expected not stored, \
         found {} posts cached. The lease is how a store learns of an invalidation it came \
         after: the store script must compare it before it writes anything",
        stored.map(|page| page.len()).unwrap_or_default()
    );
}

#[tokio::test]
async fn task2_a_tag_page_is_stored_with_its_dependents_in_one_command() {
    let site = site_with_private_redis().await;
    let a = site.blog().await;
    tag_page(&a, "rust").await; // loads the script
    let _: () = site.conn().del(a.tag_key("rust")).await.unwrap();
    let mut sent = site.server().watch_commands().await.unwrap();
    tag_page(&a, "rust").await;
    let commands = sent.since_last().await;
    let scripts = commands.iter().filter(|c| c.starts_with("EVAL")).count();
    let sets = commands.iter().filter(|c| *c == "SET").count();
    let loose: Vec<&String> = commands
        .iter()
        .filter(|c| ["SADD", "PEXPIRE", "EXPIRE", "PSETEX", "SETEX"].contains(&c.as_str()))
        .collect();
    assert!(
        scripts == 1 && sets <= 1 && loose.is_empty(),
        "commands sent by a tag page's miss: expected one script (EVAL or EVALSHA) that stores \
         the page and registers it, beside the read's GET and the lease's SET NX, and no SADD, \
         PEXPIRE, EXPIRE, PSETEX, SETEX or second SET outside it; got {commands:?}. A page \
         stored and registered by separate commands can be cached with no set naming it (a \
         crash, or an invalidation, between them): a change then leaves it cached"
    );
}

#[tokio::test]
async fn task2_an_invalidation_with_dependents_is_one_command() {
    let site = site_with_private_redis().await;
    let (a, b) = (site.blog().await, site.blog().await);
    tag_page(&a, "sql").await;
    update_title(&b, 8, "Warm-up").await; // loads the script
    let post = b.load_post(1).await.unwrap().unwrap();
    // A slow reader refilling the sql page holds its lease.
    let lease = format!("{}:lease", a.tag_key("sql"));
    let _: () = site.conn().set_ex(&lease, "reader", 60).await.unwrap();
    let mut sent = site.server().watch_commands().await.unwrap();
    b.invalidate(&post).await;
    let commands = sent.since_last().await;
    assert!(
        commands.len() == 1 && commands[0].starts_with("EVAL"),
        "commands sent by invalidate() of a post with dependents: expected one script call \
         (EVAL or EVALSHA) that reads the set and deletes what it names, got {commands:?}. \
         Reading the set (SMEMBERS) and deleting in a second command misses a page stored in \
         between"
    );
    let (page, set) = (
        site.exists(&a.tag_key("sql")).await,
        site.exists(&a.dependents_key(1)).await,
    );
    assert!(
        !page && !set,
        "after invalidate(post 1): expected the sql tag page (which shows post 1) and post 1's \
         dependents set both deleted, found the page {} and the set {}. The script must DEL \
         every key SMEMBERS of the set names, then the set itself",
        if page { "still cached" } else { "deleted" },
        if set { "still there" } else { "deleted" }
    );
    assert!(
        !site.exists(&lease).await,
        "the sql page's lease after invalidate(post 1): expected deleted with the page, it is \
         still there. A reader that loaded the old post 1 before the change would store it \
         after: delete every dependent page with its lease (key .. ':lease' in the script)"
    );
}

// ---- task 3: the outbox ------------------------------------------------------------------------

#[tokio::test]
async fn task3_a_logged_change_sends_nothing_to_redis_and_the_relay_invalidates() {
    let site = site_with_private_redis().await;
    let (a, b) = (site.blog().await, site.blog().await);
    a.post(3).await.unwrap();
    a.author_page("ada").await.unwrap();
    tag_page(&a, "rust").await;
    let mut sent = site.server().watch_commands().await.unwrap();
    let changed = b.update_title_logged(3, "Logged").await;
    let Ok(Some(changed)) = changed else {
        panic!(
            "update_title_logged(3, \"Logged\") of post 3, which exists: expected Ok(Some(the \
             committed post)), got {changed:?}. Return what commit_title returned"
        );
    };
    let commands = sent.since_last().await;
    assert!(
        commands.is_empty(),
        "commands sent to Redis by update_title_logged(): expected none (the outbox owes the \
         invalidation), got {commands:?}"
    );
    // A slow reader of post 3 loaded the old post and holds the page's lease.
    let lease = format!("{}:lease", a.post_key(3));
    let _: () = site.conn().set_ex(&lease, "reader", 60).await.unwrap();
    let relayed = b.relay_once().await;
    assert!(
        matches!(relayed, Ok(1)),
        "relay_once() with one change waiting in the outbox and Redis up: expected Ok(1), got \
         {relayed:?}. Ok(0): the change's entry was not in the outbox (update_title_logged \
         passes Some(keys) to commit_title), or the pass did not read it (waiting_in_outbox)"
    );
    assert!(
        !site.exists(&lease).await,
        "the lease of post 3's page after the relay: expected deleted, it is still there. A \
         reader that loaded the old post before the change would store it after the relay: \
         delete each key with its lease (shared::lease::with_leases)"
    );
    let post = a.post(3).await.unwrap().unwrap();
    let author = a.author_page("ada").await.unwrap();
    let tag = tag_page(&a, "rust").await;
    let found = (post.version, version_on(&author, 3), version_on(&tag, 3));
    assert_eq!(
        found,
        (changed.version, Some(2), Some(2)),
        "post 3's version on its own page, ada's page and the rust tag page, all cached before \
         the change, read after the relay: expected 2 on all three, got {found:?}. A 1 is a \
         page the relay did not delete: does the outbox entry name the post's key, its \
         author's key and each of its tags' keys?"
    );
    let again = b.relay_once().await;
    let cause = match again {
        Err(_) => {
            "With nothing waiting there is nothing to delete: return Ok(0) (an Err says a delete \
             failed)"
        }
        _ => {
            "Mark every entry whose delete Redis took (mark_relayed), or the next pass relays it \
             again"
        }
    };
    assert!(
        matches!(again, Ok(0)),
        "a second relay_once() right after one that relayed the only entry: expected Ok(0), \
         nothing left waiting, got {again:?}. {cause}"
    );
}

#[tokio::test]
async fn task3_with_redis_down_the_relay_keeps_the_entry_until_it_is_back() {
    let site = site_with_private_redis().await;
    let (a, b) = (site.blog().await, site.blog().await);
    a.post(7).await.unwrap();
    // Redis goes away keeping its data; the change commits without it.
    site.server().stop_keeping_data().unwrap();
    let changed = b.update_title_logged(7, "While Redis was down").await;
    assert!(
        matches!(&changed, Ok(Some(post)) if post.version == 2),
        "update_title_logged(7, ..) with Redis stopped: expected the committed post, version \
         2, got {changed:?}. A logged change sends nothing to Redis, so Redis being down \
         changes nothing for it"
    );
    let failed = b.relay_once().await;
    let cause = match &failed {
        Ok(_) => {
            "an Ok says every entry was relayed, while the only one waiting is still owed: a \
             failed delete (within_budget gave None) is an error"
        }
        Err(RelayError::Redis { .. }) => {
            "relayed counts the entries whose delete Redis took before the failure: none here"
        }
        Err(RelayError::Database(_)) => {
            "the database is up: only Redis failed, which is RelayError::Redis"
        }
    };
    assert!(
        matches!(failed, Err(RelayError::Redis { relayed: 0 })),
        "relay_once() with Redis stopped and one entry waiting: expected Err(RelayError::Redis \
         {{ relayed: 0 }}), since the entry's delete fails and nothing before it was relayed, \
         got {failed:?}: {cause}"
    );
    let waiting = b.waiting_in_outbox(10).await.unwrap().len();
    assert_eq!(
        waiting, 1,
        "outbox entries waiting after a pass whose delete failed: expected 1, got {waiting}. \
         An entry marked relayed although Redis never took its delete is an invalidation lost: \
         the old page comes back with Redis"
    );
    site.server().restart().unwrap();
    // The first command after a restart may still meet the old connection and fail; a relay
    // simply tries again on its next pass.
    let mut passes = Vec::new();
    for _ in 0..20 {
        let pass = b.relay_once().await;
        let done = pass.is_ok();
        passes.push(pass);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        matches!(passes.last(), Some(Ok(1))),
        "relay_once() passes once Redis is back, 50 ms apart, until one returns Ok: expected \
         that pass to relay the 1 entry the failed pass left waiting, got {passes:?}. Ok(0): \
         the failed pass marked it relayed anyway; no Ok in 20 passes: a delete still fails \
         with Redis back"
    );
    let post = a.post(7).await.unwrap().unwrap();
    assert_eq!(
        post.version, 2,
        "post 7 read through instance a after the relay: expected version 2, got version {}. \
         Redis came back holding version 1, cached before the change: the relay must delete \
         the post's key once Redis takes deletes again",
        post.version
    );
}

#[tokio::test]
async fn task3_a_refused_logged_change_owes_nothing() {
    let site = site().await;
    let b = site.blog().await;
    let refused = b.update_title_logged(9, "").await;
    assert!(
        refused.is_err(),
        "update_title_logged(9, \"\"), which the table refuses: expected Err (the database's \
         refusal), got {refused:?}. commit_title's error is the refusal: pass it on with ?"
    );
    let waiting = b.waiting_in_outbox(10).await.unwrap();
    assert!(
        waiting.is_empty(),
        "outbox entries waiting after a refused change: expected none, got {waiting:?}. The \
         entry belongs in the change's own transaction (commit_title with Some(keys)), which \
         the refusal rolls back; an entry written apart from it stays, owing an invalidation \
         for a change that never happened"
    );
}

#[tokio::test]
async fn task3_a_change_whose_outbox_entry_fails_is_rolled_back() {
    let site = site().await;
    let b = site.blog().await;
    // The outbox table goes away: its insert fails.
    site.sql("ALTER TABLE outbox RENAME TO outbox_away").await;
    let failed = b.update_title_logged(10, "Owed to nobody").await;
    site.sql("ALTER TABLE outbox_away RENAME TO outbox").await;
    let post = b.load_post(10).await.unwrap().unwrap();
    assert!(
        failed.is_err() && post.version == 1,
        "update_title_logged(10, ..) while the outbox cannot be written: expected Err and post \
         10 unchanged (version 1), got {failed:?} and version {}. A change committed without \
         its entry owes an invalidation nobody will make: write both in one transaction \
         (commit_title with Some(keys))",
        post.version
    );
}

#[tokio::test]
async fn task3_the_relay_stops_at_the_first_failed_delete() {
    let site = site_with_private_redis().await;
    let b = site.blog().await;
    // Three changes owe invalidations, in this order; the second names a key outside the
    // course's, which Redis is about to refuse.
    let elsewhere = "elsewhere:{blog}:page".to_string();
    for (id, keys) in [
        (4, vec![b.post_key(4)]),
        (5, vec![elsewhere]),
        (6, vec![b.post_key(6)]),
    ] {
        b.commit_title(id, "Owed", Some(&keys)).await.unwrap();
    }
    let acl = |rule: &'static str| {
        let mut conn = site.conn();
        async move {
            let set: () = redis::cmd("ACL")
                .arg("SETUSER")
                .arg("default")
                .arg("resetkeys")
                .arg(rule)
                .query_async(&mut conn)
                .await
                .unwrap();
            set
        }
    };
    acl("~course:*").await; // every key but the course's is refused (NOPERM)
    let pass = b.relay_once().await;
    let waiting: Vec<i64> = b
        .waiting_in_outbox(10)
        .await
        .unwrap()
        .iter()
        .map(|entry| entry.post)
        .collect();
    let cause = if waiting.contains(&4) {
        "Post 4's delete went through, yet its entry still waits: mark it relayed (mark_relayed) \
         before returning the error, or the next pass relays it again"
    } else {
        "An entry relayed past a failed one lets a later invalidation overtake an earlier one: \
         stop at the first failure"
    };
    assert!(
        matches!(pass, Err(RelayError::Redis { relayed: 1 })) && waiting == [5, 6],
        "relay_once() over entries for posts 4, 5, 6 whose second delete Redis refuses: expected \
         Err(Redis {{ relayed: 1 }}) with posts 5 and 6 still waiting, got {pass:?} with \
         {waiting:?} waiting. {cause}"
    );
    acl("allkeys").await;
    let next = b.relay_once().await;
    assert!(
        matches!(next, Ok(2)),
        "the next relay_once(), with Redis taking every key again: expected Ok(2) (posts 5 and \
         6, left waiting by the failed pass), got {next:?}"
    );
}
