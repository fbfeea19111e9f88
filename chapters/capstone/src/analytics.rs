//! The analytics dashboard, `GET /analytics/dashboard`: a report that takes seconds, which nobody
//! waits for, and which a write makes stale at once rather than at its TTL.
//!
//! The source's complete app cached its analytics with a plain TTL and never invalidated them: a
//! price change was missing from the dashboard for up to the whole TTL, and when the entry
//! expired, every reader waited for the slow query, all of them at once. Here the stampede
//! lesson's stale-while-revalidate answers every reader from Redis at once, one refresh at a time
//! across instances (its lock), and a price change asks for that refresh itself
//! ([`stampede::StaleWhileRevalidate::refresh_after_write`]). The dashboard is then behind the
//! writes by at most the refresh under way and one more (two reports' time), whatever its TTL.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shared::clock::now_ms;
use shared::{Database, Namespace, RedisConn};
use sqlx::Row;
use stampede::{LoadError, Source, StaleWhileRevalidate, Strategy};

/// The one key the dashboard is cached under.
const DASHBOARD: &str = "dashboard";

/// One category's figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryFigures {
    /// The category.
    pub category: String,
    /// Items in it.
    pub items: i64,
    /// The sum of their prices, in cents: the stock's value at one of each.
    pub value_cents: i64,
    /// The cheapest and the dearest price.
    pub min_cents: i64,
    /// See `min_cents`.
    pub max_cents: i64,
}

/// The dashboard: every category's figures, and when the database was asked for them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dashboard {
    /// The categories, by name.
    pub categories: Vec<CategoryFigures>,
    /// When the figures' query ran, in ms since the Unix epoch: a write acknowledged before
    /// this is in them.
    pub as_of_ms: u64,
}

/// The report: a slow computation (`cost` stands for the aggregation over a real shop's order
/// history), then one query for the figures.
pub struct Report {
    db: Arc<Database>,
    cost: Duration,
}

impl Report {
    /// The report over `db`'s items, taking `cost` before its query.
    pub fn new(db: Arc<Database>, cost: Duration) -> Self {
        Report { db, cost }
    }

    /// Computes the dashboard the slow way.
    pub async fn run(&self) -> Result<Dashboard, sqlx::Error> {
        tokio::time::sleep(self.cost).await;
        let as_of_ms = now_ms();
        let mut conn = self.db.connection().await?;
        let rows = sqlx::query(
            "SELECT category, CAST(COUNT(*) AS BIGINT) AS items, \
             CAST(SUM(price_cents) AS BIGINT) AS value_cents, \
             MIN(price_cents) AS min_cents, MAX(price_cents) AS max_cents \
             FROM items GROUP BY category ORDER BY category",
        )
        .fetch_all(&mut *conn)
        .await?;
        let categories = rows
            .iter()
            .map(|row| {
                Ok(CategoryFigures {
                    category: row.try_get("category")?,
                    items: row.try_get("items")?,
                    value_cents: row.try_get("value_cents")?,
                    min_cents: row.try_get("min_cents")?,
                    max_cents: row.try_get("max_cents")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(Dashboard {
            categories,
            as_of_ms,
        })
    }
}

impl Source for Report {
    type Value = Dashboard;

    async fn load(&self, _key: &str) -> Result<Dashboard, LoadError> {
        Ok(self.run().await?)
    }
}

/// One instance's dashboard.
pub enum Analytics {
    /// Every read runs the report.
    Direct(Report),
    /// Through the stampede lesson's stale-while-revalidate, refreshed after writes.
    Cached(StaleWhileRevalidate<Report>),
}

impl Analytics {
    /// The dashboard cached under `namespace` through `conn`: fresh for `fresh`, served stale
    /// for `serve_stale_for` more while it is refreshed.
    pub fn cached(
        report: Report,
        conn: RedisConn,
        namespace: Namespace,
        fresh: Duration,
        redis_timeout: Duration,
    ) -> Self {
        let settings = stampede::Settings {
            ttl: fresh,
            serve_stale_for: Duration::from_secs(600),
            redis_timeout,
            // Longer than a report: a refresh that dies frees the way within it.
            lock_ttl: report.cost * 3 + Duration::from_secs(5),
            ..stampede::Settings::default()
        };
        Analytics::Cached(StaleWhileRevalidate::new(
            conn,
            namespace,
            Arc::new(report),
            settings,
        ))
    }

    // ANCHOR: dashboard
    /// The dashboard.
    pub async fn dashboard(&self) -> Result<Dashboard, DashboardUnavailable> {
        match self {
            Analytics::Direct(report) => report.run().await.map_err(|_| DashboardUnavailable),
            Analytics::Cached(cache) => {
                cache.get(DASHBOARD).await.map_err(|_| DashboardUnavailable)
            }
        }
    }

    /// A price changed: the dashboard is refreshed now (in the background), not at its TTL.
    pub async fn changed(&self) {
        if let Analytics::Cached(cache) = self {
            cache.refresh_after_write(DASHBOARD).await;
        }
    }
    // ANCHOR_END: dashboard

    /// Starts computing the dashboard in the background, so that the first reader finds it (a
    /// reader that finds nothing at all runs the report itself, as any cache miss does).
    pub async fn warm(&self) {
        if let Analytics::Cached(cache) = self {
            cache.refresh_after_write(DASHBOARD).await;
        }
    }

    /// Waits for the refreshes this instance started (the tests).
    pub async fn settle(&self) {
        if let Analytics::Cached(cache) = self {
            let _ = cache.finish_refreshes().await;
        }
    }

    /// Abandons the refresh under way (at stop): the report is seconds long, and an instance that
    /// stops should not wait for it. The stale figures stay; the lock expires.
    pub async fn stop(&self) {
        if let Analytics::Cached(cache) = self {
            cache.abandon_refreshes().await;
        }
    }

    /// Refreshes started and loads made (nothing without a cache).
    pub fn stats(&self) -> stampede::Stats {
        match self {
            Analytics::Direct(_) => stampede::Stats::default(),
            Analytics::Cached(cache) => cache.stats(),
        }
    }
}

/// The report failed (the database is unavailable).
#[derive(Debug, thiserror::Error)]
#[error("the analytics report could not be run")]
pub struct DashboardUnavailable;
