//! `cargo run -p sessions`: users log in, browse and log out across three instances while an
//! attacker replays stolen and planted cookies, with the source material's sessions and the
//! lesson's.

mod scenario;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sessions::{Accounts, Clock, Deployment, Sessions, Timeouts};
use shared::cli::{Backends, ReportArgs, whole_in};
use shared::report::{Format, Report};
use shared::{Cleanup, DbOptions};

use scenario::{Settings, table};

/// Login sessions in Redis that every instance ends at once, measured over real HTTP.
///
/// Three instances of a small service share Redis and the database. Each user's attacker opens an
/// anonymous session and plants its ID in the victim's browser, and tries a wrong password; the
/// victim logs in, browses on whichever instance the balancer picks, and either logs out (the
/// attacker, who stole the cookie, replays it afterwards) or never comes back (the attacker keeps
/// the stolen session busy past the absolute timeout). The same users run against the source
/// material's sessions (any password, no rotation, a sliding expiry written on every request, a
/// copy in each instance's memory) and the lesson's, with the deadline pushed out on every request
/// and only past a threshold.
///
/// The timeouts are scaled down so that a run takes seconds: an idle timeout of 1.5 s stands for
/// the source's 24 hours. Try --refresh-after-ms 0 to pay a write per request, or --users 100.
#[derive(Parser)]
#[command(name = "sessions", version)]
struct Cli {
    #[command(flatten)]
    backends: Backends,

    /// Users, each with an attacker.
    #[arg(long, default_value_t = 24, value_parser = whole_in(2, 10_000))]
    users: u64,

    /// Requests each user sends while browsing.
    #[arg(long, default_value_t = 15, value_parser = whole_in(1, 100_000))]
    browse: u64,

    /// The time between two requests of a user, in ms.
    #[arg(long, value_name = "MS", default_value_t = 40, value_parser = whole_in(1, 10_000))]
    pace_ms: u64,

    /// A session unused this long ends, in ms (the source's sliding expiry too).
    #[arg(long, value_name = "MS", default_value_t = 1_500, value_parser = whole_in(100, 86_400_000))]
    idle_ms: u64,

    /// A session ends this long after its login however it is used, in ms.
    #[arg(long, value_name = "MS", default_value_t = 3_000, value_parser = whole_in(100, 86_400_000))]
    absolute_ms: u64,

    /// The idle deadline is pushed out only once this much of it has run down, in ms.
    #[arg(long, value_name = "MS", default_value_t = 300, value_parser = whole_in(0, 86_400_000))]
    refresh_after_ms: u64,

    /// How long the attacker replays a cookie after its logout (and keeps a stolen session busy
    /// past the absolute timeout), in ms.
    #[arg(long, value_name = "MS", default_value_t = 1_000, value_parser = whole_in(100, 600_000))]
    replay_ms: u64,

    /// Seed of the instances chosen.
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
    anyhow::ensure!(
        cli.refresh_after_ms < cli.idle_ms && cli.idle_ms <= cli.absolute_ms,
        "the timeouts must satisfy --refresh-after-ms < --idle-ms <= --absolute-ms (got {}, {} and \
         {}): a threshold as long as the idle timeout would let sessions expire while in use",
        cli.refresh_after_ms,
        cli.idle_ms,
        cli.absolute_ms
    );
    let db = DbOptions {
        // The shared tables are not used: the accounts have a table of their own.
        products: 1,
        users: 1,
        ..DbOptions::default()
    };
    let stage = cli.backends.stage("sessions", db, &cleanup).await?;
    let accounts = Accounts::create(stage.db().clone(), cli.users as i64)
        .await
        .context("could not create the accounts table")?;
    let timeouts = Timeouts {
        idle: Duration::from_millis(cli.idle_ms),
        absolute: Duration::from_millis(cli.absolute_ms),
        refresh_after: Duration::from_millis(cli.refresh_after_ms),
    };
    let deployment = Deployment {
        sessions: Sessions::Lesson,
        conn: stage.conn(),
        namespace: stage.namespace().clone(),
        accounts,
        timeouts,
        // The source's memory layer keeps an entry an hour; here, longer than the run.
        local_copy: Duration::from_secs(3_600),
        // Plain HTTP on loopback, as a deployment without TLS would serve it (browsers refuse a
        // Secure cookie over plain HTTP, except from localhost).
        secure: false,
        clock: Clock::default(),
    };
    let settings = Settings {
        users: cli.users as i64,
        browse: cli.browse as u32,
        pace: Duration::from_millis(cli.pace_ms),
        replay: Duration::from_millis(cli.replay_ms),
        seed: cli.seed,
    };
    let format = cli.report.format;
    let measured = scenario::run(&deployment, settings, format.progress()).await?;

    let mut report = Report::new(format!(
        "{} users and their attackers across 3 instances, per configuration",
        cli.users
    ));
    report
        .setting("idle timeout", format!("{} ms", cli.idle_ms))
        .setting("absolute timeout", format!("{} ms", cli.absolute_ms))
        .setting("refreshed after", format!("{} ms", cli.refresh_after_ms))
        .setting(
            "cookie",
            "HttpOnly, SameSite=Lax; not Secure (plain HTTP on loopback)",
        )
        .setting("redis", cli.backends.redis_label())
        .setting("database", stage.db().backend());
    report.rows = measured.iter().map(table::Line::new).collect();
    report.conclusion = table::conclude(&report.rows, cli.users as i64);
    if let Some(path) = &cli.report.plot {
        let series: Vec<(&str, &shared::metrics::Latency)> = measured
            .iter()
            .map(|m| (m.sessions.label(), &m.tally.browsing))
            .collect();
        shared::plot::percentiles(path, "Latency of GET /me by sessions", &series)?;
    }
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.print(format);
    }
    Ok(())
}
