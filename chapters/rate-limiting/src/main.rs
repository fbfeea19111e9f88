//! `cargo run -p rate-limiting`: the five limiters and the source's versions, shared by several
//! instances, under the same clients at once; a table of what each admitted against the exact
//! limit; then Redis paused under a fail-open and a fail-closed limiter.

mod scenario;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rate_limiting::Limit;
use shared::Cleanup;
use shared::cli::{Backends, ReportArgs, whole_in};
use shared::report::{Format, Report};

use scenario::summary::{self, Line};
use scenario::{Settings, outage};

/// Rate limiting shared by every instance: five limiters, each one Redis script on Redis's clock,
/// measured against a perfect sliding window.
///
/// Every limiter (fixed window, sliding log, sliding window counter, token bucket, GCRA) and the
/// source material's versions (a log keyed by the second, a log that records refusals, INCR and
/// EXPIRE in two calls with a crash between, the token bucket fed each instance's own clock) run
/// at once on --instances instances, under the same four clients: one steady under the limit,
/// one bursting at every window edge, one retrying at once while refused, and a crowd. From the
/// Redis-clock times of every decision the table gives the most admitted in any window, the
/// decisions a perfect sliding window would have made otherwise, whether the retrier gets through,
/// the keys left without an expiry, memory per client and decision latency. Then Redis is paused
/// under a limiter that fails open and one that fails closed.
///
/// Try --burst 20 to see the buckets' bound grow, or --skew-ms 500.
#[derive(Parser)]
#[command(name = "rate-limiting", version)]
struct Cli {
    #[command(flatten)]
    backends: Backends,

    /// Requests per window each client may make.
    #[arg(long, default_value_t = 20, value_parser = whole_in(1, 10_000))]
    limit: u64,

    /// The window, in ms.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = whole_in(50, 60_000))]
    window_ms: u64,

    /// The token bucket's and GCRA's burst: requests a full bucket admits at once.
    #[arg(long, default_value_t = 5, value_parser = whole_in(1, 10_000))]
    burst: u64,

    /// Application instances sharing the limiters (each with its own connections).
    #[arg(long, default_value_t = 4, value_parser = whole_in(1, 64))]
    instances: u64,

    /// How long the clients send, in ms.
    #[arg(long, value_name = "MS", default_value_t = 3000, value_parser = whole_in(200, 600_000))]
    run_ms: u64,

    /// How far ahead one instance's clock runs, for the limiter fed instance clocks.
    #[arg(long, value_name = "MS", default_value_t = 100, value_parser = whole_in(0, 60_000))]
    skew_ms: u64,

    /// How many distinct clients make the crowd.
    #[arg(long, default_value_t = 50, value_parser = whole_in(1, 10_000))]
    crowd: u64,

    /// How long Redis is paused in the second part, in ms; 0 skips it.
    #[arg(long, value_name = "MS", default_value_t = 600, value_parser = whole_in(0, 60_000))]
    pause_ms: u64,

    #[command(flatten)]
    report: ReportArgs,
}

fn main() -> ExitCode {
    let cli: Cli = shared::cli::parse();
    shared::run::run_demo(|cleanup| run(cli, cleanup))
}

async fn run(cli: Cli, cleanup: Cleanup) -> anyhow::Result<()> {
    let stage = cli
        .backends
        .stage("rate-limiting", Default::default(), &cleanup)
        .await?;
    let limit = Limit::per(cli.limit as u32, Duration::from_millis(cli.window_ms))
        .with_burst(cli.burst as u32);
    let settings = Settings {
        limit,
        instances: cli.instances as u32,
        length: Duration::from_millis(cli.run_ms),
        skew_ms: cli.skew_ms as f64,
        crowd: cli.crowd as u32,
    };
    let format = cli.report.format;
    // Said before anything is measured, not after.
    let pause_part = cli.pause_ms > 0 && shared::RedisServer::can_start();
    if cli.pause_ms > 0 && !pause_part {
        eprintln!(
            "The Redis-down part needs a redis-server on PATH to pause (it never pauses yours): \
             skipped. Install one (Debian/Ubuntu: sudo apt-get install redis-server), or pass \
             --pause-ms 0 to leave the part out."
        );
    }
    let measured = scenario::run(&stage, settings, format.progress()).await?;
    // Redis may have restarted during the clients' run: this part waits for it, and is run
    // again if Redis went away in the middle of it.
    let (mut spoofed, again) = shared::comeback::again_after_outage(
        &stage.conn(),
        &stage.redis_url(),
        "the X-Forwarded-For client",
        || async { Ok(scenario::spoof::run(&stage, limit).await?) },
    )
    .await?;
    spoofed.measured_again = again;

    let mut table = Report::new(format!(
        "Rate limits shared by {} instances: {} requests per {} ms, {} ms of four clients",
        cli.instances, cli.limit, cli.window_ms, cli.run_ms
    ));
    table
        .setting("burst", cli.burst)
        .setting("skewed clock", format!("+{} ms", cli.skew_ms))
        .setting("crowd", cli.crowd)
        .setting("redis", cli.backends.redis_label());
    table.rows = measured.iter().map(|m| Line::new(m, limit)).collect();
    table.conclusion = summary::conclude(&table.rows, limit, cli.skew_ms, &spoofed);
    if let Some(path) = &cli.report.plot {
        scenario::chart::draw(path, &measured, limit)?;
    }
    let outage = if !pause_part {
        None
    } else {
        let pause = Duration::from_millis(cli.pause_ms);
        let lines = outage::run(limit, cli.instances as u32, pause).await?;
        let mut report = Report::new(format!(
            "Redis paused for {} ms under a token bucket, {} instances: fail open or fail closed",
            cli.pause_ms, cli.instances
        ));
        report
            .setting("budget per decision", "50 ms")
            .setting("redis", "a private server, paused with CLIENT PAUSE");
        report.conclusion = outage::conclude(&lines);
        report.rows = lines;
        Some(report)
    };
    // Two reports: one JSON document holding both, or one after the other.
    if format == Format::Json {
        let both = serde_json::json!({
            "limiters": table,
            "spoofed_forwarded_for": spoofed,
            "redis_down": outage,
        });
        println!("{}", serde_json::to_string_pretty(&both)?);
    } else {
        table.print(format);
        if let Some(outage) = outage {
            println!();
            outage.print(format);
        }
    }
    Ok(())
}
