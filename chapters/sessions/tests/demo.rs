//! The demo binary: a small run shows what the lesson claims, and bad input exits non-zero with
//! advice.

use serde_json::Value;
use shared::process::DemoOutput;

fn demo(args: &[&str]) -> DemoOutput {
    shared::process::demo_output(env!("CARGO_BIN_EXE_sessions"), args).expect("run the demo")
}

#[test]
fn a_small_run_breaks_no_rule_with_the_lessons_sessions_and_every_rule_with_the_sources() {
    let out = demo(&[
        "--users",
        "8",
        "--idle-ms",
        "600",
        "--absolute-ms",
        "900",
        "--refresh-after-ms",
        "150",
        "--replay-ms",
        "400",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let row = |sessions: &str| {
        rows.iter()
            .find(|r| r["sessions"] == sessions)
            .unwrap_or_else(|| panic!("no row {sessions}: {rows:?}"))
    };
    for sessions in ["every-request", "lesson"] {
        let line = row(sessions);
        for rule in [
            "wrong_passwords_accepted",
            "fixations",
            "after_logout",
            "past_absolute",
            "victims_refused",
            "errors",
        ] {
            assert_eq!(line[rule], 0, "{sessions}: {rule} in {line}");
        }
    }
    let source = row("source");
    for rule in [
        "wrong_passwords_accepted",
        "fixations",
        "after_logout",
        "past_absolute",
    ] {
        assert!(
            source[rule].as_u64().unwrap() > 0,
            "the source's sessions should break {rule}: {source}"
        );
    }
    let writes = |sessions: &str| row(sessions)["writes_per_request"].as_f64().unwrap();
    assert!(
        writes("lesson") * 2.0 < writes("every-request"),
        "the threshold should at least halve the writes: {} against {}",
        writes("lesson"),
        writes("every-request")
    );
    assert!(!report["conclusion"].as_str().unwrap().is_empty());
}

#[test]
fn bad_input_is_refused_with_advice() {
    let out = demo(&["--users", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("--users"), "{}", out.stderr);
    let out = demo(&["--idle-ms", "5000", "--absolute-ms", "1000"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("--idle-ms <= --absolute-ms"),
        "{}",
        out.stderr
    );
    let out = demo(&["--redis-url", "redis://127.0.0.1:1/"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("Is the server running?"),
        "{}",
        out.stderr
    );
}
