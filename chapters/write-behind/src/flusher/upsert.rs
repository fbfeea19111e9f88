//! Coalesce and commit: a batch becomes one row per player, written in one transaction by an
//! upsert that never replaces a newer version.
//!
//! The queue carries results (points 130 at version 8), so a player written five times in a
//! batch needs only its latest entry, and applying a batch twice (after a flusher died between
//! its commit and its acknowledgement) changes nothing: the upsert's `WHERE` leaves a row alone
//! that already has that version or a newer one. [`Apply::Increments`] is the counter-example
//! that replays additions instead, kept to be measured.

use std::collections::BTreeMap;

use shared::Database;

use super::{Entry, Flusher};

/// How a batch is applied to the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Apply {
    /// Write each player's latest result, unless the row already has that version or a newer
    /// one. Replays change nothing. The lesson's way.
    Versioned,
    /// Add each player's summed deltas to the row. The counter-example: a replay adds them again.
    Increments,
}

/// One player's update in a batch: the latest of its entries, and the sum of their deltas. What
/// the upsert writes to the player's row of the `scores` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScoreUpdate {
    /// The player.
    pub player: i64,
    /// Points after the player's latest write in the batch.
    pub points: i64,
    /// That write's version.
    pub version: i64,
    /// The deltas of all the player's writes in the batch, added up.
    pub delta: i64,
}

// ANCHOR: coalesce
/// One update per player: the entry with the highest version wins, and the deltas add up. A
/// batch with the same player twice would otherwise put two rows with one key in one upsert,
/// which PostgreSQL refuses outright ("ON CONFLICT DO UPDATE command cannot affect row a second
/// time").
pub fn coalesce(entries: &[Entry]) -> Vec<ScoreUpdate> {
    let mut updates: BTreeMap<i64, ScoreUpdate> = BTreeMap::new();
    for entry in entries {
        let update = updates.entry(entry.player).or_insert(ScoreUpdate {
            player: entry.player,
            points: entry.points,
            version: entry.version,
            delta: 0,
        });
        update.delta += entry.delta;
        if entry.version > update.version {
            (update.points, update.version) = (entry.points, entry.version);
        }
    }
    updates.into_values().collect()
}
// ANCHOR_END: coalesce

/// The upsert of `rows` rows: bound parameters only, three a row.
fn upsert_sql(rows: usize, apply: Apply) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
        .collect();
    // ANCHOR: on_conflict
    let on_conflict = match apply {
        Apply::Versioned => {
            "DO UPDATE SET points = excluded.points, version = excluded.version \
             WHERE scores.version < excluded.version"
        }
        Apply::Increments => {
            "DO UPDATE SET points = scores.points + excluded.points, version = excluded.version"
        }
    };
    // ANCHOR_END: on_conflict
    format!(
        "INSERT INTO scores (player_id, points, version) VALUES {} \
         ON CONFLICT (player_id) {on_conflict}",
        values.join(", ")
    )
}

/// How many rows one statement may carry: SQLite takes at most 32,766 bound parameters in a
/// statement, PostgreSQL 65,535, and each row binds three.
pub fn rows_per_statement(db: &Database) -> usize {
    let parameters = match db.backend() {
        "postgres" => 65_535,
        _ => 32_766,
    };
    parameters / 3
}

impl Flusher {
    /// Writes `updates` in one transaction, in as few statements as the parameter limit allows.
    /// Returns how many rows changed: a row the table already had at that version or a newer
    /// one is left alone.
    pub(super) async fn commit(&self, updates: &[ScoreUpdate]) -> Result<u64, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let mut applied = 0;
        for chunk in updates.chunks(rows_per_statement(&self.db)) {
            let sql = upsert_sql(chunk.len(), self.apply);
            let mut statement = sqlx::query(&sql);
            for update in chunk {
                let points = match self.apply {
                    Apply::Versioned => update.points,
                    Apply::Increments => update.delta,
                };
                statement = statement
                    .bind(update.player)
                    .bind(points)
                    .bind(update.version);
            }
            applied += statement.execute(tx.conn().await).await?.rows_affected();
        }
        tx.commit().await?;
        self.metrics.transactions.inc();
        self.metrics.rows.add(updates.len() as u64);
        Ok(applied)
    }
}
