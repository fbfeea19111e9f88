//! How many loads a burst costs: none of the protection, single flight per process, and the lock
//! across instances, with its token, its woken waiters, a dead holder and a waiter out of time.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_protection_every_concurrent_miss_loads() {
    let fx = fixture().await;
    let pages = fx.pages();
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(Arc::new(fx.unprotected(&pages, &settings()).await));
    }
    pages.close();
    let requests = tokio::spawn({
        let instances = instances.clone();
        async move { burst(&instances, "7", 40).await }
    });
    // All 40 missed and are loading; none can finish before the gate opens.
    pages.until_started(40).await;
    pages.open();
    all_correct(&requests.await.unwrap(), 7);
    assert_eq!(fx.db().queries(), 40);
    assert_eq!(total(&instances).loads, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_flight_loads_once_per_process() {
    let fx = fixture().await;
    let pages = fx.pages();
    let mut instances = Vec::new();
    for _ in 0..4 {
        instances.push(Arc::new(fx.single_flight(&pages, &settings()).await));
    }
    pages.close();
    let requests = tokio::spawn({
        let instances = instances.clone();
        async move { burst(&instances, "7", 100).await }
    });
    pages.until_started(4).await; // one flight per instance is in the air
    pages.open();
    all_correct(&requests.await.unwrap(), 7);
    assert_eq!(fx.db().queries(), 4, "one load per process, four processes");
    for instance in &instances {
        assert_eq!(instance.stats().loads, 1);
    }
}

// ANCHOR: one_load
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_loads_once_across_instances_in_every_trial() {
    let fx = fixture().await;
    let pages = fx.pages();
    // Budgets far above any stall of a loaded machine: a Redis call past its 100 ms budget falls
    // back to the database and loads once more (graceful degradation, which failures.rs tests),
    // and that is not what this test counts (CI run 21, eight tests at once on two cores: a
    // trial with 3 loads).
    let unhurried = Settings {
        redis_timeout: Duration::from_secs(5),
        lock_ttl: Duration::from_secs(30),
        max_wait: Duration::from_secs(30),
        ..settings()
    };
    let instances = fx.locked_instances(4, &pages, &unhurried).await;
    // A lock taken without looking at the cache again loads a second time when a request's GET
    // missed just before the previous holder stored the value and its SET NX came just after that
    // holder released. That takes the right timing, which here came in the first 10 to 100
    // trials, so one trial proves nothing: with a fast load (no added latency) to keep the window
    // busy, each of 1,000 trials of 40 requests on a freshly expired key must load exactly once.
    let mut conn = fx.conn();
    for trial in 0..1_000 {
        let id = trial % 200 + 1;
        let _: () = conn.del(fx.namespace().key(&id.to_string())).await.unwrap();
        let before = fx.db().queries();
        let answers = burst(&instances, &id.to_string(), 40).await;
        all_correct(&answers, id);
        assert_eq!(fx.db().queries() - before, 1, "trial {trial}: loads");
    }
    let stats = total(&instances);
    assert_eq!(stats.loads, 1_000);
    assert_eq!(stats.errors, 0);
    assert!(stats.waits > 0, "some requests waited: {stats:?}");
}
// ANCHOR_END: one_load

// ANCHOR: token
#[tokio::test]
async fn a_holder_whose_lock_expired_cannot_release_the_next_holders_lock() {
    let fx = fixture().await;
    let mut conn = fx.conn();
    let key = fx.namespace().key("report:lock");

    let Attempt::Acquired(first) =
        token_lock::try_acquire(&mut conn, &key, Duration::from_secs(30))
            .await
            .unwrap()
    else {
        panic!("the lock was free");
    };
    // The first holder's lock runs out while it is still working (expire it now, not by waiting).
    let _: () = conn.del(&key).await.unwrap();
    let Attempt::Acquired(second) =
        token_lock::try_acquire(&mut conn, &key, Duration::from_secs(30))
            .await
            .unwrap()
    else {
        panic!("the expired lock was free");
    };

    assert!(
        !first.release(&mut conn).await.unwrap(),
        "not its lock any more"
    );
    let token: String = conn.get(&key).await.unwrap();
    assert_eq!(token, second.token(), "the second holder's lock is intact");
    match token_lock::try_acquire(&mut conn, &key, Duration::from_secs(30))
        .await
        .unwrap()
    {
        Attempt::Held { expires_in } => assert!(expires_in.unwrap() > Duration::from_secs(25)),
        Attempt::Acquired(_) => panic!("a third request got in while the second holds the lock"),
    }
    assert!(second.release(&mut conn).await.unwrap());
    assert!(!fx.exists("report:lock").await);
}
// ANCHOR_END: token

// ANCHOR: woken
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_woken_by_the_value_not_by_a_timer() {
    let fx = fixture().await;
    let pages = fx.pages();
    // Locks and waits of a minute: a waiter that relied on a timer would still be waiting when
    // the test gives up after 10 s.
    let patient = patient();
    let instances = fx.locked_instances(2, &pages, &patient).await;
    pages.close();
    let requests = tokio::spawn({
        let instances = instances.clone();
        async move { burst(&instances, "9", 20).await }
    });
    pages.until_started(1).await;
    // The other instance's requests share one trip through the lock, and it is waiting.
    until("the other instance to wait", || {
        total(&instances).waits >= 1
    })
    .await;
    pages.open();

    let answers = tokio::time::timeout(Duration::from_secs(10), requests)
        .await
        .expect("waiters woken when the value arrived")
        .unwrap();
    all_correct(&answers, 9);
    assert_eq!(fx.db().queries(), 1, "the waiters did not load");
    assert_eq!(total(&instances).waits, 1);
}
// ANCHOR_END: woken

// ANCHOR: dead_holder
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holder_delays_the_others_by_the_lock_ttl_then_one_loads() {
    let fx = fixture().await;
    let pages = fx.pages();
    let short_lock = Settings {
        lock_ttl: Duration::from_millis(500),
        max_wait: Duration::from_secs(60),
        ..settings()
    };
    let instances = fx.locked_instances(2, &pages, &short_lock).await;
    pages.hang_next();
    let holder = tokio::spawn({
        let instance = instances[0].clone();
        async move { instance.get("11").await }
    });
    pages.until_started(1).await;
    let waiters = tokio::spawn({
        let instances = instances.clone();
        async move { burst(&instances, "11", 10).await }
    });
    // The holder's instance-mates join its flight; the other instance waits on the lock.
    until("the other instance to wait", || {
        total(&instances).waits >= 1
    })
    .await;
    let died = Instant::now();
    holder.abort(); // it never releases its lock

    let answers = tokio::time::timeout(Duration::from_secs(10), waiters)
        .await
        .expect("the lock's TTL, not max_wait (60 s), ended the wait")
        .unwrap();
    all_correct(&answers, 11);
    assert_eq!(pages.started(), 2, "the dead holder's load and one more");
    assert_eq!(
        fx.db().queries(),
        1,
        "only the second load reached the database"
    );
    // A bound, not a speed claim: the lock had at most 500 ms left; allow for a loaded machine.
    assert!(
        died.elapsed() < Duration::from_secs(5),
        "{:?}",
        died.elapsed()
    );
}
// ANCHOR_END: dead_holder

// ANCHOR: gave_up
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_out_of_time_gives_up_instead_of_loading() {
    let fx = fixture().await;
    let pages = fx.pages();
    let impatient = Settings {
        lock_ttl: Duration::from_secs(60),
        max_wait: Duration::from_millis(100),
        ..settings()
    };
    let holding = Arc::new(fx.locked(&pages, &impatient).await);
    let waiting = Arc::new(fx.locked(&pages, &impatient).await);
    pages.close();
    let holder = tokio::spawn({
        let holding = holding.clone();
        async move { holding.get("13").await }
    });
    pages.until_started(1).await;

    let answers = burst(std::slice::from_ref(&waiting), "13", 20).await;
    for answer in &answers {
        assert!(matches!(answer, Err(Error::GaveUp { .. })), "{answer:?}");
    }
    assert_eq!(pages.started(), 1, "nobody stampeded at the deadline");
    assert!(waiting.stats().gave_up >= 1);

    pages.open();
    assert_eq!(holder.await.unwrap().unwrap(), seed_product(13));
    assert_eq!(waiting.get("13").await.unwrap(), seed_product(13));
    assert_eq!(fx.db().queries(), 1);
}
// ANCHOR_END: gave_up
