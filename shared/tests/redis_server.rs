//! The private Redis server: ready when started, gone when its owner is, restartable for faults.

use std::process::Command;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use shared::RedisServer;
use shared::connection::connect;

/// Whether a process is gone (exited, or a zombie nobody reaped yet).
fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn wait_until_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if is_gone(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[tokio::test]
async fn starts_ready_and_stops_on_drop() {
    let server = RedisServer::start().unwrap();
    let pid = server.pid().unwrap();
    let mut conn = connect(&server.url()).await.unwrap();
    let _: () = conn.set("course:test:k", "v").await.unwrap();
    let v: String = conn.get("course:test:k").await.unwrap();
    assert_eq!(v, "v");
    drop(server);
    assert!(is_gone(pid), "redis-server {pid} survived its owner");
}

#[tokio::test]
async fn restart_serves_the_same_address_with_no_data_unless_kept() {
    let server = RedisServer::start().unwrap();
    let url = server.url();
    let mut conn = connect(&url).await.unwrap();
    let _: () = conn.set("course:test:k", "v").await.unwrap();

    server.stop();
    assert!(server.pid().is_none());
    assert!(
        conn.get::<_, Option<String>>("course:test:k")
            .await
            .is_err()
    );

    server.restart().unwrap();
    assert_eq!(server.url(), url);
    assert_eq!(
        read_after_reconnect(&mut conn, "course:test:k").await,
        None,
        "empty"
    );

    // Stopped keeping its data, it comes back with it, like a server with persistence.
    let _: () = conn.set("course:test:k", "kept").await.unwrap();
    server.stop_keeping_data().unwrap();
    server.restart().unwrap();
    assert_eq!(
        read_after_reconnect(&mut conn, "course:test:k")
            .await
            .as_deref(),
        Some("kept")
    );
    // And a plain stop after that forgets it again.
    server.stop();
    server.restart().unwrap();
    assert_eq!(read_after_reconnect(&mut conn, "course:test:k").await, None);
}

/// GET through a connection manager whose server just restarted: it reconnects by itself, but
/// the first calls may still meet the old socket, so give it a few tries.
async fn read_after_reconnect(conn: &mut shared::RedisConn, key: &str) -> Option<String> {
    for _ in 0..50 {
        if let Ok(v) = conn.get::<_, Option<String>>(key).await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no answer from the restarted server");
}

#[tokio::test]
async fn pause_holds_commands_until_it_ends() {
    let server = RedisServer::start().unwrap();
    let mut conn = connect(&server.url()).await.unwrap();
    server.pause(Duration::from_millis(300)).unwrap();
    let held = tokio::time::timeout(Duration::from_millis(100), conn.ping::<String>()).await;
    assert!(held.is_err(), "PING answered during CLIENT PAUSE");
    let pong: String = tokio::time::timeout(Duration::from_secs(5), conn.ping())
        .await
        .expect("PING answered after the pause")
        .unwrap();
    assert_eq!(pong, "PONG");
}

/// A helper run in a child process by `dies_with_its_owner_process`: it starts a server, prints
/// its pid and exits without running any destructor.
#[test]
#[ignore = "helper process for dies_with_its_owner_process"]
fn owner_that_exits_abruptly() {
    let server = RedisServer::start().unwrap();
    println!("PID {}", server.pid().unwrap());
    println!("DIR {}", server.dir().display());
    std::process::exit(0);
}

#[test]
fn dies_with_its_owner_process() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "owner_that_exits_abruptly",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let pid: u32 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("PID "))
        .unwrap_or_else(|| panic!("child printed no pid: {stdout}"))
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_until_gone(pid),
        "redis-server {pid} outlived the process that started it"
    );
    // The child skipped every destructor, so its temporary folder is ours to remove, unless
    // another test's process has already swept it (a killed run's folder is what the sweep
    // removes: CI run 21 saw exactly that).
    let dir = stdout
        .lines()
        .find_map(|line| line.strip_prefix("DIR "))
        .expect("child printed its folder");
    match std::fs::remove_dir_all(dir.trim()) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            panic!("removing the child's folder {}: {error}", dir.trim())
        }
        _ => {}
    }
}

#[tokio::test]
async fn a_wrong_url_says_how_to_fix_it() {
    let err = connect("http://localhost:6379")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("redis://HOST:PORT/DB"), "{err}");
    // Nothing listens on port 1.
    let err = connect("redis://127.0.0.1:1/")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("Is the server running?"), "{err}");
}

/// Writes `n` keys, each acknowledged before the next, through a fresh connection.
async fn write_keys(url: &str, n: usize) {
    let mut conn = connect(url).await.unwrap();
    for i in 0..n {
        let _: () = conn.set(format!("course:test:{i}"), i).await.unwrap();
    }
}

async fn count_keys(url: &str) -> usize {
    let mut conn = connect(url).await.unwrap();
    redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap()
}

#[tokio::test]
async fn what_a_crash_and_a_clean_stop_keep_depends_on_persistence() {
    use shared::{Persistence, ServerOptions};
    let start = |persistence| {
        RedisServer::start_with(ServerOptions {
            persistence,
            ..ServerOptions::default()
        })
        .unwrap()
    };

    // No persistence: a crash loses everything.
    let off = start(Persistence::Off);
    write_keys(&off.url(), 100).await;
    off.crash();
    off.restart().unwrap();
    assert_eq!(
        count_keys(&off.url()).await,
        0,
        "nothing survives without persistence"
    );

    // appendfsync always: every acknowledged write survives a crash (kill -9).
    let always = start(Persistence::AofAlways);
    write_keys(&always.url(), 100).await;
    always.crash();
    always.restart().unwrap();
    assert_eq!(
        count_keys(&always.url()).await,
        100,
        "AOF always keeps every acknowledged write"
    );

    // appendfsync everysec: a clean stop flushes the file, so nothing is lost. (A crash may lose
    // up to about a second of writes, which a test cannot pin down without sleeping.)
    let everysec = start(Persistence::AofEverySec);
    write_keys(&everysec.url(), 100).await;
    everysec.stop();
    everysec.restart().unwrap();
    assert_eq!(
        count_keys(&everysec.url()).await,
        100,
        "a clean stop keeps everything"
    );
}

#[tokio::test]
async fn a_memory_limit_evicts_by_its_policy() {
    use shared::server::MaxMemory;
    let server = RedisServer::start_with(shared::ServerOptions {
        max_memory: Some(MaxMemory {
            bytes: 4 * 1024 * 1024,
            policy: "allkeys-lru".into(),
        }),
        ..shared::ServerOptions::default()
    })
    .unwrap();
    let mut conn = connect(&server.url()).await.unwrap();
    let policy: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(policy, ["maxmemory-policy", "allkeys-lru"]);
    // 8 MiB of values into a 4 MiB server: it keeps going, and evicts.
    let value = vec![b'x'; 1024];
    for i in 0..8 * 1024 {
        let _: () = conn.set(format!("course:test:{i}"), &value).await.unwrap();
    }
    let kept: usize = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert!(
        (1..8 * 1024).contains(&kept),
        "keys kept under a 4 MiB limit: expected some but not all 8192, found {kept}"
    );
}
