//! The task manager: tasks created, read, changed and deleted, and their counts by status, cached
//! and never behind a write.
//!
//! Two of the source's bugs live here. Its complete app made a new ID as `max(ids) + 1` (its
//! product create), read before an `await` and used after it: two concurrent creates read the
//! same maximum and the second overwrote the first. Here the database makes the ID (an identity
//! column), in the same statement that inserts the row. And its analytics dashboard was cached for
//! an hour and no write invalidated it; the task counts are that kind of derived value, and here
//! every write reaches them.
//!
//! The counts are cached under a *generation* that every write replaces after it commits
//! ([`crate::generation`]).

use serde::{Deserialize, Serialize};
use shared::Database;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::sync::Arc;

use crate::generation::Generational;

/// A task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Given by the database.
    pub id: i64,
    /// What to do.
    pub title: String,
    /// `open` or `done`.
    pub status: String,
}

/// A new task, or a change to one.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TaskForm {
    /// What to do.
    pub title: Option<String>,
    /// `open` or `done`.
    pub status: Option<String>,
}

/// How many tasks have each status.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStats {
    /// Open tasks.
    pub open: i64,
    /// Done tasks.
    pub done: i64,
}

/// The statuses a task may have.
pub const STATUSES: [&str; 2] = ["open", "done"];

/// Creates the `tasks` table: the ID an identity column on either backend.
pub async fn create_table(db: &Database) -> Result<(), sqlx::Error> {
    let id = match db.backend() {
        "postgres" => "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        _ => "INTEGER PRIMARY KEY AUTOINCREMENT",
    };
    let mut setup = db.setup().await?;
    sqlx::query(&format!(
        "CREATE TABLE tasks (id {id}, title TEXT NOT NULL, status TEXT NOT NULL)"
    ))
    .execute(&mut *setup)
    .await?;
    setup.commit().await
}

/// Deletes every task (not counted): each of a demo's runs starts from an empty board.
pub async fn delete_all(db: &Database) -> Result<(), sqlx::Error> {
    let mut setup = db.setup().await?;
    sqlx::query("DELETE FROM tasks")
        .execute(&mut *setup)
        .await?;
    setup.commit().await
}

/// The tasks of one instance: the database, and the stats cache (`None`: no cache).
pub struct Tasks {
    db: Arc<Database>,
    cache: Option<Generational>,
}

impl Tasks {
    /// Tasks on `db`, their stats cached under a generation (or not at all).
    pub fn new(db: Arc<Database>, cache: Option<Generational>) -> Self {
        Tasks { db, cache }
    }

    /// The stats cache, if there is one.
    pub fn cache(&self) -> Option<&Generational> {
        self.cache.as_ref()
    }

    // ANCHOR: create
    /// A new task: its ID made by the database in the insert itself, so two creates at once get
    /// two IDs.
    pub async fn create(&self, title: &str) -> Result<Task, sqlx::Error> {
        let row = {
            let mut conn = self.db.connection().await?;
            sqlx::query(
                "INSERT INTO tasks (title, status) VALUES ($1, 'open') RETURNING id, title, status",
            )
            .bind(title)
            .fetch_one(&mut *conn)
            .await?
        };
        self.changed().await;
        task_from_row(&row)
    }
    // ANCHOR_END: create

    /// Task `id`, or `None`.
    pub async fn get(&self, id: i64) -> Result<Option<Task>, sqlx::Error> {
        let mut conn = self.db.connection().await?;
        let row = sqlx::query("SELECT id, title, status FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(task_from_row).transpose()
    }

    /// Changes task `id`'s title or status; the task as committed, or `None`.
    pub async fn update(&self, id: i64, form: &TaskForm) -> Result<Option<Task>, sqlx::Error> {
        let row = {
            let mut conn = self.db.connection().await?;
            sqlx::query(
                "UPDATE tasks SET title = COALESCE($1, title), status = COALESCE($2, status) \
                 WHERE id = $3 RETURNING id, title, status",
            )
            .bind(form.title.as_deref())
            .bind(form.status.as_deref())
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
        };
        if row.is_some() {
            self.changed().await;
        }
        row.as_ref().map(task_from_row).transpose()
    }

    /// Deletes task `id`; whether there was one.
    pub async fn delete(&self, id: i64) -> Result<bool, sqlx::Error> {
        let deleted = {
            let mut conn = self.db.connection().await?;
            sqlx::query("DELETE FROM tasks WHERE id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        };
        if deleted > 0 {
            self.changed().await;
        }
        Ok(deleted > 0)
    }

    /// The counts by status: from Redis under the current generation, or counted and stored.
    pub async fn stats(&self) -> Result<TaskStats, sqlx::Error> {
        match &self.cache {
            Some(cache) => cache.get("stats", || self.count()).await,
            None => self.count().await,
        }
    }

    /// After a committed write: the counts' generation replaced.
    async fn changed(&self) {
        if let Some(cache) = &self.cache {
            cache.changed().await;
        }
    }

    /// The counts, from the database (one query).
    async fn count(&self) -> Result<TaskStats, sqlx::Error> {
        let mut conn = self.db.connection().await?;
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status")
            .fetch_all(&mut *conn)
            .await?;
        let mut stats = TaskStats::default();
        for row in rows {
            let status: String = row.try_get("status")?;
            let n: i64 = row.try_get("n")?;
            match status.as_str() {
                "done" => stats.done = n,
                _ => stats.open += n,
            }
        }
        Ok(stats)
    }
}

fn task_from_row(row: &AnyRow) -> Result<Task, sqlx::Error> {
    Ok(Task {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        status: row.try_get("status")?,
    })
}
