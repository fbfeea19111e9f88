//! The audit: did the database end up with every acknowledged write, exactly once?
//!
//! Speed is half of write-behind's report; the other half is whether the database, once the
//! queue is drained, holds what the application was told. So every run records, per player, the
//! points of writes that were acknowledged, and apart from them the points of writes whose
//! outcome the application never learned (an error that may have come after the write took
//! effect, such as a timeout). Then it compares each row of the table with them:
//!
//! - **lost**: acknowledged points the row does not have (an acknowledged write vanished);
//! - **double-applied**: points the row has beyond the acknowledged ones and the unknown ones
//!   (a write applied twice, as replayed increments are after a crash).

use std::collections::BTreeMap;
use std::sync::Mutex;

use shared::Database;

use crate::table::Scores;

/// What the application was told, per player: the points acknowledged, and the points of
/// writes whose outcome it never learned (an error that may have come after the write).
#[derive(Default)]
pub struct Acknowledged {
    acked: Mutex<BTreeMap<i64, i64>>,
    unknown: Mutex<BTreeMap<i64, i64>>,
}

/// What the audit found, in points.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    /// Acknowledged points the database does not have.
    pub lost: u64,
    /// Points the database has beyond the acknowledged ones and those of unanswered writes.
    pub double_applied: u64,
}

impl Acknowledged {
    /// Records a write of `delta` points to `player`: `acknowledged` if the application was
    /// told it succeeded, otherwise its outcome is unknown.
    pub fn record(&self, player: i64, delta: i64, acknowledged: bool) {
        let map = if acknowledged {
            &self.acked
        } else {
            &self.unknown
        };
        *map.lock().expect("acks lock").entry(player).or_insert(0) += delta;
    }

    /// Compares every row of the `scores` table with what was recorded (one query).
    pub async fn audit(&self, db: &Database) -> Result<Audit, sqlx::Error> {
        let acked = self.acked.lock().expect("acks lock").clone();
        let unknown = self.unknown.lock().expect("acks lock").clone();
        let mut audit = Audit::default();
        for row in db.all_scores().await? {
            let expected = acked.get(&row.player).copied().unwrap_or(0);
            let maybe = unknown.get(&row.player).copied().unwrap_or(0);
            audit.lost += (expected - row.points).max(0) as u64;
            audit.double_applied += (row.points - expected - maybe).max(0) as u64;
        }
        Ok(audit)
    }
}
