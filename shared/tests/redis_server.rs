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
async fn read_after_reconnect(
    conn: &mut redis::aio::ConnectionManager,
    key: &str,
) -> Option<String> {
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
    // The child skipped every destructor, so its temporary folder is ours to remove.
    let dir = stdout
        .lines()
        .find_map(|line| line.strip_prefix("DIR "))
        .expect("child printed its folder");
    std::fs::remove_dir_all(dir.trim()).unwrap();
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
