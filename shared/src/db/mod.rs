//! The database behind the cache: real SQL through sqlx, counted and optionally slowed.
//!
//! A caching lesson makes two claims about the database: how often it was asked, and what each
//! question cost. So every query the lessons make is counted, exactly, however many tasks run at
//! once, and can be held for an artificial latency before it runs ([`counted`]).
//!
//! The default is a private SQLite file in a temporary folder, deleted when the [`Database`] is
//! dropped. `DATABASE_URL=postgres://...` runs the same queries (bound `$1` parameters only, never
//! SQL assembled from values) against PostgreSQL, in a schema of its own so parallel runs do not
//! meet. Opening creates the two tables most lessons share, [`users`] and [`products`], with
//! deterministic seed rows; a lesson with tables of its own creates them through
//! [`Database::setup`]. Setup is not counted; everything after it is.

pub mod counted;
pub mod products;
pub mod users;

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor};

use crate::error::SetupError;

pub use counted::Transaction;
pub use products::{CATEGORIES, Product, seed_product};
pub use users::{User, seed_user};

/// How to open the database.
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// `None`: a private SQLite file. Otherwise an `sqlite:` or `postgres://` URL.
    pub url: Option<String>,
    /// Users `1..=users` are seeded.
    pub users: i64,
    /// Products `1..=products` are seeded.
    pub products: i64,
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
    /// Opens, creates the shared tables and seeds them.
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
        } else {
            // Readers and the one writer work side by side in WAL mode.
            probe.execute("PRAGMA journal_mode = WAL").await?;
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
        let mut setup = db.setup().await?;
        users::create(&mut setup, options.users).await?;
        products::create(&mut setup, options.products).await?;
        setup.commit().await?;
        Ok(db)
    }

    /// A transaction whose statements are not counted, for a lesson's own tables and seed rows.
    pub async fn setup(&self) -> Result<sqlx::Transaction<'static, Any>, sqlx::Error> {
        self.pool.begin().await
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

    /// `sqlite` or `postgres`, for reports.
    pub fn backend(&self) -> &'static str {
        if self.pg_schema.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }
}
