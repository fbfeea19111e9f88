//! The suite shared by the exercise and the solution: `super::subject` is whichever crate runs it.
//!
//! Each test gets its own namespace and database (`DATABASE_URL`, else SQLite); Redis is
//! `REDIS_URL`, or a private cluster with `REDIS_CLUSTER=1`, else a private server, and
//! the tests that stop Redis always start a private one.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use shared::exercise::{joined, quiet_repeated_todos};
use shared::{DbOptions, ServerOptions, Stage, codec};

use super::subject::{Settings, Stock, StockLevel};

fn settings() -> Settings {
    Settings {
        ttl: Duration::from_secs(60),
        redis_timeout: Duration::from_millis(100),
    }
}

async fn warehouse() -> Stage {
    quiet_repeated_todos();
    Stage::from_env("write-through-exercise", DbOptions::default())
        .await
        .expect("a Redis and a database for the tests")
}

async fn warehouse_with_private_redis() -> Stage {
    quiet_repeated_todos();
    let db = DbOptions::default();
    Stage::private("write-through-exercise", db, ServerOptions::default())
        .await
        .expect("redis-server on PATH")
}

/// Stock ledgers on the stage, and what the tests look at.
trait Warehouse {
    /// One application instance with its own connection. Its setup queries are not counted.
    async fn stock(&self) -> Stock;
    /// The record cached under `sku`'s key, read on a fresh connection.
    async fn cached(&self, stock: &Stock, sku: &str) -> Option<StockLevel>;
}

impl Warehouse for Stage {
    async fn stock(&self) -> Stock {
        let instance = self.instance().await.unwrap();
        let (conn, namespace) = (instance.conn, instance.namespace);
        let stock = Stock::open(self.db().clone(), conn, namespace, settings(), 20)
            .await
            .unwrap();
        self.db().reset_queries();
        stock
    }

    async fn cached(&self, stock: &Stock, sku: &str) -> Option<StockLevel> {
        let mut conn = self.instance().await.unwrap().conn;
        let bytes: Option<Vec<u8>> = conn.get(stock.key(sku)).await.unwrap();
        bytes.map(|b| codec::decode(&b).expect("a cached stock level"))
    }
}

fn level(sku: &str, quantity: i64, version: i64) -> StockLevel {
    StockLevel {
        sku: sku.to_string(),
        quantity,
        version,
    }
}

// ---- task 1: read through, write through -------------------------------------------------------

#[tokio::test]
async fn task1_reads_fill_the_cache_once() {
    let wh = warehouse().await;
    let stock = wh.stock().await;
    for _ in 0..5 {
        assert_eq!(
            stock.get("sku-1").await.unwrap(),
            Some(level("sku-1", 10, 1))
        );
    }
    let queries = wh.db().queries();
    assert_eq!(
        queries, 1,
        "database queries after 5 reads of sku-1: expected 1 (a miss, then hits), got {queries}. \
         Is the loaded row stored with store()?"
    );
    let cached = wh.cached(&stock, "sku-1").await;
    assert_eq!(
        cached,
        Some(level("sku-1", 10, 1)),
        "the record cached under key(\"sku-1\") after a read"
    );
    let unknown = stock.get("sku-999").await;
    assert!(
        matches!(unknown, Ok(None)),
        "get(\"sku-999\") of an unknown SKU: expected Ok(None), got {unknown:?}"
    );
}

#[tokio::test]
async fn task1_after_a_write_the_next_read_is_a_hit_with_the_new_quantity() {
    let wh = warehouse().await;
    let stock = wh.stock().await;
    stock.get("sku-2").await.unwrap();
    let committed = stock.set_quantity("sku-2", 7).await.unwrap().unwrap();
    assert_eq!(
        committed,
        level("sku-2", 7, 2),
        "set_quantity(\"sku-2\", 7): expected the committed row, version 2"
    );
    let queries = wh.db().queries();
    let read = stock.get("sku-2").await.unwrap();
    assert_eq!(
        read,
        Some(level("sku-2", 7, 2)),
        "get(\"sku-2\") right after set_quantity(\"sku-2\", 7)"
    );
    let more = wh.db().queries() - queries;
    assert_eq!(
        more, 0,
        "database queries for the read after a write: expected 0 (write-through leaves the new \
         row in the cache), got {more}. Does set_quantity store the committed row?"
    );
    let ttl: i64 = wh.conn().pttl(stock.key("sku-2")).await.unwrap();
    assert!(
        (55_000..=60_000).contains(&ttl),
        "PTTL of sku-2's cached record after a write: expected 55,000 to 60,000 ms \
         (settings.ttl), got {ttl} ms (-1: no TTL at all)"
    );
    let unknown = stock.set_quantity("sku-404", 1).await;
    assert!(
        matches!(unknown, Ok(None)),
        "set_quantity(\"sku-404\", 1) of an unknown SKU: expected Ok(None), got {unknown:?}"
    );
}

#[tokio::test]
async fn task1_a_failed_commit_leaves_the_cache_untouched() {
    let wh = warehouse().await;
    let stock = wh.stock().await;
    stock.get("sku-3").await.unwrap();
    // The table refuses a negative quantity: the transaction fails, nothing changes.
    let refused = stock.set_quantity("sku-3", -5).await;
    assert!(
        refused.is_err(),
        "set_quantity(\"sku-3\", -5), which the table refuses: expected Err, got {refused:?}"
    );
    let cached = wh.cached(&stock, "sku-3").await;
    assert_eq!(
        cached,
        Some(level("sku-3", 10, 1)),
        "the cached sku-3 after a commit that failed: expected it as it was (10 units, version \
         1), got {cached:?}. Is the cache written before the commit?"
    );
    assert_eq!(
        stock.get("sku-3").await.unwrap(),
        Some(level("sku-3", 10, 1))
    );
}

// ---- task 2: versions --------------------------------------------------------------------------

#[tokio::test]
async fn task2_an_older_version_never_replaces_a_newer_one() {
    let wh = warehouse().await;
    let stock = wh.stock().await;
    let stores = [
        (
            level("sku-4", 3, 3),
            Some(true),
            "version 3 into an empty key",
        ),
        // A writer that committed version 2 earlier arrives late with its row.
        (
            level("sku-4", 8, 2),
            Some(false),
            "version 2 over version 3",
        ),
        (
            level("sku-4", 8, 3),
            Some(false),
            "version 3 over version 3",
        ),
        (level("sku-4", 1, 4), Some(true), "version 4 over version 3"),
    ];
    for (record, expected, what) in stores {
        let stored = stock.store(&record).await;
        assert_eq!(
            stored, expected,
            "store() of {what}: expected {expected:?} (Some(true) stored, Some(false) refused as \
             not newer), got {stored:?}"
        );
    }
    let cached = wh.cached(&stock, "sku-4").await;
    assert_eq!(
        cached,
        Some(level("sku-4", 1, 4)),
        "the cached sku-4 after those four stores: expected version 4"
    );
}

#[tokio::test]
async fn task1_unreadable_bytes_are_a_miss_on_the_read_path() {
    let wh = warehouse().await;
    let stock = wh.stock().await;
    let _: () = wh
        .conn()
        .set_ex(stock.key("sku-6"), "{oops", 60)
        .await
        .unwrap();
    let read = stock.get("sku-6").await;
    assert_eq!(
        read.as_ref().ok(),
        Some(&Some(level("sku-6", 10, 1))),
        "get(sku-6) over bytes that are not a StockLevel: expected the database's row (a \
         miss), got {read:?}"
    );
    assert_eq!(
        wh.cached(&stock, "sku-6").await,
        Some(level("sku-6", 10, 1)),
        "after that miss the loaded row should be stored over the bad bytes"
    );
}

#[tokio::test]
async fn task2_a_store_is_one_command() {
    let wh = warehouse_with_private_redis().await;
    let stock = wh.stock().await;
    // One round first: a script is loaded into Redis the first time it runs.
    stock.store(&level("sku-1", 10, 1)).await;
    let mut sent = wh.server().watch_commands().await.unwrap();
    let stored = stock.store(&level("sku-2", 10, 1)).await;
    let commands = sent.since_last().await;
    assert_eq!(stored, Some(true), "store() into an empty key");
    assert!(
        commands.len() == 1 && commands[0].starts_with("EVAL"),
        "commands sent by one store(): expected one script call (EVAL or EVALSHA), got \
         {commands:?}. A GET, a comparison in Rust and a SET let another writer store a newer \
         version between the GET and the SET, which the SET then overwrites"
    );
}

#[tokio::test]
async fn task1_a_read_fills_through_the_versioned_store() {
    let wh = warehouse_with_private_redis().await;
    let stock = wh.stock().await;
    stock.store(&level("sku-2", 10, 1)).await; // loads the script
    let mut sent = wh.server().watch_commands().await.unwrap();
    stock.get("sku-1").await.unwrap();
    let commands = sent.since_last().await;
    let scripts = commands.iter().filter(|c| c.starts_with("EVAL")).count();
    let plain: Vec<&String> = commands
        .iter()
        .filter(|c| ["SET", "SETEX", "PSETEX", "SETNX", "GETSET"].contains(&c.as_str()))
        .collect();
    assert!(
        scripts == 1 && plain.is_empty(),
        "commands sent by get(\"sku-1\") on a miss: expected its read and one script call \
         (store()), got {commands:?}. A reader's plain SET of the row it loaded overwrites a \
         newer version a writer stored since: fill through store(), which refuses older versions"
    );
}

#[tokio::test]
async fn task2_an_unreadable_entry_is_replaced() {
    let wh = warehouse().await;
    let stock = wh.stock().await;
    let _: () = wh
        .conn()
        .set_ex(stock.key("sku-5"), "{oops", 60)
        .await
        .unwrap();
    assert_eq!(stock.store(&level("sku-5", 4, 2)).await, Some(true));
    assert_eq!(
        stock.get("sku-5").await.unwrap(),
        Some(level("sku-5", 4, 2))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task2_racing_writers_leave_the_cache_equal_to_the_database() {
    let wh = warehouse().await;
    let (a, b) = (Arc::new(wh.stock().await), Arc::new(wh.stock().await));
    for round in 0..20 {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let stock = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { stock.set_quantity("sku-6", round * 10 + i).await })
            })
            .collect();
        for task in tasks {
            joined(task).await.unwrap();
        }
        let in_db = a.load("sku-6").await.unwrap();
        let cached = wh.cached(&a, "sku-6").await;
        assert_eq!(
            cached, in_db,
            "round {round} of 8 concurrent set_quantity() calls on two instances: expected the \
             cache to hold the database's row, got {cached:?} against {in_db:?}. An older \
             version was stored over a newer one: is the version check atomic, in the script?"
        );
    }
}

// ---- task 3: when the cache write fails --------------------------------------------------------

#[tokio::test]
async fn task3_a_failed_cache_write_is_repaired_by_a_delete() {
    let wh = warehouse().await;
    let stock = wh.stock().await;
    // A key of the wrong type makes the cache write fail, while a delete still works.
    let mut conn = wh.instance().await.unwrap().conn;
    let _: () = conn
        .hset(stock.key("sku-7"), "field", "value")
        .await
        .unwrap();
    // Whatever the solution does, the key must not outlive the test on a shared Redis.
    let _: () = conn.expire(stock.key("sku-7"), 120).await.unwrap();
    let committed = stock.set_quantity("sku-7", 2).await.unwrap().unwrap();
    assert!(
        !conn.exists::<_, bool>(stock.key("sku-7")).await.unwrap(),
        "after set_quantity() whose store failed (the key held a hash, so the script could not \
         read it), expected the key {} deleted; it is still there. A failed store after the \
         commit must be repaired with a DEL",
        stock.key("sku-7")
    );
    assert_eq!(stock.get("sku-7").await.unwrap(), Some(committed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task3_redis_lost_during_a_write_serves_no_stale_value_once_back() {
    let wh = warehouse_with_private_redis().await;
    let stock = wh.stock().await;
    stock.get("sku-8").await.unwrap(); // 10 units, version 1, cached

    // Redis goes away (keeping its data) and the write commits without it.
    wh.server().stop_keeping_data().unwrap();
    let committed = stock.set_quantity("sku-8", 0).await.unwrap().unwrap();
    assert_eq!(committed, level("sku-8", 0, 2));
    let read = stock.get("sku-8").await;
    assert_eq!(
        read.as_ref().ok(),
        Some(&Some(committed.clone())),
        "get(\"sku-8\") with Redis stopped: expected the committed row from the database, got \
         {read:?}"
    );

    // Redis is back, with version 1 still in it. No read may return it.
    wh.server().restart().unwrap();
    for read in 1..=5 {
        let got = stock.get("sku-8").await.unwrap();
        assert_eq!(
            got,
            Some(committed.clone()),
            "get(\"sku-8\"), read {read} after Redis came back holding the old row (10 units, \
             version 1): expected the committed row (0 units, version 2). Did the failed store \
             leave a mark in unrepaired, and does get() delete the key before reading it?"
        );
    }
    let cached = wh.cached(&stock, "sku-8").await;
    assert_ne!(
        cached,
        Some(level("sku-8", 10, 1)),
        "the old row is still cached after the reads; expected it deleted or replaced"
    );
}

#[tokio::test]
async fn task3_with_redis_down_writes_commit_and_reads_use_the_database() {
    let wh = warehouse_with_private_redis().await;
    let stock = wh.stock().await;
    wh.server().stop();
    let committed = stock.set_quantity("sku-9", 3).await.unwrap().unwrap();
    let errors = stock.redis_errors.get();
    assert_eq!(
        errors, 2,
        "redis_errors after set_quantity() with Redis stopped: expected exactly 2 (the store, \
         then the repair's DEL), got {errors}"
    );
    assert_eq!(stock.get("sku-9").await.unwrap(), Some(committed));
}

#[tokio::test]
async fn task3_only_a_store_as_new_as_the_failed_write_settles_the_repair() {
    let wh = warehouse_with_private_redis().await;
    let stock = wh.stock().await;
    // A reader loads sku-10 (version 1) and is about to store it...
    let read_before = stock.load("sku-10").await.unwrap().unwrap();
    // ...when Redis goes down and a write commits version 2; its store and its repair fail.
    wh.server().stop();
    let committed = stock.set_quantity("sku-10", 4).await.unwrap().unwrap();
    assert_eq!(committed.version, 2);
    // Redis comes back empty, and the reader stores what it read: nothing newer is cached, so
    // the script accepts version 1.
    wh.server().restart().unwrap();
    let stored = stock.store(&read_before).await;
    assert_eq!(
        stored,
        Some(true),
        "store() of version 1 into a Redis that came back empty"
    );
    let read = stock.get("sku-10").await.unwrap();
    assert_eq!(
        read,
        Some(committed),
        "get(sku-10) after a reader stored the version-1 row over a pending repair of version \
         2: expected version 2 from the database, got {read:?}. The store of version 1 must not \
         settle the mark: only a store of version 2 or newer may"
    );
}
