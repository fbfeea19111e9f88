//! What each invalidation strategy promises, checked with two application instances against a
//! real Redis and a real database: after a committed write, no instance returns the old value once
//! the strategy's bound has passed, the bound reached by events (a delete returning, an event
//! heard, a relay pass), never by sleeping. The strategies done when the write returns or bounded
//! by an event ([`in_step`]), then those whose work is done later or elsewhere ([`deferred`]).

use std::sync::Arc;
use std::time::Duration;

use invalidation::catalog::{self, category_of};
use invalidation::keys::Keys;
use invalidation::outbox::Relay;
use invalidation::{AnyStrategy, Catalog, Item, Kind, Settings, Strategy};
use redis::AsyncCommands;
use shared::{DbOptions, KeysRemovedOnDrop, ServerOptions, Stage};

/// Long enough that nothing expires during a test: every bound below is reached by an event.
fn settings() -> Settings {
    Settings {
        ttl: Duration::from_secs(60),
        local_ttl: Duration::from_secs(60),
        ..Settings::default()
    }
}

/// Item 5 is a coffee; items 4, 8 and 12 are teas.
const ITEM: i64 = 5;

/// A stage with the catalog, and its keys removed however the test ends (the counter-example's
/// dependency sets have no TTL).
struct Fixture {
    stage: Stage,
    _keys: KeysRemovedOnDrop,
}

impl Fixture {
    async fn on(stage: Result<Stage, shared::SetupError>) -> Self {
        let stage = stage.expect("a Redis and a database for the tests");
        catalog::create(stage.db(), 40).await.unwrap();
        let _keys = stage.keys_removed_on_drop();
        Fixture { stage, _keys }
    }

    async fn shared() -> Self {
        Self::on(Stage::from_env("invalidation-test", DbOptions::default()).await).await
    }

    async fn private() -> Self {
        let db = DbOptions::default();
        Self::on(Stage::private("invalidation-test", db, ServerOptions::default()).await).await
    }

    fn keys(&self) -> Keys {
        Keys::new(self.stage.namespace().clone())
    }

    /// One application instance running `kind`, with connections of its own.
    async fn instance(&self, kind: Kind) -> AnyStrategy {
        let instance = self.stage.instance().await.unwrap();
        let db = self.stage.db().clone();
        AnyStrategy::build(kind, &instance, db, self.keys(), settings()).await
    }

    async fn exists(&self, key: &str) -> bool {
        self.stage.conn().exists(key).await.unwrap()
    }

    async fn pttl(&self, key: &str) -> i64 {
        self.stage.conn().pttl(key).await.unwrap()
    }
}

/// Reads item `id` and its listing through `strategy`: what a page shows.
async fn page(strategy: &AnyStrategy, id: i64) -> (Item, Item) {
    let item = strategy.item(id).await.unwrap().expect("the item exists");
    let listing = strategy.listing(category_of(id)).await.unwrap();
    let listed = listing.into_iter().find(|i| i.id == id).expect("listed");
    (item, listed)
}

/// Asserts that `strategy`'s instance `who` shows version `version` of item `id`, in the item
/// and in its listing.
async fn assert_shows(strategy: &AnyStrategy, who: &str, id: i64, version: i64, when: &str) {
    let (item, listed) = page(strategy, id).await;
    assert!(
        item.version == version && listed.version == version,
        "{who} {when}: expected item {id} at version {version} on its page and in its listing, \
         got versions {} and {}",
        item.version,
        listed.version
    );
}

/// Waits until `condition` holds, checking every 10 ms, for at most 10 s.
async fn until<F, Fut>(condition: F, what: &str)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited 10 s for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

mod deferred;
mod in_step;
