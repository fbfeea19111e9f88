//! The given parts of the capstone exercise: the shop's items and the two queries you will cache,
//! where the keys live, and a way for the tests to hold a query while they look. Written for you;
//! the tasks are in `lib.rs`. (The worked answer in `solutions/capstone` includes this very file,
//! so the two can never drift apart.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::db::items;
use shared::{Database, Namespace, RedisConn};
use sqlx::Row;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

pub use shared::db::items::{CATEGORIES, category_of};

/// How long a category summary lives in Redis.
pub const SUMMARY_TTL: Duration = Duration::from_secs(300);
/// How long a category's generation lives in Redis after its last change: far longer than any
/// summary stored under it.
pub const GENERATION_TTL: Duration = Duration::from_secs(86_400);
/// A dashboard is fresh this long after the time its query started.
pub const FRESH_MS: u64 = 5_000;
/// A dashboard is never served this long after the time its query started, or later.
pub const MAX_STALE_MS: u64 = 60_000;
/// How long the refresh lock lives, at most, if its holder never releases it.
pub const LOCK_TTL_MS: u64 = 10_000;

/// What `GET /categories/{category}/summary` shows: one category's items and prices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The category.
    pub category: String,
    /// How many items it has.
    pub items: i64,
    /// Its cheapest item's price, in cents.
    pub min_price_cents: i64,
    /// Its dearest item's price, in cents.
    pub max_price_cents: i64,
    /// The sum of its items' versions: raised by one with every committed price change in the
    /// category, so a summary says which writes it has seen.
    pub versions: i64,
}

/// What the shop's dashboard shows: every category's summary. Its query is the expensive one (a
/// report over the whole catalogue).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dashboard {
    /// One summary per category, in category order.
    pub categories: Vec<Summary>,
}

impl Dashboard {
    /// The sum of every item's version: which writes the dashboard has seen.
    pub fn versions(&self) -> i64 {
        self.categories.iter().map(|c| c.versions).sum()
    }
}

/// A dashboard as it is kept in Redis: the dashboard, and the time its query started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamped {
    /// The dashboard.
    pub dashboard: Dashboard,
    /// Milliseconds since 1970 when the query that computed it started.
    pub computed_ms: u64,
}

/// The shop's database: the items, their two queries, and the price change, each one counted
/// query ([`Database::queries`]).
pub struct Shop {
    db: Arc<Database>,
    summary_hold: Mutex<Option<Hold>>,
    dashboard_hold: Mutex<Option<Hold>>,
    commit_hold: Mutex<Option<Hold>>,
}

impl Shop {
    /// Creates the `items` table on `db` with items `1..=count`, spread over the categories.
    pub async fn create(db: Arc<Database>, count: i64) -> Result<Arc<Shop>, sqlx::Error> {
        items::create(&db, count).await?;
        Ok(Arc::new(Shop {
            db,
            summary_hold: Mutex::default(),
            dashboard_hold: Mutex::default(),
            commit_hold: Mutex::default(),
        }))
    }

    /// The database, for its query count.
    pub fn db(&self) -> &Arc<Database> {
        &self.db
    }

    /// One category's summary: one query.
    pub async fn summary_from_db(&self, category: &str) -> Result<Summary, sqlx::Error> {
        let summary = {
            let mut conn = self.db.connection().await?;
            let row = sqlx::query(
                "SELECT COUNT(*) AS n, COALESCE(MIN(price_cents), 0) AS low, \
                 COALESCE(MAX(price_cents), 0) AS high, \
                 CAST(COALESCE(SUM(version), 0) AS BIGINT) AS versions \
                 FROM items WHERE category = $1",
            )
            .bind(category)
            .fetch_one(&mut *conn)
            .await?;
            summary_of(category, &row)?
        };
        let hold = self.summary_hold.lock().expect("not poisoned").take();
        if let Some(hold) = hold {
            hold.wait().await?;
        }
        Ok(summary)
    }

    /// The dashboard: one query over every item.
    pub async fn dashboard_from_db(&self) -> Result<Dashboard, sqlx::Error> {
        let hold = self.dashboard_hold.lock().expect("not poisoned").take();
        if let Some(hold) = hold {
            hold.wait().await?;
        }
        let mut conn = self.db.connection().await?;
        let rows = sqlx::query(
            "SELECT category, COUNT(*) AS n, MIN(price_cents) AS low, MAX(price_cents) AS high, \
             CAST(SUM(version) AS BIGINT) AS versions \
             FROM items GROUP BY category ORDER BY category",
        )
        .fetch_all(&mut *conn)
        .await?;
        let categories = rows
            .iter()
            .map(|row| summary_of(&row.try_get::<String, _>("category")?, row))
            .collect::<Result<_, _>>()?;
        Ok(Dashboard { categories })
    }

    /// Commits a new price for item `id` and raises its version: one query. The new version, or
    /// `None` if there is no such item.
    pub async fn commit_price(
        &self,
        id: i64,
        price_cents: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        let hold = self.commit_hold.lock().expect("not poisoned").take();
        if let Some(hold) = hold {
            hold.wait().await?;
        }
        let mut conn = self.db.connection().await?;
        let row = sqlx::query(
            "UPDATE items SET price_cents = $1, version = version + 1 WHERE id = $2 \
             RETURNING version",
        )
        .bind(price_cents)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| row.try_get("version")).transpose()
    }

    /// For the tests: the next summary query stops after reading the database, before it returns,
    /// until the hold is released.
    pub fn hold_next_summary(&self) -> Hold {
        let hold = Hold::new();
        *self.summary_hold.lock().expect("not poisoned") = Some(hold.clone());
        hold
    }

    /// For the tests: the next price change stops before it commits, until the hold is released.
    pub fn hold_next_commit(&self) -> Hold {
        let hold = Hold::new();
        *self.commit_hold.lock().expect("not poisoned") = Some(hold.clone());
        hold
    }

    /// For the tests: the next dashboard query stops before it reads the database, until the hold
    /// is released.
    pub fn hold_next_dashboard(&self) -> Hold {
        let hold = Hold::new();
        *self.dashboard_hold.lock().expect("not poisoned") = Some(hold.clone());
        hold
    }
}

fn summary_of(category: &str, row: &sqlx::any::AnyRow) -> Result<Summary, sqlx::Error> {
    Ok(Summary {
        category: category.to_string(),
        items: row.try_get("n")?,
        min_price_cents: row.try_get("low")?,
        max_price_cents: row.try_get("high")?,
        versions: row.try_get("versions")?,
    })
}

/// A query stopped by a test: it says when the query reached it, and goes on when released.
#[derive(Clone)]
pub struct Hold {
    reached: Arc<Notify>,
    released: watch::Sender<Option<Outcome>>,
}

/// How a held query goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// As if nothing happened.
    Succeed,
    /// With an error, as a database that failed would answer.
    Fail,
}

impl Hold {
    fn new() -> Self {
        Hold {
            reached: Arc::new(Notify::new()),
            released: watch::channel(None).0,
        }
    }

    /// Stops until released; an error if the test made the query fail.
    async fn wait(&self) -> Result<(), sqlx::Error> {
        self.reached.notify_one();
        let mut released = self.released.subscribe();
        // The sender lives in `self`: `wait_for` ends only by the release.
        let outcome = *released
            .wait_for(Option::is_some)
            .await
            .expect("the sender lives in the hold");
        match outcome {
            Some(Outcome::Fail) => Err(sqlx::Error::PoolTimedOut),
            _ => Ok(()),
        }
    }

    /// Waits until the held query has reached the hold.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the held query go on.
    pub fn release(&self) {
        self.released.send_replace(Some(Outcome::Succeed));
    }

    /// Makes the held query fail, as a database that is down would.
    pub fn fail(&self) {
        self.released.send_replace(Some(Outcome::Fail));
    }
}

/// One service instance's Redis: its connection and the namespace of its keys (the same for every
/// instance of a test, as instances of one service share their keys).
#[derive(Clone)]
pub struct Instance {
    /// The connection.
    pub conn: RedisConn,
    /// Where the keys go.
    pub namespace: Namespace,
}

impl Instance {
    /// Where `category`'s generation lives.
    pub fn generation_key(&self, category: &str) -> String {
        self.namespace.key(&format!("generation:{category}"))
    }

    /// Where `category`'s summary computed under `generation` lives.
    pub fn summary_key(&self, category: &str, generation: u64) -> String {
        self.namespace
            .key(&format!("summary:{category}:{generation}"))
    }

    /// Where the dashboard lives.
    pub fn dashboard_key(&self) -> String {
        self.namespace.key("dashboard")
    }

    /// The lock whose holder refreshes the dashboard.
    pub fn refresh_lock_key(&self) -> String {
        self.namespace.key("dashboard:refresh")
    }
}

/// The background refreshes an instance started: spawn them here, so that a test (or a shutdown)
/// can wait for them with [`Refreshes::settle`].
#[derive(Default)]
pub struct Refreshes(Mutex<JoinSet<()>>);

impl Refreshes {
    /// Runs `refresh` in the background.
    pub fn spawn(&self, refresh: impl Future<Output = ()> + Send + 'static) {
        self.0.lock().expect("not poisoned").spawn(refresh);
    }

    /// Waits for every refresh started so far; a refresh that panicked fails here.
    pub async fn settle(&self) {
        let mut running = std::mem::take(&mut *self.0.lock().expect("not poisoned"));
        while let Some(done) = running.join_next().await {
            if let Err(error) = done
                && error.is_panic()
            {
                std::panic::resume_unwind(error.into_panic());
            }
        }
    }
}
