//! Dead letters: what the database keeps refusing leaves the queue, with its error.
//!
//! A batch the database *refuses* (a `CHECK`, a foreign key) is split into one transaction per
//! player, so the good rows go through. The refused player's entries stay pending, come back
//! after `claim_idle` ([`super::claim`]), and once delivered `max_deliveries` times move to the
//! shard's dead-letter stream, where an operator can read what failed and why. Dropping them
//! silently, as the source material does, would lose acknowledged writes without a trace.

use shared::RedisConn;

use super::{Entry, Flusher, ScoreUpdate, coalesce};
use crate::layout::GROUP;

/// Moves one player's refused entries to the dead letters. KEYS: queue, dead letters, score,
/// version register. ARGV: group, player, error, the player's latest version among them, then
/// five values per entry: id, points, version, delta, deliveries.
pub(super) const DEAD_LETTER: &str = r#"
local group, player, err, latest = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
for i = 5, #ARGV, 5 do
  redis.call('XADD', KEYS[2], '*', 'entry', ARGV[i], 'player', player, 'points', ARGV[i + 1],
    'version', ARGV[i + 2], 'delta', ARGV[i + 3], 'deliveries', ARGV[i + 4], 'error', err)
  redis.call('XACK', KEYS[1], group, ARGV[i])
  redis.call('XDEL', KEYS[1], ARGV[i])
end
-- If nothing newer is queued, the cached score holds what the database refused: drop it, and
-- the register with it, so the next read and write start from the database's row.
if redis.call('HGET', KEYS[3], 'version') == latest then
  redis.call('DEL', KEYS[3])
  redis.call('HDEL', KEYS[4], player)
end
return 1
"#;

impl Flusher {
    /// The database refused something in the batch: each player in a transaction of its own, so
    /// the good rows go through. A refused player's entries stay pending and come back after
    /// `claim_idle`; once delivered `max_deliveries` times they become dead letters.
    pub(super) async fn flush_row_by_row(
        &self,
        conn: &mut RedisConn,
        shard: u16,
        entries: Vec<Entry>,
    ) {
        for update in coalesce(&entries) {
            let own: Vec<Entry> = entries
                .iter()
                .filter(|e| e.player == update.player)
                .cloned()
                .collect();
            match self.commit(&[update]).await {
                Ok(applied) => {
                    self.metrics.commit_succeeded();
                    self.metrics.replayed.add(1 - applied);
                    self.metrics.coalesced.add(own.len() as u64 - 1);
                    self.acknowledge(conn, shard, &own, &[update]).await;
                }
                Err(error) if refused(&error) => {
                    let delivered = own.iter().map(|e| e.deliveries).max().unwrap_or(1);
                    if delivered >= self.settings.max_deliveries {
                        self.bury(conn, shard, &update, &own, &error.to_string())
                            .await;
                    }
                }
                Err(error) => {
                    self.metrics.retries.inc();
                    self.metrics.commit_failed(&error);
                }
            }
        }
    }

    /// Moves a player's refused entries to the dead letters, with the error.
    async fn bury(
        &self,
        conn: &mut RedisConn,
        shard: u16,
        update: &ScoreUpdate,
        own: &[Entry],
        error: &str,
    ) {
        let mut call = self.dead_letter.prepare_invoke();
        call.key(self.layout.queue(shard))
            .key(self.layout.dead(shard))
            .key(self.layout.score(update.player))
            .key(self.layout.versions(shard))
            .arg(GROUP)
            .arg(update.player)
            .arg(error)
            .arg(update.version);
        for e in own {
            call.arg(&e.id)
                .arg(e.points)
                .arg(e.version)
                .arg(e.delta)
                .arg(e.deliveries);
        }
        match call.invoke_async::<i64>(conn).await {
            Ok(_) => self.metrics.dead_letters.add(own.len() as u64),
            Err(_) => self.metrics.redis_errors.inc(),
        }
    }
}

/// Whether the database refused the rows themselves (a constraint), as opposed to failing to
/// run the statement at all. Only a refusal is worth splitting the batch over.
pub(super) fn refused(error: &sqlx::Error) -> bool {
    use sqlx::error::ErrorKind;
    match error {
        sqlx::Error::Database(db) => matches!(
            db.kind(),
            ErrorKind::CheckViolation
                | ErrorKind::NotNullViolation
                | ErrorKind::ForeignKeyViolation
                | ErrorKind::UniqueViolation
        ),
        _ => false,
    }
}
