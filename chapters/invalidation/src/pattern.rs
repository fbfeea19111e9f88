//! Pattern deletes: after a write, find every key of the category by its name and delete it,
//! with `SCAN` and `UNLINK`, never `KEYS`.
//!
//! Deleting by pattern needs no bookkeeping at write time or read time, which is its appeal. Its
//! cost is the walk: `SCAN` visits the *whole* keyspace, a page at a time, to find the few keys
//! that match, so every write pays for every key in Redis, its own or not. The source material
//! reaches for `KEYS pattern`, which does the same walk in one command: Redis
//! runs one command at a time, so every other client waits until it is done. `SCAN` returns after
//! each page, and other clients' commands run between pages; [`pause_under`] measures the
//! difference.
//!
//! The walk itself is [`shared::namespace::unlink_matching`]: one page of `SCAN`, `UNLINK` of what
//! it found, the next page, so memory stays bounded by a page however many keys match, on every
//! master of a cluster.

use std::time::{Duration, Instant};

use shared::RedisConn;
use shared::metrics::Latency;
use shared::namespace::unlink_matching;

use crate::catalog::{Catalog, Item, category_of};
use crate::strategy::{Parts, Strategy};

/// How many keys one `SCAN` page asks for.
pub const SCAN_COUNT: usize = 500;

/// Reads through the cache; a write deletes every key of its category by pattern.
pub struct PatternDelete {
    parts: Parts,
}

impl PatternDelete {
    /// One instance's strategy.
    pub fn new(parts: Parts) -> Self {
        PatternDelete { parts }
    }
}

impl Strategy for PatternDelete {
    async fn set_price(&self, id: i64, price_cents: i64) -> Result<Option<Item>, sqlx::Error> {
        let committed = self.parts.db.commit_price(id, price_cents, None).await?;
        if committed.is_some() {
            let pattern = format!("{}*", self.parts.keys.slot(category_of(id)));
            let mut conn = self.parts.cache.conn();
            match unlink_matching(&mut conn, &pattern, SCAN_COUNT).await {
                Ok(done) => self
                    .parts
                    .cache
                    .invalidation_commands
                    .add((done.scans + done.unlinks) as u64),
                Err(_) => self.parts.cache.errors().inc(),
            }
        }
        Ok(committed)
    }

    fn parts(&self) -> &Parts {
        &self.parts
    }
}

/// The longest and typical wait another client saw while a pattern delete ran.
#[derive(Clone, Debug)]
pub struct Pause {
    /// How long the delete took.
    pub took: Duration,
    /// How many keys it found.
    pub matched: usize,
    /// The `PING` round trips of another client meanwhile.
    pub pings: shared::metrics::LatencySummary,
}

/// How `KEYS` and `SCAN` find the keys to delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// `KEYS pattern`, then `UNLINK` in pages: the source material's way.
    Keys,
    /// `SCAN` a page, `UNLINK` it, the next page.
    Scan,
}

impl Walk {
    /// The name reports and tables use.
    pub fn label(self) -> &'static str {
        match self {
            Walk::Keys => "KEYS, then UNLINK",
            Walk::Scan => "SCAN + UNLINK, page by page",
        }
    }
}

/// Runs one pattern delete of `pattern` the `walk` way on `conn`, while another connection,
/// `watcher`, sends `PING` in a loop: the `PING` latencies are what every other client of the
/// server lived through meanwhile.
pub async fn pause_under(
    walk: Walk,
    conn: &RedisConn,
    watcher: &RedisConn,
    pattern: &str,
) -> redis::RedisResult<Pause> {
    let done = tokio::sync::Notify::new();
    let watch = async {
        let mut watcher = watcher.clone();
        let mut pings = Latency::default();
        loop {
            let sent = Instant::now();
            let command = redis::cmd("PING");
            let ping = command.query_async::<String>(&mut watcher);
            tokio::select! {
                reply = ping => { reply?; pings.record(sent.elapsed()); }
                () = done.notified() => return redis::RedisResult::Ok(pings),
            }
        }
    };
    let delete = async {
        let started = Instant::now();
        let mut conn = conn.clone();
        let matched = match walk {
            Walk::Scan => unlink_matching(&mut conn, pattern, SCAN_COUNT).await?.keys,
            Walk::Keys => {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(pattern)
                    .query_async(&mut conn)
                    .await?;
                for page in keys.chunks(SCAN_COUNT) {
                    redis::cmd("UNLINK")
                        .arg(page)
                        .query_async::<()>(&mut conn)
                        .await?;
                }
                keys.len()
            }
        };
        done.notify_one();
        redis::RedisResult::Ok((started.elapsed(), matched))
    };
    let (watched, deleted) = tokio::join!(watch, delete);
    let pings = watched?;
    let (took, matched) = deleted?;
    Ok(Pause {
        took,
        matched,
        pings: pings.summary(),
    })
}
