//! The strategies whose work is done later or elsewhere: the outbox and its relay, and the
//! pattern delete a page at a time.

use super::*;

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
