//! The news site: articles written through, view counts written behind, and trending derived
//! from the counts with a staleness bound.
//!
//! An article is read far more than it is edited, and an edited article must show at once: the
//! write-through lesson's repository commits, then writes the committed row into Redis with its
//! version, so a slower writer can never put an older row back ([`write_through::WriteThrough`]).
//!
//! A view is the opposite: written on every read of an article, and no reader needs the exact
//! count that instant. Writing each to the database is a write per page view; the write-behind
//! lesson acknowledges it once it is in Redis with its queue entry, in one script, and a flusher
//! on each instance writes batches to the database ([`write_behind::WriteBehind`]). Its table is
//! the lesson's `scores`, one row per article: the points are the article's views. A view needs
//! Redis: with Redis down it is refused (503) rather than counted twice later.
//!
//! The article list (20 headlines a page) is derived from the articles and cached under a
//! generation per page, which an edit of an article on that page replaces after its commit
//! ([`crate::generation`]): never behind an acknowledged edit, and an edit does not cost the other
//! pages their copies. `?cache=bypass` reads it from the database, the source's uncached twin, for
//! comparison.
//!
//! Trending (the ten most viewed) is derived from the flushed counts and cached for
//! `trending_ttl`, so it lags the acknowledged views by at most that TTL plus the flusher's lag:
//! the demo measures the lag against every view it was told was counted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use shared::budget;
use shared::metrics::Counter;
use shared::{Database, Namespace, RedisConn, SetupError};
use sqlx::Row;
use write_behind::table::Scores;
use write_behind::{Apply, Flusher, Layout, WriteBehind};
use write_through::table::Articles;
use write_through::{Article, WriteThrough};

use crate::generation::Generational;

/// How many articles trending lists.
pub const TRENDING: i64 = 10;

/// Headlines per page of the article list.
pub const LIST_SIZE: i64 = 20;

/// Pages of the article list: the deployment's 200 articles.
pub const LIST_PAGES: u32 = 10;

/// The list's page that shows article `id`, if any.
pub fn list_page_of(id: i64) -> Option<u32> {
    let page = (id - 1).div_euclid(LIST_SIZE) + 1;
    (1..=i64::from(LIST_PAGES))
        .contains(&page)
        .then_some(page as u32)
}

/// One article in the list: no body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Headline {
    /// The article.
    pub id: i64,
    /// Its title.
    pub title: String,
    /// Its version, raised by every edit.
    pub version: i64,
}

/// One entry of trending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trend {
    /// The article.
    pub id: i64,
    /// Its views, as flushed.
    pub views: i64,
}

/// An article's views after a view was counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Views {
    /// The article.
    pub id: i64,
    /// Its views, this one included.
    pub views: i64,
}

/// Creates the `articles` and `scores` tables, seeded with articles `1..=count` and no views.
pub async fn create_tables(db: &Database, count: i64) -> Result<(), sqlx::Error> {
    write_through::table::create(db, count).await?;
    write_behind::table::create(db, count).await
}

/// Every article back to its seed row and no views (not counted): each of a demo's runs starts
/// from the same rows.
pub async fn reset(db: &Database, count: i64) -> Result<(), sqlx::Error> {
    write_through::table::reset(db, count).await?;
    write_behind::table::reset(db).await
}

/// How long trending is kept, and how long a Redis call may take.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// Trending's TTL.
    pub trending_ttl: Duration,
    /// The article list's TTL (an edit replaces it sooner).
    pub list_ttl: Duration,
    /// The budget of one Redis call on the request path.
    pub redis_timeout: Duration,
}

/// What the trending cache counted.
#[derive(Default, Debug)]
pub struct NewsCounts {
    /// Trending answered from Redis.
    pub trending_hits: Counter,
    /// Trending computed by a query.
    pub trending_misses: Counter,
    /// Redis calls that failed or ran out of time.
    pub redis_errors: Counter,
}

/// The news of one instance: with caching, the lessons' repositories and this instance's
/// flusher; without, the database alone.
pub struct News {
    db: Arc<Database>,
    cached: Option<Cached>,
    /// What it counted.
    pub counts: NewsCounts,
}

/// The cached configuration's parts.
struct Cached {
    conn: RedisConn,
    namespace: Namespace,
    articles: WriteThrough,
    views: WriteBehind,
    flusher: Mutex<Option<write_behind::Running>>,
    /// One generation per page of the list.
    list: Vec<Generational>,
    timing: Timing,
}

impl News {
    /// The news without a cache.
    pub fn direct(db: Arc<Database>) -> Self {
        News {
            db,
            cached: None,
            counts: NewsCounts::default(),
        }
    }

    /// The news with caching: cached articles and trending under `cache`, the views' queues and
    /// counts under `queues` (never under the cache's namespace: an administrator's clear would
    /// delete acknowledged views with it), this instance's flusher (named `consumer`) started on
    /// the Redis at `url`.
    pub async fn cached(
        db: Arc<Database>,
        conn: RedisConn,
        url: &str,
        cache: Namespace,
        queues: Namespace,
        consumer: &str,
        timing: Timing,
    ) -> Result<Self, SetupError> {
        // A Redis that may evict any key (allkeys-*) may evict queued views: refused, as the
        // write-behind lesson refuses it.
        write_behind::write::check_eviction_policy(&conn)
            .await
            .map_err(SetupError::RedisCommand)?;
        let articles = WriteThrough::new(
            db.clone(),
            conn.clone(),
            cache.child("articles"),
            write_through::Settings::default(),
        );
        let settings = write_behind::Settings::default();
        let layout = Layout::new(queues, settings.shards);
        write_behind::write::create_queues(&conn, &layout)
            .await
            .map_err(|e| SetupError::RedisCommand(e.to_string()))?;
        let flusher = Arc::new(Flusher::new(
            db.clone(),
            layout.clone(),
            settings.clone(),
            Apply::Versioned,
            consumer,
        ));
        let flusher = flusher.start(url).await?;
        let views = WriteBehind::new(conn.clone(), db.clone(), layout, settings);
        let list = (1..=LIST_PAGES)
            .map(|page| {
                let namespace = cache.child(&format!("list:{page}"));
                Generational::new(
                    conn.clone(),
                    namespace,
                    timing.list_ttl,
                    timing.redis_timeout,
                )
            })
            .collect();
        Ok(News {
            db,
            cached: Some(Cached {
                conn,
                namespace: cache,
                articles,
                views,
                flusher: Mutex::new(Some(flusher)),
                list,
                timing,
            }),
            counts: NewsCounts::default(),
        })
    }

    /// Article `id`, or `None`.
    pub async fn article(&self, id: i64) -> Result<Option<Article>, sqlx::Error> {
        match &self.cached {
            Some(cached) => cached.articles.get(id).await,
            None => self.db.article(id).await,
        }
    }

    /// Rewrites article `id`; the committed row, or `None`.
    pub async fn update(
        &self,
        id: i64,
        title: &str,
        body: &str,
    ) -> Result<Option<Article>, sqlx::Error> {
        let Some(cached) = &self.cached else {
            return self.db.update_article(id, title, body).await;
        };
        let updated = cached.articles.update(id, title, body).await?;
        if let Some(page) = updated
            .as_ref()
            .and_then(|article| list_page_of(article.id))
        {
            // The list shows the title: the generation of its page is replaced after the commit.
            cached.list[page as usize - 1].changed().await;
        }
        Ok(updated)
    }

    /// Page `page` (from 1 to [`LIST_PAGES`]) of the article list: under its page's generation,
    /// or from the database when there is no cache or the reader asked to bypass it.
    pub async fn list(&self, page: u32, bypass: bool) -> Result<Vec<Headline>, sqlx::Error> {
        match &self.cached {
            Some(cached) if !bypass => {
                let generational = &cached.list[page as usize - 1];
                generational.get("headlines", || self.headlines(page)).await
            }
            _ => self.headlines(page).await,
        }
    }

    /// What the cache of the article list's page `page` counted (nothing without a cache).
    pub fn list_counts(&self, page: u32) -> Option<&crate::generation::GenerationCounts> {
        let cached = self.cached.as_ref()?;
        cached
            .list
            .get(page.checked_sub(1)? as usize)
            .map(|g| &g.counts)
    }

    /// The article list's page `page`, from the database (one query).
    async fn headlines(&self, page: u32) -> Result<Vec<Headline>, sqlx::Error> {
        let mut conn = self.db.connection().await?;
        let rows =
            sqlx::query("SELECT id, title, version FROM articles ORDER BY id LIMIT $1 OFFSET $2")
                .bind(LIST_SIZE)
                .bind(i64::from(page.saturating_sub(1)) * LIST_SIZE)
                .fetch_all(&mut *conn)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(Headline {
                    id: row.try_get("id")?,
                    title: row.try_get("title")?,
                    version: row.try_get("version")?,
                })
            })
            .collect()
    }

    // ANCHOR: view
    /// Counts a view of article `id`: acknowledged once it is in Redis with its queue entry
    /// (written behind), or committed to the database (no cache). `None` if there is no such
    /// article; an error if the view could not be counted.
    pub async fn view(&self, id: i64) -> Result<Option<Views>, ViewError> {
        match &self.cached {
            Some(cached) => match cached.views.add_points(id, 1).await {
                Ok(ack) => Ok(Some(Views {
                    id,
                    views: ack.points,
                })),
                Err(write_behind::WriteError::NoSuchPlayer(_)) => Ok(None),
                Err(_) => Err(ViewError),
            },
            None => {
                let row = self.db.add_points_now(id, 1).await.map_err(|_| ViewError)?;
                Ok(row.map(|row| Views {
                    id,
                    views: row.points,
                }))
            }
        }
    }
    // ANCHOR_END: view

    // ANCHOR: trending
    /// The most viewed articles: from Redis if computed less than `trending_ttl` ago, else from
    /// the flushed counts (one query), stored for `trending_ttl`.
    pub async fn trending(&self) -> Result<Vec<Trend>, sqlx::Error> {
        let Some(cached) = &self.cached else {
            return self.count().await;
        };
        let key = cached.namespace.key("trending");
        let mut conn = cached.conn.clone();
        let (budget, errors) = (cached.timing.redis_timeout, &self.counts.redis_errors);
        let read = conn.get::<_, Option<Vec<u8>>>(&key);
        let stored = budget::within(budget, errors, read).await.flatten();
        if let Some(trending) = stored.and_then(|bytes| shared::codec::decode(&bytes).ok()) {
            self.counts.trending_hits.inc();
            return Ok(trending);
        }
        self.counts.trending_misses.inc();
        let trending = self.count().await?;
        let bytes = shared::codec::encode(&trending).expect("trending encodes");
        let ttl = cached.timing.trending_ttl.as_millis().max(1) as u64;
        let store = conn.pset_ex::<_, _, ()>(&key, bytes, ttl);
        budget::within(budget, errors, store).await;
        Ok(trending)
    }
    // ANCHOR_END: trending

    /// The ten most viewed articles in the database.
    async fn count(&self) -> Result<Vec<Trend>, sqlx::Error> {
        let mut conn = self.db.connection().await?;
        let rows = sqlx::query(
            "SELECT player_id, points FROM scores WHERE points > 0 \
             ORDER BY points DESC, player_id LIMIT $1",
        )
        .bind(TRENDING)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Trend {
                    id: row.try_get("player_id")?,
                    views: row.try_get("points")?,
                })
            })
            .collect()
    }

    /// The views acknowledged and not yet flushed, and how long the oldest has waited: `None`
    /// without a cache (a view is committed before it is acknowledged) or when Redis does not
    /// answer.
    pub async fn backlog(&self) -> Option<Backlog> {
        let cached = self.cached.as_ref()?;
        let layout = cached.views.layout();
        let pending = write_behind::flusher::queue_depth(&cached.conn, layout)
            .await
            .ok()?;
        let oldest = write_behind::flusher::oldest_queued(&cached.conn, layout)
            .await
            .ok()?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let waited = |ms: u64| Duration::from_millis((now.as_millis() as u64).saturating_sub(ms));
        Some(Backlog {
            pending,
            oldest: oldest.map(waited),
        })
    }

    /// Drops this instance's flusher where it is, as a crash would: what it had read and not
    /// acknowledged stays pending in Redis, for another instance's flusher to claim.
    pub fn abandon(&self) {
        if let Some(cached) = &self.cached {
            drop(cached.flusher.lock().expect("never poisoned").take());
        }
    }

    /// Stops this instance's flusher once every queue it reads is empty: no acknowledged view is
    /// left unwritten by a clean stop.
    pub async fn drain(&self) {
        let flusher = self
            .cached
            .as_ref()
            .and_then(|cached| cached.flusher.lock().expect("never poisoned").take());
        if let Some(flusher) = flusher {
            // A flusher that panicked has said so on stderr; what it left stays queued.
            let _ = flusher.drain().await;
        }
    }
}

/// The views' queue: what is waiting to be flushed.
#[derive(Clone, Copy, Debug)]
pub struct Backlog {
    /// Views acknowledged and not yet in the database.
    pub pending: u64,
    /// How long the oldest has waited (`None`: nothing waits).
    pub oldest: Option<Duration>,
}

/// A view that could not be counted: Redis (or, without a cache, the database) did not take it.
#[derive(Debug)]
pub struct ViewError;
