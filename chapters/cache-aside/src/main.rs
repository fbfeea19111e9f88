//! `cargo run -p cache-aside`: one Zipf workload against the database alone, then through
//! cache-aside, and a table of what each cost.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cache_aside::{CacheAside, Settings, Users};
use clap::Parser;
use serde::Serialize;
use shared::Cleanup;
use shared::Op;
use shared::cli::{ClosedLoopArgs, WorkloadArgs, number_in, whole_in};
use shared::db::seed_user;
use shared::report::{self, Report, Row};
use shared::workload::RunStats;

/// Cache-aside: watch a cache beat a slow database, and see what it costs when it does not.
///
/// Replays the same Zipf-skewed stream of user lookups twice: straight to the database, then
/// through a Redis cache-aside cache (miss: load and store with a TTL; write: update, then delete
/// the key). It ends with a table of throughput, latency, database queries and hit ratio.
///
/// Try --db-latency-ms 0 --concurrency 1 to see how little a cache buys against the embedded
/// SQLite (a round trip against a query, within tens of microseconds, and on a busy machine a
/// loss; --db-latency-ms 0 alone shows why it wins more when 32 tasks queue for 10 database
/// connections), --write-ratio 0.1 to add updates that invalidate, and --keys 50000 --requests
/// 100000 with and without --skew 0 to see how much of the hit ratio comes from skew once keys
/// outnumber repeats (with the default 1,000 keys every key is cached after its first miss, so
/// the skew hardly changes the hit ratio).
#[derive(Parser)]
#[command(name = "cache-aside", version)]
struct Cli {
    #[command(flatten)]
    common: WorkloadArgs,

    #[command(flatten)]
    closed: ClosedLoopArgs,

    /// TTL of a cached user, in seconds (up to 10% jitter is added).
    #[arg(long, default_value_t = 300, value_parser = whole_in(1, 86_400))]
    ttl_secs: u64,

    /// Share of requests that update a user (and so invalidate it), from 0 to 1.
    #[arg(long, default_value_t = 0.0, value_parser = number_in(0.0, 1.0))]
    write_ratio: f64,
}

/// One row of the table.
#[derive(Serialize)]
struct Line {
    strategy: &'static str,
    requests_per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    db_queries: u64,
    /// `None` for the run without a cache.
    hit_ratio: Option<f64>,
    redis_errors: Option<u64>,
    failed_requests: u64,
    /// How many requests were sent.
    requests: u64,
}

impl Row for Line {
    fn headers() -> Vec<&'static str> {
        vec![
            "strategy",
            "requests/s",
            "p50",
            "p99",
            "db queries",
            "hit ratio",
            "redis errors",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.strategy.to_string(),
            report::count(self.requests_per_sec.round() as u64),
            report::micros(self.p50_us),
            report::micros(self.p99_us),
            report::count(self.db_queries),
            self.hit_ratio.map_or("-".into(), report::percent),
            self.redis_errors.map_or("-".into(), report::count),
        ]
    }
}

impl Line {
    fn new(strategy: &'static str, run: &RunStats, db_queries: u64) -> Self {
        Line {
            strategy,
            requests_per_sec: run.requests_per_sec,
            p50_us: run.latency.p50_us,
            p99_us: run.latency.p99_us,
            db_queries,
            hit_ratio: None,
            redis_errors: None,
            failed_requests: run.failures,
            requests: run.requests,
        }
    }
}

fn main() -> ExitCode {
    let cli: Cli = shared::cli::parse();
    shared::run::run_demo(|cleanup| run(cli, cleanup))
}

async fn run(cli: Cli, cleanup: Cleanup) -> anyhow::Result<()> {
    let args = &cli.common;

    let stage = args
        .backends
        .stage("cache-aside", args.db_options(), &cleanup)
        .await?;
    let (conn, db) = (stage.conn(), stage.db().clone());
    let workload = args.workload(&cli.closed, cli.write_ratio);

    // 1. Every request goes to the database.
    let baseline = {
        let db = db.clone();
        workload
            .run("database only", move |op| {
                let db = db.clone();
                async move {
                    match op {
                        Op::Read(id) => db.user(id).await.map(drop),
                        Op::Write(id) => db.update_user(&updated(id)).await.map(drop),
                    }
                }
            })
            .await
    };
    let baseline_queries = db.queries();
    db.reset_queries();

    // 2. The same requests through cache-aside, starting cold.
    let settings = Settings {
        ttl: Duration::from_secs(cli.ttl_secs),
        jitter: Duration::from_secs(cli.ttl_secs / 10),
        ..Settings::default()
    };
    let users = Arc::new(Users::new(
        db.clone(),
        CacheAside::new(conn, stage.namespace().clone(), settings),
    ));
    let cached = {
        let users = users.clone();
        workload
            .run("cache-aside", move |op| {
                let users = users.clone();
                async move {
                    match op {
                        Op::Read(id) => users.get(id).await.map(drop),
                        Op::Write(id) => users.update(&updated(id)).await.map(drop),
                    }
                }
            })
            .await
    };
    let cached_queries = db.queries();
    let stats = users.cache().stats();

    let mut summary = Report::new(format!(
        "Cache-aside vs the database alone: {} requests over {} task{}",
        report::count(args.requests),
        cli.closed.concurrency,
        if cli.closed.concurrency == 1 { "" } else { "s" }
    ));
    summary
        .setting("keys", report::count(args.keys))
        .setting("skew", args.skew)
        .setting("writes", report::percent(cli.write_ratio))
        .setting("db latency", format!("{} ms", args.db_latency_ms))
        .setting("db", db.backend())
        .setting("redis", args.backends.redis_label())
        .setting("ttl", format!("{} s", cli.ttl_secs));
    summary
        .rows
        .push(Line::new("database only", &baseline, baseline_queries));
    summary.rows.push(Line {
        hit_ratio: Some(stats.hit_ratio()),
        redis_errors: Some(stats.errors),
        ..Line::new("cache-aside", &cached, cached_queries)
    });
    summary.conclusion = conclude(&summary.rows[0], &summary.rows[1], args.db_latency_ms);
    summary.print(args.report.format);
    if let Some(path) = &args.report.plot {
        let title = "Latency of every request: the database alone vs cache-aside";
        let series = [
            ("database only", &baseline.histogram),
            ("cache-aside", &cached.histogram),
        ];
        shared::plot::percentiles(path, title, &series)?;
    }

    for (run, line) in [(&baseline, "database only"), (&cached, "cache-aside")] {
        if let Some(error) = &run.first_failure {
            eprintln!("{line}: {} requests failed, first: {error}", run.failures);
        }
    }

    Ok(())
}

/// The row a write stores: the seed user with one more karma point.
fn updated(id: i64) -> shared::User {
    let mut user = seed_user(id);
    user.karma += 1;
    user
}

/// One or two sentences drawn from the figures, whichever way they came out.
fn conclude(base: &Line, cached: &Line, db_latency_ms: f64) -> String {
    let speedup = cached.requests_per_sec / base.requests_per_sec;
    let hits = report::percent(cached.hit_ratio.unwrap_or(0.0));
    let queries = format!(
        "asked the database {} times instead of {}",
        report::count(cached.db_queries),
        report::count(base.db_queries)
    );
    if let Some(disturbed) = cached
        .redis_errors
        .and_then(|errors| report::disturbed(errors, cached.requests))
    {
        return format!("{disturbed} Cache-aside {queries}.");
    }
    let mut text = if speedup >= 1.1 {
        format!(
            "Cache-aside served {speedup:.1}x the requests per second of the database alone \
             with {hits} hits, at a p50 of {} instead of {}, and {queries}.",
            report::micros(cached.p50_us),
            report::micros(base.p50_us),
        )
    } else if speedup > 0.9 {
        format!(
            "A draw: cache-aside ran at {speedup:.2}x the database's throughput with {hits} hits \
             and {queries}. At {db_latency_ms} ms a miss costs about what a Redis round trip does, \
             so the cache mainly spares the database, not the caller."
        )
    } else {
        format!(
            "The cache lost: it ran at {speedup:.2}x the database's throughput (p50 {} vs {}) \
             even with {hits} hits. At {db_latency_ms} ms the database answers faster than a \
             Redis round trip; a cache pays when a miss costs more than the trip to Redis.",
            report::micros(cached.p50_us),
            report::micros(base.p50_us),
        )
    };
    if let Some(errors) = cached.redis_errors.filter(|e| *e > 0) {
        text.push_str(&format!(
            " Redis failed {} times; those requests were answered by the database.",
            report::count(errors)
        ));
    }
    text
}
