//! Command-line arguments every lesson's demo shares.
//!
//! Each demo flattens [`WorkloadArgs`] into its own clap parser, so `--help` reads the same in
//! every lesson and a learner who has scaled one demo knows how to scale the next. A demo whose
//! story needs other defaults (the stampede demo's slow database, say) sets them with
//! [`parse_with_defaults`] rather than defining the flags again. Values are checked when parsed:
//! a bad one exits with clap's message naming the flag and the accepted range.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, CommandFactory, FromArgMatches};

use crate::connection::{RedisTarget, is_cluster};
use crate::db::DbOptions;
use crate::redact::redact;
use crate::report::Format;
use crate::server::ServerOptions;
use crate::stage::{Cleanup, Stage};
use crate::workload::Workload;

/// Where the demo's Redis and database are.
#[derive(Args, Clone, Debug)]
pub struct Backends {
    /// Redis to use, e.g. redis://127.0.0.1:6379/0. Unset: a private redis-server is started
    /// from PATH for this run and stopped at its end. The demo only touches keys under its own
    /// prefix and removes them when done.
    // `--help` names the variable but never shows its value: URLs carry passwords.
    #[arg(
        long,
        global = true,
        env = "REDIS_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub redis_url: Option<String>,

    /// Run on a Redis Cluster: the one --redis-url names (any of its nodes), else a private
    /// cluster of three masters started for this run. A redis+cluster://HOST:PORT/ URL says the
    /// same without the flag.
    #[arg(long, global = true, env = "REDIS_CLUSTER", value_parser = clap::builder::BoolishValueParser::new())]
    pub redis_cluster: bool,

    /// Database to use: sqlite://PATH or postgres://USER:PASS@HOST/DB. Unset: a private SQLite
    /// file, deleted at the end. Against PostgreSQL the demo works in a schema of its own.
    // Its value stays out of `--help` too.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,
}

impl Backends {
    /// How the report names the Redis in use (its password hidden), e.g. `private cluster`.
    pub fn redis_label(&self) -> String {
        let cluster = self.redis_cluster || self.redis_url.as_deref().is_some_and(is_cluster);
        match (&self.redis_url, cluster) {
            (Some(url), true) if !is_cluster(url) => format!("cluster at {}", redact(url)),
            (Some(url), _) => redact(url),
            (None, true) => "private cluster".into(),
            (None, false) => "private server".into(),
        }
    }

    /// Gets the Redis these flags name (or starts a private one) and opens the database `db`
    /// describes, as the stage of one run of `lesson`, whose leftovers `cleanup` will remove
    /// however the run ends. Errors carry advice for the learner.
    pub async fn stage(
        &self,
        lesson: &str,
        db: DbOptions,
        cleanup: &Cleanup,
    ) -> anyhow::Result<Stage> {
        self.stage_with(lesson, db, ServerOptions::default(), cleanup)
            .await
    }

    /// [`stage`](Self::stage), with a private server (when no URL is given) run as `server` says.
    pub async fn stage_with(
        &self,
        lesson: &str,
        mut db: DbOptions,
        server: ServerOptions,
        cleanup: &Cleanup,
    ) -> anyhow::Result<Stage> {
        db.url = self.database_url.clone();
        let redis = RedisTarget::choose_with(self.redis_url.as_deref(), self.redis_cluster, server)
            .context("could not get a Redis for the demo")?;
        let mut stage = Stage::open(lesson, redis, db).await?;
        cleanup.register(stage.leftovers());
        let removed = stage
            .sweep_killed_runs()
            .await
            .context("could not look for keys that killed runs of the demo left")?;
        if removed > 0 {
            eprintln!("Removed {removed} keys left on Redis by runs of {lesson} that were killed.");
        }
        Ok(stage)
    }
}

/// How a demo reports.
#[derive(Args, Clone, Debug)]
pub struct ReportArgs {
    /// How to print the report: a table for the terminal, Markdown as the book includes it,
    /// or JSON for scripts (the last two without progress bars).
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Also draw the demo's chart into this SVG file.
    #[arg(long, global = true, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
}

/// The workload flags every demo flattens: where, how much, how skewed, how slow a database.
#[derive(Args, Clone, Debug)]
pub struct WorkloadArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub backends: Backends,

    /// How many requests the workload sends (per strategy compared).
    #[arg(long, default_value_t = 20_000, value_parser = whole_in(1, 10_000_000))]
    pub requests: u64,

    /// How many distinct keys (rows) the workload draws from.
    #[arg(long, default_value_t = 1_000, value_parser = whole_in(1, 1_000_000))]
    pub keys: u64,

    /// Zipf exponent of the key popularity: 0 = uniform, 1 = typical web traffic, higher = hotter.
    #[arg(long, default_value_t = 1.0, value_parser = number_in(0.0, 5.0))]
    pub skew: f64,

    /// Artificial latency added to every database query, standing for a networked database
    /// doing real work. 0 shows the raw cost of the embedded SQLite.
    #[arg(long, default_value_t = 2.0, value_name = "MS", value_parser = number_in(0.0, 10_000.0))]
    pub db_latency_ms: f64,

    /// Seed of the workload's random draws; the same seed replays the same requests.
    #[arg(long, default_value_t = 42, value_parser = whole_in(0, u64::MAX))]
    pub seed: u64,

    #[command(flatten)]
    #[allow(missing_docs)]
    pub report: ReportArgs,
}

/// The flag of the demos whose requests come from a fixed number of tasks (a closed loop).
#[derive(Args, Clone, Debug)]
pub struct ClosedLoopArgs {
    /// How many tasks send requests at the same time.
    #[arg(long, default_value_t = 32, value_parser = whole_in(1, 4_096))]
    pub concurrency: u64,
}

impl WorkloadArgs {
    /// The database latency as a duration.
    pub fn db_latency(&self) -> Duration {
        Duration::from_secs_f64(self.db_latency_ms / 1_000.0)
    }

    /// Database options seeding one user and one product per key, each query slowed by the
    /// latency.
    pub fn db_options(&self) -> DbOptions {
        DbOptions {
            users: self.keys as i64,
            products: self.keys as i64,
            latency: self.db_latency(),
            ..DbOptions::default()
        }
    }

    /// The closed-loop workload these arguments describe, with the given share of writes.
    pub fn workload(&self, closed: &ClosedLoopArgs, write_ratio: f64) -> Workload {
        Workload {
            requests: self.requests,
            concurrency: closed.concurrency as usize,
            keys: self.keys,
            skew: self.skew,
            write_ratio,
            seed: self.seed,
            progress: self.report.format.progress(),
        }
    }
}

/// Parses the command line into `C`. A negative number is read as a flag's value, so that
/// `--requests -1` gets the range message every bad value gets, not "unexpected argument".
pub fn parse<C: CommandFactory + FromArgMatches>() -> C {
    parse_with_defaults(&[])
}

/// [`parse`], with other defaults for some flags: `(flag id, value)` pairs, the id being the
/// field's name, e.g. `("db_latency_ms", "100")`. `--help` shows them.
pub fn parse_with_defaults<C: CommandFactory + FromArgMatches>(
    defaults: &[(&str, &'static str)],
) -> C {
    let mut command = C::command().allow_negative_numbers(true);
    for &(id, value) in defaults {
        command = command.mut_arg(id, |arg| arg.default_value(value));
    }
    let matches = command.get_matches();
    C::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
}

/// A clap value parser for a whole number from `min` to `max`, inclusive, whose error names the
/// range (for any bad value: too big, negative, or not a number).
pub fn whole_in(min: u64, max: u64) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync {
    move |s| match s.parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!(
            "expected a whole number from {min} to {max}, got '{s}'"
        )),
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
        workload: WorkloadArgs,
        #[command(flatten)]
        closed: ClosedLoopArgs,
    }

    #[test]
    fn defaults_and_overrides() {
        let demo =
            Demo::try_parse_from(["demo", "--requests", "500", "--db-latency-ms", "0.5"]).unwrap();
        assert_eq!(demo.workload.requests, 500);
        assert_eq!(demo.workload.db_latency(), Duration::from_micros(500));
        assert_eq!(demo.workload.workload(&demo.closed, 0.0).concurrency, 32);
    }

    #[test]
    fn a_demo_can_change_the_defaults() {
        let command = Demo::command().mut_arg("db_latency_ms", |a| a.default_value("100"));
        let matches = command.try_get_matches_from(["demo"]).unwrap();
        let demo = Demo::from_arg_matches(&matches).unwrap();
        assert_eq!(demo.workload.db_latency(), Duration::from_millis(100));
    }

    #[test]
    fn bad_values_are_rejected_with_the_range() {
        let err = Demo::try_parse_from(["demo", "--db-latency-ms=-3"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("from 0 to 10000"), "{err}");
        assert!(Demo::try_parse_from(["demo", "--concurrency", "0"]).is_err());
        let negative = Demo::command()
            .allow_negative_numbers(true)
            .try_get_matches_from(["demo", "--requests", "-1"])
            .err()
            .unwrap()
            .to_string();
        assert!(
            negative.contains("from 1 to 10000000, got '-1'"),
            "{negative}"
        );
        assert!(Demo::try_parse_from(["demo", "--skew", "lots"]).is_err());
    }
}
