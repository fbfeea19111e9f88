//! The demo binary: a small run shows what the lesson claims, and bad input exits non-zero with
//! advice.

use shared::process::DemoOutput;

use serde_json::Value;

fn demo(args: &[&str]) -> DemoOutput {
    shared::process::demo_output(env!("CARGO_BIN_EXE_rate-limiting"), args).expect("run the demo")
}

#[test]
fn a_short_run_shows_the_edge_burst_the_exact_log_and_the_sources_flaws() {
    let out = demo(&[
        "--run-ms",
        "2200",
        "--crowd",
        "10",
        "--pause-ms",
        "0",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        report["redis_down"].is_null(),
        "--pause-ms 0 skips the second part"
    );
    let report = &report["limiters"];
    let rows = report["rows"].as_array().unwrap();
    let row = |label: &str| {
        rows.iter()
            .find(|r| r["variant"] == label)
            .unwrap_or_else(|| panic!("no row {label}: {rows:?}"))
    };
    let worst = |label: &str| row(label)["worst_window"].as_u64().unwrap();
    // Limit 20 per second: the fixed window lets the edge client through twice over.
    assert!(
        worst("fixed window") > 30,
        "fixed window's worst window {}",
        worst("fixed window")
    );
    assert_eq!(worst("sliding log"), 20, "the sliding log is exact");
    assert_eq!(row("sliding log")["disagreement"]["admitted_wrongly"], 0);
    for bucket in ["token bucket", "GCRA"] {
        assert!(
            worst(bucket) <= 25,
            "{bucket}: {} in a window, bound 25",
            worst(bucket)
        );
    }
    assert!(worst("source: log, second as member") > 100);
    assert_eq!(row("source: INCR, crash, EXPIRE")["keys_without_ttl"], 1);
    assert!(
        row("source: INCR, crash, EXPIRE")["steady_refused"][0]
            .as_u64()
            .unwrap()
            > 0,
        "the crashed counter blocks the steady client"
    );
    for label in [
        "fixed window",
        "sliding log",
        "sliding window counter",
        "token bucket",
        "GCRA",
    ] {
        assert_eq!(row(label)["keys_without_ttl"], 0, "{label}");
        assert_eq!(
            row(label)["steady_refused"][0],
            0,
            "{label} refused the steady client"
        );
    }
    assert!(!report["conclusion"].as_str().unwrap().is_empty());
}

#[test]
fn bad_input_is_refused_with_advice() {
    let out = demo(&["--limit", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("1"), "{}", out.stderr);
    let out = demo(&["--redis-url", "redis://127.0.0.1:1/"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("Is the server running?"),
        "{}",
        out.stderr
    );
}
