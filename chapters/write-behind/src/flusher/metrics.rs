//! What the flushers count: the figures the demo's table and the tests read.

use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use shared::metrics::{Counter, Latency, LatencySummary};

/// What the flushers counted.
#[derive(Default)]
pub struct FlushMetrics {
    /// Committed transactions.
    pub transactions: Counter,
    /// Rows written by them (after coalescing).
    pub rows: Counter,
    /// Entries acknowledged.
    pub acknowledged: Counter,
    /// Entries folded into a later write of the same player in their batch.
    pub coalesced: Counter,
    /// Rows the upsert left alone because the table already had that version or a newer one:
    /// replays made harmless.
    pub replayed: Counter,
    /// Transactions retried after the database failed.
    pub retries: Counter,
    /// Entries taken over from a consumer that left them unacknowledged.
    pub claimed: Counter,
    /// Entries moved to a dead-letter stream.
    pub dead_letters: Counter,
    /// Redis calls of the flusher that failed.
    pub redis_errors: Counter,
    /// From acknowledgement (the entry id's time) to commit.
    pub lag: Mutex<Latency>,
    /// The database outage going on, as the commits see it; `None` while they go through.
    outage: Mutex<Option<DbOutage>>,
}

/// A database outage as a flusher sees it: every commit since `since` failed, the last with
/// `error`. The queue holds the writes meanwhile, so nothing is lost, but nothing reaches the
/// database either: an operator wants to hear about it while it lasts, not afterwards.
#[derive(Clone, Debug)]
pub struct DbOutage {
    /// When the first of the failed commits failed.
    pub since: Instant,
    /// The last failure, in the database driver's words.
    pub error: String,
}

/// A copy of the flush counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // each field is the counter of the same name
pub struct FlushStats {
    pub transactions: u64,
    pub rows: u64,
    pub acknowledged: u64,
    pub coalesced: u64,
    pub replayed: u64,
    pub retries: u64,
    pub claimed: u64,
    pub dead_letters: u64,
    pub redis_errors: u64,
    pub lag: LatencySummary,
}

impl FlushMetrics {
    /// Records a commit the database failed: the start of an outage, or its latest error.
    pub fn commit_failed(&self, error: &sqlx::Error) {
        let mut outage = self.outage.lock().expect("outage lock");
        let since = outage.as_ref().map_or_else(Instant::now, |o| o.since);
        *outage = Some(DbOutage {
            since,
            error: error.to_string(),
        });
    }

    /// Records a commit that went through: any outage is over.
    pub fn commit_succeeded(&self) {
        *self.outage.lock().expect("outage lock") = None;
    }

    /// The outage going on now: `Some` while the latest commit failed.
    pub fn db_outage(&self) -> Option<DbOutage> {
        self.outage.lock().expect("outage lock").clone()
    }

    /// The counters now.
    pub fn snapshot(&self) -> FlushStats {
        FlushStats {
            transactions: self.transactions.get(),
            rows: self.rows.get(),
            acknowledged: self.acknowledged.get(),
            coalesced: self.coalesced.get(),
            replayed: self.replayed.get(),
            retries: self.retries.get(),
            claimed: self.claimed.get(),
            dead_letters: self.dead_letters.get(),
            redis_errors: self.redis_errors.get(),
            lag: self.lag.lock().expect("lag lock").summary(),
        }
    }
}

impl FlushStats {
    /// Rows per committed transaction, on average.
    pub fn rows_per_transaction(&self) -> f64 {
        self.rows as f64 / self.transactions.max(1) as f64
    }
}
