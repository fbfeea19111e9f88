//! `cargo run -p write-through`: one mixed read/write Zipf workload against the database alone,
//! through cache-aside, and through write-through, and a table of what each cost and whether any
//! read came back stale.

mod scenario;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use shared::Cleanup;
use shared::cli::{ClosedLoopArgs, WorkloadArgs, number_in};
use shared::metrics::Latency;
use shared::report::{self, Report};

use scenario::mode::{Kind, Mode};

/// Write-through: reads that always hit, and writes that never leave a stale value behind.
///
/// Replays the same Zipf-skewed stream of article reads and edits three times: straight to the
/// database; through cache-aside (a write deletes the key, the next read loads it); and through
/// write-through (a write commits, then stores the committed row with its version). Before the
/// two cached runs every article is read once, so they start warm. The table gives read hit
/// ratio, read and write latency, database queries, and stale reads: reads that returned an
/// older version than a write that had already committed and returned before the read began.
///
/// Try --write-ratio 0.5 to see what each write costs, or --skew 0 for uniform traffic.
#[derive(Parser)]
#[command(name = "write-through", version)]
struct Cli {
    #[command(flatten)]
    common: WorkloadArgs,

    #[command(flatten)]
    closed: ClosedLoopArgs,

    /// Share of requests that edit an article, from 0 to 1.
    #[arg(long, default_value_t = 0.1, value_parser = number_in(0.0, 1.0))]
    write_ratio: f64,
}

fn main() -> ExitCode {
    let cli: Cli = shared::cli::parse();
    shared::run::run_demo(|cleanup| run(cli, cleanup))
}

async fn run(cli: Cli, cleanup: Cleanup) -> anyhow::Result<()> {
    let args = &cli.common;
    let stage = args
        .backends
        .stage("write-through", args.db_options(), &cleanup)
        .await?;
    write_through::table::create(stage.db(), args.keys as i64)
        .await
        .context("could not create the articles table")?;
    let (conn, db) = (stage.conn(), stage.db().clone());
    let workload = args.workload(&cli.closed, cli.write_ratio);
    // Each cached mode in a namespace of its own, both under the run's.
    let modes = Kind::ALL.map(|kind| Mode::build(kind, &db, &conn, stage.namespace()));
    let mut summary = Report::new(format!(
        "Write-through vs cache-aside vs no cache: {} requests ({} writes) over {} tasks",
        report::count(args.requests),
        report::percent(cli.write_ratio),
        cli.closed.concurrency
    ));
    summary
        .setting("keys", report::count(args.keys))
        .setting("skew", args.skew)
        .setting("db latency", format!("{} ms", args.db_latency_ms))
        .setting("db", db.backend())
        .setting("redis", args.backends.redis_label());

    let modes: Vec<Arc<Mode>> = modes.into_iter().map(Arc::new).collect();
    let mut read_latencies = Vec::new();
    for mode in &modes {
        let (line, reads) = scenario::run(mode, &db, &workload, args.keys).await?;
        summary.rows.push(line);
        read_latencies.push(reads);
    }
    summary.conclusion = scenario::summary::conclude(&summary.rows);
    summary.print(args.report.format);
    if let Some(path) = &args.report.plot {
        let labels = modes.iter().map(|mode| mode.label());
        let series: Vec<(&str, &Latency)> = labels.zip(&read_latencies).collect();
        let title = "Read latency: no cache, cache-aside, write-through";
        shared::plot::percentiles(path, title, &series)?;
    }

    Ok(())
}
