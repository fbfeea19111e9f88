//! What write-behind promises, checked against a real Redis and a real database: counting,
//! never timing. The write path ([`writes`]), the flusher and its crashes ([`flush`]), and Redis
//! or the database failing under it ([`faults`]); the fixture and helpers they share are here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use shared::server::MaxMemory;
use shared::{DbOptions, Persistence, ServerOptions, Stage};
use write_behind::flusher::{Entry, queue_depth};
use write_behind::write::{check_eviction_policy, create_queues};
use write_behind::{
    Apply, Flusher, HoldPoint, InProcessQueue, Layout, Scores, Settings, WriteBehind, WriteError,
    coalesce, table,
};

const PLAYERS: i64 = 40;

/// Short timings: a dead consumer's entries are claimed after 300 ms.
fn settings() -> Settings {
    Settings {
        claim_idle: Duration::from_millis(300),
        max_deliveries: 2,
        ttl: Duration::from_secs(120),
        ..Settings::default()
    }
}

/// A stage with the scores table and the queues.
struct Fixture {
    stage: Stage,
    layout: Layout,
}

impl Fixture {
    async fn on(stage: Result<Stage, shared::SetupError>) -> Self {
        Self::with_shards(stage, settings().shards).await
    }

    async fn with_shards(stage: Result<Stage, shared::SetupError>, shards: u16) -> Self {
        let stage = stage.expect("a Redis and a database for the tests");
        table::create(stage.db(), PLAYERS).await.unwrap();
        let layout = Layout::new(stage.namespace().clone(), shards);
        create_queues(&stage.conn(), &layout).await.unwrap();
        Fixture { stage, layout }
    }

    async fn shared() -> Self {
        Self::on(Stage::from_env("write-behind-test", DbOptions::default()).await).await
    }

    async fn private(server: ServerOptions) -> Self {
        Self::on(Stage::private("write-behind-test", DbOptions::default(), server).await).await
    }

    fn writer(&self) -> WriteBehind {
        WriteBehind::new(
            self.stage.conn(),
            self.stage.db().clone(),
            self.layout.clone(),
            settings(),
        )
    }

    fn flusher(&self, name: &str, apply: Apply) -> Arc<Flusher> {
        let (db, layout) = (self.stage.db().clone(), self.layout.clone());
        Arc::new(Flusher::new(db, layout, settings(), apply, name))
    }

    async fn points_in_db(&self, player: i64) -> i64 {
        self.stage.db().score(player).await.unwrap().unwrap().points
    }

    async fn depth(&self) -> u64 {
        queue_depth(&self.stage.conn(), &self.layout).await.unwrap()
    }

    /// Removes the run's keys and schema, while writers and flushers may still hold the
    /// database (the private SQLite file goes with the last of them).
    async fn close(self) {
        let left = self.stage.leftovers().remove().await;
        assert!(left.is_empty(), "the test's clean-up failed: {left:?}");
    }
}

/// Waits for `heard`, failing the test with `what` after 20 s.
async fn heard(heard: tokio::sync::oneshot::Receiver<()>, what: &str) {
    tokio::time::timeout(Duration::from_secs(20), heard)
        .await
        .unwrap_or_else(|_| panic!("{what} within 20 s"))
        .unwrap();
}

/// The (points, version) cached under `key`.
async fn cached_score(conn: &mut shared::RedisConn, key: &str) -> (i64, i64) {
    redis::cmd("HMGET")
        .arg(key)
        .arg("points")
        .arg("version")
        .query_async(conn)
        .await
        .unwrap()
}

/// Writes `writes` increments of 1 to players 1..=PLAYERS, round robin; returns each player's
/// acknowledged total.
async fn write_round_robin(writer: &WriteBehind, writes: i64) -> BTreeMap<i64, i64> {
    let mut expected = BTreeMap::new();
    for i in 0..writes {
        let player = i % PLAYERS + 1;
        writer.add_points(player, 1).await.unwrap();
        *expected.entry(player).or_insert(0) += 1;
    }
    expected
}

/// The players whose row differs from `expected`, as (player, expected, found).
async fn differences(fx: &Fixture, expected: &BTreeMap<i64, i64>) -> Vec<(i64, i64, i64)> {
    let mut wrong = Vec::new();
    for (&player, &points) in expected {
        let found = fx.points_in_db(player).await;
        if found != points {
            wrong.push((player, points, found));
        }
    }
    wrong
}

mod faults;
mod flush;
mod writes;
