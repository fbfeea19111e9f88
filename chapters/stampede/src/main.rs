//! `cargo run -p stampede`: a hot key expires under a burst of requests, then a steady stream of
//! requests runs across many expiries, once per strategy, and two tables show what each cost.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use serde::Serialize;
use shared::cli::{Backends, number_in};
use shared::metrics::Latency;
use shared::report::{self, Report, Row};
use shared::workload::progress_bar;
use shared::{Database, Namespace, Product, RedisTarget, Workload};
use stampede::{
    LoadError, LockedLoader, Policy, ProductPages, SingleFlight, Source, StaleWhileRevalidate,
    Stats, Strategy, Unprotected, XFetch,
};

/// Cache stampede: a thousand requests for a key that just expired, and what each defence does.
///
/// Scenario 1 (burst): a hot product page is cached, then expires, and --requests requests for it
/// arrive at once, spread over --instances simulated application instances (each with its own
/// Redis connections and in-process state) sharing one database whose every query takes
/// --load-ms. Scenario 2 (steady): --rate requests per second for --steady-secs over --keys
/// Zipf-popular pages cached for --ttl-ms, so every page expires several times while in demand.
///
/// Each scenario runs once per strategy: no protection, in-process single flight, a distributed
/// lock with woken waiters, XFetch (probabilistic early recomputation) and stale-while-revalidate.
///
/// Try --load-ms 300 to see a slower query's stampede (and wait for it), --beta 3 to make XFetch refresh earlier,
/// --instances 1 to see single flight match the lock.
#[derive(Parser)]
#[command(name = "stampede", version)]
struct Cli {
    #[command(flatten)]
    backends: Backends,

    /// Which scenarios to run.
    #[arg(long, value_enum, default_value_t = Scenario::Both)]
    scenario: Scenario,

    /// Burst: how many requests arrive at once for the expired key.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    requests: u64,

    /// How many application instances share the work, each with its own connections and state.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    instances: u64,

    /// How long every database load takes, in milliseconds: the query the cache saves.
    #[arg(long, default_value_t = 100.0, value_name = "MS", value_parser = number_in(0.0, 10_000.0))]
    load_ms: f64,

    /// Database connections per instance; the database pool is this times --instances.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pool_per_instance: u32,

    /// Steady: requests per second.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=20_000))]
    rate: u64,

    /// Steady: how long the stream runs per strategy, in seconds.
    #[arg(long, default_value_t = 2.0, value_name = "SECS", value_parser = number_in(0.1, 600.0))]
    steady_secs: f64,

    /// Steady: how many distinct pages the stream asks for.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    keys: u64,

    /// Steady: Zipf exponent of page popularity (0 uniform, 1 typical web traffic).
    #[arg(long, default_value_t = 1.0, value_parser = number_in(0.0, 5.0))]
    skew: f64,

    /// Steady: how long a page stays fresh, in milliseconds.
    #[arg(long, default_value_t = 500, value_name = "MS", value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    ttl_ms: u64,

    /// XFetch's beta: above 1 refreshes earlier, below 1 later, 0 never early.
    #[arg(long, default_value_t = 1.0, value_parser = number_in(0.0, 100.0))]
    beta: f64,

    /// Seed of the steady stream's random draws.
    #[arg(long, default_value_t = 42)]
    seed: u64,

    /// Print the reports as JSON on stdout instead of tables (and no progress bars).
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Burst,
    Steady,
    Both,
}

/// The strategies, in the order of the chapter.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Unprotected,
    SingleFlight,
    Lock,
    XFetch,
    Stale,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::Unprotected,
        Kind::SingleFlight,
        Kind::Lock,
        Kind::XFetch,
        Kind::Stale,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::Unprotected => "no protection",
            Kind::SingleFlight => "single flight",
            Kind::Lock => "distributed lock",
            Kind::XFetch => "XFetch",
            Kind::Stale => "stale-while-revalidate",
        }
    }
}

fn main() -> ExitCode {
    shared::cli::run_demo(run(Cli::parse()))
}

/// Both reports, for `--json`.
#[derive(Serialize)]
struct Reports {
    burst: Option<Report<BurstLine>>,
    steady: Option<Report<SteadyLine>>,
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut options = cli.backends.db_options(cli.keys.max(1), load_time(&cli));
    options.max_connections = cli.pool_per_instance * cli.instances as u32;
    let opened = cli.backends.open(options).await?;
    let demo = Demo {
        cli: &cli,
        redis: &opened.redis,
        db: opened.db.clone(),
        namespaces: Mutex::new(Vec::new()),
    };

    let mut reports = Reports {
        burst: None,
        steady: None,
    };
    if cli.scenario != Scenario::Steady {
        reports.burst = Some(demo.burst().await?);
    }
    if cli.scenario != Scenario::Burst {
        reports.steady = Some(demo.steady().await?);
    }

    if cli.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for text in [
            reports.burst.as_ref().map(Report::to_text),
            reports.steady.as_ref().map(Report::to_text),
        ]
        .into_iter()
        .flatten()
        {
            println!("{text}");
        }
    }

    let Demo { namespaces, db, .. } = demo;
    drop(db); // the other handle on the database
    opened
        .close(&namespaces.into_inner().expect("namespaces"))
        .await
}

fn load_time(cli: &Cli) -> Duration {
    Duration::from_secs_f64(cli.load_ms / 1e3)
}

/// What every run needs, and the namespaces to clean up afterwards.
struct Demo<'a> {
    cli: &'a Cli,
    redis: &'a RedisTarget,
    db: Arc<Database>,
    namespaces: Mutex<Vec<Namespace>>,
}

impl Demo<'_> {
    /// `--instances` fresh instances of `kind` over one source, in a namespace of their own.
    async fn instances(
        &self,
        kind: Kind,
        source: &Arc<Tracked>,
        policy: &Policy,
    ) -> anyhow::Result<Vec<Arc<Instance>>> {
        let namespace = Namespace::new("stampede");
        self.namespaces
            .lock()
            .expect("namespaces")
            .push(namespace.clone());
        let mut instances = Vec::new();
        for _ in 0..self.cli.instances {
            let instance =
                Instance::build(kind, self.redis, namespace.clone(), source, policy).await?;
            instances.push(Arc::new(instance));
        }
        Ok(instances)
    }

    /// Progress bars unless `--json`, and what counts as a request that waited for the database.
    fn options(&self) -> Options {
        Options {
            show: !self.cli.json,
            slow_after: load_time(self.cli) / 2,
        }
    }

    fn policy(&self, ttl: Duration) -> Policy {
        Policy {
            ttl,
            beta: self.cli.beta,
            // Comfortably longer than a load, as a lock's TTL must be.
            lock_ttl: load_time(self.cli) * 10 + Duration::from_secs(1),
            max_wait: load_time(self.cli) * 20 + Duration::from_secs(2),
            ..Policy::default()
        }
    }

    // ---- scenario 1: a burst on an expired key -------------------------------------------------

    async fn burst(&self) -> anyhow::Result<Report<BurstLine>> {
        let cli = self.cli;
        let ttl = Duration::from_millis(300);
        let policy = self.policy(ttl);

        // Cache the hot page in every strategy, then let it expire (turn stale, for
        // stale-while-revalidate) in all of them at once.
        let mut prepared = Vec::new();
        for kind in Kind::ALL {
            let source = Arc::new(Tracked::new(self.db.clone()));
            let instances = self.instances(kind, &source, &policy).await?;
            instances[0].get(HOT).await.context("warming the hot key")?;
            prepared.push((kind, source, instances));
        }
        tokio::time::sleep(ttl + Duration::from_millis(50)).await;

        let mut summary = Report::new(format!(
            "Scenario 1: {} requests at once for a key that just expired, over {} instance{}",
            report::count(cli.requests),
            cli.instances,
            plural(cli.instances)
        ));
        summary
            .setting("load", format!("{} ms", cli.load_ms))
            .setting("db pool", cli.pool_per_instance as u64 * cli.instances)
            .setting("db", self.db.backend())
            .setting("redis", self.cli.backends.redis_label());
        for (kind, _source, instances) in prepared {
            let loads_before = self.db.queries();
            let stats_before = total(&instances);
            let run = fire_burst(&instances, cli.requests, kind.label(), self.options()).await;
            for instance in &instances {
                instance.settle().await;
            }
            let stats = total(&instances);
            summary.rows.push(BurstLine {
                strategy: kind.label(),
                db_loads: self.db.queries() - loads_before,
                p50_us: run.latency.p50_us,
                p99_us: run.latency.p99_us,
                max_us: run.latency.max_us,
                failed: run.failed,
                served_stale: stats.stale_hits - stats_before.stale_hits,
                redis_errors: stats.errors - stats_before.errors,
            });
        }
        summary.conclusion = conclude_burst(&summary.rows, cli);
        Ok(summary)
    }

    // ---- scenario 2: steady traffic across many expiries -------------------------------------

    async fn steady(&self) -> anyhow::Result<Report<SteadyLine>> {
        let cli = self.cli;
        let ttl = Duration::from_millis(cli.ttl_ms);
        let policy = self.policy(ttl);
        let requests = (cli.rate as f64 * cli.steady_secs).round().max(1.0) as u64;
        let keys: Vec<String> = Workload {
            requests,
            concurrency: 1,
            keys: cli.keys,
            skew: cli.skew,
            write_ratio: 0.0,
            seed: cli.seed,
            progress: false,
        }
        .ops()
        .into_iter()
        .map(|op| op.id().to_string())
        .collect();

        let mut summary = Report::new(format!(
            "Scenario 2: {} requests/s for {} s over {} keys, each fresh for {} ms",
            report::count(cli.rate),
            cli.steady_secs,
            report::count(cli.keys),
            cli.ttl_ms
        ));
        summary
            .setting("load", format!("{} ms", cli.load_ms))
            .setting("instances", cli.instances)
            .setting("skew", cli.skew)
            .setting("beta", cli.beta);
        for kind in Kind::ALL {
            let source = Arc::new(Tracked::new(self.db.clone()));
            let instances = self.instances(kind, &source, &policy).await?;
            // Warm every key, spread over one TTL, so expiries are spread too (as in a real
            // cache that has been running a while) instead of all falling at once.
            warm_spread(&instances, cli.keys, ttl).await?;
            let loads_before = self.db.queries();
            let episodes_before = source.episodes();
            let stats_before = total(&instances);

            let run = fire_steady(&instances, &keys, cli.rate, kind.label(), self.options()).await;
            for instance in &instances {
                instance.settle().await;
            }
            let stats = total(&instances);
            let loads = self.db.queries() - loads_before;
            let episodes = source.episodes() - episodes_before;
            summary.rows.push(SteadyLine {
                strategy: kind.label(),
                db_loads: loads,
                loads_per_refresh: if episodes == 0 {
                    0.0
                } else {
                    loads as f64 / episodes as f64
                },
                p50_us: run.latency.p50_us,
                p99_us: run.latency.p99_us,
                max_us: run.latency.max_us,
                waited_for_load: run.slow,
                refreshed_early: stats.refreshes - stats_before.refreshes,
                served_stale: stats.stale_hits - stats_before.stale_hits,
                failed: run.failed,
            });
        }
        summary.conclusion = conclude_steady(&summary.rows, cli);
        Ok(summary)
    }
}

const HOT: &str = "1";

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

// ---- the strategies behind one type ----------------------------------------------------------

/// One application instance running one of the strategies.
enum Instance {
    Unprotected(Unprotected<Tracked>),
    SingleFlight(SingleFlight<Tracked>),
    Lock(LockedLoader<Tracked>),
    XFetch(XFetch<Tracked>),
    Stale(StaleWhileRevalidate<Tracked>),
}

impl Instance {
    async fn build(
        kind: Kind,
        redis: &RedisTarget,
        namespace: Namespace,
        source: &Arc<Tracked>,
        policy: &Policy,
    ) -> anyhow::Result<Instance> {
        let conn = redis.connect().await?;
        let (source, policy) = (source.clone(), policy.clone());
        Ok(match kind {
            Kind::Unprotected => {
                Instance::Unprotected(Unprotected::new(conn, namespace, source, policy))
            }
            Kind::SingleFlight => {
                Instance::SingleFlight(SingleFlight::new(conn, namespace, source, policy))
            }
            Kind::Lock => {
                let client = shared::connection::client(&redis.url())?;
                Instance::Lock(LockedLoader::new(conn, client, namespace, source, policy).await)
            }
            Kind::XFetch => Instance::XFetch(XFetch::new(conn, namespace, source, policy)),
            Kind::Stale => {
                Instance::Stale(StaleWhileRevalidate::new(conn, namespace, source, policy))
            }
        })
    }

    async fn get(&self, key: &str) -> Result<Product, stampede::Error> {
        match self {
            Instance::Unprotected(s) => s.get(key).await,
            Instance::SingleFlight(s) => s.get(key).await,
            Instance::Lock(s) => s.get(key).await,
            Instance::XFetch(s) => s.get(key).await,
            Instance::Stale(s) => s.get(key).await,
        }
    }

    fn stats(&self) -> Stats {
        match self {
            Instance::Unprotected(s) => s.stats(),
            Instance::SingleFlight(s) => s.stats(),
            Instance::Lock(s) => s.stats(),
            Instance::XFetch(s) => s.stats(),
            Instance::Stale(s) => s.stats(),
        }
    }

    /// Waits for background work (stale-while-revalidate's refreshes) so it is counted.
    async fn settle(&self) {
        if let Instance::Stale(s) = self {
            s.finish_refreshes().await;
        }
    }
}

fn total(instances: &[Arc<Instance>]) -> Stats {
    instances.iter().map(|i| i.stats()).sum()
}

// ---- the source, watched ---------------------------------------------------------------------

/// Product pages that also count *refresh episodes*: a load of a key that starts while no other
/// load of that key is running begins an episode, and loads that overlap it join it. Without
/// protection an expiry of a hot key is one episode of many loads; with it, one of one.
struct Tracked {
    pages: ProductPages,
    in_flight: Mutex<HashMap<String, u32>>,
    episodes: AtomicU64,
}

impl Tracked {
    fn new(db: Arc<Database>) -> Self {
        Tracked {
            pages: ProductPages::new(db),
            in_flight: Mutex::new(HashMap::new()),
            episodes: AtomicU64::new(0),
        }
    }

    fn episodes(&self) -> u64 {
        self.episodes.load(Ordering::Relaxed)
    }
}

impl Source for Tracked {
    type Value = Product;

    async fn load(&self, key: &str) -> Result<Product, LoadError> {
        {
            let mut in_flight = self.in_flight.lock().expect("in-flight lock");
            let running = in_flight.entry(key.to_string()).or_insert(0);
            if *running == 0 {
                self.episodes.fetch_add(1, Ordering::Relaxed);
            }
            *running += 1;
        }
        let loaded = self.pages.load(key).await;
        let mut in_flight = self.in_flight.lock().expect("in-flight lock");
        if let Some(running) = in_flight.get_mut(key) {
            *running -= 1;
            if *running == 0 {
                in_flight.remove(key);
            }
        }
        loaded
    }
}

// ---- firing requests -------------------------------------------------------------------------

/// How to fire a run.
#[derive(Clone, Copy)]
struct Options {
    show: bool,
    /// A request at least this slow waited for a database load.
    slow_after: Duration,
}

/// What one run measured.
struct Run {
    latency: shared::metrics::LatencySummary,
    failed: u64,
    /// Requests that took at least half a load: they waited for the database.
    slow: u64,
}

/// `n` requests for the hot key released at the same instant, request `i` to instance `i % M`.
async fn fire_burst(instances: &[Arc<Instance>], n: u64, label: &str, options: Options) -> Run {
    let bar = progress_bar(label, n, options.show);
    let barrier = Arc::new(tokio::sync::Barrier::new(n as usize));
    let tasks: Vec<_> = (0..n as usize)
        .map(|i| {
            let instance = instances[i % instances.len()].clone();
            let (barrier, bar) = (barrier.clone(), bar.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let started = Instant::now();
                let ok = instance.get(HOT).await.is_ok();
                bar.inc(1);
                (started.elapsed(), ok)
            })
        })
        .collect();
    let run = collect(tasks, options.slow_after).await;
    bar.finish_and_clear();
    run
}

/// The steady stream: request `i` for `keys[i]` sent at `i / rate` seconds, whether or not the
/// earlier ones have been answered (an open loop, like independent users).
async fn fire_steady(
    instances: &[Arc<Instance>],
    keys: &[String],
    rate: u64,
    label: &str,
    options: Options,
) -> Run {
    let bar = progress_bar(label, keys.len() as u64, options.show);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(keys.len());
    for (i, key) in keys.iter().enumerate() {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate as f64)).await;
        let instance = instances[i % instances.len()].clone();
        let (key, bar) = (key.clone(), bar.clone());
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let ok = instance.get(&key).await.is_ok();
            bar.inc(1);
            (started.elapsed(), ok)
        }));
    }
    let run = collect(tasks, options.slow_after).await;
    bar.finish_and_clear();
    run
}

async fn collect(
    tasks: Vec<tokio::task::JoinHandle<(Duration, bool)>>,
    slow_after: Duration,
) -> Run {
    let mut latency = Latency::default();
    let (mut failed, mut slow) = (0, 0);
    for task in tasks {
        let (elapsed, ok) = task.await.expect("request task");
        latency.record(elapsed);
        failed += u64::from(!ok);
        slow += u64::from(elapsed >= slow_after);
    }
    Run {
        latency: latency.summary(),
        failed,
        slow,
    }
}

/// Loads keys `1..=keys` through the instances, key `k` at `(k - 1) / keys` of `ttl`.
async fn warm_spread(instances: &[Arc<Instance>], keys: u64, ttl: Duration) -> anyhow::Result<()> {
    let start = tokio::time::Instant::now();
    let tasks: Vec<_> = (1..=keys)
        .map(|k| {
            let instance = instances[k as usize % instances.len()].clone();
            let at = start + ttl.mul_f64((k - 1) as f64 / keys as f64);
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                instance.get(&k.to_string()).await
            })
        })
        .collect();
    for task in tasks {
        task.await?.context("warming the cache")?;
    }
    Ok(())
}

// ---- the tables --------------------------------------------------------------------------------

#[derive(Serialize)]
struct BurstLine {
    strategy: &'static str,
    db_loads: u64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    failed: u64,
    served_stale: u64,
    redis_errors: u64,
}

impl Row for BurstLine {
    fn headers() -> Vec<&'static str> {
        vec![
            "strategy",
            "db loads",
            "p50",
            "p99",
            "max",
            "failed",
            "served stale",
            "redis errors",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.strategy.to_string(),
            report::count(self.db_loads),
            report::micros(self.p50_us),
            report::micros(self.p99_us),
            report::micros(self.max_us),
            report::count(self.failed),
            report::count(self.served_stale),
            report::count(self.redis_errors),
        ]
    }
}

#[derive(Serialize)]
struct SteadyLine {
    strategy: &'static str,
    db_loads: u64,
    /// Loads per refresh episode: 1.0 means every expiry cost exactly one load.
    loads_per_refresh: f64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    /// Requests that took at least half a load time, i.e. waited for the database.
    waited_for_load: u64,
    /// Loads started before the value was gone (XFetch early, stale-while-revalidate background).
    refreshed_early: u64,
    served_stale: u64,
    failed: u64,
}

impl Row for SteadyLine {
    fn headers() -> Vec<&'static str> {
        vec![
            "strategy",
            "db loads",
            "loads/refresh",
            "p50",
            "p99",
            "max",
            "waited for db",
            "early refreshes",
            "served stale",
            "failed",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.strategy.to_string(),
            report::count(self.db_loads),
            format!("{:.2}", self.loads_per_refresh),
            report::micros(self.p50_us),
            report::micros(self.p99_us),
            report::micros(self.max_us),
            report::count(self.waited_for_load),
            report::count(self.refreshed_early),
            report::count(self.served_stale),
            report::count(self.failed),
        ]
    }
}

fn row<'a, L>(rows: &'a [L], name: &str, strategy: impl Fn(&L) -> &str) -> &'a L {
    rows.iter()
        .find(|r| strategy(r) == name)
        .expect("every strategy has a row")
}

/// Sentences drawn from the burst's figures.
fn conclude_burst(rows: &[BurstLine], cli: &Cli) -> String {
    let get = |kind: Kind| row(rows, kind.label(), |r| r.strategy);
    let (none, flight, lock, xfetch, stale) = (
        get(Kind::Unprotected),
        get(Kind::SingleFlight),
        get(Kind::Lock),
        get(Kind::XFetch),
        get(Kind::Stale),
    );
    let load_us = (cli.load_ms * 1e3) as u64;
    let mut text = format!(
        "Without protection {} requests made {} database loads (p99 {}). Single flight made {} \
         (one per instance, p99 {}); the lock made {}, and its waiters' p99 was {}, {} past the \
         {} load itself.",
        report::count(cli.requests),
        report::count(none.db_loads),
        report::micros(none.p99_us),
        report::count(flight.db_loads),
        report::micros(flight.p99_us),
        report::count(lock.db_loads),
        report::micros(lock.p99_us),
        report::micros(lock.p99_us.saturating_sub(load_us)),
        report::micros(load_us),
    );
    text.push_str(&format!(
        " XFetch made {} loads: it refreshes keys before they expire and cannot help a burst that \
         arrives after. Stale-while-revalidate served {} requests the previous value at once \
         (p99 {}) while {} background load{} fetched the new one.",
        report::count(xfetch.db_loads),
        report::count(stale.served_stale),
        report::micros(stale.p99_us),
        report::count(stale.db_loads),
        plural(stale.db_loads),
    ));
    let failed: u64 = rows.iter().map(|r| r.failed).sum();
    if failed > 0 {
        text.push_str(&format!(
            " {} requests failed in all; see the table.",
            report::count(failed)
        ));
    }
    text
}

/// Sentences drawn from the steady stream's figures.
fn conclude_steady(rows: &[SteadyLine], cli: &Cli) -> String {
    let get = |kind: Kind| row(rows, kind.label(), |r| r.strategy);
    let (none, lock, xfetch, stale) = (
        get(Kind::Unprotected),
        get(Kind::Lock),
        get(Kind::XFetch),
        get(Kind::Stale),
    );
    let mut text = format!(
        "Over {} s, every expiry without protection cost {:.2} loads ({} in all) and {} \
         requests waited for the database. The lock held it to {:.2} load per refresh, yet {} \
         requests waited for one. ",
        cli.steady_secs,
        none.loads_per_refresh,
        report::count(none.db_loads),
        report::count(none.waited_for_load),
        lock.loads_per_refresh,
        report::count(lock.waited_for_load),
    );
    text.push_str(&format!(
        "XFetch refreshed {} times before expiry and made {} loads in all ({:.2} per refresh), \
         each paid for by the request that made it: {} waited. ",
        report::count(xfetch.refreshed_early),
        report::count(xfetch.db_loads),
        xfetch.loads_per_refresh,
        report::count(xfetch.waited_for_load),
    ));
    if xfetch.loads_per_refresh >= 1.2 {
        text.push_str(
            "Its refreshes overlapped: the requests that read a key while it is being \
             recomputed keep rolling the die at rising odds, and for a key read many times per \
             load time some of them roll a recompute too, whatever the TTL. ",
        );
    }
    text.push_str(&format!(
        "Stale-while-revalidate made {} loads, served {} stale answers and kept {} requests \
         waiting (p99 {} against the lock's {}).",
        report::count(stale.db_loads),
        report::count(stale.served_stale),
        report::count(stale.waited_for_load),
        report::micros(stale.p99_us),
        report::micros(lock.p99_us),
    ));
    text
}
