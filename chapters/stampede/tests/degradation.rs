//! Redis down: every strategy answers from the database, counts the failures, and uses Redis again
//! once it is back, without a restart of the application.

mod common;

use std::time::Duration;

use common::{Fixture, private_fixture};
use shared::db::seed_product;
use stampede::{Policy, Strategy};

/// Three reads with Redis stopped, then reads until one hits with Redis back.
async fn survives_an_outage<T: Strategy<Value = shared::Product>>(fx: &Fixture, strategy: T) {
    fx.server().stop();
    for _ in 0..3 {
        assert_eq!(strategy.get("5").await.unwrap(), seed_product(5));
    }
    let down = strategy.stats();
    assert_eq!(down.loads, 3, "each read went to the database: {down:?}");
    assert!(down.errors >= 3, "the failures are counted: {down:?}");
    assert_eq!(down.hits, 0);

    fx.server().restart().unwrap();
    // The connection reconnects in the background; until it has, reads still load.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while strategy.stats().hits == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no hit after Redis returned"
        );
        assert_eq!(strategy.get("5").await.unwrap(), seed_product(5));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn unprotected_degrades_and_recovers() {
    let fx = private_fixture().await;
    let strategy = fx.unprotected(&fx.pages(), &Policy::default()).await;
    survives_an_outage(&fx, strategy).await;
}

#[tokio::test]
async fn single_flight_degrades_and_recovers() {
    let fx = private_fixture().await;
    let strategy = fx.single_flight(&fx.pages(), &Policy::default()).await;
    survives_an_outage(&fx, strategy).await;
}

#[tokio::test]
async fn the_lock_degrades_and_recovers() {
    let fx = private_fixture().await;
    let strategy = fx.locked(&fx.pages(), &Policy::default()).await;
    survives_an_outage(&fx, strategy).await;
}

#[tokio::test]
async fn xfetch_degrades_and_recovers() {
    let fx = private_fixture().await;
    let strategy = fx.xfetch(&fx.pages(), &Policy::default()).await;
    survives_an_outage(&fx, strategy).await;
}

#[tokio::test]
async fn stale_while_revalidate_degrades_and_recovers() {
    let fx = private_fixture().await;
    let strategy = fx.stale(&fx.pages(), &Policy::default()).await;
    survives_an_outage(&fx, strategy).await;
}
