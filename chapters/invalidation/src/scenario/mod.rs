//! The demo's three measurements, and what the two runs of writes share: a phase, one strategy's
//! turn with its instances, its back office and its readers.

pub mod keys_against_scan;
pub mod outage;
pub mod readers;
pub mod steady;

use std::sync::Arc;
use std::time::Duration;

use invalidation::catalog;
use invalidation::keys::Keys;
use invalidation::outbox::Relay;
use invalidation::{AnyStrategy, Item, Kind, Settings, Strategy};
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Zipf};
use shared::Stage;
use shared::staleness::Committed;
use shared::worker::Worker;

use crate::Cli;
use readers::Readers;

/// The time between two writes.
const WRITE_EVERY: Duration = Duration::from_millis(20);
/// How long the readers run before the writes start, so the caches are warm.
const WARM_UP: Duration = Duration::from_millis(200);

/// The demo's settings: a short TTL, so the TTL-only bound shows within the run.
fn settings() -> Settings {
    Settings {
        ttl: Duration::from_secs(1),
        local_ttl: Duration::from_secs(1),
        relay_max_backoff: Duration::from_millis(100),
        ..Settings::default()
    }
}

/// One random price change: a Zipf-drawn item and its new price in cents.
fn draw(zipf: &Zipf<f64>, rng: &mut StdRng) -> (i64, i64) {
    (zipf.sample(rng) as i64, rng.random_range(100..10_000))
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
    /// Every item back to its seed, then `--instances` readers and a back office running `kind`.
    async fn open(
        cli: &Cli,
        stage: &'a Stage,
        kind: Kind,
        settings: Settings,
    ) -> anyhow::Result<Phase<'a>> {
        catalog::reset(stage.db()).await?;
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

    /// Starts the readers on every instance, and waits a moment for the caches to warm; the
    /// database's queries are counted from then on.
    async fn start_readers(&self, cli: &Cli) -> anyhow::Result<Readers> {
        let readers = Readers::start(&self.instances, &self.committed, cli)?;
        tokio::time::sleep(WARM_UP).await;
        self.stage.db().reset_queries();
        Ok(readers)
    }

    /// Commits one random price change from the back office; the committed row, once it
    /// returned.
    async fn write(&self, zipf: &Zipf<f64>, rng: &mut StdRng) -> anyhow::Result<Option<Item>> {
        let (id, price) = draw(zipf, rng);
        self.set_price(id, price).await
    }

    /// Commits the price change of `id` from the back office; the committed row, once it
    /// returned.
    async fn set_price(&self, id: i64, price: i64) -> anyhow::Result<Option<Item>> {
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

    /// Stops the relay, if the strategy has one.
    async fn close(self) -> anyhow::Result<()> {
        if let Some((_, worker)) = self.relay {
            worker.stop().await?;
        }
        Ok(())
    }
}
