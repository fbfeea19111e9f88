//! `cargo run -p two-tier`: several application instances read one Zipf workload of items while a
//! back-office instance changes prices, through four readers in turn: Redis only, the source
//! material's dictionary L1, the two-tier cache with its backplane, and Redis's own client-side
//! caching. Then the eviction policies, on one trace.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::Serialize;
use shared::cli::{Backends, ReportArgs, number_in, whole_in};
use shared::metrics::{Latency, LatencySummary};
use shared::plot::{self, Axes};
use shared::report::{self, Report, Row};
use shared::{Cleanup, DbOptions, Stage};
use two_tier::eviction::{self, Policy, Trace};
use two_tier::{AnyCache, Kind, Layer, Settings, Stats, catalog};

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

/// Readers per instance.
const READERS: usize = 4;
/// How long the readers run before the measurement starts, so the caches are warm.
const WARM_UP: Duration = Duration::from_millis(300);
/// How long a probe keeps asking before it records "not within the run".
const GIVE_UP: Duration = Duration::from_secs(3);

async fn run(cli: Cli, cleanup: Cleanup) -> anyhow::Result<()> {
    let db_options = DbOptions {
        latency: Duration::from_secs_f64(cli.db_latency_ms / 1_000.0),
        ..DbOptions::default()
    };
    let stage = cli.backends.stage("two-tier", db_options, &cleanup).await?;
    catalog::create(stage.db(), cli.items as i64)
        .await
        .context("could not create the items table")?;
    let settings = Settings {
        l1_capacity: cli.l1_capacity,
        l1_ttl: Duration::from_millis(cli.l1_ttl_ms),
        ..Settings::default()
    };

    let mut readers = Report::new(format!(
        "Two tiers: {} instances reading {} items for {} ms each, a price change every {} ms",
        cli.instances,
        report::count(cli.items),
        report::count(cli.run_ms),
        cli.write_every_ms
    ));
    readers
        .setting("skew", cli.skew)
        .setting(
            "L1",
            format!(
                "{} entries, {} ms",
                report::count(cli.l1_capacity),
                cli.l1_ttl_ms
            ),
        )
        .setting("db latency", format!("{} ms", cli.db_latency_ms))
        .setting("db", stage.db().backend())
        .setting("redis", cli.backends.redis_label());
    let mut layers = None;
    for kind in Kind::ALL {
        let phase = Phase::open(&cli, &stage, kind, settings.clone()).await?;
        let (line, by_layer) = phase.run(&cli).await?;
        if kind == Kind::TwoTier {
            layers = Some(by_layer);
        }
        readers.rows.push(line);
    }
    readers.conclusion = conclude(&readers.rows, &settings);
    readers.print(cli.report.format);
    if let Some(layers) = layers {
        println!();
        layers.print(cli.report.format);
    }

    if cli.trace > 0 {
        println!();
        evictions(&cli).await?.print(cli.report.format);
    }
    Ok(())
}

/// The latest committed version of every item, and when each version's write returned.
struct Committed {
    versions: Vec<AtomicI64>,
    /// Per item, microseconds from the phase's start to the return of the write of version 2,
    /// 3, and so on: when each older version became out of date.
    returned_us: Vec<Mutex<Vec<u64>>>,
    start: Instant,
}

impl Committed {
    fn new(items: u64) -> Self {
        Committed {
            versions: (0..=items).map(|_| AtomicI64::new(1)).collect(),
            returned_us: (0..=items).map(|_| Mutex::new(Vec::new())).collect(),
            start: Instant::now(),
        }
    }

    /// Records that the write of `version` of item `id` returned now.
    fn raise(&self, id: i64, version: i64) {
        let at = self.start.elapsed().as_micros() as u64;
        let mut returned = self.returned_us[id as usize].lock().expect("not poisoned");
        let index = (version - 2).max(0) as usize;
        if returned.len() <= index {
            returned.resize(index + 1, at);
        }
        self.versions[id as usize].fetch_max(version, Ordering::SeqCst);
    }

    /// Item `id`'s latest committed version.
    fn latest(&self, id: i64) -> i64 {
        self.versions[id as usize].load(Ordering::SeqCst)
    }

    /// How long before `now` version `seen` of item `id` became out of date: the return of the
    /// write of the version after it.
    fn outdated_for(&self, id: i64, seen: i64, now: Instant) -> Duration {
        let returned = self.returned_us[id as usize].lock().expect("not poisoned");
        let at = returned.get((seen - 1).max(0) as usize).copied();
        let now = now.duration_since(self.start);
        at.map_or(Duration::ZERO, |at| {
            now.saturating_sub(Duration::from_micros(at))
        })
    }
}

/// One reader kind's turn: its instances, the back office, and what they count.
struct Phase<'a> {
    stage: &'a Stage,
    kind: Kind,
    settings: Settings,
    instances: Vec<Arc<AnyCache>>,
    writer: AnyCache,
    committed: Arc<Committed>,
}

impl<'a> Phase<'a> {
    async fn open(
        cli: &Cli,
        stage: &'a Stage,
        kind: Kind,
        settings: Settings,
    ) -> anyhow::Result<Phase<'a>> {
        catalog::reset(stage.db()).await?;
        let namespace = stage.namespace().child(kind.slug());
        let url = stage.redis_url();
        let mut instances = Vec::new();
        for _ in 0..=cli.instances {
            let instance = stage.instance().await?;
            let db = stage.db().clone();
            let cache =
                AnyCache::build(kind, &instance, &url, db, &namespace, settings.clone()).await?;
            instances.push(Arc::new(cache));
        }
        let writer = Arc::into_inner(instances.pop().expect("one more than --instances"))
            .expect("not shared yet");
        Ok(Phase {
            stage,
            kind,
            settings,
            instances,
            writer,
            committed: Arc::new(Committed::new(cli.items)),
        })
    }

    // ANCHOR: run
    /// Readers on every instance for `--run-ms`, the writes from the back office meanwhile, a
    /// probe of every instance after each write.
    async fn run(self, cli: &Cli) -> anyhow::Result<(Line, Report<LayerLine>)> {
        let (measuring, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let mut tasks = Vec::new();
        for (n, instance) in self.instances.iter().enumerate() {
            for r in 0..READERS {
                let seed = cli.seed.wrapping_add((n * READERS + r + 1) as u64);
                let reader = Reader {
                    cache: instance.clone(),
                    committed: self.committed.clone(),
                    bound: self.settings.l1_ttl,
                    measuring: measuring.clone(),
                    stop: stop.clone(),
                };
                tasks.push(tokio::spawn(
                    reader.run(Zipf::new(cli.items as f64, cli.skew)?, seed),
                ));
            }
        }
        tokio::time::sleep(WARM_UP).await;
        let mut conn = self.stage.conn();
        let commands_before = conn.commands_processed().await?;
        let stats_before = self.stats();
        let queries_before = self.stage.db().queries();
        measuring.store(true, Ordering::SeqCst);
        let started = Instant::now();
        let bar = shared::workload::progress_bar(
            self.kind.label(),
            cli.run_ms / cli.write_every_ms,
            cli.report.format.progress(),
        );
        let zipf = Zipf::new(cli.items as f64, cli.skew)?;
        let mut rng = StdRng::seed_from_u64(cli.seed);
        let mut probes = Vec::new();
        let write_every = Duration::from_millis(cli.write_every_ms);
        while started.elapsed() < Duration::from_millis(cli.run_ms) {
            let id = zipf.sample(&mut rng) as i64;
            if let Some(row) = self
                .writer
                .set_price(id, rng.random_range(100..10_000))
                .await?
            {
                self.committed.raise(id, row.version);
                let written = Instant::now();
                let instances = self.instances.clone();
                probes.push(tokio::spawn(async move {
                    let each = instances
                        .iter()
                        .map(|i| fresh_after(i, row.id, row.version, written));
                    let fresh = futures_util::future::join_all(each).await;
                    // The slowest instance decides; one that never showed it makes it "never".
                    fresh
                        .into_iter()
                        .try_fold(Duration::ZERO, |a, b| Some(a.max(b?)))
                }));
            }
            bar.inc(1);
            tokio::time::sleep(write_every).await;
        }
        let elapsed = started.elapsed();
        measuring.store(false, Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        let mut counts = ReadCounts::default();
        for task in tasks {
            counts.merge(task.await?);
        }
        let commands = conn.commands_processed().await? - commands_before;
        let mut staleness = Latency::default();
        let mut never = 0;
        for probe in probes {
            match probe.await? {
                Some(took) => staleness.record(took),
                None => never += 1,
            }
        }
        bar.finish_and_clear();
        let stats = self.stats();
        let line = Line {
            reader: self.kind.label(),
            requests_per_s: counts.reads as f64 / elapsed.as_secs_f64(),
            latency: counts.all.summary(),
            l1_hit_ratio: ratio(stats.l1_hits - stats_before.l1_hits, &stats, &stats_before),
            l2_hit_ratio: ratio(stats.l2_hits - stats_before.l2_hits, &stats, &stats_before),
            db_queries: self.stage.db().queries() - queries_before,
            commands_per_read: commands as f64 / counts.reads.max(1) as f64,
            reads: counts.reads,
            stale_reads: counts.stale,
            beyond_bound: counts.beyond_bound,
            staleness: staleness.summary(),
            never,
            redis_errors: stats.redis_errors - stats_before.redis_errors,
        };
        let mut by_layer =
            Report::new(format!("{}, by the layer that answered", self.kind.label()));
        by_layer
            .setting("invalidations heard", report::count(stats.invalidations))
            .setting("L1 flushes", stats.flushes)
            .setting("loads not kept (overtaken)", stats.superseded)
            .setting("coalesced reads", report::count(stats.coalesced));
        for (layer, latency) in Layer::ALL.iter().zip(&counts.by_layer) {
            if latency.summary().count > 0 {
                by_layer.rows.push(LayerLine {
                    layer: layer.label(),
                    latency: latency.summary(),
                    share: latency.summary().count as f64 / counts.reads.max(1) as f64,
                });
            }
        }
        by_layer.conclusion = layer_conclusion(&by_layer.rows);
        Ok((line, by_layer))
    }
    // ANCHOR_END: run

    /// Every reading instance's counters, added up.
    fn stats(&self) -> Stats {
        self.instances
            .iter()
            .fold(Stats::default(), |sum, i| sum.plus(i.stats()))
    }
}

/// A share of the reads counted between `before` and `after`.
fn ratio(part: u64, after: &Stats, before: &Stats) -> f64 {
    part as f64 / (after.reads() - before.reads()).max(1) as f64
}

/// One reading task.
struct Reader {
    cache: Arc<AnyCache>,
    committed: Arc<Committed>,
    bound: Duration,
    /// Reads are counted only while this is set: not during the warm-up.
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

/// What one reading task counted.
struct ReadCounts {
    reads: u64,
    stale: u64,
    beyond_bound: u64,
    all: Latency,
    /// In the order of [`Layer::ALL`].
    by_layer: [Latency; 4],
}

impl Default for ReadCounts {
    fn default() -> Self {
        ReadCounts {
            reads: 0,
            stale: 0,
            beyond_bound: 0,
            all: Latency::default(),
            by_layer: std::array::from_fn(|_| Latency::default()),
        }
    }
}

impl ReadCounts {
    fn merge(&mut self, other: ReadCounts) {
        self.reads += other.reads;
        self.stale += other.stale;
        self.beyond_bound += other.beyond_bound;
        self.all.merge(&other.all);
        for (mine, theirs) in self.by_layer.iter_mut().zip(&other.by_layer) {
            mine.merge(theirs);
        }
    }
}

impl Reader {
    /// Zipf-drawn items until stopped. A read that began after a newer version was committed and
    /// returned an older one is stale; beyond the bound if the version it returned had been out
    /// of date (the next version's write had returned) for more than the L1 lifetime when the
    /// read began.
    async fn run(self, zipf: Zipf<f64>, seed: u64) -> ReadCounts {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut counts = ReadCounts::default();
        while !self.stop.load(Ordering::SeqCst) {
            let id = zipf.sample(&mut rng) as i64;
            let began = Instant::now();
            let expected = self.committed.latest(id);
            let Ok(read) = self.cache.item(id).await else {
                continue;
            };
            let took = began.elapsed();
            if !self.measuring.load(Ordering::Relaxed) {
                tokio::task::yield_now().await;
                continue;
            }
            counts.reads += 1;
            counts.all.record(took);
            let index = Layer::ALL
                .iter()
                .position(|l| *l == read.layer)
                .unwrap_or(0);
            counts.by_layer[index].record(took);
            if let Some(item) = read.value.filter(|item| item.version < expected) {
                counts.stale += 1;
                if self.committed.outdated_for(id, item.version, began) > self.bound {
                    counts.beyond_bound += 1;
                }
            }
            tokio::task::yield_now().await;
        }
        counts
    }
}

/// How long after `written` instance `cache` began the first read that showed version `version`
/// (or newer) of item `id`; `None` if none had by [`GIVE_UP`]. Tries again after 1 ms, doubling
/// up to 20 ms.
async fn fresh_after(
    cache: &AnyCache,
    id: i64,
    version: i64,
    written: Instant,
) -> Option<Duration> {
    let mut wait = Duration::from_millis(1);
    loop {
        let asked = written.elapsed();
        let read = cache.item(id).await.ok().and_then(|r| r.value);
        if read.is_some_and(|item| item.version >= version) {
            return Some(asked);
        }
        if written.elapsed() > GIVE_UP {
            return None;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(20));
    }
}

/// One reader's row.
#[derive(Serialize)]
struct Line {
    reader: &'static str,
    requests_per_s: f64,
    latency: LatencySummary,
    l1_hit_ratio: f64,
    l2_hit_ratio: f64,
    db_queries: u64,
    commands_per_read: f64,
    reads: u64,
    stale_reads: u64,
    beyond_bound: u64,
    staleness: LatencySummary,
    /// Writes whose old value was still served when the probe gave up.
    never: u64,
    redis_errors: u64,
}

impl Row for Line {
    fn headers() -> Vec<&'static str> {
        vec![
            "reader",
            "requests/s",
            "p50",
            "p99",
            "L1 hits",
            "L2 hits",
            "db queries",
            "redis cmds/read",
            "stale reads",
            "beyond bound",
            "staleness p99",
        ]
    }

    fn cells(&self) -> Vec<String> {
        let staleness = if self.never > 0 {
            format!("> {} s ({} writes)", GIVE_UP.as_secs(), self.never)
        } else {
            report::micros(self.staleness.p99_us)
        };
        vec![
            self.reader.to_string(),
            report::count(self.requests_per_s as u64),
            report::micros(self.latency.p50_us),
            report::micros(self.latency.p99_us),
            report::percent(self.l1_hit_ratio),
            report::percent(self.l2_hit_ratio),
            report::count(self.db_queries),
            format!("{:.2}", self.commands_per_read),
            report::count(self.stale_reads),
            report::count(self.beyond_bound),
            staleness,
        ]
    }
}

/// One layer's row of the two-tier cache's breakdown.
#[derive(Serialize)]
struct LayerLine {
    layer: &'static str,
    latency: LatencySummary,
    share: f64,
}

impl Row for LayerLine {
    fn headers() -> Vec<&'static str> {
        vec!["answered by", "reads", "share", "p50", "p99"]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.layer.to_string(),
            report::count(self.latency.count),
            report::percent(self.share),
            report::micros(self.latency.p50_us),
            report::micros(self.latency.p99_us),
        ]
    }
}

fn layer_conclusion(rows: &[LayerLine]) -> String {
    let find = |label: &str| rows.iter().find(|r| r.layer == label);
    match (find("L1"), find("L2")) {
        (Some(l1), Some(l2)) => format!(
            "{} of reads never left the process; a read Redis answered took {} at the median, one \
             L1 answered at most {} (the histogram's floor is 1 µs; the bench measures it in ns).",
            report::percent(l1.share),
            report::micros(l2.latency.p50_us),
            report::micros(l1.latency.p50_us),
        ),
        _ => "Too few reads per layer to compare.".to_string(),
    }
}

/// The sentences the readers' table ends with, computed from its rows.
fn conclude(rows: &[Line], settings: &Settings) -> String {
    let find = |kind: Kind| rows.iter().find(|r| r.reader == kind.label());
    let (Some(redis), Some(source), Some(two_tier)) = (
        find(Kind::RedisOnly),
        find(Kind::Source),
        find(Kind::TwoTier),
    ) else {
        return String::new();
    };
    let errors: u64 = rows.iter().map(|r| r.redis_errors).sum();
    let reads: u64 = rows.iter().map(|r| r.reads).sum();
    let mut out = report::disturbed(errors, reads).unwrap_or_default();
    out.push_str(&format!(
        "The two-tier cache served {:.1}x the requests/s of Redis only (p50 {} against {}), with \
         {} stale reads beyond its {} ms bound; the source's dictionary L1 served {} reads of \
         values older than {} ms{}. ",
        two_tier.requests_per_s / redis.requests_per_s.max(1.0),
        report::micros(two_tier.latency.p50_us),
        report::micros(redis.latency.p50_us),
        report::count(two_tier.beyond_bound),
        settings.l1_ttl.as_millis(),
        report::count(source.beyond_bound),
        settings.l1_ttl.as_millis(),
        match source.never {
            0 => String::new(),
            n => format!(
                ", and {n} writes were never seen by some instance within {} s",
                GIVE_UP.as_secs()
            ),
        },
    ));
    if let Some(tracking) = find(Kind::Tracking) {
        out.push_str(&format!(
            "Client tracking answered {} of reads from memory at {:.1}x Redis only's requests/s, \
             with {} stale reads beyond the bound.",
            report::percent(tracking.l1_hit_ratio),
            tracking.requests_per_s / redis.requests_per_s.max(1.0),
            report::count(tracking.beyond_bound),
        ));
    }
    out
}

// ANCHOR: evictions
/// FIFO, LRU and TinyLFU at three sizes on the Zipf trace, with and without a scan; Redis's two
/// policies at the middle size.
async fn evictions(cli: &Cli) -> anyhow::Result<Report<EvictionLine>> {
    let sizes = [
        cli.trace_keys / 100,
        cli.trace_keys / 20,
        cli.trace_keys / 5,
    ]
    .map(|s| s.max(1));
    let zipf = || Trace::zipf(cli.trace_keys, cli.trace as usize, cli.skew, cli.seed);
    let scan_len = (2 * sizes[2]) as usize;
    let traces = [
        ("Zipf", zipf()),
        ("Zipf + scan", zipf().with_scan(scan_len)),
    ];
    let mut report = Report::new(format!(
        "Eviction: hit ratio over a tenth of a {}-request Zipf trace of {} keys, from its half",
        report::count(cli.trace),
        report::count(cli.trace_keys)
    ));
    report
        .setting("skew", cli.skew)
        .setting(
            "scan",
            format!(
                "{} cold keys, once each, at the half",
                report::count(scan_len as u64)
            ),
        )
        .setting("sizes", sizes.map(report::count).join(", "));
    let bar = shared::workload::progress_bar(
        "eviction",
        (Policy::ALL.len() * sizes.len() * traces.len() + 2 * traces.len()) as u64,
        cli.report.format.progress(),
    );
    for policy in Policy::ALL {
        for (trace_name, trace) in &traces {
            let ratios = sizes.map(|size| {
                bar.inc(1);
                Some(eviction::hit_ratio(policy, size, trace))
            });
            report.rows.push(EvictionLine {
                policy: policy.label(),
                trace: trace_name,
                hit_ratios: ratios.to_vec(),
            });
        }
    }
    for policy in ["allkeys-lru", "allkeys-lfu"] {
        for (trace_name, trace) in &traces {
            let replay = eviction::redis_hit_ratio(policy, sizes[1], trace)
                .await
                .context(
                    "the Redis eviction replay (a private redis-server with a memory limit) failed",
                )?;
            bar.inc(1);
            report.rows.push(EvictionLine {
                policy: if policy == "allkeys-lru" {
                    "Redis allkeys-lru"
                } else {
                    "Redis allkeys-lfu"
                },
                trace: trace_name,
                hit_ratios: vec![None, Some(replay.hit_ratio), None],
            });
        }
    }
    bar.finish_and_clear();
    report.conclusion = conclude_evictions(&report.rows, &sizes);
    if let Some(path) = &cli.report.plot {
        let series: Vec<(String, Vec<(f64, f64)>)> = report
            .rows
            .iter()
            .filter(|r| r.hit_ratios.iter().all(Option::is_some))
            .map(|r| {
                let points = sizes
                    .iter()
                    .zip(&r.hit_ratios)
                    .map(|(size, ratio)| (*size as f64, ratio.unwrap_or(0.0) * 100.0))
                    .collect();
                (format!("{}, {}", r.policy, r.trace), points)
            })
            .collect();
        let series: Vec<(&str, Vec<(f64, f64)>)> = series
            .iter()
            .map(|(l, p)| (l.as_str(), p.clone()))
            .collect();
        let axes = Axes {
            x: "L1 size (entries)",
            y: "hit ratio (%)",
            log_x: true,
        };
        plot::curves(path, "L1 hit ratio by eviction policy", axes, &series)?;
        eprintln!("chart written to {}", path.display());
    }
    Ok(report)
}
// ANCHOR_END: evictions

/// One policy on one trace.
#[derive(Serialize)]
struct EvictionLine {
    policy: &'static str,
    trace: &'static str,
    /// At each of the three sizes; `None` where it was not measured.
    hit_ratios: Vec<Option<f64>>,
}

impl Row for EvictionLine {
    fn headers() -> Vec<&'static str> {
        vec!["policy", "trace", "1% of keys", "5%", "20%"]
    }

    fn cells(&self) -> Vec<String> {
        let mut cells = vec![self.policy.to_string(), self.trace.to_string()];
        cells.extend(
            self.hit_ratios
                .iter()
                .map(|r| r.map_or("-".to_string(), report::percent)),
        );
        cells
    }
}

fn conclude_evictions(rows: &[EvictionLine], sizes: &[u64; 3]) -> String {
    let at = |policy: &str, trace: &str, size: usize| {
        rows.iter()
            .find(|r| r.policy == policy && r.trace == trace)
            .and_then(|r| r.hit_ratios[size])
            .unwrap_or(0.0)
    };
    let (fifo, lru, tiny) = (
        Policy::Fifo.label(),
        Policy::Lru.label(),
        Policy::TinyLfu.label(),
    );
    let cost = |policy: &str| 100.0 * (at(policy, "Zipf", 2) - at(policy, "Zipf + scan", 2));
    format!(
        "At {} entries, TinyLFU hit {} against LRU's {} and FIFO's {}. At {}, the scan cost LRU \
         {:.1} points, FIFO {:.1} and TinyLFU {:.1}. Redis at {} keys: allkeys-lfu {} against \
         allkeys-lru {} ({} and {} after the scan).",
        report::count(sizes[0]),
        report::percent(at(tiny, "Zipf", 0)),
        report::percent(at(lru, "Zipf", 0)),
        report::percent(at(fifo, "Zipf", 0)),
        report::count(sizes[2]),
        cost(lru),
        cost(fifo),
        cost(tiny),
        report::count(sizes[1]),
        report::percent(at("Redis allkeys-lfu", "Zipf", 1)),
        report::percent(at("Redis allkeys-lru", "Zipf", 1)),
        report::percent(at("Redis allkeys-lfu", "Zipf + scan", 1)),
        report::percent(at("Redis allkeys-lru", "Zipf + scan", 1)),
    )
}
