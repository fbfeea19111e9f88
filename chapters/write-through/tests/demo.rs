//! The demo binary: a small run reports what write-through promises, and bad input exits non-zero
//! with advice.

use shared::process::DemoOutput;

use serde_json::Value;

fn demo(args: &[&str]) -> DemoOutput {
    shared::process::demo_output(env!("CARGO_BIN_EXE_write-through"), args).expect("run the demo")
}

#[test]
fn a_small_run_reads_only_hits_and_no_stale_rows() {
    let out = demo(&[
        "--requests",
        "2000",
        "--keys",
        "100",
        "--db-latency-ms",
        "0",
        "--write-ratio",
        "0.2",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let [none, aside, through] = rows.as_slice() else {
        panic!("three modes: {rows:?}");
    };
    assert_eq!(none["mode"], "no cache");
    assert_eq!(none["db_queries"], 2000, "every request is a query");
    assert_eq!(through["mode"], "write-through");
    assert_eq!(
        through["read_hit_ratio"], 1.0,
        "warm, and every write leaves the new row"
    );
    assert_eq!(through["stale_reads"], 0);
    assert_eq!(aside["stale_reads"], 0);
    assert!(
        aside["read_hit_ratio"].as_f64().unwrap() < 1.0,
        "writes leave holes"
    );
    // Write-through's only queries are the writes themselves.
    let writes = through["write"]["count"].as_u64().unwrap();
    assert_eq!(through["db_queries"].as_u64().unwrap(), writes);
    assert!(!report["conclusion"].as_str().unwrap().is_empty());
}

#[test]
fn bad_input_is_refused_with_advice() {
    let out = demo(&["--write-ratio", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("from 0 to 1"), "{}", out.stderr);
    let out = demo(&["--redis-url", "redis://127.0.0.1:1/"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("Is the server running?"),
        "{}",
        out.stderr
    );
}
