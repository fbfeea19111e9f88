//! Redis down: every strategy answers from the database, counts the failures, and uses Redis again
//! once it is back, without a restart of the application.

mod common;

use std::time::Duration;

use common::private_fixture;
use shared::db::seed_product;
use stampede::{AnyStrategy, Kind, Settings, Strategy};

/// Three reads of strategy `kind` with Redis stopped, then reads until one hits with Redis back.
async fn survives_an_outage(kind: Kind) {
    let fx = private_fixture().await;
    let instance = fx.instance().await.unwrap();
    let pages = std::sync::Arc::new(stampede::ProductPages::new(fx.db().clone()));
    let strategy = AnyStrategy::build(kind, &instance, pages, Settings::default()).await;

    fx.server().stop();
    for _ in 0..3 {
        assert_eq!(strategy.get("5").await.unwrap(), seed_product(5));
    }
    let down = strategy.stats();
    assert_eq!(
        down.loads, 3,
        "{kind:?}: each read went to the database: {down:?}"
    );
    assert!(
        down.errors >= 3,
        "{kind:?}: the failures are counted: {down:?}"
    );
    assert_eq!(down.hits, 0);

    fx.server().restart().unwrap();
    // The connection reconnects in the background; until it has, reads still load.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while strategy.stats().hits == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{kind:?}: no hit after Redis returned"
        );
        assert_eq!(strategy.get("5").await.unwrap(), seed_product(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn unprotected_degrades_and_recovers() {
    survives_an_outage(Kind::Unprotected).await;
}

#[tokio::test]
async fn single_flight_degrades_and_recovers() {
    survives_an_outage(Kind::SingleFlight).await;
}

#[tokio::test]
async fn the_lock_degrades_and_recovers() {
    survives_an_outage(Kind::Lock).await;
}

#[tokio::test]
async fn xfetch_degrades_and_recovers() {
    survives_an_outage(Kind::XFetch).await;
}

#[tokio::test]
async fn stale_while_revalidate_degrades_and_recovers() {
    survives_an_outage(Kind::Stale).await;
}
