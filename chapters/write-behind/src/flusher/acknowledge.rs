//! Acknowledge after the commit, and only then.
//!
//! An entry acknowledged before its batch is committed is lost if the flusher dies in between:
//! nobody will deliver it again. Acknowledged after the commit, an entry whose flusher died in
//! between is delivered again and applied again, which the versioned upsert makes harmless. One
//! script acknowledges the batch, deletes its entries (so the queue holds only unacknowledged
//! entries and cannot grow without bound while the flusher keeps up) and gives each flushed
//! player its TTL, unless a newer write made it dirty again.

use std::time::Duration;

use shared::RedisConn;
use shared::clock::now_ms;

use super::{Entry, Flusher, ScoreUpdate};
use crate::layout::GROUP;
use crate::write::millis;

// ANCHOR: ack_script
/// Acknowledges a committed batch. KEYS: the queue, then the flushed players' scores. ARGV: the
/// group, the TTL in ms, the number of entry ids, the ids, then each score's flushed version.
/// Returns how many entries were acknowledged.
pub(super) const ACK: &str = r#"
local ttl, n = ARGV[2], tonumber(ARGV[3])
local ids = {}
for i = 1, n do ids[i] = ARGV[3 + i] end
local acked = redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
for i = 2, #KEYS do
  -- Clean now, unless a newer write arrived since this batch was read.
  if redis.call('HGET', KEYS[i], 'version') == ARGV[3 + n + i - 1] then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return acked
"#;
// ANCHOR_END: ack_script

impl Flusher {
    /// After the commit: acknowledge and delete the entries, mark the players clean, record the
    /// lag. If Redis fails here the entries stay pending and are delivered again later, which
    /// the versioned upsert makes harmless.
    pub(super) async fn acknowledge(
        &self,
        conn: &mut RedisConn,
        shard: u16,
        entries: &[Entry],
        updates: &[ScoreUpdate],
    ) {
        let mut call = self.ack.prepare_invoke();
        call.key(self.layout.queue(shard));
        for update in updates {
            call.key(self.layout.score(update.player));
        }
        call.arg(GROUP)
            .arg(millis(self.settings.ttl))
            .arg(entries.len());
        for entry in entries {
            call.arg(&entry.id);
        }
        for update in updates {
            call.arg(update.version);
        }
        match call.invoke_async::<u64>(conn).await {
            Ok(acked) => self.metrics.acknowledged.add(acked),
            Err(_) => self.metrics.redis_errors.inc(),
        }
        let now = now_ms();
        let mut lag = self.metrics.lag.lock().expect("lag lock");
        for entry in entries {
            let ms = now.saturating_sub(entry_ms(&entry.id));
            lag.record(Duration::from_millis(ms));
        }
    }
}

/// The time an entry was added, from its id `<ms>-<seq>`.
pub fn entry_ms(id: &str) -> u64 {
    id.split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0)
}
