//! What each invalidation strategy promises, checked with two application instances against a
//! real Redis and a real database: after a committed write, no instance returns the old value once
//! the strategy's bound has passed, the bound reached by events (a delete returning, an event
//! heard, a relay pass), never by sleeping.

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

/// The strategies whose invalidation is done when the write returns.
const AT_ONCE: [Kind; 4] = [Kind::Delete, Kind::Generations, Kind::Tags, Kind::Pattern];

#[tokio::test]
async fn a_write_is_seen_by_every_instance_as_soon_as_it_returns() {
    for kind in AT_ONCE {
        let fx = Fixture::shared().await;
        let (a, b) = (fx.instance(kind).await, fx.instance(kind).await);
        assert_shows(&a, "instance A", ITEM, 1, "before any write").await;
        assert_shows(&b, "instance B", ITEM, 1, "before any write").await;
        let written = b.set_price(ITEM, 999).await.unwrap().unwrap();
        assert_eq!(written.version, 2);
        let label = kind.label();
        assert_shows(
            &a,
            label,
            ITEM,
            2,
            "right after instance B's write returned",
        )
        .await;
        assert_shows(&b, label, ITEM, 2, "right after its own write returned").await;
    }
}

#[tokio::test]
async fn ttl_only_serves_the_old_value_no_longer_than_the_ttl() {
    let fx = Fixture::shared().await;
    let (a, b) = (
        fx.instance(Kind::TtlOnly).await,
        fx.instance(Kind::TtlOnly).await,
    );
    assert_shows(&a, "instance A", ITEM, 1, "before the write").await;
    b.set_price(ITEM, 999).await.unwrap();
    assert_shows(
        &a,
        "TTL only",
        ITEM,
        1,
        "after the write (nothing invalidates)",
    )
    .await;
    // The bound: the stale entry is gone when its TTL ends, and that is at most `ttl` away.
    let ttl = settings().ttl.as_millis() as i64;
    for key in fx.keys().affected_by(ITEM) {
        let left = fx.pttl(&key).await;
        assert!(
            left > 0 && left <= ttl,
            "PTTL of the stale {key}: expected 1 to {ttl} ms (the TTL bounds how long it is \
             served), got {left}"
        );
    }
}

#[tokio::test]
async fn broadcast_events_drop_every_instances_copy() {
    let fx = Fixture::shared().await;
    let (a, b) = (
        fx.instance(Kind::Events).await,
        fx.instance(Kind::Events).await,
    );
    assert_shows(&a, "instance A", ITEM, 1, "before the write").await;
    let AnyStrategy::Events(events_a) = &a else {
        unreachable!()
    };
    let heard_before = events_a.heard().0;
    b.set_price(ITEM, 999).await.unwrap();
    until(
        || async { events_a.heard().0 > heard_before },
        "instance A hears the event",
    )
    .await;
    assert_shows(&a, "broadcast events", ITEM, 2, "once it heard the event").await;
}

#[tokio::test]
async fn a_subscriber_that_missed_the_event_drops_everything_when_it_reconnects() {
    let fx = Fixture::private().await;
    let (a, b) = (
        fx.instance(Kind::Events).await,
        fx.instance(Kind::Events).await,
    );
    assert_shows(&a, "instance A", ITEM, 1, "before the write").await;
    let AnyStrategy::Events(events_a) = &a else {
        unreachable!()
    };
    let flushes_before = events_a.heard().1;
    // Every subscription loses its connection; the write's event is published before any of
    // them is back (they wait before resubscribing), so A never hears it.
    fx.stage
        .instance()
        .await
        .unwrap()
        .kill_subscribers()
        .await
        .unwrap();
    b.set_price(ITEM, 999).await.unwrap();
    until(
        || async { events_a.heard().1 > flushes_before },
        "instance A resubscribes and drops every copy",
    )
    .await;
    assert_shows(&a, "broadcast events", ITEM, 2, "after it resubscribed").await;
}

#[tokio::test]
async fn one_generation_bump_retires_every_key_of_the_category() {
    let fx = Fixture::shared().await;
    let (a, b) = (
        fx.instance(Kind::Generations).await,
        fx.instance(Kind::Generations).await,
    );
    let teas = [4, 8, 12];
    for id in teas {
        a.item(id).await.unwrap();
    }
    a.listing("tea").await.unwrap();
    let db = fx.stage.db();
    db.reset_queries();
    for id in teas {
        a.item(id).await.unwrap();
    }
    assert_eq!(db.queries(), 0, "the teas are cached before the write");

    b.set_price(4, 999).await.unwrap();
    db.reset_queries();
    for id in teas {
        a.item(id).await.unwrap();
    }
    a.listing("tea").await.unwrap();
    let queries = db.queries();
    assert_eq!(
        queries, 4,
        "database queries for items 4, 8, 12 and the tea listing after one write of item 4: \
         expected 4 (the bump retires every key of the category), got {queries}"
    );
    let keys = fx.keys();
    let ttl = settings().ttl.as_millis() as i64;
    for id in teas {
        let old = keys.item_in(0, id);
        let left = fx.pttl(&old).await;
        assert!(
            left > 0 && left <= ttl,
            "PTTL of generation 0's {old} after the bump: expected 1 to {ttl} ms (old \
             generations expire on their own), got {left}"
        );
    }
}

#[tokio::test]
async fn tags_remove_exactly_the_dependents_of_the_written_item() {
    let fx = Fixture::shared().await;
    let (a, b) = (fx.instance(Kind::Tags).await, fx.instance(Kind::Tags).await);
    // A caches item 5 (coffee), the coffee listing, item 4 and the tea listing.
    page(&a, ITEM).await;
    page(&a, 4).await;
    let keys = fx.keys();
    let ttl = settings().ttl.as_millis() as i64;
    let set = keys.dependents(ITEM);
    let left = fx.pttl(&set).await;
    assert!(
        left > 0 && left <= ttl,
        "PTTL of item 5's dependency set: expected 1 to {ttl} ms (it expires with what it \
         tracks), got {left}"
    );

    // B, which cached nothing, writes item 5.
    b.set_price(ITEM, 999).await.unwrap();
    for (key, expected) in [
        (keys.item(ITEM), false),
        (keys.listing("coffee"), false),
        (set.clone(), false),
        (keys.item(4), true),
        (keys.listing("tea"), true),
    ] {
        assert_eq!(
            fx.exists(&key).await,
            expected,
            "{key} after instance B wrote item 5: expected {}",
            if expected {
                "kept (not a dependent)"
            } else {
                "deleted"
            }
        );
    }
    assert_shows(&a, "tags in Redis", ITEM, 2, "after instance B's write").await;
}

#[tokio::test]
async fn the_source_materials_local_map_leaves_another_instances_listing_stale() {
    let fx = Fixture::shared().await;
    let (a, b) = (
        fx.instance(Kind::LocalDependencies).await,
        fx.instance(Kind::LocalDependencies).await,
    );
    page(&a, ITEM).await;
    b.set_price(ITEM, 999).await.unwrap();
    let listing = a.listing("coffee").await.unwrap();
    let listed = listing.iter().find(|i| i.id == ITEM).unwrap();
    assert_eq!(
        listed.version, 1,
        "the counter-example: instance B's map does not know instance A's listing, so the \
         listing keeps version 1"
    );
    let left = fx.pttl(&fx.keys().dependents(ITEM)).await;
    assert_eq!(
        left, -1,
        "the counter-example's dependency sets never expire"
    );
}

#[tokio::test]
async fn the_outbox_invalidates_after_redis_returns_with_no_call_from_the_writer() {
    let fx = Fixture::private().await;
    let (a, b) = (
        fx.instance(Kind::Outbox).await,
        fx.instance(Kind::Outbox).await,
    );
    page(&a, ITEM).await;
    let relay = Relay::new(fx.stage.db().clone(), fx.stage.conn(), settings());

    // Redis goes away keeping its data; the write commits without it.
    fx.stage.server().stop_keeping_data().unwrap();
    let written = b.set_price(ITEM, 999).await.unwrap().unwrap();
    assert!(
        relay.relay_once().await.is_err(),
        "a relay pass with Redis stopped: expected an error, and the entry kept"
    );
    fx.stage.server().restart().unwrap();
    // Redis is back with the old row in it; the writer is not asked to do anything.
    let relayed = relay.relay_once().await.unwrap();
    assert_eq!(
        relayed, 1,
        "the relay pass after Redis returned: expected 1 entry relayed"
    );
    assert_shows(
        &a,
        "outbox + relay",
        ITEM,
        written.version,
        "after the relay's pass",
    )
    .await;
    assert_eq!(
        relay.relay_once().await.unwrap(),
        0,
        "nothing left to relay"
    );
}

#[tokio::test]
async fn a_relay_that_died_mid_batch_is_replaced_harmlessly() {
    let fx = Fixture::shared().await;
    let (a, b) = (
        fx.instance(Kind::Outbox).await,
        fx.instance(Kind::Outbox).await,
    );
    for id in [ITEM, 4, 6] {
        page(&a, id).await;
        b.set_price(id, 999).await.unwrap();
    }
    // A relay deleted the first entry's keys and died before marking anything.
    let db = fx.stage.db();
    let waiting = db.waiting_in_outbox(10).await.unwrap();
    assert_eq!(waiting.len(), 3);
    let mut conn = fx.stage.conn();
    let _: () = conn.del(&waiting[0].keys).await.unwrap();
    page(&a, waiting[0].item).await; // refilled with the new row

    let relay = Relay::new(db.clone(), fx.stage.conn(), settings());
    let relayed = relay.relay_once().await.unwrap();
    assert_eq!(
        relayed, 3,
        "a new relay after one died mid-batch: expected all 3 entries relayed (none skipped)"
    );
    for id in [ITEM, 4, 6] {
        assert_shows(&a, "outbox + relay", id, 2, "after the new relay's pass").await;
    }
    assert_eq!(
        relay.relay_once().await.unwrap(),
        0,
        "nothing left to relay"
    );
}

#[tokio::test]
async fn a_running_relay_catches_up_once_redis_returns() {
    let fx = Fixture::private().await;
    let (a, b) = (
        fx.instance(Kind::Outbox).await,
        fx.instance(Kind::Outbox).await,
    );
    for id in 1..=10 {
        page(&a, id).await;
    }
    let relay = Arc::new(Relay::new(
        fx.stage.db().clone(),
        fx.stage.conn(),
        settings(),
    ));
    let worker = relay.clone().start();
    fx.stage.server().stop_keeping_data().unwrap();
    for id in 1..=10 {
        b.set_price(id, 999).await.unwrap();
    }
    until(
        || async { relay.metrics.retries.get() >= 1 },
        "the relay retries",
    )
    .await;
    fx.stage.server().restart().unwrap();
    until(
        || async { relay.metrics.relayed.get() == 10 },
        "the relay relays all 10",
    )
    .await;
    worker.stop().await.unwrap();
    for id in 1..=10 {
        assert_shows(&a, "outbox + relay", id, 2, "once the relay caught up").await;
    }
}

#[tokio::test]
async fn a_pattern_delete_removes_exactly_the_matching_keys_a_page_at_a_time() {
    let fx = Fixture::shared().await;
    let mut conn = fx.stage.conn();
    let keys = fx.keys();
    let (tea, coffee) = (keys.slot("tea"), keys.slot("coffee"));
    for n in 0..1_200 {
        let _: () = conn.set_ex(format!("{tea}:x:{n}"), n, 60).await.unwrap();
    }
    for n in 0..300 {
        let _: () = conn.set_ex(format!("{coffee}:x:{n}"), n, 60).await.unwrap();
    }
    let done = shared::namespace::unlink_matching(&mut conn, &format!("{tea}*"), 100)
        .await
        .unwrap();
    assert_eq!(
        done.keys, 1_200,
        "keys deleted by the pattern delete of the tea slot"
    );
    assert!(
        done.largest_page <= 400,
        "the most keys held at once: expected a page (about COUNT 100), got {}",
        done.largest_page
    );
    let left = shared::namespace::unlink_matching(&mut conn, &format!("{coffee}*"), 100)
        .await
        .unwrap();
    assert_eq!(
        left.keys, 300,
        "the coffee keys, which did not match, were all still there"
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
