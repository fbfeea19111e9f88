//! The `scores` table: one row per player of a game, and the SQL that writes it.
//!
//! Every row carries the `version` of the last write applied to it. The flusher's upsert
//! replaces a row only with a newer version, which is what makes a replayed batch harmless.
//! `points` may not go below zero: a row the database refuses, for the dead-letter path.

use shared::Database;
use sqlx::any::AnyRow;
use sqlx::{Executor, Row};

/// A player's score as the database holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Score {
    /// The player.
    pub player: i64,
    /// The points; never negative.
    pub points: i64,
    /// The last write applied: 0 for the seed row, one more for every write.
    pub version: i64,
}

/// Creates the table and seeds players `1..=players` at 0 points, version 0 (not counted).
pub async fn create(db: &Database, players: i64) -> Result<(), sqlx::Error> {
    let mut setup = db.setup().await?;
    setup
        .execute(
            "CREATE TABLE scores (
                player_id BIGINT PRIMARY KEY,
                points BIGINT NOT NULL CHECK (points >= 0),
                version BIGINT NOT NULL
            )",
        )
        .await?;
    for player in 1..=players {
        sqlx::query("INSERT INTO scores (player_id, points, version) VALUES ($1, 0, 0)")
            .bind(player)
            .execute(&mut *setup)
            .await?;
    }
    setup.commit().await
}

/// Every player back to 0 points at version 0 (not counted), so that runs compared side by side
/// start alike.
pub async fn reset(db: &Database) -> Result<(), sqlx::Error> {
    let mut setup = db.setup().await?;
    sqlx::query("UPDATE scores SET points = 0, version = 0")
        .execute(&mut *setup)
        .await?;
    setup.commit().await
}

/// The score queries, on the course database. Each is counted.
pub trait Scores {
    /// One player's row, or `None`.
    fn score(&self, player: i64) -> impl Future<Output = Result<Option<Score>, sqlx::Error>>;

    /// Adds `delta` points and raises the version, in one statement of one transaction: the
    /// write path without write-behind (the database alone, and write-through). `None` if there
    /// is no such player.
    fn add_points_now(
        &self,
        player: i64,
        delta: i64,
    ) -> impl Future<Output = Result<Option<Score>, sqlx::Error>>;

    /// Every row, in player order (one query): how the demo and the tests compare the database
    /// with what was acknowledged.
    fn all_scores(&self) -> impl Future<Output = Result<Vec<Score>, sqlx::Error>>;
}

impl Scores for Database {
    async fn score(&self, player: i64) -> Result<Option<Score>, sqlx::Error> {
        let mut conn = self.connection().await?;
        let row = sqlx::query("SELECT player_id, points, version FROM scores WHERE player_id = $1")
            .bind(player)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|row| score_from_row(&row)).transpose()
    }

    async fn add_points_now(&self, player: i64, delta: i64) -> Result<Option<Score>, sqlx::Error> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "UPDATE scores SET points = points + $1, version = version + 1 WHERE player_id = $2 \
             RETURNING player_id, points, version",
        )
        .bind(delta)
        .bind(player)
        .fetch_optional(tx.conn().await)
        .await?;
        tx.commit().await?;
        row.map(|row| score_from_row(&row)).transpose()
    }

    async fn all_scores(&self) -> Result<Vec<Score>, sqlx::Error> {
        let mut conn = self.connection().await?;
        let rows = sqlx::query("SELECT player_id, points, version FROM scores ORDER BY player_id")
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(score_from_row).collect()
    }
}

fn score_from_row(row: &AnyRow) -> Result<Score, sqlx::Error> {
    Ok(Score {
        player: row.try_get("player_id")?,
        points: row.try_get("points")?,
        version: row.try_get("version")?,
    })
}
