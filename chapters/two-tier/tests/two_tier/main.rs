//! What the two-tier cache promises, checked with real instances against a real Redis and a real
//! database: a write reaches every L1 within the bound, a lost backplane flushes, an invalidation
//! beats a load in flight, concurrent misses make one trip, L1 keeps its size and lifetime, Redis
//! trouble degrades to the database, and the fail-safe serves old values only up to their age.
//! The source material's L1 is checked to fail the first promise. L1 in step across instances
//! ([`consistency`]), then trouble below it ([`faults`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use shared::exercise::until;
use shared::{DbOptions, ServerOptions, Stage};
use sqlx::Executor;
use two_tier::l1::{Fetch, L1};
use two_tier::{AnyCache, Item, Kind, Layer, Settings, catalog};

/// Long enough that nothing expires during a test unless the test says so.
fn settings() -> Settings {
    Settings {
        l1_ttl: Duration::from_secs(60),
        ..Settings::default()
    }
}

/// How long a test waits for an event (a message heard, a flush) before failing.
const EVENT_WITHIN: Duration = Duration::from_secs(5);

const ITEM: i64 = 5;

struct Fixture {
    stage: Stage,
}

impl Fixture {
    async fn on(stage: Result<Stage, shared::SetupError>) -> Self {
        let stage = stage.expect("a Redis and a database for the tests");
        catalog::create(stage.db(), 300).await.unwrap();
        Fixture { stage }
    }

    async fn shared() -> Self {
        Self::on(Stage::from_env("two-tier-test", DbOptions::default()).await).await
    }

    async fn private() -> Self {
        let db = DbOptions::default();
        Self::on(Stage::private("two-tier-test", db, ServerOptions::default()).await).await
    }

    /// For a test that cuts every subscriber's connection: never on a Redis others share.
    async fn of_its_own() -> Self {
        Self::on(Stage::of_its_own("two-tier-test", DbOptions::default()).await).await
    }

    async fn instance(&self, kind: Kind, settings: Settings) -> AnyCache {
        let instance = self.stage.instance().await.unwrap();
        let (url, db) = (self.stage.redis_url(), self.stage.db().clone());
        AnyCache::build(kind, &instance, &url, db, self.stage.namespace(), settings)
            .await
            .unwrap()
    }

    async fn two_tier(&self, settings: Settings) -> AnyCache {
        self.instance(Kind::TwoTier, settings).await
    }

    /// Renames the table away (`true`) or back: every query fails meanwhile.
    async fn break_database(&self, broken: bool) {
        let (from, to) = if broken {
            ("items", "items_away")
        } else {
            ("items_away", "items")
        };
        let mut setup = self.stage.db().setup().await.unwrap();
        setup
            .execute(format!("ALTER TABLE {from} RENAME TO {to}").as_str())
            .await
            .unwrap();
        setup.commit().await.unwrap();
    }
}

/// Reads `id` through `cache`, expecting an answer.
async fn read(cache: &AnyCache, id: i64) -> (Item, Layer) {
    let read = cache.item(id).await.expect("the read is answered");
    (read.value.expect("the item exists"), read.layer)
}

mod consistency;
mod faults;
