//! `cargo run -p cache-aside`: one Zipf workload against the database alone, then through
//! cache-aside twice, from a cold start and warm, and a table of what each cost.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cache_aside::{CacheAside, Settings, Users};
use clap::Parser;
use scenario::{Line, conclude};
use shared::Cleanup;
use shared::Op;
use shared::cli::{ClosedLoopArgs, WorkloadArgs, number_in, whole_in};
use shared::db::seed_user;
use shared::report::{self, Report};

/// Cache-aside: watch a cache beat a slow database, and see what it costs when it does not.
///
/// Replays the same Zipf-skewed stream of user lookups three times: straight to the database,
/// then through a Redis cache-aside cache (miss: load and store with a TTL; write: update, then
/// delete the key) from a cold start, then again through the now warm cache. It ends with a table
/// of throughput, latency, database queries and hit ratio. The cold row depends on --requests
/// (each key misses once, so the more requests, the closer it gets to warm); the warm row does
/// not, and the headline is drawn from it.
///
/// Try --db-latency-ms 0 --concurrency 1 to see how little a cache buys against the embedded
/// SQLite (a round trip against a query, within tens of microseconds, and on a busy machine a
/// loss; --db-latency-ms 0 alone shows why it wins more when 32 tasks queue for 10 database
/// connections), --write-ratio 0.1 to add updates that invalidate, and --keys 50000 --requests
/// 100000 with and without --skew 0 to see how much of the cold start's hit ratio comes from skew
/// once keys outnumber repeats (with the default 1,000 keys every key is cached after its first
/// miss, so the skew hardly changes the hit ratio).
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

mod scenario;

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

    // 2. The same requests through cache-aside, starting cold; 3. again, now warm.
    let settings = Settings {
        ttl: Duration::from_secs(cli.ttl_secs),
        jitter: Duration::from_secs(cli.ttl_secs / 10),
        ..Settings::default()
    };
    let users = Arc::new(Users::new(
        db.clone(),
        CacheAside::new(conn, stage.namespace().clone(), settings),
    ));
    let through_the_cache = |label: &'static str| {
        let users = users.clone();
        workload.run(label, move |op| {
            let users = users.clone();
            async move {
                match op {
                    Op::Read(id) => users.get(id).await.map(drop),
                    Op::Write(id) => users.update(&updated(id)).await.map(drop),
                }
            }
        })
    };
    let cold = through_the_cache(COLD).await;
    let (cold_queries, cold_stats) = (db.queries(), users.cache().stats());
    db.reset_queries();
    let warm = through_the_cache(WARM).await;
    let (warm_queries, warm_stats) = (db.queries(), users.cache().stats() - cold_stats);

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
    for (label, run, queries, stats) in [
        (COLD, &cold, cold_queries, cold_stats),
        (WARM, &warm, warm_queries, warm_stats),
    ] {
        summary.rows.push(Line {
            hit_ratio: Some(stats.hit_ratio()),
            redis_errors: Some(stats.errors),
            ..Line::new(label, run, queries)
        });
    }
    summary.conclusion = match &summary.rows[..] {
        [base, cold_line, warm_line] => conclude(base, cold_line, warm_line, args.db_latency_ms),
        _ => unreachable!("three rows were pushed"),
    };
    summary.print(args.report.format);
    if let Some(path) = &args.report.plot {
        let title = "Latency of every request: the database alone vs cache-aside";
        let series = [
            ("database only", &baseline.histogram),
            (COLD, &cold.histogram),
            (WARM, &warm.histogram),
        ];
        shared::plot::percentiles(path, title, &series)?;
    }

    for (run, line) in [(&baseline, "database only"), (&cold, COLD), (&warm, WARM)] {
        if let Some(error) = &run.first_failure {
            eprintln!("{line}: {} requests failed, first: {error}", run.failures);
        }
    }

    Ok(())
}

/// The row of the cache's first pass over the requests, which starts empty.
const COLD: &str = "cache-aside, cold start";
/// The row of its second pass over the same requests.
const WARM: &str = "cache-aside, warm";

/// The row a write stores: the seed user with one more karma point.
fn updated(id: i64) -> shared::User {
    let mut user = seed_user(id);
    user.karma += 1;
    user
}
