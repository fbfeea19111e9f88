//! Reading a batch: first what stalled consumers left, then new entries.
//!
//! An entry delivered to a consumer stays *pending* to it until acknowledged. If that consumer
//! died (a crash between its commit and its acknowledgement), or the database keeps refusing the
//! entry's row, nobody acknowledges it. So before it reads new entries, a flusher takes over
//! entries idle for longer than `claim_idle` (`XAUTOCLAIM`), and asks how often each has been
//! delivered, which decides when a refused one becomes a dead letter.

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
    // ANCHOR: next_batch
    /// Entries abandoned by other consumers if there are any, else new ones.
    pub(super) async fn next_batch(
        &self,
        conn: &mut RedisConn,
        shard: u16,
    ) -> redis::RedisResult<Vec<Entry>> {
        let queue = self.layout.queue(shard);
        let count = self.settings.batch_size;
        let options = StreamAutoClaimOptions::default().count(count);
        let idle = millis(self.settings.claim_idle);
        let claimed: StreamAutoClaimReply = conn
            .xautoclaim_options(&queue, GROUP, &self.consumer, idle, "0-0", options)
            .await?;
        if let (Some(first), Some(last)) = (claimed.claimed.first(), claimed.claimed.last()) {
            // How often each was delivered, this time included, decides when it is a dead letter.
            let pending: StreamPendingCountReply = conn
                .xpending_consumer_count(&queue, GROUP, &first.id, &last.id, count, &self.consumer)
                .await?;
            let deliveries: BTreeMap<&str, usize> = pending
                .ids
                .iter()
                .map(|p| (p.id.as_str(), p.times_delivered))
                .collect();
            self.metrics.claimed.add(claimed.claimed.len() as u64);
            return Ok(claimed
                .claimed
                .iter()
                .filter_map(|id| entry(id, deliveries.get(id.id.as_str()).copied().unwrap_or(1)))
                .collect());
        }
        let options = StreamReadOptions::default()
            .group(GROUP, &self.consumer)
            .count(count)
            .block(millis(self.settings.block) as usize);
        let read: Option<StreamReadReply> = conn.xread_options(&[&queue], &[">"], &options).await?;
        Ok(read
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .filter_map(|id| entry(&id, 1))
            .collect())
    }
    // ANCHOR_END: next_batch
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
