//! Refreshing before the expiry: XFetch at both ends of beta, stale-while-revalidate, and a hit's
//! cost in round trips in every strategy.

use super::*;

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
/// Fresh for 200 ms, then served stale for a minute: a test lets the soft TTL pass and still
/// finds the value.
fn stale_soon() -> Settings {
    Settings {
        ttl: Duration::from_millis(200),
        serve_stale_for: Duration::from_secs(60),
        ..settings()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_serves_the_old_value_at_once_and_refreshes_once() {
    let fx = fixture().await;
    let pages = fx.pages();
    let soft = stale_soon();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_refreshes_a_fresh_value_at_once() {
    let fx = fixture().await;
    let pages = fx.pages();
    let swr = fx.stale(&pages, &settings()).await;
    swr.get("44").await.unwrap();
    fx.db().set_price(44, 7).await.unwrap();

    swr.refresh_after_write("44").await;
    swr.finish_refreshes().await.unwrap();
    let after = swr.get("44").await.unwrap();
    assert_eq!(
        after.price_cents, 7,
        "a read after refresh_after_write finished: expected the written price 7, got {} (the \
         write did not start a refresh, and the value is served until its soft TTL)",
        after.price_cents
    );
    assert_eq!(pages.started(), 2, "the first load and the refresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_during_a_refresh_makes_it_load_again() {
    let fx = fixture().await;
    let pages = fx.pages();
    let soft = stale_soon();
    let (a, b) = (fx.stale(&pages, &soft).await, fx.stale(&pages, &soft).await);
    a.get("45").await.unwrap();
    // Time is the subject here: let the soft TTL pass.
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Instance a's refresh starts and is held; the write lands meanwhile, on instance b, whose
    // own refresh cannot start (a holds the lock).
    pages.close();
    a.get("45").await.unwrap();
    pages.until_started(2).await;
    fx.db().set_price(45, 9).await.unwrap();
    b.refresh_after_write("45").await;
    assert_eq!(b.stats().refreshes, 0, "b's refresh: a holds the lock");

    pages.open();
    a.finish_refreshes().await.unwrap();
    assert_eq!(
        pages.started(),
        3,
        "loads: the first, a's refresh, and a second refresh because a write was counted while \
         the first ran (without it, whatever the first load read stays until the soft TTL)"
    );
    assert_eq!(b.get("45").await.unwrap().price_cents, 9);
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
