//! `cargo run -p capstone`: the service's two instances under one mixed workload in each
//! configuration, from no cache to three layers and conditional requests, every answer checked.
//! `cargo run -p capstone -- serve` keeps one deployment running for a browser and `curl`;
//! `cargo run -p capstone -- faults` breaks its parts one after another under traffic.

mod faults;
mod scenario;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use shared::cli::{Backends, ReportArgs, number_in, whole_in};
use shared::report::{Format, Report};
use shared::server::{Persistence, ServerOptions};
use shared::{Cleanup, DbOptions};

use scenario::plan::Mix;
use scenario::{Run, table};

/// The source material's applications as one service, built from the course's lessons.
///
/// Two instances of the service share Redis and the database: product reads through two tiers
/// (memory, then Redis) kept in step by a backplane, category pages through memory, Redis and a
/// disk layer (compressed with LZ4, warmed with jittered TTLs, the next page prefetched), task
/// counts cached under a generation that every write raises, a slow analytics dashboard served
/// stale while one refresh runs (and refreshed by every price change), weather and exchange rates
/// from a slow third party through an upstream cache, news articles written through, their views
/// written behind and trending derived from them, logins with rotating sessions, and a GCRA rate
/// limit per client. The same requests (Zipf-distributed reads, views, price changes, new tasks,
/// edited articles, logins, and one client far over its limit) go through four configurations: no
/// cache, Redis only, memory and Redis, and the same with clients that keep ETags. Every answer is
/// checked; every product and article read is checked for staleness against the writes
/// acknowledged before it began, trending against the views acknowledged, and the dashboard
/// against the price changes acknowledged.
///
/// Try --db-latency-ms 20 for a slower database, --skew 0.6 for flatter traffic, `serve` to
/// keep the service running (with its live dashboard), or `faults` to break its parts under
/// traffic.
#[derive(Parser)]
#[command(name = "capstone", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    backends: Backends,

    /// Requests sent to each configuration.
    #[arg(long, default_value_t = 20_000, value_parser = whole_in(100, 10_000_000))]
    requests: u64,

    /// Requests in flight at once, over both instances.
    #[arg(long, default_value_t = 16, value_parser = whole_in(2, 1_000))]
    concurrency: u64,

    /// Items in the catalogue.
    #[arg(long, global = true, default_value_t = 2_000, value_parser = whole_in(10, 1_000_000))]
    items: u64,

    /// Users sending requests.
    #[arg(long, global = true, default_value_t = 200, value_parser = whole_in(1, 1_000_000))]
    users: u64,

    /// How skewed the reads are (Zipf's exponent): 0 is uniform.
    #[arg(long, global = true, default_value_t = 1.0, value_parser = number_in(0.0, 5.0))]
    skew: f64,

    /// The share of requests that write (a price change, a new task or an edited article).
    #[arg(long, global = true, default_value_t = 0.02, value_parser = number_in(0.0, 1.0))]
    write_ratio: f64,

    /// The share of requests sent by the one client over its limit.
    #[arg(long, global = true, default_value_t = 0.1, value_parser = number_in(0.0, 1.0))]
    greedy_ratio: f64,

    /// Requests a second (and in a burst) each client may send.
    #[arg(long, global = true, default_value_t = 50, value_parser = whole_in(1, 1_000_000))]
    rate_limit: u64,

    /// Added to every database query, in ms: a database across a network, under load.
    #[arg(long, global = true, value_name = "MS", default_value_t = 5, value_parser = whole_in(0, 10_000))]
    db_latency_ms: u64,

    /// How long the analytics report takes to compute, in ms.
    #[arg(long, global = true, value_name = "MS", default_value_t = 2_000, value_parser = whole_in(0, 60_000))]
    report_ms: u64,

    /// Category pages rendered into Redis and the disk before traffic starts.
    #[arg(long, default_value_t = 8, value_parser = whole_in(0, 1_000))]
    warm: u64,

    /// Seed of the requests drawn.
    #[arg(long, global = true, default_value_t = 42)]
    seed: u64,

    #[command(flatten)]
    report: ReportArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Keep the service running (memory, Redis and disk; ETags) until Ctrl-C, for a browser and
    /// `curl`.
    Serve {
        /// The first instance's port; the second listens on the next one.
        #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u16).range(1024..))]
        port: u16,
    },
    /// Break the service's parts one after another under steady traffic: Redis killed and
    /// restarted, Redis paused, PostgreSQL restarted, one instance killed and restarted. Every
    /// answer is checked and every write audited against the database at the end; exits
    /// non-zero if an answer was wrong, an acknowledged write was lost or applied twice, or a
    /// 5xx came where the chapter says none belongs. Runs on a private redis-server of its own
    /// (it kills it), with an append-only file fsynced at every write.
    Faults {
        /// Requests a second, over both instances.
        #[arg(long, default_value_t = 300, value_parser = whole_in(10, 100_000))]
        rate: u64,
        /// How long each fault lasts, in ms.
        #[arg(long, value_name = "MS", default_value_t = 2_000, value_parser = whole_in(100, 600_000))]
        fault_ms: u64,
        /// Steady traffic before the first fault and after each, in ms.
        #[arg(long, value_name = "MS", default_value_t = 3_000, value_parser = whole_in(500, 600_000))]
        steady_ms: u64,
        /// The shell command that restarts the PostgreSQL server DATABASE_URL names, e.g.
        /// 'sudo pg_ctlcluster 15 main restart'. Without it the restart is skipped.
        #[arg(long, value_name = "COMMAND")]
        restart_postgres: Option<String>,
        /// Instead of the faults, a soak: steady traffic for this many seconds (300 or more to
        /// see a leak), memory sampled every 10 s, keys without a TTL listed at the end.
        #[arg(long, value_name = "SECS", value_parser = whole_in(10, 86_400))]
        soak_secs: Option<u64>,
    },
}

/// Users with an account (user 1 the administrator); each login hashes with Argon2.
const ACCOUNTS: i64 = 10;

fn main() -> ExitCode {
    let cli: Cli = shared::cli::parse();
    shared::run::run_demo(|cleanup| run(cli, cleanup))
}

async fn run(cli: Cli, cleanup: Cleanup) -> anyhow::Result<()> {
    let db = DbOptions {
        // The shared tables are not used: the service has tables of its own.
        products: 1,
        users: 1,
        latency: Duration::from_millis(cli.db_latency_ms),
        max_connections: 16,
        ..DbOptions::default()
    };
    let format = cli.report.format;
    let mix = Mix {
        requests: cli.requests,
        items: cli.items as i64,
        articles: capstone::deployment::ARTICLES,
        users: cli.users as u32,
        accounts: ACCOUNTS,
        skew: cli.skew,
        write_ratio: cli.write_ratio,
        greedy_ratio: cli.greedy_ratio,
        seed: cli.seed,
    };
    if let Some(Command::Faults {
        rate,
        fault_ms,
        steady_ms,
        restart_postgres,
        soak_secs,
    }) = cli.command
    {
        anyhow::ensure!(
            cli.backends.redis_url.is_none() && !cli.backends.redis_cluster,
            "faults kills and pauses Redis, so it runs a redis-server of its own: unset REDIS_URL \
             and REDIS_CLUSTER (or leave out --redis-url and --redis-cluster)"
        );
        let server = ServerOptions {
            persistence: Persistence::AofAlways,
            ..ServerOptions::default()
        };
        let stage = cli
            .backends
            .stage_with("capstone", db, server, &cleanup)
            .await?;
        let accounts =
            capstone::deployment::create_tables(&stage, cli.items as i64, ACCOUNTS).await?;
        let options = faults::Options {
            rate: rate as f64,
            rate_limit: cli.rate_limit as u32,
            report_cost: Duration::from_millis(cli.report_ms),
            fault: Duration::from_millis(fault_ms),
            steady: Duration::from_millis(steady_ms),
            restart_postgres,
            progress: format.progress(),
        };
        let verdict = match soak_secs {
            Some(secs) => {
                let length = Duration::from_secs(secs);
                let soaked = faults::soak::run(&stage, accounts, mix, &options, length).await?;
                faults::report_soak(soaked, &options, format)
            }
            None => {
                let (traffic, phases, audits) =
                    faults::run(&stage, accounts, mix, &options).await?;
                let backends = (
                    "a private redis-server (append-only, fsync always)",
                    stage.db().backend(),
                );
                faults::report_faults(&traffic, &phases, audits, &options, format, backends)
            }
        };
        stage.close().await?;
        return verdict;
    }
    let stage = cli.backends.stage("capstone", db, &cleanup).await?;
    let accounts = capstone::deployment::create_tables(&stage, cli.items as i64, ACCOUNTS).await?;
    if let Some(Command::Serve { port }) = cli.command {
        return serve::run(&stage, accounts, port).await;
    }
    let run = Run {
        stage: &stage,
        accounts,
        mix,
        concurrency: cli.concurrency as usize,
        rate_limit: cli.rate_limit as u32,
        report_cost: Duration::from_millis(cli.report_ms),
        warm: cli.warm as u32,
        progress: format.progress(),
    };
    let (measured, again) = run.all().await?;

    let mut load = Report::new(format!(
        "{} requests of {} users to two instances in each configuration, every answer checked",
        shared::report::count(cli.requests),
        cli.users
    ));
    load.setting("concurrency", cli.concurrency)
        .setting("items", cli.items)
        .setting("writes", shared::report::percent(cli.write_ratio))
        .setting("over the limit", shared::report::percent(cli.greedy_ratio))
        .setting("db latency", format!("{} ms", cli.db_latency_ms))
        .setting("redis", cli.backends.redis_label())
        .setting("database", stage.db().backend());
    load.rows = table::Load::rows(&measured);
    let mut layers = Report::new("Where reads were answered, and how far behind they were");
    layers
        .setting("L1", "1 s")
        .setting("L2 and L3", "60 s ± 20%")
        .setting("trending", "1 s")
        .setting("report", format!("{} ms", cli.report_ms));
    layers.rows = table::Layers::rows(&measured);
    let trending_ttl = capstone::Settings::new(capstone::Caching::Layered).trending_ttl;
    let report_cost = Duration::from_millis(cli.report_ms);
    layers.conclusion = table::conclude_layers(&layers.rows, trending_ttl, report_cost);
    load.conclusion = shared::report::measured_again(&again).unwrap_or_default()
        + &table::conclude(&load.rows, &layers.rows);
    let mut loss = Report::new("When Redis lost the pages (L1 + Redis): the next page reads");
    if let Some(after) = measured.iter().find_map(|m| m.after_loss.as_ref()) {
        loss.setting("pages read", "each category's first 10, L1 emptied first");
        loss.rows = scenario::loss::rows(after);
        loss.conclusion = scenario::loss::conclude(after);
    }
    let mut latency = Report::new("Latency by kind of request");
    latency.rows = table::Latency::rows(&measured);
    latency.conclusion = table::conclude_latency(&latency.rows);
    if format == Format::Json {
        let all = serde_json::json!({
            "load": load,
            "layers": layers,
            "after_loss": loss,
            "latency": latency
        });
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        load.print(format);
        println!();
        layers.print(format);
        println!();
        loss.print(format);
        println!();
        latency.print(format);
    }
    drop(run);
    stage.close().await?;
    Ok(())
}

mod serve {
    //! `serve`: one deployment on fixed ports until Ctrl-C.

    use capstone::{Caching, Deployment, Settings};
    use sessions::Accounts;
    use shared::Stage;

    /// Runs the layered configuration with ETags on `port` and `port + 1` until Ctrl-C.
    pub async fn run(stage: &Stage, accounts: Accounts, port: u16) -> anyhow::Result<()> {
        let settings = Settings::new(Caching::Conditional);
        let shared = capstone::deployment::shared_parts(stage, accounts, "serve", 2);
        let deployment = Deployment { settings, shared };
        let running = deployment.start_on(stage, port).await?;
        running.services[0].analytics.warm().await;
        let (a, b) = (running.url(0, ""), running.url(1, ""));
        println!("The service is running on {a} and {b} (Ctrl-C stops it). Try:");
        println!("  curl -i {a}/products/7");
        println!("  curl -i {b}/pages/tea/1");
        println!("  curl -i {a}/tasks/stats");
        println!("  curl -i {b}/analytics/dashboard");
        println!("  curl -i {a}/weather/paris");
        println!("  curl -i {b}/rates/eur");
        println!(
            "  curl -i -X POST {a}/tasks -H 'content-type: application/json' -d '{{\"title\":\"try the capstone\"}}'"
        );
        println!("  curl -i {a}/health");
        println!("  curl -s {b}/metrics");
        println!("Each instance's live dashboard: {a}/dashboard and {b}/dashboard");
        println!("As the administrator (user1; the demo accounts' passwords are in the chapter):");
        println!(
            "  curl -i -c jar -X POST {a}/login -H 'content-type: application/json' -d '{{\"name\":\"user1\",\"password\":\"'\"$PASSWORD\"'\"}}'"
        );
        println!(
            "  curl -i -b jar -c jar -X POST {a}/admin -H 'content-type: application/json' -d '{{\"password\":\"'\"$PASSWORD\"'\"}}'"
        );
        println!("  curl -i -b jar -X POST {a}/admin/cache/clear");
        std::future::pending::<()>().await;
        unreachable!("pending never returns")
    }
}
