//! The demo binary: a small run reports the figures each strategy promises, and bad input exits
//! non-zero with advice.

use shared::process::DemoOutput;

use serde_json::Value;

fn demo(args: &[&str]) -> DemoOutput {
    shared::process::demo_output(env!("CARGO_BIN_EXE_stampede"), args).expect("run the demo")
}

fn row<'a>(report: &'a Value, strategy: &str) -> &'a Value {
    report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["strategy"] == strategy)
        .unwrap_or_else(|| panic!("no row for {strategy}"))
}

#[test]
fn a_small_run_shows_what_each_strategy_promises() {
    let out = demo(&[
        "--requests",
        "60",
        "--instances",
        "3",
        "--db-latency-ms",
        "20",
        "--rate",
        "200",
        "--steady-secs",
        "0.5",
        "--keys",
        "5",
        "--ttl-ms",
        "100",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let reports: Value = serde_json::from_str(&out.stdout).unwrap();

    let burst = &reports["burst"];
    assert_eq!(burst["rows"].as_array().unwrap().len(), 5);
    let loads = |name| row(burst, name)["db_loads"].as_u64().unwrap();
    assert!(loads("no protection") > 1, "the baseline stampedes");
    assert!(
        (1..=3).contains(&loads("single flight")),
        "at most one per instance"
    );
    assert_eq!(loads("distributed lock"), 1);
    assert_eq!(loads("stale-while-revalidate"), 1, "one background refresh");
    // All 60 unless the machine is so busy that some arrive after the 20 ms refresh has landed.
    let stale = row(burst, "stale-while-revalidate")["served_stale"]
        .as_u64()
        .unwrap();
    assert!((1..=60).contains(&stale), "{stale}");
    for strategy in burst["rows"].as_array().unwrap() {
        assert_eq!(strategy["failed"], 0, "{strategy}");
        assert_eq!(strategy["redis_errors"], 0, "{strategy}");
    }
    assert!(!burst["conclusion"].as_str().unwrap().is_empty());

    let steady = &reports["steady"];
    assert_eq!(steady["rows"].as_array().unwrap().len(), 5);
    let lock = row(steady, "distributed lock");
    assert!(
        lock["db_loads"].as_u64().unwrap() > 0,
        "keys expired during the run"
    );
    assert_eq!(
        lock["loads_per_refresh"], 1.0,
        "never two loads of a key at once"
    );
    let stale = row(steady, "stale-while-revalidate");
    assert!(stale["served_stale"].as_u64().unwrap() > 0);
    assert!(stale["refreshed_early"].as_u64().unwrap() > 0);
    assert!(!steady["conclusion"].as_str().unwrap().is_empty());
}

#[test]
fn one_scenario_can_run_alone() {
    let out = demo(&[
        "--scenario",
        "burst",
        "--requests",
        "20",
        "--db-latency-ms",
        "1",
    ]);
    assert!(out.status.success(), "{}", out.stderr);
    let text = out.stdout.as_str();
    assert!(
        text.contains("Scenario 1") && !text.contains("Scenario 2"),
        "{text}"
    );
    assert!(text.contains("distributed lock"), "{text}");
}

#[test]
fn an_unreachable_redis_says_how_to_fix_it() {
    let out = demo(&["--redis-url", "redis://127.0.0.1:1/"]);
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("Is the server running?"),
        "{}",
        out.stderr
    );
}

#[test]
fn flags_out_of_range_are_refused_by_name() {
    let out = demo(&["--instances", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("--instances"), "{}", out.stderr);
    let out = demo(&["--scenario", "sometimes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.contains("burst, steady, both"), "{}", out.stderr);
}
