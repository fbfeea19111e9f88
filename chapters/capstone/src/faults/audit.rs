//! The writes' audit: every write the clients sent, against what the database holds once the
//! service has stopped and its queues are drained.
//!
//! A write is *acknowledged* when the service answered it with a `2xx`, and *unanswered* when it
//! got a `5xx` or no answer at all: the service may or may not have applied it (a view queued
//! just before the connection dropped), so an unanswered write is allowed either way. For each
//! row, what the database applied must lie between the acknowledged count and that plus the
//! unanswered: below, an acknowledged write was **lost**; above, one was **applied twice**.

use std::collections::HashMap;

use axum::http::Method;
use serde::Serialize;
use shared::Database;
use sqlx::Row;

use super::drive::Outcome;
use crate::scenario::plan::Class;

/// What the database holds that the writes change: each item's, article's and view count's
/// version or count, and each task's title.
pub struct Rows {
    /// Item id to version (each price change adds one).
    items: HashMap<i64, i64>,
    /// Article id to version (each edit adds one).
    articles: HashMap<i64, i64>,
    /// Article id to views counted.
    views: HashMap<i64, i64>,
    /// Task title to rows with it (the run's titles are unique).
    tasks: HashMap<String, i64>,
}

impl Rows {
    /// Reads them.
    pub async fn read(db: &Database) -> Result<Rows, sqlx::Error> {
        let mut conn = db.connection().await?;
        let pairs = |rows: Vec<sqlx::any::AnyRow>| -> Result<HashMap<i64, i64>, sqlx::Error> {
            rows.iter()
                .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .collect()
        };
        let items = sqlx::query("SELECT id, version FROM items")
            .fetch_all(&mut *conn)
            .await?;
        let articles = sqlx::query("SELECT id, version FROM articles")
            .fetch_all(&mut *conn)
            .await?;
        let views = sqlx::query("SELECT player_id, points FROM scores")
            .fetch_all(&mut *conn)
            .await?;
        let tasks = sqlx::query("SELECT title, CAST(COUNT(*) AS BIGINT) FROM tasks GROUP BY title")
            .fetch_all(&mut *conn)
            .await?;
        let tasks = tasks
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(Rows {
            items: pairs(items)?,
            articles: pairs(articles)?,
            views: pairs(views)?,
            tasks,
        })
    }
}

/// One kind of write, audited.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Audit {
    /// The kind.
    pub kind: &'static str,
    /// Writes answered with a `2xx`.
    pub acknowledged: u64,
    /// Writes answered with a `5xx`, or not at all.
    pub unanswered: u64,
    /// Writes the database applied.
    pub applied: u64,
    /// Acknowledged writes the database does not have.
    pub lost: u64,
    /// Writes the database applied more often than they were sent.
    pub twice: u64,
}

/// What each row was sent: acknowledged and unanswered writes.
#[derive(Default)]
struct Sent {
    acknowledged: i64,
    unanswered: i64,
}

/// The audit of each kind of write in `outcomes`, from the rows `before` and `after` the run.
pub fn audit(outcomes: &[Outcome], before: &Rows, after: &Rows) -> Vec<Audit> {
    let mut sent: [HashMap<String, Sent>; 4] = Default::default();
    for outcome in outcomes {
        let Some((kind, row)) = target(outcome) else {
            continue;
        };
        let counts = sent[kind].entry(row).or_default();
        match &outcome.status {
            Ok(status) if status.is_success() => counts.acknowledged += 1,
            Ok(status) if status.is_server_error() => counts.unanswered += 1,
            // A 404 or a 422 changed nothing, by design.
            Ok(_) => {}
            Err(_) => counts.unanswered += 1,
        }
    }
    let applied = |kind: usize, row: &str| -> i64 {
        let id = || row.parse::<i64>().unwrap_or_default();
        let get = |rows: &HashMap<i64, i64>| rows.get(&id()).copied().unwrap_or(0);
        match kind {
            PRICES => get(&after.items) - get(&before.items),
            EDITS => get(&after.articles) - get(&before.articles),
            VIEWS => get(&after.views) - get(&before.views),
            _ => {
                let of = |rows: &HashMap<String, i64>| rows.get(row).copied().unwrap_or(0);
                of(&after.tasks) - of(&before.tasks)
            }
        }
    };
    KINDS
        .iter()
        .enumerate()
        .map(|(kind, name)| {
            let mut audit = Audit {
                kind: name,
                ..Audit::default()
            };
            for (row, counts) in &sent[kind] {
                let applied = applied(kind, row);
                audit.acknowledged += counts.acknowledged as u64;
                audit.unanswered += counts.unanswered as u64;
                audit.applied += applied.max(0) as u64;
                audit.lost += (counts.acknowledged - applied).max(0) as u64;
                audit.twice += (applied - counts.acknowledged - counts.unanswered).max(0) as u64;
            }
            audit
        })
        .collect()
}

const PRICES: usize = 0;
const EDITS: usize = 1;
const VIEWS: usize = 2;
const TASKS: usize = 3;
const KINDS: [&str; 4] = ["price changes", "articles edited", "views", "tasks created"];

/// The kind of write `outcome` was and the row it changes, if it was a write.
fn target(outcome: &Outcome) -> Option<(usize, String)> {
    let request = outcome.request.as_deref()?;
    let path = request.path.as_str();
    let id = |prefix: &str, suffix: &str| {
        let id = path.strip_prefix(prefix)?.strip_suffix(suffix)?;
        Some(id.to_string())
    };
    match (outcome.class, &request.method) {
        (Class::View, _) => Some((VIEWS, id("/news/", "/views")?)),
        (Class::Write, &Method::PUT) if path.starts_with("/news/") => {
            Some((EDITS, id("/news/", "")?))
        }
        (Class::Write, &Method::PUT) => Some((PRICES, id("/products/", "/price")?)),
        (Class::Write, &Method::POST) => {
            let form: serde_json::Value = serde_json::from_str(request.json.as_deref()?).ok()?;
            Some((TASKS, form.get("title")?.as_str()?.to_string()))
        }
        _ => None,
    }
}
