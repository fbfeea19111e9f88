//! `cargo run -p capstone -- faults`: the service under steady traffic while its parts fail one
//! after another — Redis killed and restarted, Redis paused, PostgreSQL restarted, one of the two
//! instances killed and restarted — with every answer checked, every acknowledged write audited
//! against the database at the end, and what `/health` said at each moment. With `--soak-secs`,
//! a long run without faults instead, sampling memory.
//!
//! What the chapter promises, and this run checks: no wrong answer ever; no acknowledged write
//! lost and none applied twice; `5xx` only where a request cannot be served (a view while Redis,
//! which queues it, does not answer; a request that needs the database while it restarts);
//! `/health` says `degraded`, and why, while a dependency is down; the hit ratio comes back.

pub mod audit;
pub mod drive;
pub mod schedule;
pub mod soak;
pub mod table;

use std::sync::Arc;
use std::time::{Duration, Instant};

use capstone::deployment::{self, Running};
use capstone::{Caching, Deployment, Settings};
use sessions::Accounts;
use shared::Stage;
use shared_http::Request;

use crate::scenario::plan::{self, Mix, Tally};
use drive::{Balancer, HealthLog, Outcome};
use schedule::Phase;

/// How the fault run goes.
#[derive(Clone, Debug)]
pub struct Options {
    /// Requests a second, over both instances.
    pub rate: f64,
    /// Requests a second each client may send.
    pub rate_limit: u32,
    /// How long the analytics report takes.
    pub report_cost: Duration,
    /// How long each fault lasts.
    pub fault: Duration,
    /// Steady traffic before the first fault and after each.
    pub steady: Duration,
    /// The shell command that restarts PostgreSQL, when the database is PostgreSQL.
    pub restart_postgres: Option<String>,
    /// Progress bars.
    pub progress: bool,
}

/// What a run of traffic left to report.
pub struct Traffic {
    /// Requests sent.
    pub requests: u64,
    /// The outcomes kept, in the order sent (see [`drive::drive`]).
    pub outcomes: Vec<Outcome>,
    /// The product and page reads of each second: answered by a cache layer, and all.
    pub reads: Vec<(u64, u64)>,
    /// What the checks counted.
    pub tally: Arc<Tally>,
    /// What each instance's `/health` said, and when.
    pub health: Vec<Arc<HealthLog>>,
    /// When the traffic started.
    pub start: Instant,
}

/// The service under `mix`'s requests at `rate`, while `during` runs (the faults, or the
/// soak's sampling) with the deployment in hand; then stopped, its queues drained.
pub async fn under_traffic<T>(
    stage: &Stage,
    accounts: Accounts,
    mix: &Mix,
    options: &Options,
    keep_reads: bool,
    during: impl AsyncFnOnce(&Deployment, &mut Running, Instant) -> anyhow::Result<T>,
) -> anyhow::Result<(Traffic, T)> {
    let mut settings = Settings::new(Caching::Layered);
    // The users' keys, and the greedy client's (u0).
    settings.api_keys = mix.users + 1;
    settings.rate_limit = options.rate_limit;
    settings.report_cost = options.report_cost;
    let shared = deployment::shared_parts(stage, accounts, "faults", 2);
    let deployment = Deployment { settings, shared };
    let mut running = deployment.start(stage).await?;
    running.services[0].analytics.warm().await;
    running.services[0]
        .pages
        .warm(&capstone::pages::first_pages(8))
        .await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("a client without TLS always builds");
    let urls = (0..2).map(|i| running.url(i, "")).collect();
    let balancer = Balancer::new(urls);
    let start = Instant::now();
    let balancing = balancer.watch(client.clone());
    let health: Vec<Arc<HealthLog>> = (0..2).map(|_| Arc::default()).collect();
    let watching: Vec<_> = (0..2)
        .map(|i| health[i].watch(client.clone(), running.url(i, ""), start))
        .collect();
    let tally = Arc::new(Tally::new(mix.items, mix.articles));
    let requests = plan::requests(mix);
    let sent = requests.len() as u64;
    let bar = shared::workload::progress_bar("traffic", requests.len() as u64, options.progress);
    let traffic = drive::drive(
        client,
        balancer,
        requests,
        options.rate,
        start,
        tally.clone(),
        Some(bar.clone()),
        keep_reads,
    );
    let (driven, during) = tokio::join!(traffic, during(&deployment, &mut running, start));
    bar.finish_and_clear();
    balancing.stop().await?;
    for watcher in watching {
        watcher.stop().await?;
    }
    // A clean stop drains the views' queues: the audit reads the database after it.
    running.stop().await?;
    let traffic = Traffic {
        requests: sent,
        outcomes: driven.outcomes,
        reads: driven.reads,
        tally,
        health,
        start,
    };
    Ok((traffic, during?))
}

/// The fault run: how long it lasts, the traffic under it, the faults, the audit.
pub async fn run(
    stage: &Stage,
    accounts: Accounts,
    mix: Mix,
    options: &Options,
) -> anyhow::Result<(Traffic, Vec<Phase>, Vec<audit::Audit>)> {
    let faults = schedule::FAULTS.len() as u32;
    let length = options.steady * (faults + 1) + options.fault * faults;
    let mix = Mix {
        requests: (options.rate * length.as_secs_f64()) as u64,
        ..mix
    };
    let before = audit::Rows::read(stage.db()).await?;
    let (traffic, phases) = under_traffic(
        stage,
        accounts,
        &mix,
        options,
        true,
        async |deployment, running, start| {
            schedule::inject(stage, deployment, running, start, options).await
        },
    )
    .await?;
    let after = audit::Rows::read(stage.db()).await?;
    let audits = audit::audit(&traffic.outcomes, &before, &after);
    Ok((traffic, phases, audits))
}

/// Prints the fault run's tables and what they say; an error if the service broke a promise.
pub fn report_faults(
    traffic: &Traffic,
    phases: &[Phase],
    audits: Vec<audit::Audit>,
    options: &Options,
    format: shared::report::Format,
    backends: (&str, &str),
) -> anyhow::Result<()> {
    let mut faults = shared::report::Report::new(format!(
        "Faults under {} requests a second over two instances, every answer checked",
        options.rate
    ));
    faults
        .setting(
            "each fault",
            format!("{:.1} s", options.fault.as_secs_f64()),
        )
        .setting("steady", format!("{:.1} s", options.steady.as_secs_f64()))
        .setting("redis", backends.0)
        .setting("database", backends.1);
    faults.rows = table::FaultRow::rows(traffic, phases, options.steady);
    let mut health = shared::report::Report::new("What /health said during each fault");
    health.rows = table::HealthRow::rows(&faults.rows);
    let mut writes = shared::report::Report::new("Every write against the database at the end");
    writes.rows = audits;
    let verdict = verdict(traffic, phases, &writes.rows);
    let skipped = faults
        .rows
        .iter()
        .filter_map(|f| Some((f.fault, f.skipped.as_ref()?)));
    for (fault, why) in skipped {
        faults.conclusion += &format!("{fault}: skipped ({why}). ");
    }
    faults.conclusion += &verdict.summary;
    print(
        format,
        vec![
            part("faults", &faults, format),
            part("health", &health, format),
            part("writes", &writes, format),
        ],
    );
    verdict.into_result()
}

/// Prints the soak's tables and what they say; an error if the service broke a promise.
pub fn report_soak(
    soaked: soak::Soaked,
    options: &Options,
    format: shared::report::Format,
) -> anyhow::Result<()> {
    let mut memory = shared::report::Report::new(format!(
        "A soak: {} requests a second over two instances for {:.0} s, memory sampled",
        options.rate,
        soaked.samples.last().map_or(0.0, |s| s.at_s)
    ));
    memory.setting("sampled every", format!("{} s", soak::EVERY.as_secs()));
    memory.rows = soaked.samples;
    let mut writes = shared::report::Report::new("Every write against the database at the end");
    writes.rows = soaked.audits;
    let mut verdict = verdict(&soaked.traffic, &[], &writes.rows);
    // The first minute fills the caches and the allocator's pools: flat is judged after it.
    let settled = memory
        .rows
        .iter()
        .find(|s| s.at_s >= soak::WARM_UP.as_secs_f64());
    if let (Some(first), Some(last)) = (settled.or(memory.rows.first()), memory.rows.last()) {
        let growth = last.process_bytes as f64 / first.process_bytes.max(1) as f64 - 1.0;
        memory.conclusion = format!(
            "The process's memory went from {:.1} MiB at {:.0} s to {:.1} MiB at {:.0} s \
             ({:+.1}%). ",
            first.process_bytes as f64 / (1 << 20) as f64,
            first.at_s,
            last.process_bytes as f64 / (1 << 20) as f64,
            last.at_s,
            growth * 100.0
        );
    }
    let kept = soaked.traffic.outcomes.len();
    let record = kept * (std::mem::size_of::<Outcome>() + std::mem::size_of::<Request>() + 64);
    memory.conclusion += &format!(
        "The process holds the clients' record of the writes too ({} of them, about {:.1} MiB at \
         the end). ",
        shared::report::count(kept as u64),
        record as f64 / (1 << 20) as f64
    );
    memory.conclusion += &format!(
        "Keys left without a TTL: {} (besides the views' {} queue keys, which hold acknowledged \
         writes and are meant to have none). ",
        soaked.without_ttl.len(),
        soaked.queue_keys
    );
    if let Some(key) = soaked.without_ttl.first() {
        verdict.broken.push(format!(
            "{} keys without a TTL, e.g. {key}",
            soaked.without_ttl.len()
        ));
    }
    memory.conclusion += &verdict.summary;
    let parts = vec![
        part("memory", &memory, format),
        part("writes", &writes, format),
    ];
    print(format, parts);
    verdict.into_result()
}

/// A report as JSON and as `format` renders it, under `name`.
type Part = (&'static str, serde_json::Value, String);

/// `report`, ready for [`print`].
fn part<R: shared::report::Row>(
    name: &'static str,
    report: &shared::report::Report<R>,
    format: shared::report::Format,
) -> Part {
    let json = serde_json::to_value(report).expect("plain data encodes");
    (name, json, report.render(format))
}

/// Prints the reports as `format` says: one after the other, or one JSON object of all.
fn print(format: shared::report::Format, parts: Vec<Part>) {
    if format == shared::report::Format::Json {
        let all: serde_json::Map<String, serde_json::Value> = parts
            .into_iter()
            .map(|(name, json, _)| (name.to_string(), json))
            .collect();
        let all = serde_json::Value::Object(all);
        println!(
            "{}",
            serde_json::to_string_pretty(&all).expect("plain data encodes")
        );
    } else {
        let texts: Vec<String> = parts.into_iter().map(|(_, _, text)| text).collect();
        print!("{}", texts.join("\n"));
    }
}

/// The promises' count: what was broken, and a summary either way.
struct Verdict {
    summary: String,
    broken: Vec<String>,
}

impl Verdict {
    fn into_result(self) -> anyhow::Result<()> {
        match self.broken.is_empty() {
            true => Ok(()),
            false => anyhow::bail!("the service broke its promises: {}", self.broken.join("; ")),
        }
    }
}

/// What the run broke of the chapter's promises: wrong answers, `5xx` where none belong,
/// acknowledged writes lost or applied twice.
fn verdict(traffic: &Traffic, phases: &[Phase], audits: &[audit::Audit]) -> Verdict {
    let wrong: Vec<&Outcome> = traffic
        .outcomes
        .iter()
        .filter(|o| o.wrong.is_some())
        .collect();
    let unexpected = table::unexpected_failures(&traffic.outcomes, phases);
    let lost: u64 = audits.iter().map(|a| a.lost).sum();
    let twice: u64 = audits.iter().map(|a| a.twice).sum();
    let (stale, longest) = *traffic.tally.stale.lock().expect("never poisoned");
    let mut broken = Vec::new();
    if let Some(first) = wrong.first() {
        let why = first.wrong.as_deref().unwrap_or_default();
        broken.push(format!("{} wrong answers, the first: {why}", wrong.len()));
    }
    if let Some(first) = unexpected.first() {
        broken.push(format!(
            "{} failures where the chapter says none belong, the first: {first}",
            unexpected.len()
        ));
    }
    if lost + twice > 0 {
        broken.push(format!(
            "{lost} acknowledged writes lost, {twice} applied twice"
        ));
    }
    let summary = format!(
        "{} requests: {} wrong answers, {} failures where none belong, {lost} acknowledged writes \
         lost and {twice} applied twice; {stale} stale reads (the longest {} ms out of date).",
        shared::report::count(traffic.requests),
        wrong.len(),
        unexpected.len(),
        longest.as_millis()
    );
    Verdict { summary, broken }
}
