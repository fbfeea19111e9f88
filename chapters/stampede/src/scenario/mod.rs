//! The demo's two scenarios, and what both need: fleets of application instances, each fleet
//! running one strategy against one watched source.

pub mod burst;
pub mod steady;
pub mod tracked;

use std::sync::Arc;
use std::time::Duration;

use shared::Stage;
use shared::report;
use shared::workload::{Arrivals, RunStats, fire};
use stampede::{AnyStrategy, Kind, Settings, Stats, Strategy};

use crate::{Cli, load_time};
use tracked::Tracked;

/// What every scenario runs on.
pub struct Demo<'a> {
    pub cli: &'a Cli,
    pub stage: &'a Stage,
}

/// `--instances` instances of one strategy, sharing one source and one namespace.
pub struct Fleet {
    pub kind: Kind,
    pub source: Arc<Tracked>,
    instances: Vec<Arc<AnyStrategy<Tracked>>>,
}

impl<'a> Demo<'a> {
    pub fn new(cli: &'a Cli, stage: &'a Stage) -> Self {
        Demo { cli, stage }
    }

    /// A fresh fleet of `kind` for `scenario`, in a namespace of its own.
    pub async fn fleet(&self, scenario: &str, kind: Kind, ttl: Duration) -> anyhow::Result<Fleet> {
        let source = Arc::new(Tracked::new(self.stage.db().clone()));
        let namespace = self
            .stage
            .namespace()
            .child(&format!("{scenario}-{kind:?}"));
        let mut instances = Vec::new();
        for _ in 0..self.cli.instances {
            let mut instance = self.stage.instance().await?;
            instance.namespace = namespace.clone();
            let strategy =
                AnyStrategy::build(kind, &instance, source.clone(), self.settings(ttl)).await;
            instances.push(Arc::new(strategy));
        }
        Ok(Fleet {
            kind,
            source,
            instances,
        })
    }

    /// The strategies' settings for values fresh for `ttl`.
    fn settings(&self, ttl: Duration) -> Settings {
        let load = load_time(self.cli);
        Settings {
            ttl,
            beta: self.cli.beta,
            // Comfortably longer than a load, as a lock's TTL must be.
            lock_ttl: load * 10 + Duration::from_secs(1),
            max_wait: load * 20 + Duration::from_secs(2),
            ..Settings::default()
        }
    }

    /// Whether to draw progress bars.
    fn progress(&self) -> bool {
        self.cli.workload.report.format.progress()
    }

    /// A request at least this slow waited for a database load.
    fn slow_after(&self) -> Duration {
        load_time(self.cli) / 2
    }
}

impl Fleet {
    /// Sends request `i` for `key_of(i)` to instance `i % instances`, as `arrivals` says, then
    /// waits for the fleet's background work, so that it is counted.
    pub async fn fire(
        &self,
        arrivals: Arrivals,
        keys: Arc<dyn Fn(u64) -> String + Send + Sync>,
        requests: u64,
        progress: bool,
    ) -> anyhow::Result<RunStats> {
        let instances = self.instances.clone();
        let run = fire::fire(arrivals, requests, self.kind.label(), progress, move |i| {
            let instance = instances[i as usize % instances.len()].clone();
            let key = keys(i);
            async move { instance.get(&key).await.map(drop) }
        })
        .await;
        for instance in &self.instances {
            instance.settle().await?;
        }
        Ok(run)
    }

    /// Reads `key` through the first instance.
    pub async fn get(&self, key: &str) -> Result<shared::Product, stampede::Error> {
        self.instances[0].get(key).await
    }

    /// Every instance, for spreading work over them.
    pub fn instances(&self) -> &[Arc<AnyStrategy<Tracked>>] {
        &self.instances
    }

    /// The counters of every instance, added up.
    pub fn stats(&self) -> Stats {
        self.instances.iter().map(|i| i.stats()).sum()
    }
}

/// `n` with its noun, in the plural unless `n` is 1: `1 instance`, `4 instances`.
fn counted(n: u64, noun: &str) -> String {
    format!(
        "{} {noun}{}",
        report::count(n),
        if n == 1 { "" } else { "s" }
    )
}

/// The row of `kind` in a table whose rows carry their strategy's kind, read with `kind_of`.
fn row<L>(rows: &[L], kind: Kind, kind_of: impl Fn(&L) -> Kind) -> &L {
    rows.iter()
        .find(|r| kind_of(r) == kind)
        .expect("every strategy has a row")
}
