//! The demo binary: a small run shows what the lesson claims, and bad input exits non-zero with
//! advice.

use serde_json::Value;
use shared::process::DemoOutput;

fn demo(args: &[&str]) -> DemoOutput {
    shared::process::demo_output(env!("CARGO_BIN_EXE_http-caching"), args).expect("run the demo")
}

#[test]
fn a_small_run_serves_no_wrong_answer_from_the_lessons_caches_and_many_from_the_sources() {
    let out = demo(&[
        "--requests",
        "1500",
        "--outage-ms",
        "600",
        "--upstream-latency-ms",
        "50",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = report["caches"]["rows"].as_array().unwrap();
    let row = |label: &str| {
        rows.iter()
            .find(|r| r["caching"] == label)
            .unwrap_or_else(|| panic!("no row {label}: {rows:?}"))
    };
    for label in ["no cache", "response cache", "response cache + 304s"] {
        assert_eq!(
            row(label)["wrong"],
            0,
            "{label}: {}",
            row(label)["first_wrong"]
        );
        assert_eq!(row(label)["errors"], 0, "{label}");
        assert_eq!(
            row(label)["redis_errors"],
            0,
            "{label}: Redis failed in a clean run"
        );
    }
    assert!(
        row("source's middleware")["wrong"].as_u64().unwrap() > 100,
        "the source's path-only key serves other users' pages and other pages: {}",
        row("source's middleware")
    );
    assert_eq!(row("no cache")["queries_per_1000"], 1000.0);
    assert!(row("response cache")["queries_per_1000"].as_f64().unwrap() < 700.0);
    assert_eq!(row("response cache")["not_modified"], 0);
    assert!(
        row("response cache + 304s")["not_modified"]
            .as_u64()
            .unwrap()
            > 100
    );
    assert!(!report["caches"]["conclusion"].as_str().unwrap().is_empty());

    let weather = report["weather"]["rows"].as_array().unwrap();
    let (source, lessons) = (&weather[0], &weather[1]);
    assert_eq!(
        lessons["errors"], 0,
        "stale-if-error serves through the outage: {lessons}"
    );
    assert!(lessons["stale"].as_u64().unwrap() > 0, "{lessons}");
    assert!(
        source["errors"].as_u64().unwrap() > 0,
        "the plain TTL fails in the outage: {source}"
    );
    assert!(
        source["service_calls"].as_u64().unwrap() > lessons["service_calls"].as_u64().unwrap(),
        "one fetch per city at a time calls the service less: {source} {lessons}"
    );
}

#[test]
fn bad_input_is_refused_with_advice() {
    let out = demo(&["--users", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("--users"), "{}", out.stderr);
    let out = demo(&["--redis-url", "redis://127.0.0.1:1/"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("Is the server running?"),
        "{}",
        out.stderr
    );
}
