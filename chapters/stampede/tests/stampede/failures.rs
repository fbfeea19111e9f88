//! What goes wrong below the cache: a corrupt entry, and a load that fails.

use super::*;

#[tokio::test]
async fn a_corrupt_entry_is_a_miss_that_gets_overwritten() {
    let fx = fixture().await;
    let pages = fx.pages();
    let locked = fx.locked(&pages, &settings()).await;
    let _: () = fx
        .conn()
        .set_ex(fx.namespace().key("51"), "{not json", 120)
        .await
        .unwrap();
    assert_eq!(locked.get("51").await.unwrap(), seed_product(51));
    assert_eq!(locked.get("51").await.unwrap(), seed_product(51));
    let stats = locked.stats();
    // Read as corrupt twice (the first look and the lock holder's second look), loaded once.
    assert_eq!((stats.corrupt, stats.loads, stats.hits), (2, 1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_load_wakes_the_waiters_instead_of_leaving_them_to_the_lock_ttl() {
    let fx = fixture().await;
    let pages = fx.pages();
    let patient = patient();
    let instances = fx.locked_instances(2, &pages, &patient).await;
    // There is no product 9999: every load fails. The gate holds the first load until all 20
    // requests have missed and joined their instance's flight; without it, a request that arrives
    // after its instance's failed flight landed starts a flight of its own, and a third load.
    pages.close();
    let requests = tokio::spawn({
        let instances = instances.clone();
        async move { burst(&instances, "9999", 20).await }
    });
    pages.until_started(1).await;
    until(
        "all 20 requests missed and one instance waits on the lock",
        || {
            let stats = total(&instances);
            stats.misses == 20 && stats.waits >= 1
        },
    )
    .await;
    pages.open();
    let answers = tokio::time::timeout(Duration::from_secs(10), requests)
        .await
        .expect("the waiters heard about the failure, not the 60 s lock TTL")
        .unwrap();
    for answer in &answers {
        assert!(matches!(answer, Err(Error::Load { .. })), "{answer:?}");
    }
    // Each instance's requests share one outcome, so at most one load per instance.
    assert!(
        (1..=2).contains(&pages.started()),
        "loads started: expected 1 or 2 (one per instance), found {}: the failure did not reach \
         the requests sharing a flight, or a waiter loaded on its own",
        pages.started()
    );
    assert!(!fx.exists("9999:lock").await);
}

#[tokio::test]
async fn a_failed_load_is_an_error_that_names_the_key() {
    let fx = fixture().await;
    let pages = fx.pages();
    let locked = fx.locked(&pages, &settings()).await;
    let error = locked.get("9999").await.unwrap_err().to_string();
    assert!(
        error.contains("\"9999\"") && error.contains("no product 9999"),
        "{error}"
    );
    // The holder released its lock: the next request is not kept waiting.
    assert!(!fx.exists("9999:lock").await);
}
