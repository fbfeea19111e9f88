//! `cargo run -p stampede`: a hot key expires under a burst of requests, then a steady stream of
//! requests runs across many expiries, once per strategy, and two tables show what each cost.

mod scenario;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use serde::Serialize;
use shared::cli::{WorkloadArgs, number_in, whole_in};
use shared::report::{Format, Report};
use shared::{Cleanup, DbOptions};

use scenario::Demo;
use scenario::burst::BurstLine;
use scenario::steady::SteadyLine;

/// Cache stampede: a thousand requests for a key that just expired, and what each defence does.
///
/// Scenario 1 (burst): a hot product page is cached, then expires, and --requests requests for it
/// arrive at once, spread over --instances simulated application instances (each with its own
/// Redis connections and in-process state) sharing one database whose every query takes
/// --db-latency-ms. Scenario 2 (steady): --rate requests per second for --steady-secs over --keys
/// Zipf-popular pages cached for --ttl-ms, so every page expires several times while in demand.
///
/// Each scenario runs once per strategy: no protection, in-process single flight, a distributed
/// lock with woken waiters, XFetch (probabilistic early recomputation) and stale-while-revalidate.
///
/// Try --db-latency-ms 300 to see a slower query's stampede (and wait for it), --beta 3 to make
/// XFetch refresh earlier, --instances 1 to see single flight match the lock, and --plot
/// burst.svg for a chart of every request's latency.
#[derive(Parser)]
#[command(name = "stampede", version)]
pub struct Cli {
    #[command(flatten)]
    workload: WorkloadArgs,

    /// Which scenarios to run.
    #[arg(long, value_enum, default_value_t = Scenario::Both)]
    scenario: Scenario,

    /// How many application instances share the work, each with its own connections and state.
    #[arg(long, default_value_t = 4, value_parser = whole_in(1, 64))]
    instances: u64,

    /// Database connections per instance; the database pool is this times --instances.
    #[arg(long, default_value_t = 10, value_parser = whole_in(1, 100))]
    pool_per_instance: u64,

    /// Steady: requests per second.
    #[arg(long, default_value_t = 1_000, value_parser = whole_in(1, 20_000))]
    rate: u64,

    /// Steady: how long the stream runs per strategy, in seconds.
    #[arg(long, default_value_t = 2.0, value_name = "SECS", value_parser = number_in(0.1, 600.0))]
    steady_secs: f64,

    /// Steady: how long a page stays fresh, in milliseconds.
    #[arg(long, default_value_t = 500, value_name = "MS", value_parser = whole_in(10, 3_600_000))]
    ttl_ms: u64,

    /// XFetch's beta: above 1 refreshes earlier, below 1 later, 0 never early.
    #[arg(long, default_value_t = 1.0, value_parser = number_in(0.0, 100.0))]
    beta: f64,
}

/// The stampede demo's own defaults for the shared workload flags: a burst of a thousand
/// requests, fifty pages, and a slow query worth protecting.
const DEFAULTS: [(&str, &str); 3] = [
    ("requests", "1000"),
    ("keys", "50"),
    ("db_latency_ms", "100"),
];

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Burst,
    Steady,
    Both,
}

/// Both reports, for `--format json`.
#[derive(Serialize)]
struct Reports {
    burst: Option<Report<BurstLine>>,
    steady: Option<Report<SteadyLine>>,
}

fn main() -> ExitCode {
    let cli: Cli = shared::cli::parse_with_defaults(&DEFAULTS);
    shared::run::run_demo(|cleanup| run(cli, cleanup))
}

async fn run(cli: Cli, cleanup: Cleanup) -> anyhow::Result<()> {
    let args = &cli.workload;
    let db = DbOptions {
        products: args.keys as i64,
        latency: args.db_latency(),
        max_connections: (cli.pool_per_instance * cli.instances) as u32,
        ..DbOptions::default()
    };
    let stage = args.backends.stage("stampede", db, &cleanup).await?;
    let demo = Demo::new(&cli, &stage);

    let mut reports = Reports {
        burst: None,
        steady: None,
    };
    // The chart: the burst tells the story best; the steady stream when it runs alone.
    let mut chart = None;
    if cli.scenario != Scenario::Steady {
        let (report, latencies) = scenario::burst::run(&demo).await?;
        reports.burst = Some(report);
        chart = Some(("A burst on a key that just expired", latencies));
    }
    if cli.scenario != Scenario::Burst {
        let (report, latencies) = scenario::steady::run(&demo).await?;
        reports.steady = Some(report);
        chart.get_or_insert(("Steady traffic across many expiries", latencies));
    }

    if args.report.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        let format = args.report.format;
        let texts = [
            reports.burst.as_ref().map(|report| report.render(format)),
            reports.steady.as_ref().map(|report| report.render(format)),
        ];
        for text in texts.into_iter().flatten() {
            println!("{text}");
        }
    }
    if let (Some(path), Some((title, latencies))) = (&args.report.plot, &chart) {
        let series: Vec<_> = latencies
            .iter()
            .map(|(kind, l)| (kind.label(), l))
            .collect();
        shared::plot::percentiles(path, &format!("{title}: every request's latency"), &series)?;
    }

    Ok(())
}

/// How long every database load takes.
fn load_time(cli: &Cli) -> Duration {
    cli.workload.db_latency()
}
