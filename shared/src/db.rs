//! The database behind the cache: real SQL through sqlx, counted and optionally slowed.
//!
//! A caching lesson makes two claims about the database: how often it was asked, and what each
//! question cost. So every query the lessons make goes through one method,
//! [`Database::connection`], which counts it (exactly, with an atomic, however many tasks run at
//! once) and can hold the connection for an artificial latency before the query runs.
//!
//! Why the latency: an in-process SQLite primary-key lookup takes about 8 µs here, faster than a
//! Redis round trip (about 55 µs on loopback), so without it every demo would show the cache
//! losing. A production database is a network hop away, shared with other work, and its misses
//! touch disk; `--db-latency-ms` stands for that, and every report prints the value it used. The
//! connection is held while waiting, as it is during a real round trip, so a small pool throttles
//! a slow database the way it does in production.
//!
//! The default is a private SQLite file in a temporary folder, deleted when the [`Database`] is
//! dropped. `DATABASE_URL=postgres://...` runs the same queries (bound `$1` parameters only, never
//! SQL assembled from values) against PostgreSQL, in a schema of its own so parallel runs do not
//! meet. Setup (schema and seed rows) is not counted; everything after it is.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row};

use crate::error::SetupError;

/// A registered user: the entity the lessons cache most.
///
/// `created_at` is a real timestamp, not a string: it survives the trip through the cache as the
/// same type, which a `json.dumps(default=str)` cache does not manage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    /// Empty for some users: an empty string is a value, not a miss.
    pub bio: String,
    /// Zero for some users: zero is a value, not a miss.
    pub karma: i64,
    pub created_at: DateTime<Utc>,
}

/// A product of the shop the exercises build on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    pub id: i64,
    pub name: String,
    pub category: String,
    /// Money as integer cents: exact, unlike a float, and it round-trips through JSON as a number.
    pub price_cents: i64,
    pub stock: i64,
}

/// An article of the small CMS the write-through lesson builds on. `version` starts at 1 and rises
/// by one with every committed write, so two copies of an article can be ordered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Article {
    pub id: i64,
    /// Never empty: the table refuses an empty title, which gives tests a write that fails.
    pub title: String,
    pub body: String,
    pub version: i64,
}

/// The product categories of the seed data.
pub const CATEGORIES: [&str; 5] = ["tea", "coffee", "cocoa", "books", "kitchen"];

/// How to open the database.
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// `None`: a private SQLite file. Otherwise an `sqlite:` or `postgres://` URL.
    pub url: Option<String>,
    /// Users `1..=users` are seeded.
    pub users: i64,
    /// Products `1..=products` are seeded.
    pub products: i64,
    /// Articles `1..=articles` are seeded.
    pub articles: i64,
    /// Added to every counted query while it holds its connection.
    pub latency: Duration,
    /// Pool size: how many queries may run at once.
    pub max_connections: u32,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            url: None,
            users: 100,
            products: 100,
            articles: 100,
            latency: Duration::ZERO,
            max_connections: 10,
        }
    }
}

/// A seeded database whose queries are counted.
pub struct Database {
    pool: AnyPool,
    queries: AtomicU64,
    latency_us: AtomicU64,
    /// The PostgreSQL schema this instance created, dropped by [`Database::close`].
    pg_schema: Option<String>,
    /// Keeps the private SQLite file alive; dropping it deletes the file.
    _sqlite_dir: Option<tempfile::TempDir>,
}

impl Database {
    /// Opens, creates the schema and seeds it.
    pub async fn open(options: DbOptions) -> Result<Self, SetupError> {
        sqlx::any::install_default_drivers();
        let (url, sqlite_dir) = match &options.url {
            Some(url) => (url.clone(), None),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("caching-course-db-")
                    .tempdir()
                    .map_err(SetupError::Io)?;
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("course.db").display()
                );
                (url, Some(dir))
            }
        };
        // A URL the drivers cannot parse is the learner's typo; one they parse but cannot
        // connect to is a server that is down or a wrong password. Each gets its own advice.
        let bad_url = |cause| match cause {
            sqlx::Error::Configuration(_) => SetupError::BadDatabaseUrl {
                url: url.clone(),
                cause,
            },
            cause => SetupError::DatabaseUnreachable {
                url: url.clone(),
                cause,
            },
        };

        // One plain connection first: it fails at once on a bad URL or a server that is down,
        // where a pool would keep retrying until its acquire timeout (30 s).
        let mut probe = AnyConnection::connect(&url).await.map_err(bad_url)?;
        let is_postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
        let pg_schema = is_postgres.then(|| format!("course_{:08x}", rand::random::<u32>()));
        if let Some(schema) = &pg_schema {
            // A schema of our own, set as every pooled connection's search path.
            probe
                .execute(format!("CREATE SCHEMA {schema}").as_str())
                .await?;
        }
        probe.close().await?;
        let search_path = pg_schema.clone();
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .after_connect(move |conn, _meta| {
                let search_path = search_path.clone();
                Box::pin(async move {
                    if let Some(schema) = search_path {
                        conn.execute(format!("SET search_path TO {schema}").as_str())
                            .await?;
                    } else {
                        // The usual setting with WAL: a commit is durable against a crash of the
                        // process, and fsyncs happen at checkpoints rather than on every commit.
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(bad_url)?;

        let db = Database {
            pool,
            queries: AtomicU64::new(0),
            latency_us: AtomicU64::new(options.latency.as_micros() as u64),
            pg_schema,
            _sqlite_dir: sqlite_dir,
        };
        db.create_schema(is_postgres).await?;
        db.seed(&options).await?;
        Ok(db)
    }

    /// Drops the PostgreSQL schema this instance created, and closes the pool. (A private SQLite
    /// file is deleted on drop; this is only needed against PostgreSQL.)
    pub async fn close(self) -> Result<(), sqlx::Error> {
        if let Some(schema) = &self.pg_schema {
            self.pool
                .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
                .await?;
        }
        self.pool.close().await;
        Ok(())
    }

    // ANCHOR: counted
    /// The one door every counted query goes through: count it, take a pooled connection, and
    /// hold it for the configured latency before the query runs on it.
    pub async fn connection(&self) -> Result<PoolConnection<Any>, sqlx::Error> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        let conn = self.pool.acquire().await?;
        let latency = self.latency();
        if !latency.is_zero() {
            hold_for(latency).await;
        }
        Ok(conn)
    }
    // ANCHOR_END: counted

    /// How many queries have gone through [`connection`](Self::connection) so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::SeqCst)
    }

    /// Starts counting from zero again, e.g. after a warm-up.
    pub fn reset_queries(&self) {
        self.queries.store(0, Ordering::SeqCst);
    }

    pub fn latency(&self) -> Duration {
        Duration::from_micros(self.latency_us.load(Ordering::Relaxed))
    }

    pub fn set_latency(&self, latency: Duration) {
        self.latency_us
            .store(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// `sqlite` or `postgres`, for reports.
    pub fn backend(&self) -> &'static str {
        if self.pg_schema.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    // ---- users -------------------------------------------------------------------------------

    /// One user by primary key, or `None` if there is no such row.
    pub async fn user(&self, id: i64) -> Result<Option<User>, sqlx::Error> {
        let mut conn = self.connection().await?;
        let row =
            sqlx::query("SELECT id, name, email, bio, karma, created_at FROM users WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        row.map(|row| user_from_row(&row)).transpose()
    }

    /// Rewrites a user's mutable fields. Returns whether the row existed.
    pub async fn update_user(&self, user: &User) -> Result<bool, sqlx::Error> {
        let mut conn = self.connection().await?;
        let done = sqlx::query(
            "UPDATE users SET name = $1, email = $2, bio = $3, karma = $4 WHERE id = $5",
        )
        .bind(&user.name)
        .bind(&user.email)
        .bind(&user.bio)
        .bind(user.karma)
        .bind(user.id)
        .execute(&mut *conn)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Users whose name starts with `name_prefix` and whose karma is at least `min_karma`, by id,
    /// at most `limit` of them: a query with several arguments, cached under a hashed key.
    pub async fn search_users(
        &self,
        name_prefix: &str,
        min_karma: i64,
        limit: i64,
    ) -> Result<Vec<User>, sqlx::Error> {
        let mut conn = self.connection().await?;
        let rows = sqlx::query(
            "SELECT id, name, email, bio, karma, created_at FROM users \
             WHERE substr(name, 1, length($1)) = $1 AND karma >= $2 ORDER BY id LIMIT $3",
        )
        .bind(name_prefix)
        .bind(min_karma)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    // ---- products ----------------------------------------------------------------------------

    /// One product by primary key, or `None`.
    pub async fn product(&self, id: i64) -> Result<Option<Product>, sqlx::Error> {
        let mut conn = self.connection().await?;
        let row = sqlx::query(
            "SELECT id, name, category, price_cents, stock FROM products WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(|row| product_from_row(&row)).transpose()
    }

    /// The products of a category, cheapest first, optionally only those up to a price. An
    /// unknown category gives an empty list: a real answer, worth caching like any other.
    pub async fn products_in_category(
        &self,
        category: &str,
        max_price_cents: Option<i64>,
    ) -> Result<Vec<Product>, sqlx::Error> {
        let mut conn = self.connection().await?;
        let rows = sqlx::query(
            "SELECT id, name, category, price_cents, stock FROM products \
             WHERE category = $1 AND price_cents <= $2 ORDER BY price_cents, id",
        )
        .bind(category)
        .bind(max_price_cents.unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await?;
        rows.iter().map(product_from_row).collect()
    }

    /// How many products of a category are out of stock (often zero: a value, not a miss).
    pub async fn out_of_stock_count(&self, category: &str) -> Result<i64, sqlx::Error> {
        let mut conn = self.connection().await?;
        sqlx::query("SELECT COUNT(*) AS n FROM products WHERE category = $1 AND stock = 0")
            .bind(category)
            .fetch_one(&mut *conn)
            .await?
            .try_get("n")
    }

    /// Sets a product's price. Returns whether the row existed.
    pub async fn set_price(&self, id: i64, price_cents: i64) -> Result<bool, sqlx::Error> {
        let mut conn = self.connection().await?;
        let done = sqlx::query("UPDATE products SET price_cents = $1 WHERE id = $2")
            .bind(price_cents)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    // ---- articles: every write is a transaction, and returns what it committed -------------

    /// One article by primary key, or `None`.
    pub async fn article(&self, id: i64) -> Result<Option<Article>, sqlx::Error> {
        let mut conn = self.connection().await?;
        let row = sqlx::query("SELECT id, title, body, version FROM articles WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|row| article_from_row(&row)).transpose()
    }

    /// Creates article `id` at version 1; fails if it exists. Returns once committed.
    pub async fn create_article(
        &self,
        id: i64,
        title: &str,
        body: &str,
    ) -> Result<Article, sqlx::Error> {
        let mut conn = self.connection().await?;
        let mut tx = conn.begin().await?;
        let row = sqlx::query(
            "INSERT INTO articles (id, title, body, version) VALUES ($1, $2, $3, 1) \
             RETURNING id, title, body, version",
        )
        .bind(id)
        .bind(title)
        .bind(body)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        article_from_row(&row)
    }

    /// Rewrites an article and raises its version by one, in one statement of one transaction.
    /// Returns the committed row, or `None` if there is no such article.
    pub async fn update_article(
        &self,
        id: i64,
        title: &str,
        body: &str,
    ) -> Result<Option<Article>, sqlx::Error> {
        let mut conn = self.connection().await?;
        let mut tx = conn.begin().await?;
        let row = sqlx::query(
            "UPDATE articles SET title = $1, body = $2, version = version + 1 WHERE id = $3 \
             RETURNING id, title, body, version",
        )
        .bind(title)
        .bind(body)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        row.map(|row| article_from_row(&row)).transpose()
    }

    /// Deletes an article. Returns the version it had, or `None` if there was none.
    pub async fn delete_article(&self, id: i64) -> Result<Option<i64>, sqlx::Error> {
        let mut conn = self.connection().await?;
        let mut tx = conn.begin().await?;
        let row = sqlx::query("DELETE FROM articles WHERE id = $1 RETURNING version")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.map(|row| row.try_get("version")).transpose()
    }

    // ---- setup (not counted) -----------------------------------------------------------------

    async fn create_schema(&self, is_postgres: bool) -> Result<(), sqlx::Error> {
        if !is_postgres {
            // Readers and the one writer work side by side in WAL mode.
            self.pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        self.pool
            .execute(
                "CREATE TABLE users (
                    id BIGINT PRIMARY KEY,
                    name TEXT NOT NULL,
                    email TEXT NOT NULL,
                    bio TEXT NOT NULL,
                    karma BIGINT NOT NULL,
                    created_at BIGINT NOT NULL
                )",
            )
            .await?;
        self.pool
            .execute(
                "CREATE TABLE products (
                    id BIGINT PRIMARY KEY,
                    name TEXT NOT NULL,
                    category TEXT NOT NULL,
                    price_cents BIGINT NOT NULL,
                    stock BIGINT NOT NULL
                )",
            )
            .await?;
        self.pool
            .execute("CREATE INDEX products_by_category ON products (category, price_cents)")
            .await?;
        self.pool
            .execute(
                "CREATE TABLE articles (
                    id BIGINT PRIMARY KEY,
                    title TEXT NOT NULL CHECK (title <> ''),
                    body TEXT NOT NULL,
                    version BIGINT NOT NULL
                )",
            )
            .await?;
        Ok(())
    }

    /// Deterministic rows: the same ids always hold the same data, so runs compare.
    async fn seed(&self, options: &DbOptions) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        for id in 1..=options.users {
            let user = seed_user(id);
            sqlx::query(
                "INSERT INTO users (id, name, email, bio, karma, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(user.id)
            .bind(&user.name)
            .bind(&user.email)
            .bind(&user.bio)
            .bind(user.karma)
            .bind(user.created_at.timestamp())
            .execute(&mut *tx)
            .await?;
        }
        for id in 1..=options.articles {
            let article = seed_article(id);
            sqlx::query("INSERT INTO articles (id, title, body, version) VALUES ($1, $2, $3, $4)")
                .bind(article.id)
                .bind(&article.title)
                .bind(&article.body)
                .bind(article.version)
                .execute(&mut *tx)
                .await?;
        }
        for id in 1..=options.products {
            let product = seed_product(id);
            sqlx::query(
                "INSERT INTO products (id, name, category, price_cents, stock) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(product.id)
            .bind(&product.name)
            .bind(&product.category)
            .bind(product.price_cents)
            .bind(product.stock)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
}

/// Waits `latency` without blocking the async workers. tokio's timer ticks in whole
/// milliseconds, so `tokio::time::sleep(2 ms)` lasts about 3 ms (measured: 3.13 ms on average);
/// a thread of the blocking pool sleeps to within a few tens of microseconds (2.17 ms), so the
/// latency a report prints is the latency the queries paid.
async fn hold_for(latency: Duration) {
    tokio::task::spawn_blocking(move || std::thread::sleep(latency))
        .await
        .expect("a sleeping thread does not panic");
}

/// The seed row for article `id`, at version 1.
pub fn seed_article(id: i64) -> Article {
    Article {
        id,
        title: format!("Article {id}"),
        body: format!("The text of article {id}."),
        version: 1,
    }
}

/// The seed row for user `id`: every tenth has zero karma and every seventh an empty bio.
pub fn seed_user(id: i64) -> User {
    const FIRST: [&str; 8] = [
        "Ada", "Grace", "Linus", "Barbara", "Ken", "Radia", "Alan", "Edsger",
    ];
    const LAST: [&str; 8] = [
        "Lovelace", "Hopper", "Torvalds", "Liskov", "Thompson", "Perlman", "Turing", "Dijkstra",
    ];
    let first = FIRST[(id % 8) as usize];
    let last = LAST[((id / 8) % 8) as usize];
    User {
        id,
        name: format!("{first} {last}"),
        email: format!(
            "{}.{}{id}@example.com",
            first.to_lowercase(),
            last.to_lowercase()
        ),
        bio: if id % 7 == 0 {
            String::new()
        } else {
            format!(
                "Member #{id}, writes about {}.",
                CATEGORIES[(id % 5) as usize]
            )
        },
        karma: if id % 10 == 0 { 0 } else { (id * 37) % 1000 },
        created_at: DateTime::from_timestamp(1_700_000_000 + id * 3_600, 0)
            .expect("valid timestamp"),
    }
}

/// The seed row for product `id`.
pub fn seed_product(id: i64) -> Product {
    let category = CATEGORIES[(id % CATEGORIES.len() as i64) as usize];
    Product {
        id,
        name: format!("{} #{id}", capitalize(category)),
        category: category.to_string(),
        price_cents: 199 + (id * 137) % 5_000,
        stock: id % 6,
    }
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn user_from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    let created: i64 = row.try_get("created_at")?;
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        email: row.try_get("email")?,
        bio: row.try_get("bio")?,
        karma: row.try_get("karma")?,
        created_at: DateTime::from_timestamp(created, 0)
            .ok_or_else(|| sqlx::Error::Decode(format!("bad timestamp {created}").into()))?,
    })
}

fn product_from_row(row: &AnyRow) -> Result<Product, sqlx::Error> {
    Ok(Product {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        category: row.try_get("category")?,
        price_cents: row.try_get("price_cents")?,
        stock: row.try_get("stock")?,
    })
}

fn article_from_row(row: &AnyRow) -> Result<Article, sqlx::Error> {
    Ok(Article {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        version: row.try_get("version")?,
    })
}
