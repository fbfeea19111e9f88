//! `cargo run -p write-behind`: one write-heavy Zipf workload of score increments through the
//! database alone, write-through, write-behind and the source material's in-process queue; then
//! write-behind again with its flusher, a child process, killed mid-run; and a table of what each
//! cost and whether the database ended up with every acknowledged write, once.

mod scenario;

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use clap::Parser;
use shared::cli::{ClosedLoopArgs, WorkloadArgs};
use shared::report::{self, Report};
use shared::{Cleanup, Persistence, ServerOptions, comeback};
use write_behind::write::{check_eviction_policy, persistence};
use write_behind::{Apply, Settings};

use scenario::modes::{self, Mode};
use scenario::{Demo, child};

/// Write-behind: acknowledged writes that a crash cannot lose.
///
/// Replays one Zipf-skewed stream of score increments (+1 to a player's points, --requests of
/// them) four ways: straight to the database; write-through (commit, then cache); write-behind
/// (one Redis script caches the new score and queues it on a Redis Stream; a flusher commits
/// batches); and the source material's write-behind, whose queue lives in process memory.
/// Then write-behind twice more with its flusher in a child process that is killed with
/// SIGKILL right after a commit, before its acknowledgement: once applying results with
/// versions (the lesson's way), once applying increments (the naive way). A new flusher takes
/// over. Each row ends by comparing the database with every acknowledged write: lost writes,
/// and writes applied twice.
///
/// The private Redis keeps an append-only file fsynced every second, as write-behind needs.
#[derive(Parser)]
#[command(name = "write-behind", version)]
struct Cli {
    #[command(flatten)]
    common: WorkloadArgs,

    #[command(flatten)]
    closed: ClosedLoopArgs,

    /// How many queues (Redis Streams) the players are spread over.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    shards: u16,

    /// The most writes one flush commits in one transaction.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch_size: u64,
}

fn main() -> ExitCode {
    if let Some(role) = child::role_from_env() {
        return child::run(role);
    }
    // Half the other demos' requests: the database-alone and write-through rows are slow on
    // purpose, and the run should stay near 15 seconds.
    let cli: Cli = shared::cli::parse_with_defaults(&[("requests", "10000")]);
    shared::run::run_demo(|cleanup| run(cli, cleanup))
}

async fn run(cli: Cli, cleanup: Cleanup) -> anyhow::Result<()> {
    let args = &cli.common;
    let durable = ServerOptions {
        persistence: Persistence::AofEverySec,
        ..ServerOptions::default()
    };
    let stage = args
        .backends
        .stage_with("write-behind", args.db_options(), durable, &cleanup)
        .await?;
    let db = stage.db().clone();
    write_behind::table::create(&db, args.keys as i64)
        .await
        .context("could not create the scores table")?;
    check_eviction_policy(&stage.conn())
        .await
        .map_err(anyhow::Error::msg)?;
    let persistence = persistence(&stage.conn()).await;
    if let Some(none) = persistence.as_deref().filter(|p| p.starts_with("none")) {
        eprintln!("Note: this Redis keeps nothing across a crash of its own. Persistence {none}.");
    }
    let demo = Demo {
        stage: &stage,
        settings: Settings {
            shards: cli.shards,
            batch_size: cli.batch_size as usize,
            ..Settings::default()
        },
        workload: args.workload(&cli.closed, 1.0),
    };

    let mut summary = Report::new(format!(
        "Write-behind vs write-through vs the database alone: {} score increments over {} tasks",
        report::count(args.requests),
        cli.closed.concurrency
    ));
    summary
        .setting("players", report::count(args.keys))
        .setting("skew", args.skew)
        .setting("db latency", format!("{} ms", args.db_latency_ms))
        .setting("batch", cli.batch_size)
        .setting("shards", cli.shards)
        .setting("db", db.backend())
        .setting("redis", args.backends.redis_label())
        .setting(
            "redis persistence",
            persistence.unwrap_or_else(|| "not known (CONFIG GET refused)".into()),
        )
        .setting(
            "keys without a TTL",
            "the queues and unflushed scores, by design: removed at the end, or by the next run \
             if this one is killed",
        );

    // Each try of a row gets a namespace of its own: a row run again after Redis failed it
    // must not flush what its first try left queued.
    let tries = AtomicUsize::new(0);
    let fresh = || demo.fresh(tries.fetch_add(1, Ordering::SeqCst));
    let (conn, url) = (stage.conn(), stage.redis_url());
    let mut again = Vec::new();
    for mode in Mode::ALL {
        let (line, repeated) = comeback::again_after_outage(&conn, &url, mode.label(), || async {
            modes::run(mode, &demo, &fresh().await?).await
        })
        .await?;
        if repeated {
            again.push(mode.label());
        }
        summary.rows.push(line);
    }
    for apply in [Apply::Versioned, Apply::Increments] {
        let what = child::label(apply);
        let (line, repeated) = comeback::again_after_outage(&conn, &url, what, || async {
            child::run_with_crash(apply, &demo, &fresh().await?).await
        })
        .await?;
        if repeated {
            again.push(what);
        }
        summary.rows.push(line);
    }
    summary.conclusion = report::measured_again(&again).unwrap_or_default()
        + &scenario::summary::conclude(&summary.rows);
    summary.print(args.report.format);
    Ok(())
}
