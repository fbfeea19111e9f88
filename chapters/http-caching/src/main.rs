//! `cargo run -p http-caching`: the same shop API traffic through no cache, the source material's
//! middleware, the response cache, and the response cache answering conditional requests; every
//! answer checked; then a weather service switched off under steady traffic.

mod scenario;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use http_caching::Catalogue;
use shared::cli::{Backends, ReportArgs, number_in, whole_in};
use shared::report::{Format, Report};
use shared::{Cleanup, DbOptions};

use scenario::plan::Mix;
use scenario::{outage, table};

/// HTTP response caching that never serves one user's page to another, measured over real HTTP.
///
/// A shop's API (product pages, listing pages, each user's saved products, price changes) is
/// served on loopback four times, with no cache, with the source material's middleware (the path
/// as the key, everything stored), with the lesson's response cache (a key that covers the query,
/// the encoding and the user where it matters; only what may be shared is stored; writes
/// invalidate what they changed), and with the response cache answering If-None-Match from Redis.
/// The same Zipf-skewed requests from several users go through each, and every answer is checked:
/// a page for another user, another query, or a price change that did not happen is a wrong
/// answer. Then a slow, flaky weather service is switched off under steady traffic, behind the
/// source's plain-TTL cache and behind stale-while-revalidate and stale-if-error.
///
/// Try --write-ratio 0.1 to see invalidation cost hits, --db-latency-ms 0 to see what a hit saves
/// when a miss is cheap, or --upstream-failure-rate 0.5 for a service that fails half the time.
#[derive(Parser)]
#[command(name = "http-caching", version)]
struct Cli {
    #[command(flatten)]
    backends: Backends,

    /// Requests sent through each cache.
    #[arg(long, default_value_t = 12_000, value_parser = whole_in(100, 10_000_000))]
    requests: u64,

    /// Requests in flight at once.
    #[arg(long, default_value_t = 16, value_parser = whole_in(1, 1_000))]
    concurrency: u64,

    /// Products in the catalogue.
    #[arg(long, default_value_t = 500, value_parser = whole_in(10, 1_000_000))]
    products: u64,

    /// Users sending requests.
    #[arg(long, default_value_t = 20, value_parser = whole_in(2, 100_000))]
    users: u64,

    /// Zipf exponent of the products and pages asked for (0 is uniform).
    #[arg(long, default_value_t = 1.0, value_parser = number_in(0.0, 5.0))]
    skew: f64,

    /// Share of requests that change a price.
    #[arg(long, default_value_t = 0.01, value_parser = number_in(0.0, 1.0))]
    write_ratio: f64,

    /// Added to every database query, in ms.
    #[arg(long, value_name = "MS", default_value_t = 2, value_parser = whole_in(0, 10_000))]
    db_latency_ms: u64,

    /// The weather service's latency, in ms.
    #[arg(long, value_name = "MS", default_value_t = 150, value_parser = whole_in(0, 10_000))]
    upstream_latency_ms: u64,

    /// Share of the weather service's answers that fail while it is up.
    #[arg(long, default_value_t = 0.1, value_parser = number_in(0.0, 1.0))]
    upstream_failure_rate: f64,

    /// How long the weather service is off, in ms; 0 skips the weather part.
    #[arg(long, value_name = "MS", default_value_t = 1_500, value_parser = whole_in(0, 600_000))]
    outage_ms: u64,

    /// Seed of the requests drawn.
    #[arg(long, default_value_t = 42)]
    seed: u64,

    #[command(flatten)]
    report: ReportArgs,
}

fn main() -> ExitCode {
    let cli: Cli = shared::cli::parse();
    shared::run::run_demo(|cleanup| run(cli, cleanup))
}

async fn run(cli: Cli, cleanup: Cleanup) -> anyhow::Result<()> {
    let db = DbOptions {
        // The shared tables are not used: the catalogue has tables of its own.
        products: 1,
        users: 1,
        latency: Duration::from_millis(cli.db_latency_ms),
        max_connections: 16,
        ..DbOptions::default()
    };
    let stage = cli.backends.stage("http-caching", db, &cleanup).await?;
    let catalogue = Catalogue::create(stage.db().clone(), cli.products as i64, cli.users as i64)
        .await
        .context("could not create the catalogue's tables")?;
    let format = cli.report.format;
    let mix = Mix {
        requests: cli.requests,
        products: cli.products as i64,
        users: cli.users as u32,
        skew: cli.skew,
        write_ratio: cli.write_ratio,
        seed: cli.seed,
    };
    let measured = scenario::run(
        &stage,
        &catalogue,
        &mix,
        cli.concurrency as usize,
        format.progress(),
    )
    .await?;

    let mut caches = Report::new(format!(
        "{} requests of {} users through each cache, every answer checked",
        shared::report::count(cli.requests),
        cli.users
    ));
    caches
        .setting("concurrency", cli.concurrency)
        .setting("products", cli.products)
        .setting("writes", shared::report::percent(cli.write_ratio))
        .setting("db latency", format!("{} ms", cli.db_latency_ms))
        .setting("redis", cli.backends.redis_label())
        .setting("database", stage.db().backend());
    caches.rows = measured.iter().map(table::Line::new).collect();
    caches.conclusion = table::conclude(&caches.rows);
    if let Some(path) = &cli.report.plot {
        let series: Vec<(&str, &shared::metrics::Latency)> = measured
            .iter()
            .map(|m| (m.caching.label(), &m.load.histogram))
            .collect();
        shared::plot::percentiles(path, "Latency of the shop's API by cache", &series)?;
    }

    let weather = if cli.outage_ms == 0 {
        None
    } else {
        let settings = outage::Settings {
            latency: Duration::from_millis(cli.upstream_latency_ms),
            failure_rate: cli.upstream_failure_rate,
            outage: Duration::from_millis(cli.outage_ms),
            rate: 400.0,
            seed: cli.seed,
        };
        let lines = outage::run(&stage, settings, format.progress()).await?;
        let mut report = Report::new(format!(
            "A weather service off for {} ms under {:.0} requests/s",
            cli.outage_ms, settings.rate
        ));
        report
            .setting("service latency", format!("{} ms", cli.upstream_latency_ms))
            .setting(
                "failing while up",
                shared::report::percent(cli.upstream_failure_rate),
            )
            .setting("fresh", "1 s")
            .setting("stale-while-revalidate", "1 s")
            .setting("stale-if-error", "60 s");
        report.conclusion = outage::conclude(&lines, &settings);
        report.rows = lines;
        Some(report)
    };

    if format == Format::Json {
        let both = serde_json::json!({ "caches": caches, "weather": weather });
        println!("{}", serde_json::to_string_pretty(&both)?);
    } else {
        caches.print(format);
        if let Some(weather) = weather {
            println!();
            weather.print(format);
        }
    }
    Ok(())
}
