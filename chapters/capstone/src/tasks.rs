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
//! The counts are cached under a *generation*: a key holding a number that every write replaces
//! after it commits, with a random one, so no number is ever handed out twice (not even after an
//! administrator's clear removed the key). A reader reads the generation, then the counts under
//! it; a write that commits while a reader is computing the counts changes the generation, so the
//! reader's late `SET` goes under a generation nobody asks for again. Deleting the key instead
//! would leave exactly that window open (the invalidation chapter measures it). The old
//! generations' keys expire by their TTL. A write whose new generation Redis did not take (Redis
//! down for that moment) leaves the counts up to their TTL old: the bound the chapter states.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use shared::budget;
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
    /// Redis calls that failed or ran out of time.
    pub redis_errors: Counter,
}

/// The tasks of one instance: the database, and the stats cache (`None`: no cache).
pub struct Tasks {
    db: Arc<Database>,
    cache: Option<(RedisConn, Namespace)>,
    ttl: Duration,
    redis_timeout: Duration,
    /// What the stats cache counted.
    pub counts: TaskCounts,
}

impl Tasks {
    /// Tasks on `db`, their stats cached in Redis under `namespace` for `ttl` (or not at all),
    /// each Redis call given `redis_timeout`.
    pub fn new(
        db: Arc<Database>,
        cache: Option<(RedisConn, Namespace)>,
        ttl: Duration,
        redis_timeout: Duration,
    ) -> Self {
        Tasks {
            db,
            cache,
            ttl,
            redis_timeout,
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
        let errors = &self.counts.redis_errors;
        let read = conn.get::<_, Option<u64>>(namespace.key("tasks:generation"));
        // Redis unreachable or slow: the database answers, nothing is stored.
        let Some(generation) = budget::within(self.redis_timeout, errors, read).await else {
            return self.count().await;
        };
        let key = namespace.key(&format!("tasks:stats:{}", generation.unwrap_or_default()));
        let read = conn.get::<_, Option<Vec<u8>>>(&key);
        let cached = budget::within(self.redis_timeout, errors, read)
            .await
            .flatten();
        if let Some(stats) = cached.and_then(|bytes| shared::codec::decode(&bytes).ok()) {
            self.counts.hits.inc();
            return Ok(stats);
        }
        self.counts.misses.inc();
        let stats = self.count().await?;
        let bytes = shared::codec::encode(&stats).expect("counts encode");
        let ttl = self.ttl.as_millis().max(1) as u64;
        let store = conn.pset_ex::<_, _, ()>(&key, bytes, ttl);
        budget::within(self.redis_timeout, errors, store).await;
        Ok(stats)
    }

    /// After a committed write: a new generation, never used before, so no reader finds the
    /// counts from before the write.
    async fn changed(&self) {
        if let Some((conn, namespace)) = &self.cache {
            let mut conn = conn.clone();
            let key = namespace.key("tasks:generation");
            // It lives as long as any counts under it could, and a day more.
            let ttl = 86_400 + self.ttl.as_secs();
            let set = conn.set_ex::<_, _, ()>(&key, rand::random::<u64>() >> 1, ttl);
            budget::within(self.redis_timeout, &self.counts.redis_errors, set).await;
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
