//! `cargo run -p invalidation`: several application instances read a Zipf workload of items and
//! category listings while a writer changes prices; for each strategy, how long after each commit
//! some instance could still read the old price, and what that cost. Then the same with Redis
//! stopped for a moment during the writes: which strategies leave old values behind.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use invalidation::catalog::{self, category_of, seed_price};
use invalidation::keys::Keys;
use invalidation::outbox::Relay;
use invalidation::pattern::{Walk, pause_under};
use invalidation::probe::{Committed, fresh_after};
use invalidation::{AnyStrategy, Item, Kind, Settings, Strategy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use serde::Serialize;
use shared::cli::{Backends, ReportArgs, number_in, whole_in};
use shared::metrics::{Latency, LatencySummary};
use shared::report::{self, Report, Row};
use shared::worker::Worker;
use shared::{Cleanup, Database, DbOptions, ServerOptions, Stage};

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
struct Cli {
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

/// The demo's settings: a short TTL, so the TTL-only bound shows within the run.
fn settings() -> Settings {
    Settings {
        ttl: Duration::from_secs(1),
        local_ttl: Duration::from_secs(1),
        relay_max_backoff: Duration::from_millis(100),
        ..Settings::default()
    }
}

/// The outage run's settings: a TTL of 5 s, so that an old value that lives until its TTL is
/// told apart from one a strategy removed.
fn outage_settings() -> Settings {
    Settings {
        ttl: Duration::from_secs(5),
        local_ttl: Duration::from_secs(5),
        ..settings()
    }
}

/// How long a probe keeps asking before it records "not within the run".
const GIVE_UP: Duration = Duration::from_secs(3);
/// The time between two writes.
const WRITE_EVERY: Duration = Duration::from_millis(20);
/// Readers per instance.
const READERS: usize = 4;
/// How long the readers run before the writes start, so the caches are warm.
const WARM_UP: Duration = Duration::from_millis(200);
/// How long after Redis returns the old values are counted: time for a relay's retry and a
/// subscriber's resubscription.
const SETTLE: Duration = Duration::from_millis(300);
/// How long after Redis returns the outage run waits for the old values to go.
const CLEAR_WITHIN: Duration = Duration::from_millis(1_000);

async fn run(cli: Cli, cleanup: Cleanup) -> anyhow::Result<()> {
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

    let mut steady = Report::new(format!(
        "Invalidation: {} price changes per strategy, read by {} instances",
        cli.writes, cli.instances
    ));
    steady
        .setting("items", report::count(cli.items))
        .setting("skew", cli.skew)
        .setting("ttl", "1 s")
        .setting("db latency", format!("{} ms", cli.db_latency_ms))
        .setting("db", stage.db().backend())
        .setting("redis", cli.backends.redis_label());
    for kind in Kind::ALL {
        let phase = Phase::open(&cli, &stage, kind, settings()).await?;
        steady.rows.push(phase.run_steady(&cli).await?);
    }
    steady.conclusion = conclude_steady(&steady.rows);
    steady.print(cli.report.format);

    if cli.pause_keys > 0 {
        println!();
        pauses(&cli, &stage).await?.print(cli.report.format);
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
    let mut outage = Report::new(format!(
        "The same with Redis stopped for {} ms in the middle of the writes",
        cli.outage_ms
    ));
    outage
        .setting(
            "redis",
            "a private server, stopped and restarted with its data",
        )
        .setting("db", outage_stage.db().backend());
    let down = Duration::from_millis(cli.outage_ms);
    for kind in Kind::ALL {
        if kind == Kind::LocalDependencies {
            continue; // its flaw shows without an outage
        }
        let phase = Phase::open(&cli, &outage_stage, kind, outage_settings()).await?;
        outage.rows.push(phase.run_outage(&cli, down).await?);
    }
    outage.conclusion = conclude_outage(&outage.rows);
    outage.print(cli.report.format);
    Ok(())
}

/// One strategy's turn: its instances, its relay (outbox), and what they count.
struct Phase<'a> {
    stage: &'a Stage,
    kind: Kind,
    keys: Keys,
    instances: Vec<Arc<AnyStrategy>>,
    /// The back office: writes, never reads.
    writer: AnyStrategy,
    relay: Option<(Arc<Relay>, Worker)>,
    committed: Arc<Committed>,
}

impl<'a> Phase<'a> {
    async fn open(
        cli: &Cli,
        stage: &'a Stage,
        kind: Kind,
        settings: Settings,
    ) -> anyhow::Result<Phase<'a>> {
        reset_items(stage.db(), cli.items as i64).await?;
        let keys = Keys::new(stage.namespace().child(kind.slug()));
        let mut instances = Vec::new();
        for _ in 0..=cli.instances {
            let instance = stage.instance().await?;
            let db = stage.db().clone();
            let strategy =
                AnyStrategy::build(kind, &instance, db, keys.clone(), settings.clone()).await;
            instances.push(Arc::new(strategy));
        }
        let writer = Arc::into_inner(instances.pop().expect("one more than --instances"))
            .expect("not shared yet");
        let relay = (kind == Kind::Outbox).then(|| {
            let relay = Arc::new(Relay::new(
                stage.db().clone(),
                stage.conn(),
                settings.clone(),
            ));
            (relay.clone(), relay.start())
        });
        Ok(Phase {
            stage,
            kind,
            keys,
            instances,
            writer,
            relay,
            committed: Arc::new(Committed::new(cli.items as i64)),
        })
    }

    /// Starts `READERS` readers on every instance, and waits a moment for the caches to warm.
    async fn start_readers(&self, cli: &Cli) -> anyhow::Result<Readers> {
        let readers = Readers::default();
        let mut tasks = Vec::new();
        for (n, instance) in self.instances.iter().enumerate() {
            for r in 0..READERS {
                let seed = cli.seed.wrapping_add((n * READERS + r + 1) as u64);
                tasks.push(tokio::spawn(read_until_stopped(
                    instance.clone(),
                    self.committed.clone(),
                    Zipf::new(cli.items as f64, cli.skew)?,
                    seed,
                    readers.counters.clone(),
                )));
            }
        }
        tokio::time::sleep(WARM_UP).await;
        self.stage.db().reset_queries();
        Ok(Readers { tasks, ..readers })
    }

    /// Commits one random price change from the back office; the committed row, once it
    /// returned.
    async fn write(&self, zipf: &Zipf<f64>, rng: &mut StdRng) -> anyhow::Result<Option<Item>> {
        let id = zipf.sample(rng) as i64;
        let price = rng.random_range(100..10_000);
        let row = self.writer.set_price(id, price).await?;
        if let Some(row) = &row {
            self.committed.raise(id, row.version);
        }
        Ok(row)
    }

    /// What the strategy's invalidations cost in Redis commands, per write.
    fn commands_per_write(&self, writes: u64) -> f64 {
        let commands = self.writer.cache().invalidation_commands.get()
            + self
                .relay
                .as_ref()
                .map_or(0, |(relay, _)| relay.metrics.commands.get());
        commands as f64 / writes as f64
    }

    async fn close(self) -> anyhow::Result<()> {
        if let Some((_, worker)) = self.relay {
            worker.stop().await?;
        }
        Ok(())
    }

    // ANCHOR: steady
    /// Readers on every instance; the writes from the back office, with a probe of every
    /// instance after each.
    async fn run_steady(self, cli: &Cli) -> anyhow::Result<Line> {
        let readers = self.start_readers(cli).await?;
        let bar = shared::workload::progress_bar(
            self.kind.label(),
            cli.writes,
            cli.report.format.progress(),
        );
        let zipf = Zipf::new(cli.items as f64, cli.skew)?;
        let mut rng = StdRng::seed_from_u64(cli.seed);
        let mut probes = Vec::new();
        for _ in 0..cli.writes {
            if let Some(row) = self.write(&zipf, &mut rng).await? {
                let written = Instant::now();
                let instances = self.instances.clone();
                probes.push(tokio::spawn(async move {
                    let each = instances
                        .iter()
                        .map(|i| fresh_after(&**i, row.id, row.version, written, GIVE_UP));
                    let fresh = futures_util::future::join_all(each).await;
                    // The slowest instance decides; one that never showed it makes it "never".
                    fresh
                        .into_iter()
                        .try_fold(Duration::ZERO, |a, b| Some(a.max(b?)))
                }));
            }
            bar.inc(1);
            tokio::time::sleep(WRITE_EVERY).await;
        }
        let mut staleness = Latency::default();
        let mut never = 0;
        for probe in probes {
            match probe.await? {
                Some(took) => staleness.record(took),
                None => never += 1,
            }
        }
        bar.finish_and_clear();
        let (reads, stale_reads) = readers.stop().await?;
        let retired_bytes = if self.kind == Kind::Generations {
            Some(old_generation_bytes(self.stage, &self.keys).await?)
        } else {
            None
        };
        let line = Line {
            strategy: self.kind.label(),
            staleness: staleness.summary(),
            never,
            reads,
            stale_reads,
            queries: self.stage.db().queries(),
            commands_per_write: self.commands_per_write(cli.writes),
            retired_bytes,
        };
        self.close().await?;
        Ok(line)
    }
    // ANCHOR_END: steady

    // ANCHOR: outage
    /// The writes again, Redis stopped (keeping its data) for `down` after a third of them.
    /// Once it is back and `SETTLE` has passed, every instance is asked for every item written
    /// while it was down: the old values it still shows, and how long until none is left.
    async fn run_outage(self, cli: &Cli, down: Duration) -> anyhow::Result<OutageLine> {
        let readers = self.start_readers(cli).await?;
        let zipf = Zipf::new(cli.items as f64, cli.skew)?;
        let mut rng = StdRng::seed_from_u64(cli.seed);
        let mut written_while_down = Vec::new();
        let mut returned = None;
        let mut stopped_at = None;
        for w in 0..cli.writes {
            if w == cli.writes / 3 {
                self.stage.server().stop_keeping_data()?;
                stopped_at = Some(Instant::now());
            }
            if returned.is_none() && stopped_at.is_some_and(|at| at.elapsed() >= down) {
                back_up(self.stage).await?;
                returned = Some(Instant::now());
            }
            let row = self.write(&zipf, &mut rng).await?;
            if let Some(row) = row
                && stopped_at.is_some()
                && returned.is_none()
            {
                written_while_down.push(row);
            }
            tokio::time::sleep(WRITE_EVERY).await;
        }
        let returned = match returned {
            Some(at) => at,
            None => {
                tokio::time::sleep(down.saturating_sub(stopped_at.map_or(down, |a| a.elapsed())))
                    .await;
                back_up(self.stage).await?;
                Instant::now()
            }
        };
        tokio::time::sleep(SETTLE.saturating_sub(returned.elapsed())).await;
        let checked = returned.elapsed();
        let left = self.old_values_shown(&written_while_down).await;
        let mut cleared = (left == 0).then_some(checked);
        while cleared.is_none() && returned.elapsed() < CLEAR_WITHIN {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let checked = returned.elapsed();
            if self.old_values_shown(&written_while_down).await == 0 {
                cleared = Some(checked);
            }
        }
        let (reads, stale_reads) = readers.stop().await?;
        let line = OutageLine {
            strategy: self.kind.label(),
            written_while_down: written_while_down.len() as u64,
            left,
            cleared,
            reads,
            stale_reads,
        };
        self.close().await?;
        Ok(line)
    }
    // ANCHOR_END: outage

    /// How many (instance, item) pairs show a version older than the one `written` committed.
    async fn old_values_shown(&self, written: &[Item]) -> u64 {
        let mut old = 0;
        for instance in &self.instances {
            for row in written {
                let item = instance.item(row.id).await.ok().flatten();
                let listing = instance
                    .listing(category_of(row.id))
                    .await
                    .unwrap_or_default();
                let listed = listing.iter().find(|i| i.id == row.id).map(|i| i.version);
                let newest = self.committed.get(row.id);
                if item.is_some_and(|i| i.version < newest) || listed.is_some_and(|v| v < newest) {
                    old += 1;
                }
            }
        }
        old
    }
}

/// The readers of one phase, and what they counted.
#[derive(Default)]
struct Readers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    counters: Arc<ReadCounters>,
}

/// Reads served, and the stale ones among them; `stop` ends the readers.
#[derive(Default)]
struct ReadCounters {
    stop: AtomicBool,
    reads: AtomicU64,
    stale: AtomicU64,
}

impl Readers {
    /// Stops the readers; how many reads they made, and how many were stale.
    async fn stop(self) -> anyhow::Result<(u64, u64)> {
        self.counters.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await?;
        }
        let c = &self.counters;
        Ok((
            c.reads.load(Ordering::SeqCst),
            c.stale.load(Ordering::SeqCst),
        ))
    }
}

/// One reader: Zipf-drawn items, one read in five a listing, until stopped. A read that began
/// after a newer version was committed and returned an older one is stale.
async fn read_until_stopped(
    strategy: Arc<AnyStrategy>,
    committed: Arc<Committed>,
    zipf: Zipf<f64>,
    seed: u64,
    counters: Arc<ReadCounters>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !counters.stop.load(Ordering::SeqCst) {
        let id = zipf.sample(&mut rng) as i64;
        let expected = committed.get(id);
        let seen = if rng.random_bool(0.2) {
            let listing = strategy.listing(category_of(id)).await;
            listing
                .ok()
                .and_then(|l| l.into_iter().find(|i| i.id == id))
                .map(|i| i.version)
        } else {
            strategy.item(id).await.ok().flatten().map(|i| i.version)
        };
        counters.reads.fetch_add(1, Ordering::Relaxed);
        if seen.is_some_and(|v| v < expected) {
            counters.stale.fetch_add(1, Ordering::Relaxed);
        }
        tokio::task::yield_now().await;
    }
}

// ANCHOR: pauses
/// Fills Redis with `--pause-keys` keys, 1% of them matching a pattern, and deletes the matching
/// ones twice (refilled in between): once with `KEYS`, once with `SCAN` + `UNLINK`, while another
/// connection's `PING`s record what every other client lived through.
async fn pauses(cli: &Cli, stage: &Stage) -> anyhow::Result<Report<PauseLine>> {
    let namespace = stage.namespace().child("pause");
    // One hash tag: on a cluster, the whole walk is on one master, as it would be on one server.
    let slot = namespace.key("pause");
    let mut report = Report::new(format!(
        "Deleting 1% of {} keys by pattern: how long every other client waited",
        report::count(cli.pause_keys)
    ));
    report.setting("scan count", invalidation::pattern::SCAN_COUNT);
    let watcher = stage.instance().await?.conn;
    for walk in [Walk::Keys, Walk::Scan] {
        fill(stage, &slot, cli.pause_keys).await?;
        let pattern = format!("{slot}:m:*");
        let pause = pause_under(walk, &stage.conn(), &watcher, &pattern).await?;
        report.rows.push(PauseLine {
            walk: match walk {
                Walk::Keys => "KEYS, then UNLINK",
                Walk::Scan => "SCAN + UNLINK, page by page",
            },
            matched: pause.matched as u64,
            took_us: pause.took.as_micros() as u64,
            pings: pause.pings,
        });
    }
    let (keys, scan) = (&report.rows[0], &report.rows[1]);
    report.conclusion = format!(
        "KEYS held every other client for up to {} (a PING's longest wait), SCAN for up to {}; \
         both deleted the same {} keys, SCAN taking {} in all against {}.",
        report::micros(keys.pings.max_us),
        report::micros(scan.pings.max_us),
        report::count(scan.matched),
        report::micros(scan.took_us),
        report::micros(keys.took_us),
    );
    let mut conn = stage.conn();
    shared::namespace::unlink_matching(&mut conn, &namespace.pattern(), 1_000).await?;
    Ok(report)
}
// ANCHOR_END: pauses

/// `count` keys under `slot`, one in a hundred named to match `...:m:*`, each with a TTL.
async fn fill(stage: &Stage, slot: &str, count: u64) -> anyhow::Result<()> {
    let mut conn = stage.conn();
    for start in (0..count).step_by(1_000) {
        let mut pipe = redis::pipe();
        for n in start..(start + 1_000).min(count) {
            let kind = if n % 100 == 0 { "m" } else { "x" };
            pipe.set_ex(format!("{slot}:{kind}:{n}"), n, 300).ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
    }
    Ok(())
}

/// One row of the `KEYS` against `SCAN` table.
#[derive(Serialize)]
struct PauseLine {
    walk: &'static str,
    matched: u64,
    took_us: u64,
    pings: LatencySummary,
}

impl Row for PauseLine {
    fn headers() -> Vec<&'static str> {
        vec![
            "walk",
            "keys deleted",
            "took",
            "PING p50",
            "PING max",
            "PINGs",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.walk.to_string(),
            report::count(self.matched),
            report::micros(self.took_us),
            report::micros(self.pings.p50_us),
            report::micros(self.pings.max_us),
            report::count(self.pings.count),
        ]
    }
}

/// Restarts the stopped Redis and waits until the stage's own connection answers again (it
/// reconnects on first use after the restart).
async fn back_up(stage: &Stage) -> anyhow::Result<()> {
    stage.server().restart()?;
    let mut conn = stage.conn();
    let command = redis::cmd("PING");
    for _ in 0..100 {
        let ping = command.query_async::<String>(&mut conn);
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(100), ping).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("the restarted Redis did not answer within 10 s")
}

/// Every item back to its seed price at version 1, the outbox empty (not counted).
async fn reset_items(db: &Database, items: i64) -> anyhow::Result<()> {
    let mut setup = db.setup().await?;
    for id in 1..=items {
        sqlx::query("UPDATE items SET price_cents = $1, version = 1 WHERE id = $2")
            .bind(seed_price(id))
            .bind(id)
            .execute(&mut *setup)
            .await?;
    }
    sqlx::query("DELETE FROM outbox")
        .execute(&mut *setup)
        .await?;
    setup.commit().await?;
    Ok(())
}

/// The memory held by keys of generations no read can reach any more (`MEMORY USAGE` of each).
async fn old_generation_bytes(stage: &Stage, keys: &Keys) -> anyhow::Result<u64> {
    let mut conn = stage.conn();
    let all = keys.namespace().keys(&mut conn).await?;
    let mut bytes = 0;
    for key in all {
        let Some(generation) = generation_in(&key) else {
            continue;
        };
        let category = catalog::CATEGORIES
            .iter()
            .find(|c| key.starts_with(&keys.slot(c)))
            .copied()
            .unwrap_or_default();
        let current: Option<i64> =
            redis::AsyncCommands::get(&mut conn, keys.generation(category)).await?;
        if generation < current.unwrap_or(0) {
            let used: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(&key)
                .query_async(&mut conn)
                .await?;
            bytes += used.unwrap_or(0);
        }
    }
    Ok(bytes)
}

/// The generation in a key like `...{inv-tea}:g7:item:12`.
fn generation_in(key: &str) -> Option<i64> {
    let rest = key.split("}:g").nth(1)?;
    rest.split(':').next()?.parse().ok()
}

/// One strategy's row.
#[derive(Serialize)]
struct Line {
    strategy: &'static str,
    staleness: LatencySummary,
    /// Writes whose old value was still served when the probe gave up.
    never: u64,
    reads: u64,
    stale_reads: u64,
    queries: u64,
    commands_per_write: f64,
    retired_bytes: Option<u64>,
}

impl Row for Line {
    fn headers() -> Vec<&'static str> {
        vec![
            "strategy",
            "staleness p50",
            "p99",
            "max",
            "stale reads",
            "db queries",
            "redis cmds/write",
            "retired bytes",
        ]
    }

    fn cells(&self) -> Vec<String> {
        let max = if self.never > 0 {
            format!("> {} s ({})", GIVE_UP.as_secs(), self.never)
        } else {
            report::micros(self.staleness.max_us)
        };
        vec![
            self.strategy.to_string(),
            report::micros(self.staleness.p50_us),
            report::micros(self.staleness.p99_us),
            max,
            format!(
                "{} of {}",
                report::count(self.stale_reads),
                report::count(self.reads)
            ),
            report::count(self.queries),
            format!("{:.1}", self.commands_per_write),
            self.retired_bytes.map_or("-".into(), report::count),
        ]
    }
}

/// The steady run's conclusion, from the numbers.
fn conclude_steady(rows: &[Line]) -> String {
    let worst = |row: &Line| (row.never, row.staleness.max_us);
    let best = rows.iter().min_by_key(|r| worst(r)).expect("rows");
    let ttl = rows.iter().find(|r| r.strategy == Kind::TtlOnly.label());
    let source = rows
        .iter()
        .find(|r| r.strategy == Kind::LocalDependencies.label());
    let mut text = format!(
        "{} left the old value readable for at most {}",
        best.strategy,
        report::micros(best.staleness.max_us)
    );
    if let Some(ttl) = ttl {
        text += &format!(
            ", TTL only for up to {} ({} stale reads)",
            report::micros(ttl.staleness.max_us),
            report::count(ttl.stale_reads)
        );
    }
    if let Some(source) = source {
        text += &format!(
            ". The source material's local dependency map served {} stale reads: another \
             instance's listing is invisible to it",
            report::count(source.stale_reads)
        );
    }
    text + "."
}

/// One strategy's row in the outage run.
#[derive(Serialize)]
struct OutageLine {
    strategy: &'static str,
    written_while_down: u64,
    /// (instance, item) pairs still showing an old version `SETTLE` after Redis returned.
    left: u64,
    /// From Redis's return until no instance showed an old version; `None`: not within
    /// `CLEAR_WITHIN`.
    cleared: Option<Duration>,
    reads: u64,
    stale_reads: u64,
}

impl Row for OutageLine {
    fn headers() -> Vec<&'static str> {
        vec![
            "strategy",
            "writes while down",
            "old values 300 ms after",
            "all gone after",
            "stale reads",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.strategy.to_string(),
            report::count(self.written_while_down),
            report::count(self.left),
            self.cleared.map_or(
                format!(
                    "> {:.1} s (left to the {} s TTL)",
                    CLEAR_WITHIN.as_secs_f64(),
                    outage_settings().ttl.as_secs()
                ),
                |d| report::micros(d.as_micros() as u64),
            ),
            format!(
                "{} of {}",
                report::count(self.stale_reads),
                report::count(self.reads)
            ),
        ]
    }
}

/// The outage run's conclusion, from the numbers.
fn conclude_outage(rows: &[OutageLine]) -> String {
    let names = |rows: Vec<&OutageLine>| -> String {
        let names: Vec<&str> = rows.iter().map(|r| r.strategy).collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    };
    let clean = names(rows.iter().filter(|r| r.left == 0).collect());
    let stuck = names(rows.iter().filter(|r| r.cleared.is_none()).collect());
    format!(
        "Once Redis was back, no instance showed an old price with: {clean}. Old prices were \
         still shown {:.1} s after it returned, to be removed only by their TTL, with: {stuck}.",
        CLEAR_WITHIN.as_secs_f64()
    )
}
