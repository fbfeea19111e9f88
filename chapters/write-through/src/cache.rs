//! The versioned cache, and what happens when a cache write fails after the commit.
//!
//! Every Redis call runs within a time budget and a failure is counted, never returned: the
//! database has already answered or committed, and Redis trouble must not turn that into an error.
//!
//! A failed cache write after a commit is the dangerous case. The database holds the new row and
//! the cache may still hold the old one, which every read would then serve as a hit. So the
//! failure is *repaired*:
//!
//! 1. delete the key: a missing key is a miss, and a miss loads the new row;
//! 2. if the delete fails too (Redis is unreachable), remember the key. Before this instance
//!    serves that key from Redis again it must delete it; until it can, it reads the database;
//! 3. the TTL every record carries is the last safety net, for other instances and for a process
//!    that dies with repairs pending. It bounds how long anyone can read the old row.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use redis::{AsyncCommands, RedisResult, Script};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::RedisConn;
use shared::budget::{self, Lookup, Trouble};
use shared::codec;
use shared::metrics::{CacheMetrics, Counter};

use crate::versioned::{SET_IF_NEWER, Versioned};

/// The write side's counters.
#[derive(Debug, Default)]
pub struct WriteMetrics {
    /// Records stored by the versioned script.
    pub stored: Counter,
    /// Records the script refused because the cache already held that version or a newer one.
    pub refused_older: Counter,
    /// Cache writes that failed after the database had committed.
    pub failed: Counter,
    /// Of those, repaired at once by deleting the key.
    pub deleted: Counter,
    /// Of those, left pending because the delete failed too; deleted before the key is served.
    pub pending: Counter,
    /// Pending repairs completed later.
    pub repaired_later: Counter,
}

/// A copy of the write counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[allow(missing_docs)] // each field is the counter of the same name
pub struct WriteStats {
    pub stored: u64,
    pub refused_older: u64,
    pub failed: u64,
    pub deleted: u64,
    pub pending: u64,
    pub repaired_later: u64,
}

/// Versioned records in Redis, written only over older ones, with repairs of failed writes.
pub struct VersionedCache {
    conn: RedisConn,
    timeout: Duration,
    ttl: Duration,
    set_if_newer: Script,
    /// Keys whose repair could not be done yet, each with the version whose write failed.
    unrepaired: Mutex<HashMap<String, i64>>,
    /// The read side's counters (and every Redis error).
    pub reads: CacheMetrics,
    /// The write side's counters.
    pub writes: WriteMetrics,
}

impl VersionedCache {
    /// Records are kept for `ttl`; every Redis call gets at most `timeout`.
    pub fn new(conn: RedisConn, ttl: Duration, timeout: Duration) -> Self {
        VersionedCache {
            conn,
            timeout,
            ttl,
            set_if_newer: Script::new(SET_IF_NEWER),
            unrepaired: Mutex::new(HashMap::new()),
            reads: CacheMetrics::default(),
            writes: WriteMetrics::default(),
        }
    }

    /// The write counters' values now.
    pub fn write_stats(&self) -> WriteStats {
        let w = &self.writes;
        WriteStats {
            stored: w.stored.get(),
            refused_older: w.refused_older.get(),
            failed: w.failed.get(),
            deleted: w.deleted.get(),
            pending: w.pending.get(),
            repaired_later: w.repaired_later.get(),
        }
    }

    // ANCHOR: read
    /// The record under `key`, unless a repair of `key` is still pending and cannot be done now
    /// (then [`Lookup::Unavailable`]: read the database and store nothing).
    pub async fn read<T: DeserializeOwned>(&self, key: &str) -> Lookup<Versioned<T>> {
        if !self.finish_repair(key).await {
            return Lookup::Unavailable;
        }
        let trouble = Trouble {
            errors: &self.reads.errors,
            corrupt: &self.reads.corrupt,
        };
        budget::get(&self.conn, key, self.timeout, trouble).await
    }
    // ANCHOR_END: read

    // ANCHOR: write
    /// Stores `record` unless the cache holds its version or a newer one. Called after the
    /// database committed; if Redis fails, the key is repaired rather than left as it was.
    pub async fn write<T: Serialize>(&self, key: &str, record: &Versioned<T>) {
        let bytes = codec::encode(record).expect("records serialize to JSON");
        let stored: Option<i64> = self
            .bounded(
                self.set_if_newer
                    .key(key)
                    .arg(record.version)
                    .arg(bytes)
                    .arg(self.ttl.as_millis().max(1) as u64)
                    .invoke_async(&mut self.conn.clone()),
            )
            .await;
        match stored {
            Some(1) => {
                self.writes.stored.inc();
                self.covered(key, record.version);
            }
            Some(_) => self.writes.refused_older.inc(),
            None => {
                self.writes.failed.inc();
                self.repair(key, record.version).await;
            }
        }
    }

    /// After a failed cache write of `version`: delete the key, or remember that it must be
    /// deleted.
    async fn repair(&self, key: &str, version: i64) {
        let mut conn = self.conn.clone();
        if self.bounded(conn.del::<_, ()>(key)).await.is_some() {
            self.writes.deleted.inc();
        } else {
            self.writes.pending.inc();
            let mut unrepaired = self.unrepaired.lock().expect("repairs lock");
            let failed = unrepaired.entry(key.to_string()).or_insert(version);
            *failed = (*failed).max(version);
        }
    }

    /// A stored `version` of `key` settles a pending repair only if it is at least as new as the
    /// write that failed. An older one can be stored too: a reader that loaded the row before that
    /// write, finding the key gone after Redis came back empty, stores what it read, and the key
    /// must still be deleted before it is served.
    fn covered(&self, key: &str, version: i64) {
        let mut unrepaired = self.unrepaired.lock().expect("repairs lock");
        if unrepaired.get(key).is_some_and(|&failed| version >= failed) {
            unrepaired.remove(key);
        }
    }

    /// Completes a pending repair of `key`, if there is one. Returns whether the key may be read.
    async fn finish_repair(&self, key: &str) -> bool {
        if !self
            .unrepaired
            .lock()
            .expect("repairs lock")
            .contains_key(key)
        {
            return true;
        }
        let mut conn = self.conn.clone();
        if self.bounded(conn.del::<_, ()>(key)).await.is_none() {
            return false;
        }
        self.unrepaired.lock().expect("repairs lock").remove(key);
        self.writes.repaired_later.inc();
        true
    }
    // ANCHOR_END: write

    /// Runs one Redis call within the time budget ([`shared::budget::within`]); a failure or a
    /// timeout is counted as a Redis error and becomes `None`.
    async fn bounded<T>(&self, call: impl Future<Output = RedisResult<T>>) -> Option<T> {
        budget::within(self.timeout, &self.reads.errors, call).await
    }
}
