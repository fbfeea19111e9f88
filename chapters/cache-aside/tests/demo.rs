//! The demo binary: a small run reports exact figures, and bad input exits non-zero with advice.

use std::process::{Command, Output};

fn demo(args: &[&str]) -> Output {
    shared::process::run_owned(env!("CARGO_BIN_EXE_cache-aside"), args).expect("run the demo")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs the demo, asserts that it failed, and returns what it printed on stderr.
fn refused(args: &[&str]) -> String {
    let out = demo(args);
    assert!(!out.status.success(), "the demo accepted {args:?}");
    stderr(&out)
}

#[test]
fn a_serial_run_reports_one_load_per_distinct_key() {
    let out = demo(&[
        "--requests",
        "400",
        "--keys",
        "50",
        "--concurrency",
        "1",
        "--db-latency-ms",
        "0",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows[0]["strategy"], "database only");
    assert_eq!(rows[0]["db_queries"], 400);
    assert_eq!(rows[1]["strategy"], "cache-aside");
    // One task, so no two misses overlap: each distinct key is loaded exactly once.
    let loads = rows[1]["db_queries"].as_u64().unwrap();
    assert!((20..=50).contains(&loads), "{loads}");
    let hit_ratio = rows[1]["hit_ratio"].as_f64().unwrap();
    assert!(
        (hit_ratio - (400 - loads) as f64 / 400.0).abs() < 1e-9,
        "{hit_ratio}"
    );
    assert_eq!(rows[1]["redis_errors"], 0);
    assert_eq!(report["settings"]["db latency"], "0 ms");
    assert!(!report["conclusion"].as_str().unwrap().is_empty());
}

#[test]
fn a_url_that_is_not_redis_says_what_one_looks_like() {
    let err = refused(&["--redis-url", "http://localhost:6379"]);
    assert!(err.contains("redis://HOST:PORT/DB"), "{err}");
}

#[test]
fn an_unreachable_redis_says_how_to_fix_it() {
    let err = refused(&["--redis-url", "redis://127.0.0.1:1/"]);
    assert!(err.contains("Is the server running?"), "{err}");
}

#[test]
fn a_bad_database_url_names_the_accepted_forms() {
    let err = refused(&["--database-url", "mysql://nowhere/db", "--requests", "10"]);
    assert!(err.contains("postgres://"), "{err}");
}

#[test]
fn an_unreachable_database_is_not_called_a_bad_url() {
    let err = refused(&[
        "--database-url",
        "postgres://course@127.0.0.1:1/course",
        "--requests",
        "10",
    ]);
    assert!(err.contains("cannot reach the database"), "{err}");
}

#[test]
fn no_redis_on_path_gives_the_install_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_cache-aside"))
        .env("PATH", "/nonexistent")
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("sudo apt-get install redis-server"), "{err}");
    assert!(
        err.contains("brew install redis") && err.contains("REDIS_URL"),
        "{err}"
    );
}

#[test]
fn flags_out_of_range_are_refused_by_name() {
    let out = demo(&["--requests", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--requests"), "{}", stderr(&out));
    let out = demo(&["--write-ratio", "1.5"]);
    assert!(stderr(&out).contains("from 0 to 1"), "{}", stderr(&out));
}
