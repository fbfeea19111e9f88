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

pub mod attachment;
pub mod counted;
pub mod items;
pub mod leftover;
pub mod products;
pub mod users;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor};

use crate::error::SetupError;
use crate::redact::redact;
use crate::sweep::{self, OwnedDir};

pub use attachment::Attachment;
pub use counted::Transaction;
pub use leftover::Leftover;
pub use products::{CATEGORIES, Product, seed_product};
pub use users::{User, seed_user};

/// How to open the database.
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// `None`: a private SQLite file. Otherwise an `sqlite:` or `postgres://` URL.
    /// [`Default`] takes it from `DATABASE_URL`, so every test, bench and exercise suite runs on
    /// the database the environment names.
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
            url: std::env::var("DATABASE_URL")
                .ok()
                .filter(|url| !url.is_empty()),
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
    /// What must go when the run ends: a PostgreSQL schema, or a SQLite file the run created.
    leftover: Option<Leftover>,
    /// How another process opens this same database (see [`Database::attach`]).
    attachment: Attachment,
    /// Keeps the private SQLite file alive; dropping it deletes the file.
    _sqlite_dir: Option<OwnedDir>,
    /// On PostgreSQL, the connection holding the lock that marks the run's schema as owned
    /// ([`crate::sweep`]); it goes last. (Never used after the lock is taken: the mutex only
    /// makes the database `Sync`, which a connection is not.)
    _schema_owner: Option<std::sync::Mutex<AnyConnection>>,
}

impl Database {
    /// Opens, creates the shared tables and seeds them.
    pub async fn open(options: DbOptions) -> Result<Self, SetupError> {
        sqlx::any::install_default_drivers();
        let mut created_file = None;
        let (url, sqlite_dir) = match &options.url {
            Some(url) if url.starts_with("sqlite:") => {
                let (url, path) = sqlite_of_our_own(url)?;
                created_file = path;
                (url, None)
            }
            Some(url) => (url.clone(), None),
            None => {
                let dir = OwnedDir::new("db").map_err(SetupError::Io)?;
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("course.db").display()
                );
                (url, Some(dir))
            }
        };
        // A URL the drivers cannot parse is the learner's typo; one they parse but cannot
        // connect to is a server that is down or a wrong password, or a SQLite folder that is
        // not there. Each gets its own advice.
        let sqlite_file = created_file.clone();
        let bad_url = |cause| match (cause, &sqlite_file) {
            (cause @ sqlx::Error::Configuration(_), _) => SetupError::BadDatabaseUrl {
                url: redact(&url),
                cause,
            },
            (cause, Some(path)) => SetupError::SqliteUnopenable {
                path: path.display().to_string(),
                cause,
            },
            (cause, None) => SetupError::DatabaseUnreachable {
                url: redact(&url),
                cause,
            },
        };

        // One plain connection first: it fails at once on a bad URL or a server that is down,
        // where a pool would keep retrying until its acquire timeout (30 s).
        let mut probe = AnyConnection::connect(&url).await.map_err(bad_url)?;
        let is_postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
        let pg_schema = is_postgres.then(|| format!("course_{:08x}", rand::random::<u32>()));
        let leftover = match (&pg_schema, created_file) {
            (Some(schema), _) => Some(Leftover::PostgresSchema {
                url: url.clone(),
                schema: schema.clone(),
            }),
            (None, Some(path)) => Some(Leftover::SqliteFile { path }),
            (None, None) => None,
        };
        let schema_owner = if let Some(schema) = &pg_schema {
            // Schemas of killed runs go first; then a schema of our own, marked as owned by the
            // probe, which stays open for that, and set as every pooled connection's search path.
            let dropped = sweep::schemas(&mut probe).await?;
            if !dropped.is_empty() {
                eprintln!(
                    "Removed {} PostgreSQL schema(s) left by runs that were killed: {}",
                    dropped.len(),
                    dropped.join(", ")
                );
            }
            sweep::own_schema(&mut probe, schema).await?;
            probe
                .execute(format!("CREATE SCHEMA {schema}").as_str())
                .await?;
            Some(std::sync::Mutex::new(probe))
        } else {
            // Readers and the one writer work side by side in WAL mode.
            probe.execute("PRAGMA journal_mode = WAL").await?;
            probe.close().await?;
            None
        };
        let attachment = Attachment {
            url: url.clone(),
            schema: pg_schema,
        };
        let pool = pool(&attachment, options.max_connections)
            .await
            .map_err(bad_url)?;
        let db = Database {
            pool,
            queries: AtomicU64::new(0),
            latency_us: AtomicU64::new(options.latency.as_micros() as u64),
            leftover,
            attachment,
            _sqlite_dir: sqlite_dir,
            _schema_owner: schema_owner,
        };
        let mut setup = db.setup().await?;
        users::create(&mut setup, options.users).await?;
        products::create(&mut setup, options.products).await?;
        setup.commit().await?;
        Ok(db)
    }

    /// Opens the database another process of the same run opened, as its [`attachment`] says:
    /// the same tables, nothing created, and nothing removed when this process ends (the owner
    /// does that). Queries are counted in this process and slowed by `latency`.
    ///
    /// [`attachment`]: Self::attachment
    pub async fn attach(attachment: Attachment, latency: Duration) -> Result<Self, SetupError> {
        sqlx::any::install_default_drivers();
        let pool =
            pool(&attachment, 10)
                .await
                .map_err(|cause| SetupError::DatabaseUnreachable {
                    url: redact(&attachment.url),
                    cause,
                })?;
        Ok(Database {
            pool,
            queries: AtomicU64::new(0),
            latency_us: AtomicU64::new(latency.as_micros() as u64),
            leftover: None,
            attachment,
            _sqlite_dir: None,
            _schema_owner: None,
        })
    }

    /// How another process opens this database with [`Database::attach`].
    pub fn attachment(&self) -> &Attachment {
        &self.attachment
    }

    /// A transaction whose statements are not counted, for a lesson's own tables and seed rows.
    pub async fn setup(&self) -> Result<sqlx::Transaction<'static, Any>, sqlx::Error> {
        self.pool.begin().await
    }

    /// Closes the pool, then removes what the run created in a database it does not own: a
    /// PostgreSQL schema, or a SQLite file at a path the learner named. (A private SQLite file
    /// is deleted on drop.)
    pub async fn close(mut self) -> Result<(), SetupError> {
        self.pool.close().await;
        match self.leftover.take() {
            Some(leftover) => leftover.remove().await.map_err(SetupError::Cleanup),
            None => Ok(()),
        }
    }

    /// What this database will leave behind unless [`close`](Self::close) (or
    /// [`Leftover::remove`]) removes it.
    pub fn leftover(&self) -> Option<&Leftover> {
        self.leftover.as_ref()
    }

    /// `sqlite` or `postgres`, for reports.
    pub fn backend(&self) -> &'static str {
        match self.attachment.schema {
            Some(_) => "postgres",
            None => "sqlite",
        }
    }
}

/// A database that was not closed (a test that failed half-way, a run that ended early) still
/// removes what it created: the schema or file goes when the value does. Dropping cannot wait for
/// a future, so the removal runs to completion on a thread and runtime of its own; a failure is
/// printed, as there is no caller left to return it to.
///
/// The pool's connections are closed first (for at most [`CLOSE_WITHIN`]): a SQLite connection
/// that is still closing can write its `-wal` and `-shm` files into a private folder being
/// removed, which then stays behind half-deleted (seen once in CI, after a Ctrl-C); a PostgreSQL
/// connection left inside a transaction holds locks that make the schema's `DROP` wait.
impl Drop for Database {
    fn drop(&mut self) {
        let leftover = self.leftover.take();
        let sqlite_dir = self._sqlite_dir.take();
        if leftover.is_none() && sqlite_dir.is_none() {
            return;
        }
        let pool = self.pool.clone();
        let removed = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("could not remove the run's database schema or file: {e}"))?;
            runtime.block_on(async {
                let _ = tokio::time::timeout(CLOSE_WITHIN, pool.close()).await;
                drop(sqlite_dir);
                match leftover {
                    Some(leftover) => leftover.remove().await,
                    None => Ok(()),
                }
            })
        })
        .join();
        if let Ok(Err(left)) = removed {
            eprintln!("warning: {left}");
        }
    }
}

/// How long a dropped [`Database`] waits for its connections to close before removing its files
/// or schema anyway.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// For a SQLite URL the learner gave: the URL to open (creating the file), and the file, which
/// must not exist yet; `None` for an in-memory database.
fn sqlite_of_our_own(url: &str) -> Result<(String, Option<PathBuf>), SetupError> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" || rest.contains("mode=memory") {
        return Ok((url.to_string(), None));
    }
    let path = PathBuf::from(path);
    if path.exists() {
        return Err(SetupError::SqliteFileExists {
            path: path.display().to_string(),
        });
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    Ok((format!("{url}{separator}mode=rwc"), Some(path)))
}

/// The pool of connections to `attachment`'s database, each set up as the course needs: on
/// PostgreSQL with the run's schema as its search path, on SQLite with the usual WAL setting.
async fn pool(attachment: &Attachment, max_connections: u32) -> Result<AnyPool, sqlx::Error> {
    let search_path = attachment.schema.clone();
    AnyPoolOptions::new()
        .max_connections(max_connections)
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
        .connect(&attachment.url)
        .await
}
