//! Redis down or slow: answers keep coming from the database, errors are counted, and hits
//! resume by themselves when Redis is back. Each test owns a private server it can stop.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cache_aside::Settings;
use common::{LessonStage, private_fixture};
use shared::db::seed_user;

fn fast_failing() -> Settings {
    Settings {
        redis_timeout: Duration::from_millis(100),
        ..Settings::default()
    }
}

/// Waits for `condition` to hold, checking every few milliseconds, for at most ten seconds.
async fn until(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..2_000 {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_workload_then_restarted() {
    let fx = private_fixture().await;
    let users = Arc::new(fx.users_with(fast_failing()));
    let done = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    // A workload over ids 1..=20 that runs until told to stop, checking every answer.
    let workload = {
        let (users, done, wrong, stop) = (users.clone(), done.clone(), wrong.clone(), stop.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let id = i % 20 + 1;
                match users.get(id).await {
                    Ok(Some(user)) if user == seed_user(id) => {}
                    _ => {
                        wrong.fetch_add(1, Ordering::SeqCst);
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        })
    };

    assert!(until(|| done.load(Ordering::SeqCst) >= 200).await);
    let before = users.cache().stats();
    assert_eq!(before.errors, 0);
    assert!(before.hits >= 150, "warm: {before:?}");

    fx.server().stop();
    let queries_at_stop = fx.db().queries();
    let done_at_stop = done.load(Ordering::SeqCst);
    assert!(until(|| done.load(Ordering::SeqCst) >= done_at_stop + 200).await);
    let down = users.cache().stats();
    assert!(
        down.errors > before.errors,
        "Redis errors are counted: {down:?}"
    );
    assert!(
        fx.db().queries() >= queries_at_stop + 190,
        "reads went to the database"
    );

    fx.server().restart().unwrap();
    let hits_at_restart = users.cache().stats().hits;
    assert!(
        until(|| users.cache().stats().hits > hits_at_restart + 50).await,
        "hits resumed without a restart of the program: {:?}",
        users.cache().stats()
    );

    stop.store(true, Ordering::SeqCst);
    workload.await.unwrap();
    assert_eq!(
        wrong.load(Ordering::SeqCst),
        0,
        "every answer was correct throughout"
    );
}

#[tokio::test]
async fn a_stalled_redis_costs_a_bounded_wait_not_an_error() {
    let fx = private_fixture().await;
    let users = fx.users_with(Settings {
        redis_timeout: Duration::from_millis(50),
        ..Settings::default()
    });
    users.get(1).await.unwrap();

    fx.server().pause(Duration::from_secs(3)).unwrap();
    // Generous outer bound: the point is that the call returns long before the pause ends.
    let during = tokio::time::timeout(Duration::from_millis(1_500), users.get(2))
        .await
        .expect("the read gave up on Redis instead of waiting out the pause")
        .unwrap();
    assert_eq!(during, Some(seed_user(2)));
    let stats = users.cache().stats();
    assert!(
        (1..=2).contains(&stats.errors),
        "Redis errors for one read against a paused Redis: expected 1 (the GET out of time) or 2 \
         (and the lease or store after the load), got {}: {stats:?}",
        stats.errors
    );
    assert_eq!(fx.db().queries(), 2);
}

#[tokio::test]
async fn writes_succeed_while_redis_is_down() {
    let fx = private_fixture().await;
    let users = fx.users_with(fast_failing());
    users.get(4).await.unwrap();
    fx.server().stop();
    let mut user = seed_user(4);
    user.name = "Written While Down".into();
    assert!(
        users.update(&user).await.unwrap(),
        "the database write stands"
    );
    let errors = users.cache().stats().errors;
    assert_eq!(
        errors, 1,
        "Redis errors for one update with Redis stopped: expected exactly 1 (the invalidating \
         DEL), got {errors}"
    );
    assert_eq!(users.get(4).await.unwrap(), Some(user));
}
