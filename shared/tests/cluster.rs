//! The private Redis Cluster: it comes up whole, spreads keys over its masters, refuses
//! cross-slot commands, and the course's clean-up finds keys on every master.

use redis::AsyncCommands;
use shared::cluster::RedisCluster;
use shared::connection::{self, RedisConn};
use shared::{Namespace, RedisTarget, SetupError};

#[tokio::test]
async fn a_private_cluster_serves_every_slot_and_cleanup_scans_every_master() {
    let cluster = RedisCluster::start().expect("start a private cluster");
    let mut conn = connection::connect(&cluster.url()).await.expect("connect");
    assert!(
        matches!(conn, RedisConn::Cluster(_)),
        "a redis+cluster:// URL must give a cluster connection"
    );

    let namespace = Namespace::new("cluster-test");
    for i in 0..60 {
        let _: () = conn
            .set_ex(namespace.key(&format!("item:{i}")), i, 60)
            .await
            .unwrap();
    }
    // Each master holds some of the keys: the hash tags spread them over the slots.
    let mut per_master = Vec::new();
    for master in cluster.masters() {
        let mut node = redis::Client::open(master.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let size: u64 = redis::cmd("DBSIZE").query_async(&mut node).await.unwrap();
        per_master.push(size);
    }
    assert_eq!(
        per_master.iter().sum::<u64>(),
        60,
        "keys on the masters, counted with DBSIZE on each: {per_master:?}"
    );
    assert!(
        per_master.iter().all(|&n| n > 0),
        "60 keys with distinct hash tags should land on all three masters; per master: {per_master:?}"
    );

    // Scripts, transactions and pipelines over two slots are refused; a multi-key DEL is split
    // into one DEL per slot by the cluster connection (and would be refused by a server).
    let two = [namespace.key("item:1"), namespace.key("item:2")];
    let script: redis::RedisResult<i64> =
        redis::Script::new("return redis.call('DEL', KEYS[1], KEYS[2])")
            .key(&two[0])
            .key(&two[1])
            .invoke_async(&mut conn)
            .await;
    let piped: redis::RedisResult<(i64, i64)> = redis::pipe()
        .del(&two[0])
        .del(&two[1])
        .query_async(&mut conn)
        .await;
    for (what, outcome) in [
        ("a script", script.map(|_| ())),
        ("a pipeline", piped.map(|_| ())),
    ] {
        let error = outcome.expect_err("two keys of different slots in one request must fail");
        assert!(
            error.to_string().contains("slot"),
            "expected a cross-slot refusal of {what} over two slots, got: {error}"
        );
    }
    let deleted: i64 = conn.del(&two).await.unwrap();
    assert_eq!(
        deleted, 2,
        "keys deleted by one DEL the client split per slot"
    );

    assert_eq!(namespace.keys(&mut conn).await.unwrap().len(), 58);
    assert_eq!(namespace.remove_all(&mut conn).await.unwrap(), 58);
    assert!(namespace.keys(&mut conn).await.unwrap().is_empty());
}
#[tokio::test]
async fn a_cluster_url_at_a_single_server_and_the_reverse_are_explained() {
    let RedisTarget::Private(server) = RedisTarget::choose(None, false).unwrap() else {
        unreachable!("no URL and no cluster asked for gives a private server")
    };
    let as_cluster = format!("redis+cluster://127.0.0.1:{}/", server.port());
    let error = connection::connect(&as_cluster)
        .await
        .err()
        .expect("a cluster URL at a server");
    assert!(
        matches!(error, SetupError::RedisIsNotACluster { .. }),
        "expected RedisIsNotACluster for a cluster URL at a single server, got: {error}"
    );

    let cluster = RedisCluster::start().unwrap();
    let plain = cluster.masters()[0].url();
    let error = connection::connect(&plain)
        .await
        .err()
        .expect("a server URL at a cluster node");
    assert!(
        matches!(error, SetupError::RedisIsACluster { .. }),
        "expected RedisIsACluster for a plain URL at a cluster node, got: {error}"
    );
}
