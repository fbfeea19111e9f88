//! The demo binary: a small run answers every request right in every configuration, and the
//! caches do what the chapter says; bad input exits non-zero with advice.

use serde_json::Value;
use shared::process::DemoOutput;

fn demo(args: &[&str]) -> DemoOutput {
    shared::process::demo_output(env!("CARGO_BIN_EXE_capstone"), args).expect("run the demo")
}

#[test]
fn a_small_run_is_right_everywhere_and_the_caches_spare_the_database() {
    // A limit far under what the greedy client sends however slow the machine (150 requests in a
    // few seconds), and over what any of the 200 honest users sends in the whole run (about 7
    // each, drawn at random).
    let out = demo(&[
        "--requests",
        "1500",
        "--db-latency-ms",
        "0",
        "--rate-limit",
        "20",
        "--report-ms",
        "200",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = report["load"]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "one row per configuration: {rows:?}");
    for row in rows {
        assert_eq!(row["wrong"], 0, "wrong answers: {row}");
        assert_eq!(row["errors"], 0, "failed requests: {row}");
        assert!(
            row["refused"].as_u64().unwrap() > 0,
            "the greedy client is refused: {row}"
        );
    }
    let queries = |row: &Value| row["queries_per_1k"].as_f64().unwrap();
    for row in &rows[1..] {
        assert!(
            queries(row) * 2.0 < queries(&rows[0]),
            "{}: {} queries per 1,000 requests against {} without a cache: expected under half",
            row["caching"],
            queries(row),
            queries(&rows[0])
        );
    }
    let upstream = |row: &Value| row["upstream_per_1k"].as_f64().unwrap();
    // In so small a run most weather and rate requests ask for a name once: the cache can only
    // save calls, never add one (the test of the service counts what it saves).
    for row in &rows[1..] {
        assert!(
            upstream(row) <= upstream(&rows[0]),
            "{}: {} calls to the third party per 1,000 requests against {} without a cache: \
             expected no more",
            row["caching"],
            upstream(row),
            upstream(&rows[0])
        );
    }
    let not_modified = |i: usize| rows[i]["not_modified"].as_u64().unwrap();
    assert_eq!(not_modified(2), 0, "no ETags without conditional requests");
    assert!(
        not_modified(3) > 0,
        "clients that keep ETags get 304s: {}",
        rows[3]
    );
    let layers = report["layers"]["rows"].as_array().unwrap();
    for row in layers {
        // An instance's L1 keeps a product until the backplane's message arrives, at most its
        // TTL (1 s): a read in between is stale, within that bound and no longer.
        let longest = row["longest_stale_ms"].as_f64().unwrap();
        assert!(
            longest <= 1_000.0,
            "a product read served a version out of date for {longest} ms; expected at most the \
             L1 TTL (1,000 ms): an invalidation was lost: {row}"
        );
    }
    for row in layers {
        // Trending is kept 1 s, and the flushers write a view within milliseconds of its
        // acknowledgement on an idle machine: 5 s is a loaded machine's margin, not a target.
        let lag = row["trending_lag_ms"].as_f64().unwrap();
        assert!(
            lag <= 5_000.0,
            "trending trailed the acknowledged views by {lag} ms; expected at most its TTL (1 s) \
             plus the flusher's lag: are the flushers running? {row}"
        );
    }
    for row in &layers[..2] {
        assert_eq!(row["stale"], 0, "without L1 no read may be stale: {row}");
    }
    let l1 = layers[2]["shares"][0].as_f64().unwrap();
    assert!(
        l1 > 0.3,
        "L1 answered {l1} of the layered configuration's reads: {}",
        layers[2]
    );
    for row in layers {
        // A price change refreshes the dashboard (200 ms a report here), and a refresh under way
        // runs again: two reports behind at most, and 5 s of margin for a loaded machine.
        let lag = row["dashboard_lag_ms"].as_f64().unwrap();
        assert!(
            lag <= 5_400.0,
            "the dashboard trailed the acknowledged price changes by {lag} ms; expected about two \
             reports (400 ms): does a price change refresh it? {row}"
        );
    }
    let after_loss = report["after_loss"]["rows"].as_array().unwrap();
    let reads = |i: usize| after_loss[i]["reads"].as_u64().unwrap();
    assert_eq!(
        (reads(0), reads(1)),
        (0, 0),
        "after Redis lost the pages and L1 was emptied, no read can come from either: {after_loss:?}"
    );
    assert!(
        reads(2) > 0,
        "after Redis lost the pages, the disk answered none of the reads: {after_loss:?}"
    );
    assert!(!report["load"]["conclusion"].as_str().unwrap().is_empty());
}

#[test]
fn bad_input_is_refused_with_advice() {
    let out = demo(&["--requests", "5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("--requests"), "{}", out.stderr);
    let out = demo(&["serve", "--port", "80"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("--port"), "{}", out.stderr);
}
