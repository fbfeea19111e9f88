//! The stage and the pub/sub subscription: what a run leaves behind, and what a receiver hears
//! when the subscription's connection is lost.

use std::time::Duration;

use redis::AsyncCommands;
use shared::pubsub::Event;
use shared::{DbOptions, RedisServer, RedisTarget, ServerOptions, SetupError, Stage};

/// A stage on a server it treats as somebody else's, and that server.
async fn external_stage() -> (Stage, RedisServer) {
    let server = RedisServer::start().unwrap();
    let redis = RedisTarget::External(server.url());
    let stage = Stage::open("stage-test", redis, DbOptions::default())
        .await
        .unwrap();
    (stage, server)
}

#[tokio::test]
async fn close_removes_the_runs_keys_and_nothing_else() {
    let (stage, server) = external_stage().await;
    let mut conn = shared::connection::connect(&server.url()).await.unwrap();
    let _: () = conn.set("someone-elses:key", "mine").await.unwrap();
    let child = stage.namespace().child("part");
    for key in [stage.key("a"), stage.key("b"), child.key("c")] {
        let _: () = conn.set_ex(key, "v", 60).await.unwrap();
    }
    stage.close().await.unwrap();
    let left: Vec<String> = conn.keys("*").await.unwrap();
    assert_eq!(left, ["someone-elses:key"], "keys left after close");
}

#[tokio::test]
async fn a_run_removes_the_keys_of_killed_runs_and_leaves_live_runs_alone() {
    let (mut stage, server) = external_stage().await;
    let mut conn = shared::connection::connect(&server.url()).await.unwrap();
    // A killed run: a queue with no TTL, and no mark (it expired with the run).
    let _: () = conn
        .set("course:stage-test:dead0001:queue", "q")
        .await
        .unwrap();
    let _: () = conn
        .set_ex("course:stage-test:dead0001:copy", "c", 60)
        .await
        .unwrap();
    // A run alive beside this one: its mark is there.
    let _: () = conn
        .set("course:stage-test:live0001:queue", "q")
        .await
        .unwrap();
    let _: () = conn
        .set_ex("course:stage-test:live0001:alive", 1, 10)
        .await
        .unwrap();
    // Another lesson's killed run, and someone else's key: not this lesson's business.
    let _: () = conn
        .set("course:stage-test-2:dead0002:queue", "q")
        .await
        .unwrap();
    let _: () = conn.set("someone-elses:key", "mine").await.unwrap();

    let removed = stage.sweep_killed_runs().await.unwrap();
    let mut left: Vec<String> = conn.keys("*").await.unwrap();
    left.sort();
    let own_mark = stage.key("alive");
    let mut expected = vec![
        "course:stage-test-2:dead0002:queue".to_string(),
        "course:stage-test:live0001:alive".to_string(),
        "course:stage-test:live0001:queue".to_string(),
        own_mark.clone(),
        "someone-elses:key".to_string(),
    ];
    expected.sort();
    assert_eq!(
        (removed, &left),
        (2, &expected),
        "(keys removed, keys left) after the sweep: only the dead run's two keys should go, and \
         this run should have its own mark"
    );
    let ttl: i64 = conn.pttl(&own_mark).await.unwrap();
    assert!(
        (1..=10_000).contains(&ttl),
        "PTTL of this run's mark: expected 1 to 10,000 ms (it must expire soon after a kill), \
         found {ttl}"
    );
    stage.close().await.unwrap();
    let mark: bool = conn.exists(&own_mark).await.unwrap();
    assert!(!mark, "this run's mark outlived its close");
}

#[tokio::test]
async fn close_refuses_while_the_database_is_still_in_use() {
    let (stage, _server) = external_stage().await;
    let handle = stage.db().clone();
    let error = stage.close().await.unwrap_err();
    assert!(
        matches!(error, SetupError::DatabaseInUse { others: 1 }),
        "closing with one other handle alive: {error}"
    );
    drop(handle);
}

/// The next event, or a panic naming `what` after 10 s.
async fn next(receiver: &mut shared::pubsub::Receiver, what: &str) -> Event {
    tokio::time::timeout(Duration::from_secs(10), receiver.recv())
        .await
        .unwrap_or_else(|_| panic!("no event within 10 s: expected {what}"))
        .expect("the subscription is alive")
}

#[tokio::test]
async fn a_subscription_fans_out_and_reports_a_reconnection() {
    let stage = Stage::private("stage-test", DbOptions::default(), ServerOptions::default())
        .await
        .unwrap();
    let instance = stage.instance().await.unwrap();
    let channel = stage.key("news");
    let subscription = instance.subscribe(&channel).await;
    let (mut first, mut second) = (subscription.receiver(), subscription.receiver());

    let _: () = stage.conn().publish(&channel, "one").await.unwrap();
    for receiver in [&mut first, &mut second] {
        match next(receiver, "message one").await {
            Event::Message(payload) => assert_eq!(&*payload, b"one"),
            Event::Missed => panic!("expected message one, got Missed"),
        }
    }
    assert_eq!(subscription.reconnects(), 0);

    // The server goes away and comes back: messages published meanwhile are lost, so every
    // receiver hears Missed once the subscription is made again.
    stage.server().crash();
    stage.server().restart().unwrap();
    assert!(matches!(next(&mut first, "Missed").await, Event::Missed));
    assert!(matches!(next(&mut second, "Missed").await, Event::Missed));
    assert_eq!(subscription.reconnects(), 1);

    let publisher = stage.instance().await.unwrap();
    let _: () = publisher
        .conn
        .clone()
        .publish(&channel, "two")
        .await
        .unwrap();
    match next(&mut first, "message two").await {
        Event::Message(payload) => assert_eq!(&*payload, b"two"),
        Event::Missed => panic!("expected message two, got Missed"),
    }
}
