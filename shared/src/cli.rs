//! Command-line arguments every lesson's demo shares.
//!
//! Each demo flattens [`CommonArgs`] into its own clap parser, so `--help` reads the same in every
//! lesson and a learner who has scaled one demo knows how to scale the next. Values are checked
//! when parsed: a bad one exits with clap's message naming the flag and the accepted range.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use redis::aio::ConnectionManager;

use crate::connection::RedisTarget;
use crate::db::{Database, DbOptions};
use crate::namespace::Namespace;
use crate::workload::Workload;

/// Where the demo's Redis and database are. Every demo flattens this, directly or through
/// [`CommonArgs`].
#[derive(Args, Clone, Debug)]
pub struct Backends {
    /// Redis to use, e.g. redis://127.0.0.1:6379/0. Unset: a private redis-server is started
    /// from PATH for this run and stopped at its end. The demo only touches keys under its own
    /// prefix and removes them when done.
    #[arg(long, env = "REDIS_URL", value_name = "URL")]
    pub redis_url: Option<String>,

    /// Database to use: sqlite://PATH or postgres://USER:PASS@HOST/DB. Unset: a private SQLite
    /// file, deleted at the end. Against PostgreSQL the demo works in a schema of its own.
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
}

impl Backends {
    /// Database options seeding `rows` users, products and articles, each query slowed by
    /// `latency`.
    pub fn db_options(&self, rows: u64, latency: Duration) -> DbOptions {
        DbOptions {
            url: self.database_url.clone(),
            users: rows as i64,
            products: rows as i64,
            articles: rows as i64,
            latency,
            ..DbOptions::default()
        }
    }

    /// How the report names the Redis in use.
    pub fn redis_label(&self) -> String {
        self.redis_url.clone().unwrap_or_else(|| "private".into())
    }

    /// Gets the Redis these flags name (or starts a private one), connects to it, and opens the
    /// database `options` describe. Errors carry advice for the learner.
    pub async fn open(&self, options: DbOptions) -> anyhow::Result<Opened> {
        let redis = RedisTarget::from_url_or_private(self.redis_url.as_deref())
            .context("could not get a Redis for the demo")?;
        let conn = redis.connect().await?;
        let db = Database::open(options)
            .await
            .context("could not open the demo database")?;
        Ok(Opened {
            redis,
            conn,
            db: Arc::new(db),
        })
    }
}

/// A demo's Redis, a connection to it, and its database, for the length of one run.
pub struct Opened {
    /// Keeps a private server alive until the run ends.
    pub redis: RedisTarget,
    pub conn: ConnectionManager,
    pub db: Arc<Database>,
}

impl Opened {
    /// Ends the run: removes the keys under `namespaces` from a Redis the demo does not own (a
    /// private server goes away with its keys), and closes the database, which drops a
    /// PostgreSQL schema. Drop every other handle on the database first.
    pub async fn close(mut self, namespaces: &[Namespace]) -> anyhow::Result<()> {
        if let RedisTarget::External(_) = self.redis {
            for namespace in namespaces {
                namespace.remove_all(&mut self.conn).await?;
            }
        }
        if let Some(db) = Arc::into_inner(self.db) {
            db.close().await?;
        }
        Ok(())
    }
}

/// The workload flags of the demos that replay a Zipf stream of requests.
#[derive(Args, Clone, Debug)]
pub struct CommonArgs {
    #[command(flatten)]
    pub backends: Backends,

    /// How many requests the workload sends (per strategy compared).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub requests: u64,

    /// How many tasks send requests at the same time.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4_096))]
    pub concurrency: u64,

    /// How many distinct keys (rows) the workload draws from.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub keys: u64,

    /// Zipf exponent of the key popularity: 0 = uniform, 1 = typical web traffic, higher = hotter.
    #[arg(long, default_value_t = 1.0, value_parser = number_in(0.0, 5.0))]
    pub skew: f64,

    /// Artificial latency added to every database query, standing for a networked database
    /// doing real work. 0 shows the raw cost of the embedded SQLite.
    #[arg(long, default_value_t = 2.0, value_name = "MS", value_parser = number_in(0.0, 10_000.0))]
    pub db_latency_ms: f64,

    /// Seed of the workload's random draws; the same seed replays the same requests.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Print the report as JSON on stdout instead of a table (and no progress bars).
    #[arg(long)]
    pub json: bool,
}

impl CommonArgs {
    pub fn db_latency(&self) -> Duration {
        Duration::from_secs_f64(self.db_latency_ms / 1_000.0)
    }

    /// Database options seeding one row per key.
    pub fn db_options(&self) -> DbOptions {
        self.backends.db_options(self.keys, self.db_latency())
    }

    /// The workload these arguments describe, with the given share of writes.
    pub fn workload(&self, write_ratio: f64) -> Workload {
        Workload {
            requests: self.requests,
            concurrency: self.concurrency as usize,
            keys: self.keys,
            skew: self.skew,
            write_ratio,
            seed: self.seed,
            progress: !self.json,
        }
    }
}

/// Runs a demo's async body on a tokio runtime and turns its outcome into the exit code. An error
/// is printed as its chain of messages, each of which says what to do; a backtrace would only
/// bury them.
pub fn run_demo(demo: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = tokio::runtime::Runtime::new().expect("start the tokio runtime");
    match runtime.block_on(demo) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("\n{cause}");
            }
            ExitCode::FAILURE
        }
    }
}

/// A clap value parser for a number from `min` to `max`, inclusive, whose error names the range.
pub fn number_in(min: f64, max: f64) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync {
    move |s| match s.parse::<f64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("expected a number from {min} to {max}, got '{s}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Demo {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn defaults_and_overrides() {
        let demo =
            Demo::try_parse_from(["demo", "--requests", "500", "--db-latency-ms", "0.5"]).unwrap();
        assert_eq!(demo.common.requests, 500);
        assert_eq!(demo.common.db_latency(), Duration::from_micros(500));
        assert_eq!(demo.common.workload(0.0).concurrency, 32);
    }

    #[test]
    fn bad_values_are_rejected_with_the_range() {
        let err = Demo::try_parse_from(["demo", "--db-latency-ms=-3"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("from 0 to 10000"), "{err}");
        assert!(Demo::try_parse_from(["demo", "--concurrency", "0"]).is_err());
        assert!(Demo::try_parse_from(["demo", "--skew", "lots"]).is_err());
    }
}
