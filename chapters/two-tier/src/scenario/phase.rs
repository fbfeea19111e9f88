//! One reader kind's turn: its instances read while a back-office instance changes prices, and a
//! probe after each write ([`shared::staleness`]) times how long some instance still showed the
//! old price.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use shared::Stage;
use shared::staleness::{Committed, Probes, Staleness};
use two_tier::{AnyCache, Kind, Settings, Stats, catalog};

use super::reading::{ReadCounts, ReadingTask};
use crate::Cli;

/// Reading tasks per instance.
const READERS: usize = 4;
/// How often the warm-up looks at the counters.
const WARM_UP_WINDOW: Duration = Duration::from_millis(100);
/// The longest warm-up: past it the measurement starts anyway, and the report says so.
const WARM_UP_LIMIT: Duration = Duration::from_secs(10);
/// How long a probe keeps asking before it records "not within the run".
pub const GIVE_UP: Duration = Duration::from_secs(3);

/// One reader kind's turn: its instances, the back office, and what they count.
pub struct Phase<'a> {
    stage: &'a Stage,
    kind: Kind,
    settings: Settings,
    instances: Vec<Arc<AnyCache>>,
    writer: AnyCache,
    committed: Arc<Committed>,
}

/// What one turn measured, for its row and its breakdown by layer.
pub struct Measured {
    pub kind: Kind,
    /// How long the measured reads ran.
    pub elapsed: Duration,
    /// What every reading task counted, together.
    pub counts: ReadCounts,
    /// The reading instances' counters when the measurement began, and after the last probe.
    pub before: Stats,
    pub after: Stats,
    /// Database queries from the start of the measurement to the last probe.
    pub db_queries: u64,
    /// Commands Redis processed while the readers were measured; `None` when Redis failed
    /// meanwhile (a restart starts its count again, so the difference would mean nothing).
    pub commands: Option<u64>,
    /// Per write, how long until every instance showed it, or that some never did.
    pub staleness: Staleness,
    /// How long the readers ran before the measurement, and whether the caches were warm by
    /// then (see [`Phase::warm_up`]) or the limit ended the warm-up.
    pub warm_up: Duration,
    pub warmed: bool,
}

impl<'a> Phase<'a> {
    /// Items back at their seed prices, and `--instances` readers of `kind` plus the back office,
    /// each an instance of its own, in a namespace of the kind's own.
    pub async fn open(
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
            committed: Arc::new(Committed::new(cli.items as i64)),
        })
    }

    /// Readers on every instance for `--run-ms`, the writes from the back office meanwhile, a
    /// probe of every instance after each write.
    pub async fn run(self, cli: &Cli) -> anyhow::Result<Measured> {
        let (measuring, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let mut tasks = Vec::new();
        for (n, instance) in self.instances.iter().enumerate() {
            for r in 0..READERS {
                let seed = cli.seed.wrapping_add((n * READERS + r + 1) as u64);
                let reader = ReadingTask {
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
        let (warm_up, warmed) = self.warm_up().await;
        let mut conn = self.stage.conn();
        let commands_before = conn.commands_processed().await.ok();
        let before = self.stats();
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
        let mut probes = Probes::new(self.instances.clone(), GIVE_UP);
        let write_every = Duration::from_millis(cli.write_every_ms);
        while started.elapsed() < Duration::from_millis(cli.run_ms) {
            let id = zipf.sample(&mut rng) as i64;
            if let Some(row) = self
                .writer
                .set_price(id, rng.random_range(100..10_000))
                .await?
            {
                self.committed.raise(id, row.version);
                probes.start(row.id, row.version);
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
        let commands_after = conn.commands_processed().await.ok();
        let staleness = probes.finish().await?;
        bar.finish_and_clear();
        let after = self.stats();
        let commands = match (commands_before, commands_after) {
            (Some(b), Some(a)) if after.redis_errors == before.redis_errors => a.checked_sub(b),
            _ => None,
        };
        Ok(Measured {
            kind: self.kind,
            elapsed,
            counts,
            before,
            after,
            db_queries: self.stage.db().queries() - queries_before,
            commands,
            staleness,
            warm_up,
            warmed,
        })
    }

    /// Lets the readers run until the caches are warm: over the last `WARM_UP_WINDOW`, at most 1%
    /// of the reads went to the database, and the share answered by L1 moved by less than two
    /// points from the window before. A fixed warm-up left cold loads inside the measurement on
    /// one run and not on the next, and the comparison swung with them (0.5x to 3.1x). Returns
    /// how long it took, and `false` if `WARM_UP_LIMIT` ended it first.
    async fn warm_up(&self) -> (Duration, bool) {
        let started = Instant::now();
        let mut last = self.stats();
        let mut last_l1_share: Option<f64> = None;
        while started.elapsed() < WARM_UP_LIMIT {
            tokio::time::sleep(WARM_UP_WINDOW).await;
            let now = self.stats();
            let reads = now.reads() - last.reads();
            let loads = now.loads - last.loads;
            let l1_share = (now.l1_hits - last.l1_hits) as f64 / reads.max(1) as f64;
            let settled = last_l1_share.is_some_and(|share| (l1_share - share).abs() < 0.02);
            if reads > 0 && loads * 100 <= reads && settled {
                return (started.elapsed(), true);
            }
            (last, last_l1_share) = (now, Some(l1_share));
        }
        (started.elapsed(), false)
    }

    /// Every reading instance's counters, added up.
    fn stats(&self) -> Stats {
        self.instances.iter().map(|i| i.stats()).sum()
    }
}
