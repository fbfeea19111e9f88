//! The task manager: tasks created, read, changed and deleted, and their counts by status, cached
//! and never behind a write.
//!
//! Two of the source's bugs live here. Its task manager made a new ID as `max(ids) + 1`, read
//! before an `await` and used after it: two concurrent creates read the same maximum and the
//! second overwrote the first. Here the database makes the ID (an identity column), in the same
//! statement that inserts the row. And its statistics were cached and never invalidated, so a
//! dashboard showed yesterday's counts after every write.
//!
//! The counts are cached under a *generation*: the key holds a number that every write raises
//! after it commits (`INCR`). A reader reads the generation, then the counts under it; a write
//! that commits while a reader is computing the counts raises the generation, so the reader's
//! late `SET` goes under a generation nobody asks for again. Deleting the key instead would leave
//! exactly that window open (the invalidation chapter measures it). The old generations' keys
//! expire by their TTL.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use shared::metrics::Counter;
use shared::{Database, Namespace, RedisConn};
use sqlx::Row;
use sqlx::any::AnyRow;

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

/// What the stats cache counted.
#[derive(Default, Debug)]
pub struct TaskCounts {
    /// Stats answered from Redis.
    pub hits: Counter,
    /// Stats computed by a query.
    pub misses: Counter,
}

/// The tasks of one instance: the database, and the stats cache (`None`: no cache).
pub struct Tasks {
    db: Arc<Database>,
    cache: Option<(RedisConn, Namespace)>,
    ttl: Duration,
    /// What the stats cache counted.
    pub counts: TaskCounts,
}

impl Tasks {
    /// Tasks on `db`, their stats cached in Redis under `namespace` for `ttl` (or not at all).
    pub fn new(db: Arc<Database>, cache: Option<(RedisConn, Namespace)>, ttl: Duration) -> Self {
        Tasks {
            db,
            cache,
            ttl,
            counts: TaskCounts::default(),
        }
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

    // ANCHOR: stats
    /// The counts by status: from Redis under the current generation, or counted and stored.
    pub async fn stats(&self) -> Result<TaskStats, sqlx::Error> {
        let Some((conn, namespace)) = &self.cache else {
            return self.count().await;
        };
        let mut conn = conn.clone();
        let generation: Result<Option<u64>, _> = conn.get(namespace.key("tasks:generation")).await;
        // Redis unreachable: the database answers, nothing is stored.
        let Ok(generation) = generation.map(Option::unwrap_or_default) else {
            return self.count().await;
        };
        let key = namespace.key(&format!("tasks:stats:{generation}"));
        let cached: Option<Vec<u8>> = conn.get(&key).await.unwrap_or(None);
        if let Some(stats) = cached.and_then(|bytes: Vec<u8>| shared::codec::decode(&bytes).ok()) {
            self.counts.hits.inc();
            return Ok(stats);
        }
        self.counts.misses.inc();
        let stats = self.count().await?;
        let bytes = shared::codec::encode(&stats).expect("counts encode");
        let ttl = self.ttl.as_millis().max(1) as u64;
        let _: Result<(), _> = conn.pset_ex(&key, bytes, ttl).await;
        Ok(stats)
    }

    /// After a committed write: a new generation, so no reader finds the counts from before it.
    async fn changed(&self) {
        if let Some((conn, namespace)) = &self.cache {
            let mut conn = conn.clone();
            let key = namespace.key("tasks:generation");
            // The generation lives as long as any counts under it could, and a day more; both in
            // one transaction, so no generation is ever left without a TTL.
            let _: Result<(), _> = redis::pipe()
                .atomic()
                .incr(&key, 1)
                .ignore()
                .expire(&key, 86_400 + self.ttl.as_secs() as i64)
                .ignore()
                .query_async(&mut conn)
                .await;
        }
    }
    // ANCHOR_END: stats

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
