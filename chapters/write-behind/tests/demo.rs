//! The demo binary: a small run shows write-behind losing nothing, the counter-examples losing
//! or doubling, and bad input exits non-zero with advice.

use shared::process::DemoOutput;

use serde_json::Value;

fn demo(args: &[&str]) -> DemoOutput {
    shared::process::demo_output(env!("CARGO_BIN_EXE_write-behind"), args).expect("run the demo")
}

#[test]
fn a_small_run_loses_nothing_with_write_behind_and_shows_the_counter_examples() {
    // Batches of at most 50: at least 60 commits for 3,000 writes, so the first child flusher
    // reaches its hold point (commit 10) however late it starts. With the default 500, a child
    // that starts late on a loaded machine finds most writes queued and commits them in fewer.
    let out = demo(&[
        "--requests",
        "3000",
        "--keys",
        "100",
        "--db-latency-ms",
        "1",
        "--batch-size",
        "50",
        "--format",
        "json",
    ]);
    let stderr = out.stderr.as_str();
    assert!(out.status.success(), "the demo failed: {stderr}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let mode = |name: &str| {
        rows.iter()
            .find(|row| row["mode"] == name)
            .unwrap_or_else(|| panic!("no row {name:?} in {rows:?}"))
    };
    for name in [
        "database alone",
        "write-through",
        "write-behind",
        "write-behind, flusher killed",
    ] {
        let row = mode(name);
        assert_eq!(
            (&row["lost"], &row["double_applied"], &row["failed_writes"]),
            (&Value::from(0), &Value::from(0), &Value::from(0)),
            "{name}: every acknowledged write reaches the database once: {row}"
        );
    }
    assert_eq!(mode("database alone")["db_transactions"], 3000);
    let behind = mode("write-behind");
    assert!(
        behind["db_transactions"].as_u64().unwrap() < 3000,
        "write-behind batches its writes: {behind}"
    );
    assert!(
        mode("in-process queue (source)")["lost"].as_u64().unwrap() > 0,
        "the source's in-process queue loses what it had not flushed at its stop"
    );
    let killed = mode("write-behind, flusher killed");
    assert!(
        killed["flush"]["claimed"].as_u64().unwrap() > 0,
        "the second flusher took over the killed one's entries: {killed}"
    );
    assert!(
        !stderr.contains("never reached"),
        "the first flusher was killed at its hold point: {stderr}"
    );
}

#[test]
fn a_bad_flag_exits_non_zero_with_the_accepted_range() {
    let out = demo(&["--shards", "0"]);
    assert!(!out.status.success());
    let stderr = out.stderr.as_str();
    assert!(stderr.contains("--shards"), "{stderr}");
}

#[test]
fn a_redis_without_persistence_is_named_with_what_a_crash_of_it_loses() {
    // An external Redis as a learner may run it: no AOF, no snapshots.
    let server = shared::RedisServer::start().expect("redis-server on PATH");
    let args = ["--requests", "300", "--keys", "50", "--db-latency-ms", "1"];
    let args = [&args[..], &["--format", "json"]].concat();
    let bin = env!("CARGO_BIN_EXE_write-behind");
    let out = shared::process::run_demo_on(bin, &server.url(), &args, |_| {}).expect("run");
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    assert!(out.status.success(), "the demo failed: {stderr}");
    let report: Value = serde_json::from_str(stdout).unwrap();
    let settings = report["settings"].to_string();
    assert!(
        settings.contains("redis persistence")
            && settings.contains("none: a crash of Redis loses every acknowledged write")
            && stderr.contains("keeps nothing across a crash"),
        "on a Redis with appendonly no and no save points: expected the report's settings to \
         name its persistence as none, with what a crash loses, and a note on stderr; settings: \
         {settings}\nstderr:\n{stderr}\nstdout:\n{stdout}"
    );
}
