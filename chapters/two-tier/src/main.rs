//! `cargo run -p two-tier`: several application instances read one Zipf workload of items while a
//! back-office instance changes prices, through four readers in turn: Redis only, the source
//! material's dictionary L1, the two-tier cache with its backplane, and Redis's own client-side
//! caching. Then the eviction policies, on one trace.

mod scenario;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use shared::cli::{Backends, ReportArgs, number_in, whole_in};
use shared::{Cleanup, DbOptions, RedisServer, SetupError};
use two_tier::catalog;

/// Two-tier caching: an in-process L1 in front of Redis, and what keeps it honest.
///
/// For each reader, --instances application instances read items (Zipf-skewed, as real traffic
/// is) for --run-ms while a back-office instance changes a price every --write-every-ms. After
/// each write, a probe asks every instance for the item until all show the new price: the time
/// that takes is the write's staleness. Readers count stale reads: reads that began after a newer
/// version was committed and returned an older one, and those that began more than the L1
/// lifetime after it (beyond the two-tier cache's bound).
///
/// Then eviction: FIFO (the source's), LRU and TinyLFU (moka) at three sizes on one Zipf trace,
/// with and without a one-off scan of cold keys, and Redis's allkeys-lru against allkeys-lfu on
/// the same trace (private servers with a memory limit). --plot draws the hit ratios.
#[derive(Parser)]
#[command(name = "two-tier", version)]
struct Cli {
    #[command(flatten)]
    backends: Backends,

    /// How many application instances read, each with its own L1 and connections.
    #[arg(long, default_value_t = 4, value_parser = whole_in(1, 32))]
    instances: u64,

    /// How many items there are.
    #[arg(long, default_value_t = 1_000, value_parser = whole_in(10, 1_000_000))]
    items: u64,

    /// Zipf exponent of which items are read and written: 0 = uniform, 1 = typical web traffic.
    #[arg(long, default_value_t = 1.0, value_parser = number_in(0.0, 5.0))]
    skew: f64,

    /// How long each reader is measured.
    #[arg(long, default_value_t = 1_500, value_name = "MS", value_parser = whole_in(200, 600_000))]
    run_ms: u64,

    /// The time between two price changes.
    #[arg(long, default_value_t = 20, value_name = "MS", value_parser = whole_in(1, 60_000))]
    write_every_ms: u64,

    /// The most entries each instance's L1 holds (the source's held 1,000).
    #[arg(long, default_value_t = 1_000, value_parser = whole_in(1, 10_000_000))]
    l1_capacity: u64,

    /// How long an L1 copy is served: the bound when a backplane message is lost.
    #[arg(long, default_value_t = 1_000, value_name = "MS", value_parser = whole_in(10, 3_600_000))]
    l1_ttl_ms: u64,

    /// Artificial latency added to every database query.
    #[arg(long, default_value_t = 1.0, value_name = "MS", value_parser = number_in(0.0, 10_000.0))]
    db_latency_ms: f64,

    /// Requests in the eviction trace; 0 skips the eviction table.
    #[arg(long, default_value_t = 50_000, value_parser = whole_in(0, 100_000_000))]
    trace: u64,

    /// Distinct keys the eviction trace draws from.
    #[arg(long, default_value_t = 10_000, value_parser = whole_in(100, 10_000_000))]
    trace_keys: u64,

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

async fn run(cli: Cli, cleanup: Cleanup) -> anyhow::Result<()> {
    // Said now, not after the first two reports.
    if cli.trace > 0 && !RedisServer::can_start() {
        Err(SetupError::PrivateServerNeeded {
            part: "the eviction replay (it sets maxmemory on its Redis)",
            skip: "--trace 0",
        })?;
    }
    let db_options = DbOptions {
        latency: Duration::from_secs_f64(cli.db_latency_ms / 1_000.0),
        ..DbOptions::default()
    };
    let stage = cli.backends.stage("two-tier", db_options, &cleanup).await?;
    catalog::create(stage.db(), cli.items as i64)
        .await
        .context("could not create the items table")?;

    let (readers, layers) = scenario::readers::run(&cli, &stage).await?;
    readers.print(cli.report.format);
    if let Some(layers) = layers {
        println!();
        layers.print(cli.report.format);
    }

    if cli.trace > 0 {
        println!();
        scenario::eviction::run(&cli)
            .await?
            .print(cli.report.format);
    }
    Ok(())
}
