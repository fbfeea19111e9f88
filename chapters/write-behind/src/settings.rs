//! The write-behind lesson's settings: how the queue is split, how the flusher batches, when it
//! gives up on a consumer, an entry, or a database that does not answer.

use std::time::Duration;

/// How the queue and its flushers behave.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How many queues (Redis Streams) the players are spread over. Each queue lives in one hash
    /// slot with the players it carries, so on a cluster the queues spread over the masters.
    pub shards: u16,
    /// The most entries a flusher takes in one read, and so in one database transaction.
    pub batch_size: usize,
    /// How long a flusher's read waits for new entries before it looks for abandoned ones.
    pub block: Duration,
    /// An entry delivered to a consumer that has not acknowledged it for this long is taken
    /// over by another (`XAUTOCLAIM`): its consumer is presumed dead, or its row refused.
    pub claim_idle: Duration,
    /// After this many deliveries an entry the database keeps refusing goes to the dead-letter
    /// stream.
    pub max_deliveries: usize,
    /// A failed transaction is retried after this long, doubling up to `max_backoff`.
    pub backoff: Duration,
    /// The longest wait between retries of a failed transaction.
    pub max_backoff: Duration,
    /// How long a flushed ("clean") player stays cached. A player with writes still queued
    /// ("dirty") has no TTL at all.
    pub ttl: Duration,
    /// The budget of each Redis call on the request path.
    pub redis_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            shards: 4,
            batch_size: 500,
            block: Duration::from_millis(20),
            claim_idle: Duration::from_secs(2),
            max_deliveries: 5,
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            ttl: Duration::from_secs(600),
            redis_timeout: Duration::from_millis(250),
        }
    }
}
