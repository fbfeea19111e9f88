//! `cargo run -p invalidation`: several application instances read a Zipf workload of items and
//! category listings while a writer changes prices; for each strategy, how long after each commit
//! some instance could still read the old price, and what that cost. Then the same with Redis
//! stopped for a moment during the writes: which strategies leave old values behind.

mod scenario;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use invalidation::catalog;
use shared::cli::{Backends, ReportArgs, number_in, whole_in};
use shared::{Cleanup, DbOptions, RedisServer, ServerOptions, SetupError, Stage};

/// Cache invalidation: every strategy side by side, with the staleness each leaves measured.
///
/// For each strategy, --instances application instances read items and category listings
/// (Zipf-skewed, as real traffic is) while a back-office instance changes --writes prices.
/// After each write returns, a probe asks every instance for the item until all show the new
/// price: the time that takes is the write's staleness. The readers count the stale reads they were
/// served. Then a second run: the same writes with Redis stopped for --outage-ms in the middle,
/// counting the old values still served once Redis is back.
///
/// The TTL is 1 s, short so that the TTL-only strategy's bound shows within the run; every
/// other strategy would do as well with minutes.
#[derive(Parser)]
#[command(name = "invalidation", version)]
pub struct Cli {
    #[command(flatten)]
    backends: Backends,

    /// How many application instances read (each with its own connections, and for broadcast
    /// events its own copies).
    #[arg(long, default_value_t = 4, value_parser = whole_in(2, 32))]
    instances: u64,

    /// How many price changes each strategy makes.
    #[arg(long, default_value_t = 30, value_parser = whole_in(1, 10_000))]
    writes: u64,

    /// How many items there are (a listing per category holds a quarter of them).
    #[arg(long, default_value_t = 400, value_parser = whole_in(8, 100_000))]
    items: u64,

    /// Zipf exponent of which items are read and written: 0 = uniform, 1 = typical web traffic.
    #[arg(long, default_value_t = 1.0, value_parser = number_in(0.0, 5.0))]
    skew: f64,

    /// Artificial latency added to every database query.
    #[arg(long, default_value_t = 2.0, value_name = "MS", value_parser = number_in(0.0, 10_000.0))]
    db_latency_ms: f64,

    /// How long Redis is stopped in the second run; 0 skips the second run.
    #[arg(long, default_value_t = 400, value_name = "MS", value_parser = whole_in(0, 60_000))]
    outage_ms: u64,

    /// How many keys the KEYS-against-SCAN measurement fills Redis with (1% of them match the
    /// pattern deleted); 0 skips it.
    #[arg(long, default_value_t = 100_000, value_parser = whole_in(0, 10_000_000))]
    pause_keys: u64,

    /// Seed of the random draws.
    #[arg(long, default_value_t = 42, value_parser = whole_in(0, u64::MAX))]
    seed: u64,

    #[command(flatten)]
    report: ReportArgs,
}

fn main() -> ExitCode {
    let cli: Cli = shared::cli::parse();
    shared::run::run_demo(|cleanup| run(cli, cleanup))
}

/// The steady run, the KEYS-against-SCAN measurement, then the outage run on a Redis of its own.
async fn run(cli: Cli, cleanup: Cleanup) -> anyhow::Result<()> {
    // Said now, not after the first two reports.
    if cli.outage_ms > 0 && !RedisServer::can_start() {
        Err(SetupError::PrivateServerNeeded {
            part: "the outage run (it stops and restarts its Redis)",
            skip: "--outage-ms 0",
        })?;
    }
    let db_options = DbOptions {
        latency: Duration::from_secs_f64(cli.db_latency_ms / 1_000.0),
        ..DbOptions::default()
    };
    let stage = cli
        .backends
        .stage("invalidation", db_options.clone(), &cleanup)
        .await?;
    catalog::create(stage.db(), cli.items as i64)
        .await
        .context("could not create the items table")?;
    scenario::steady::run(&cli, &stage)
        .await?
        .print(cli.report.format);

    if cli.pause_keys > 0 {
        println!();
        scenario::keys_against_scan::run(&cli, &stage)
            .await?
            .print(cli.report.format);
    }

    if cli.outage_ms == 0 {
        return Ok(());
    }
    println!();
    // Stopping Redis needs a server of our own, whatever --redis-url says.
    let outage_stage = Stage::private("invalidation", db_options, ServerOptions::default())
        .await
        .context("the outage run needs redis-server on PATH (it stops and restarts its own)")?;
    cleanup.register(outage_stage.leftovers());
    catalog::create(outage_stage.db(), cli.items as i64).await?;
    scenario::outage::run(&cli, &outage_stage)
        .await?
        .print(cli.report.format);
    Ok(())
}
