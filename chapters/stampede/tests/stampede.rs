//! What each strategy promises, counted against a real Redis and a real database.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{LessonStage, burst, fixture, private_fixture, total, until};
use redis::AsyncCommands;
use shared::db::seed_product;
use stampede::token_lock::{self, Attempt};
use stampede::{Error, Settings, Strategy};

fn settings() -> Settings {
    Settings {
        ttl: Duration::from_secs(60),
        ..Settings::default()
    }
}

/// Locks and waits of a minute: a test that finishes in seconds was not waiting for either.
fn patient() -> Settings {
    Settings {
        lock_ttl: Duration::from_secs(60),
        max_wait: Duration::from_secs(60),
        ..settings()
    }
}

/// Every answer is the seed product `id`.
fn all_correct<E: std::fmt::Debug>(answers: &[Result<shared::Product, E>], id: i64) {
    for answer in answers {
        assert_eq!(answer.as_ref().unwrap(), &seed_product(id));
    }
}

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
    let instances = fx.locked_instances(4, &pages, &settings()).await;
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

// ANCHOR: xfetch
#[tokio::test]
async fn xfetch_with_a_large_beta_refreshes_before_expiry() {
    let fx = fixture().await;
    fx.db().set_latency(Duration::from_millis(50)); // a slow recomputation
    let eager = Settings {
        beta: 1e9,
        ..settings()
    };
    let xfetch = fx.xfetch(&fx.pages(), &eager).await;
    xfetch.get("21").await.unwrap();
    let expiry_before = fx.pttl_ms("21").await;

    assert_eq!(xfetch.get("21").await.unwrap(), seed_product(21));
    let stats = xfetch.stats();
    assert_eq!((stats.loads, stats.refreshes), (2, 1), "{stats:?}");
    // Refreshed a minute before its expiry: the key never went missing, and lives on.
    assert!(expiry_before > 50_000, "{expiry_before}");
    assert!(fx.pttl_ms("21").await > 55_000);
}

#[tokio::test]
async fn xfetch_with_beta_near_zero_does_not_refresh_early() {
    let fx = fixture().await;
    fx.db().set_latency(Duration::from_millis(50));
    let lazy = Settings {
        beta: 1e-9,
        ..settings()
    };
    let xfetch = fx.xfetch(&fx.pages(), &lazy).await;
    for _ in 0..50 {
        assert_eq!(xfetch.get("22").await.unwrap(), seed_product(22));
    }
    let stats = xfetch.stats();
    assert_eq!((stats.loads, stats.refreshes, stats.hits), (1, 0, 49));
}
// ANCHOR_END: xfetch

// ANCHOR: round_trips
/// Commands Redis has run since the last `CONFIG RESETSTAT`, not counting this query.
async fn commands_run(conn: &mut shared::RedisConn) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("total_commands_processed:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Warms `key`, then checks that 20 hits cost Redis exactly 20 commands.
async fn hits_cost_one_command<T: Strategy>(fx: &shared::Stage, strategy: &T, key: &str) {
    strategy.get(key).await.unwrap();
    let mut conn = fx.conn();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await
        .unwrap();
    let before = commands_run(&mut conn).await;
    for _ in 0..20 {
        strategy.get(key).await.unwrap();
    }
    // + 1 for the first INFO itself.
    assert_eq!(commands_run(&mut conn).await - before, 20 + 1, "key {key}");
    assert_eq!(strategy.stats().hits, 20);
}

#[tokio::test]
async fn a_hit_is_one_round_trip_in_every_strategy() {
    let fx = private_fixture().await;
    let pages = fx.pages();
    let p = settings();
    hits_cost_one_command(&fx, &fx.unprotected(&pages, &p).await, "31").await;
    hits_cost_one_command(&fx, &fx.single_flight(&pages, &p).await, "32").await;
    hits_cost_one_command(&fx, &fx.locked(&pages, &p).await, "33").await;
    hits_cost_one_command(&fx, &fx.xfetch(&pages, &p).await, "34").await;
    hits_cost_one_command(&fx, &fx.stale(&pages, &p).await, "35").await;
}
// ANCHOR_END: round_trips

// ANCHOR: stale
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_serves_the_old_value_at_once_and_refreshes_once() {
    let fx = fixture().await;
    let pages = fx.pages();
    let soft = Settings {
        ttl: Duration::from_millis(200),
        serve_stale_for: Duration::from_secs(60),
        ..settings()
    };
    let instances = vec![
        Arc::new(fx.stale(&pages, &soft).await),
        Arc::new(fx.stale(&pages, &soft).await),
    ];
    let old = instances[0].get("41").await.unwrap();
    fx.db().set_price(41, 1).await.unwrap();
    // Time is the subject here: let the soft TTL pass.
    tokio::time::sleep(Duration::from_millis(400)).await;

    // The refresh cannot finish while the gate is closed, so every answer below was served
    // without waiting for it.
    pages.close();
    let answers = burst(&instances, "41", 40).await;
    for answer in &answers {
        assert_eq!(answer.as_ref().unwrap(), &old, "the stale value, at once");
    }
    let stats = total(&instances);
    assert_eq!((stats.stale_hits, stats.refreshes), (40, 1), "{stats:?}");

    pages.open();
    for instance in &instances {
        instance.finish_refreshes().await.unwrap();
    }
    assert_eq!(
        fx.db().queries(),
        3,
        "first load, the price update, one refresh"
    );
    let fresh = instances[1].get("41").await.unwrap();
    assert_eq!(fresh.price_cents, 1);
    assert_eq!(instances[1].stats().hits, 1);
}

#[tokio::test]
async fn after_the_hard_ttl_the_value_is_gone() {
    let fx = fixture().await;
    let short = Settings {
        ttl: Duration::from_millis(100),
        serve_stale_for: Duration::from_millis(200),
        ..settings()
    };
    let swr = fx.stale(&fx.pages(), &short).await;
    swr.get("42").await.unwrap();
    let pttl = fx.pttl_ms("42").await;
    assert!(
        (201..=300).contains(&pttl),
        "PTTL of a value fresh for 100 ms and servable stale for 200 more: expected 201 to 300 ms \
         (the soft TTL plus the stale window), got {pttl} ms"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!fx.exists("42").await);

    assert_eq!(swr.get("42").await.unwrap(), seed_product(42));
    let stats = swr.stats();
    assert_eq!((stats.misses, stats.loads, stats.stale_hits), (2, 2, 0));
}
// ANCHOR_END: stale

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
