//! Reading a batch: first what stalled consumers left, then new entries.
//!
//! An entry delivered to a consumer stays *pending* to it until acknowledged. If that consumer
//! died (a crash between its commit and its acknowledgement), or the database keeps refusing the
//! entry's row, nobody acknowledges it. So before it reads new entries, a flusher takes over
//! entries idle for longer than `claim_idle` (`XAUTOCLAIM`), and asks how often each has been
//! delivered, which decides when a refused one becomes a dead letter.
//!
//! The pending entries list (PEL) is where a consumer group keeps every entry delivered and not
//! yet acknowledged, with its consumer, its idle time and its delivery count. `XAUTOCLAIM` walks
//! it from a start id, looks at a bounded number of entries per call (ten times its `COUNT`),
//! takes the idle ones, and returns a cursor: where the next call goes on, `0-0` once the walk
//! reached the end. A flusher follows that cursor, one call per batch: restarting every call at
//! `0-0` would look at the same first entries each time, and an idle entry behind more than ten
//! batches of busy ones would never be reached.

use std::collections::BTreeMap;

use redis::AsyncCommands;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamPendingCountReply,
    StreamReadOptions, StreamReadReply,
};
use shared::RedisConn;

use super::Flusher;
use crate::layout::GROUP;
use crate::write::millis;

/// One queued write, as a flusher received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The stream entry id, `<ms>-<seq>`.
    pub id: String,
    /// The player.
    pub player: i64,
    /// The player's points after the write.
    pub points: i64,
    /// The write's version.
    pub version: i64,
    /// The points the write added.
    pub delta: i64,
    /// How many times the entry has been delivered to a consumer, this time included.
    pub deliveries: usize,
}

impl Flusher {
    /// Entries abandoned by other consumers if there are any, else new ones. `cursor` is where
    /// this shard's walk of the pending entries goes on (`0-0`: from the start).
    pub(super) async fn next_batch(
        &self,
        conn: &mut RedisConn,
        shard: u16,
        cursor: &mut String,
    ) -> redis::RedisResult<Vec<Entry>> {
        let queue = self.layout.queue(shard);
        let abandoned = self.claim_abandoned(conn, &queue, cursor).await?;
        if !abandoned.is_empty() {
            return Ok(abandoned);
        }
        self.read_new(conn, &queue).await
    }

    /// Takes over the next entries idle for longer than `claim_idle`, following `cursor` through
    /// the pending entries list until some are found or the walk reaches its end.
    async fn claim_abandoned(
        &self,
        conn: &mut RedisConn,
        queue: &str,
        cursor: &mut String,
    ) -> redis::RedisResult<Vec<Entry>> {
        let idle = millis(self.settings.claim_idle);
        // ANCHOR: claim_walk
        loop {
            let options = StreamAutoClaimOptions::default().count(self.settings.batch_size);
            let claimed: StreamAutoClaimReply = conn
                .xautoclaim_options(queue, GROUP, &self.consumer, idle, &*cursor, options)
                .await?;
            *cursor = claimed.next_stream_id; // where the next call goes on
            if !claimed.claimed.is_empty() {
                self.metrics.claimed.add(claimed.claimed.len() as u64);
                return self.with_deliveries(conn, queue, &claimed.claimed).await;
            }
            if cursor.as_str() == "0-0" {
                return Ok(Vec::new()); // the walk reached the end: nothing is idle
            }
        }
        // ANCHOR_END: claim_walk
    }

    /// The claimed entries with how often each was delivered, this time included, which
    /// decides when a refused one is a dead letter (`XPENDING` over their range).
    async fn with_deliveries(
        &self,
        conn: &mut RedisConn,
        queue: &str,
        claimed: &[StreamId],
    ) -> redis::RedisResult<Vec<Entry>> {
        let (first, last) = (&claimed[0].id, &claimed[claimed.len() - 1].id);
        let count = claimed.len();
        let pending: StreamPendingCountReply = conn
            .xpending_consumer_count(queue, GROUP, first, last, count, &self.consumer)
            .await?;
        let deliveries: BTreeMap<&str, usize> = pending
            .ids
            .iter()
            .map(|p| (p.id.as_str(), p.times_delivered))
            .collect();
        Ok(claimed
            .iter()
            .filter_map(|id| entry(id, deliveries.get(id.id.as_str()).copied().unwrap_or(1)))
            .collect())
    }

    /// New entries (`XREADGROUP ... >`), waiting up to `block` for them.
    async fn read_new(&self, conn: &mut RedisConn, queue: &str) -> redis::RedisResult<Vec<Entry>> {
        let options = StreamReadOptions::default()
            .group(GROUP, &self.consumer)
            .count(self.settings.batch_size)
            .block(millis(self.settings.block) as usize);
        let read: Option<StreamReadReply> = conn.xread_options(&[queue], &[">"], &options).await?;
        Ok(read
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .filter_map(|id| entry(&id, 1))
            .collect())
    }
}

/// An entry from its stream fields; `None` if they are not the lesson's (another program's).
fn entry(id: &StreamId, deliveries: usize) -> Option<Entry> {
    Some(Entry {
        id: id.id.clone(),
        player: id.get("player")?,
        points: id.get("points")?,
        version: id.get("version")?,
        delta: id.get("delta")?,
        deliveries,
    })
}
