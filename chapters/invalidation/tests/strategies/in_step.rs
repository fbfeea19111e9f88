//! The strategies that are done when the write returns, and the ones bounded by an event or the
//! TTL: delete, generations, tags, broadcast events, TTL only, and the source material's map.

use super::*;

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
async fn an_expired_generation_never_brings_back_an_old_value() {
    let fx = Fixture::shared().await;
    let (a, b) = (
        fx.instance(Kind::Generations).await,
        fx.instance(Kind::Generations).await,
    );
    b.set_price(4, 500).await.unwrap();
    let (before, _) = page(&a, 4).await; // cached in the generation that write made
    // The counter expires (twice the TTL after that write, when the server's clock has long
    // passed its value) while a key of its generation, read just before, still lives.
    let counter = fx.keys().generation("tea");
    let generation: i64 = fx.stage.conn().get(&counter).await.unwrap();
    until(
        || async {
            let (secs, micros): (i64, i64) = redis::cmd("TIME")
                .query_async(&mut fx.stage.conn())
                .await
                .unwrap();
            secs * 1000 + micros / 1000 > generation
        },
        "the server's clock to pass the generation's number",
    )
    .await;
    let _: () = fx.stage.conn().del(&counter).await.unwrap();
    b.set_price(4, 600).await.unwrap();
    let (after, listed) = page(&a, 4).await;
    assert!(
        after.version == before.version + 1 && listed.version == before.version + 1,
        "item 4 after a write that followed its generation counter's expiry: expected version \
         {} on its page and in its listing, got {} and {}. A counter that starts again from 0 \
         lands on the generation it had before, whose keys still hold the old value",
        before.version + 1,
        after.version,
        listed.version
    );
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
    let safety = invalidation::source::SAFETY_TTL.as_millis() as i64;
    assert!(
        left > safety - 60_000 && left <= safety,
        "PTTL of the counter-example's dependency set: expected the course's safety TTL, \
         {safety} ms less the test's time (it outlives the listings it tracks, the flaw, yet a \
         killed run leaves nothing for ever); found {left} ms"
    );
}
